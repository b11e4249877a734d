//! The network behaviour of `netlib-memcached` that the client tools do not
//! reach: `-t 2` and `-t 3` (the loop group on one port), `-c` (the
//! connection limit, on one loop and over three),
//! output backpressure with a client that does not read, and closing after
//! `quit`. Each test starts its own server process on a free port.

mod memcached_common;

use memcached_common::{ServerProcess, TextClient};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Names of the threads of process `pid` (Linux `/proc`).
fn thread_names(pid: u32) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .collect()
}

/// `-t n`: the loops are netlib's loop group (threads `netlib-loop-<i>`)
/// sharing one port, and every connection sees what any other wrote,
/// wherever it landed.
fn loops_share_the_port_and_the_store(n: usize) {
    let server = ServerProcess::start(&["-t", &n.to_string()]);
    let mut names = thread_names(server.pid());
    names.sort();
    if !names.is_empty() {
        for i in 0..n {
            assert!(
                names.contains(&format!("netlib-loop-{i}")),
                "threads: {names:?}"
            );
        }
        assert!(
            !names.contains(&format!("netlib-loop-{n}")),
            "threads: {names:?}"
        );
    }

    // Enough connections that SO_REUSEPORT spreads them over every loop;
    // each reads a key another connection wrote.
    const N: usize = 48;
    let mut clients: Vec<TextClient> = (0..N).map(|_| TextClient::connect(server.addr)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.set(&format!("key{i}"), format!("value-{i}").as_bytes());
    }
    for i in 0..N {
        for step in [1, N / 2] {
            let reader = &mut clients[(i + step) % N];
            assert_eq!(
                reader.get(&format!("key{i}")),
                Some(format!("value-{i}").into_bytes())
            );
        }
    }
    assert_eq!(clients[0].stat("threads"), n.to_string());
    assert_eq!(clients[0].stat("curr_connections"), N.to_string());
    assert_eq!(clients[0].stat("total_connections"), N.to_string());
    assert_eq!(clients[0].stat("curr_items"), N.to_string());
    // Counters add up over loops: every connection did one set and two gets.
    assert_eq!(clients[N - 1].stat("cmd_set"), N.to_string());
    assert_eq!(clients[N - 1].stat("get_hits"), (2 * N).to_string());
}

#[test]
fn two_loops_share_the_port_and_the_store() {
    loops_share_the_port_and_the_store(2);
}

#[test]
fn three_loops_share_the_port_and_the_store() {
    loops_share_the_port_and_the_store(3);
}

/// `-c 3`, with `args` added: the limit counts connections over all loops.
fn connections_over_the_limit_are_refused_and_counted(args: &[&str]) {
    let mut all_args = vec!["-c", "3"];
    all_args.extend_from_slice(args);
    let server = ServerProcess::start(&all_args);
    let mut clients: Vec<TextClient> = (0..3).map(|_| TextClient::connect(server.addr)).collect();
    for c in &mut clients {
        c.send(b"version\r\n");
        assert!(c.line().starts_with("VERSION "));
    }

    let mut refused = TextClient::connect(server.addr);
    assert_eq!(refused.line(), "ERROR Too many open connections\r\n");
    assert_eq!(refused.line(), "", "refused connection should be closed");
    assert_eq!(clients[0].stat("rejected_connections"), "1");

    // A place frees up when a client leaves.
    clients.pop();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = TextClient::connect(server.addr);
        c.send(b"version\r\n");
        let line = c.line();
        if line.starts_with("VERSION ") {
            break;
        }
        assert_eq!(line, "ERROR Too many open connections\r\n");
        assert!(Instant::now() < deadline, "the freed place never came back");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn connections_over_the_limit_are_refused_and_counted_on_one_loop() {
    connections_over_the_limit_are_refused_and_counted(&[]);
}

#[test]
fn connections_over_the_limit_are_refused_and_counted_over_three_loops() {
    connections_over_the_limit_are_refused_and_counted(&["-t", "3"]);
}

#[test]
fn a_client_that_does_not_read_gets_everything_in_order_later() {
    let server = ServerProcess::start(&[]);
    let mut writer = TextClient::connect(server.addr);
    let value: Vec<u8> = (0..500 * 1024).map(|i| (i % 251) as u8).collect();
    writer.set("big", &value);

    // 40 gets of 500 KB = 20 MB of replies, far past the server's 4 MiB
    // output high-water mark, requested at once and not read for a while.
    let mut greedy = TextClient::connect(server.addr);
    let requests = "get big\r\n".repeat(40) + "version\r\n";
    greedy.send(requests.as_bytes());
    std::thread::sleep(Duration::from_millis(300));

    // The server is not stuck meanwhile.
    assert_eq!(writer.get("big").as_deref(), Some(&value[..]));

    for i in 0..40 {
        assert_eq!(greedy.line(), "VALUE big 0 512000\r\n", "reply {i}");
        assert!(greedy.read_exact(value.len()) == value, "value {i}");
        assert_eq!(greedy.read_exact(2), b"\r\n");
        assert_eq!(greedy.line(), "END\r\n");
    }
    assert!(greedy.line().starts_with("VERSION "));
}

#[test]
fn quit_closes_after_the_replies_before_it() {
    let server = ServerProcess::start(&[]);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"set a 0 0 1\r\nx\r\nget a\r\nquit\r\nget a\r\n")
        .unwrap();
    let mut all = Vec::new();
    stream.read_to_end(&mut all).unwrap();
    assert_eq!(all, b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n");
}

#[test]
fn an_endless_line_closes_only_that_connection() {
    let mut server = ServerProcess::start(&[]);
    let mut bad = TcpStream::connect(server.addr).unwrap();
    bad.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Far past the 2048-byte line limit, no newline. The server may close
    // while we are still writing; that is the point.
    let _ = bad.write_all(&[b'x'; 64 * 1024]);
    let mut rest = Vec::new();
    let _ = bad.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));

    let mut good = TextClient::connect(server.addr);
    good.send(b"version\r\n");
    assert!(good.line().starts_with("VERSION "));
    assert!(server.is_alive());
}

#[test]
fn requests_that_arrive_with_the_fin_are_answered() {
    let server = ServerProcess::start(&[]);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(b"set a 0 0 1\r\nx\r\nget a\r\n").unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut all = Vec::new();
    stream.read_to_end(&mut all).unwrap();
    assert_eq!(all, b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n");
}
