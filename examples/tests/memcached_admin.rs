//! `netlib-memcached`'s cross-protocol safety, administrative commands,
//! background reclaiming of expired items and the flags that go with them
//! (`-F`, `-A`, `-o idle_timeout`, `-U`; `-s` is in `memcached_unix.rs`), byte for byte as memcached
//! 1.6 answers. Each test starts its own server process on a free port
//! (killed on drop) and bounds every wait.

mod memcached_common;

use memcached_common::{run_with_timeout, ServerProcess, TextClient};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

/// Everything the server sends until it closes, waiting at most `limit`;
/// panics if it is still open by then.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return got,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("read: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "connection still open after {limit:?}; got {:?}",
            String::from_utf8_lossy(&got)
        );
    }
}

/// Sends `request` on a new connection and returns what came back before
/// the server closed it.
fn reply_then_close(server: &ServerProcess, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(server.addr).expect("connect");
    stream.write_all(request).expect("send");
    read_until_closed(&mut stream, Duration::from_secs(5))
}

/// Each `(request, reply)` pair on one connection, byte for byte.
fn exchange(client: &mut TextClient, pairs: &[(&str, &str)]) {
    for (request, expected) in pairs {
        client.send(request.as_bytes());
        let mut got = String::new();
        while got.len() < expected.len() {
            let line = client.line();
            assert!(!line.is_empty(), "{request:?}: closed after {got:?}");
            got.push_str(&line);
        }
        assert_eq!(&got, expected, "reply to {request:?}");
    }
}

#[test]
fn http_request_lines_close_without_a_reply() {
    let server = ServerProcess::start(&[]);
    for line in [
        "GET / HTTP/1.0\r\n",
        "PUT /x HTTP/1.1\r\n",
        "DELETE HTTP/1.1\r\n",
    ] {
        assert_eq!(
            reply_then_close(&server, line.as_bytes()),
            b"",
            "{line:?} should close at once"
        );
    }
    // Replies to commands before the HTTP line still go out.
    assert_eq!(
        reply_then_close(&server, b"version\r\nGET / HTTP/1.1\r\nversion\r\n"),
        b"VERSION 1.6.21\r\n"
    );
    // Not an HTTP line: the usual ERROR, and the connection stays.
    let mut client = TextClient::connect(server.addr);
    exchange(
        &mut client,
        &[
            ("GET / HTTX/1.0\r\n", "ERROR\r\n"),
            ("version\r\n", "VERSION 1.6.21\r\n"),
        ],
    );
}

#[test]
fn binary_protocol_requests_close_at_once() {
    let server = ServerProcess::start(&[]);
    // A binary GET of key "k": 24-byte header then the key.
    let mut get = vec![0x80, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 1];
    get.extend_from_slice(&[0; 12]);
    get.push(b'k');
    assert_eq!(reply_then_close(&server, &get), b"");
    // The magic byte alone, with nothing after it, closes too.
    assert_eq!(reply_then_close(&server, &[0x80]), b"");
    // After a text command, as the next request.
    let mut mixed = b"version\r\n".to_vec();
    mixed.extend_from_slice(&get);
    assert_eq!(reply_then_close(&server, &mixed), b"VERSION 1.6.21\r\n");
    let mut client = TextClient::connect(server.addr);
    assert_eq!(client.stat("curr_connections"), "1");
}

#[test]
fn admin_commands_answer_as_memcached() {
    let server = ServerProcess::start(&["-m", "64"]);
    let mut c = TextClient::connect(server.addr);
    exchange(
        &mut c,
        &[
            // cache_memlimit
            ("cache_memlimit\r\n", "ERROR\r\n"),
            ("cache_memlimit 1 2 3\r\n", "ERROR\r\n"),
            ("cache_memlimit x\r\n", "ERROR\r\n"),
            (
                "cache_memlimit 7\r\n",
                "MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n",
            ),
            (
                "cache_memlimit 2000000000\r\n",
                "MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes\r\n",
            ),
            ("cache_memlimit 100\r\n", "OK\r\n"),
            ("cache_memlimit 32 noreply\r\n", ""),
            // slabs
            ("slabs\r\n", "ERROR\r\n"),
            ("slabs automove\r\n", "ERROR\r\n"),
            ("slabs automove 0\r\n", "OK\r\n"),
            ("slabs automove 1\r\n", "OK\r\n"),
            ("slabs automove 2\r\n", "OK\r\n"),
            ("slabs automove 3\r\n", "ERROR\r\n"),
            (
                "slabs automove x\r\n",
                "CLIENT_ERROR bad command line format\r\n",
            ),
            ("slabs automove 1 noreply\r\n", ""),
            ("slabs automove ratio\r\n", "ERROR\r\n"),
            ("slabs automove ratio 0.8\r\n", "OK\r\n"),
            (
                "slabs reassign 1 2\r\n",
                "BADCLASS invalid src or dst class id\r\n",
            ),
            (
                "slabs reassign -1 5\r\n",
                "BADCLASS invalid src or dst class id\r\n",
            ),
            (
                "slabs reassign 3 3\r\n",
                "SAME src and dst class are identical\r\n",
            ),
            (
                "slabs reassign a 2\r\n",
                "CLIENT_ERROR bad command line format\r\n",
            ),
            ("slabs reassign 1\r\n", "ERROR\r\n"),
            ("slabs bogus 1 2\r\n", "ERROR\r\n"),
            // lru_crawler
            ("lru_crawler\r\n", "ERROR\r\n"),
            ("lru_crawler bogus\r\n", "ERROR\r\n"),
            ("lru_crawler crawl all\r\n", "OK\r\n"),
            ("lru_crawler crawl 1,2,3\r\n", "OK\r\n"),
            ("lru_crawler crawl 64\r\n", "BADCLASS invalid class id\r\n"),
            ("lru_crawler crawl 0\r\n", "BADCLASS invalid class id\r\n"),
            ("lru_crawler crawl x\r\n", "BADCLASS invalid class id\r\n"),
            (
                "lru_crawler metadump all\r\n",
                "ERROR metadump not allowed\r\n",
            ),
            ("lru_crawler tocrawl 100\r\n", "OK\r\n"),
            (
                "lru_crawler tocrawl x\r\n",
                "CLIENT_ERROR bad command line format\r\n",
            ),
            ("lru_crawler sleep 100\r\n", "OK\r\n"),
            (
                "lru_crawler sleep 1000001\r\n",
                "CLIENT_ERROR sleep must be one second or less\r\n",
            ),
            (
                "lru_crawler enable\r\n",
                "ERROR failed to start lru crawler thread\r\n",
            ),
            ("lru_crawler disable\r\n", "OK\r\n"),
            ("lru_crawler disable\r\n", "OK\r\n"),
            (
                "lru_crawler crawl all\r\n",
                "CLIENT_ERROR lru crawler disabled\r\n",
            ),
            (
                "lru_crawler metadump all\r\n",
                "CLIENT_ERROR lru crawler disabled\r\n",
            ),
            ("lru_crawler enable\r\n", "OK\r\n"),
            // watch
            ("watch\r\n", "CLIENT_ERROR watch commands not allowed\r\n"),
            (
                "watch fetchers mutations\r\n",
                "CLIENT_ERROR watch commands not allowed\r\n",
            ),
            // shutdown without -A
            ("shutdown\r\n", "ERROR: shutdown not enabled\r\n"),
            ("shutdown graceful\r\n", "ERROR: shutdown not enabled\r\n"),
            ("version\r\n", "VERSION 1.6.21\r\n"),
        ],
    );
    // cache_memlimit 32 (sent with noreply) took effect.
    assert_eq!(c.stat("limit_maxbytes"), (32u64 << 20).to_string());
}

#[test]
fn cache_memlimit_lowers_the_limit_and_evicts() {
    let server = ServerProcess::start(&["-m", "64"]);
    let mut c = TextClient::connect(server.addr);
    let value = vec![b'v'; 100 * 1024];
    for i in 0..200 {
        c.set(&format!("k{i}"), &value); // about 20 MB
    }
    assert_eq!(c.stat("curr_items"), "200");
    exchange(&mut c, &[("cache_memlimit 8\r\n", "OK\r\n")]);
    assert_eq!(c.stat("limit_maxbytes"), (8u64 << 20).to_string());
    let bytes: u64 = c.stat("bytes").parse().unwrap();
    assert!(bytes <= 8 << 20, "bytes {bytes} over the new limit");
    assert!(c.stat("evictions").parse::<u64>().unwrap() > 0);
}

#[test]
fn expired_items_are_reclaimed_in_the_background() {
    let server = ServerProcess::start(&["-t", "2"]);
    let mut c = TextClient::connect(server.addr);
    for i in 0..50 {
        c.send(format!("set ttl{i} 0 1 3\r\nabc\r\n").as_bytes());
        assert_eq!(c.line(), "STORED\r\n");
    }
    c.set("forever", b"x");
    assert_eq!(c.stat("curr_items"), "51");
    // Never touched again: only the reclaimer can remove them.
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        if c.stat("curr_items") == "1" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "curr_items still {} after 8 s",
            c.stat("curr_items")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(c.stat("reclaimed"), "50");
    assert_eq!(c.get("forever"), Some(b"x".to_vec()));
}

#[test]
fn lru_crawler_disable_pauses_the_reclaimer() {
    let server = ServerProcess::start(&[]);
    let mut c = TextClient::connect(server.addr);
    exchange(&mut c, &[("lru_crawler disable\r\n", "OK\r\n")]);
    c.send(b"set gone 0 1 1\r\nx\r\n");
    assert_eq!(c.line(), "STORED\r\n");
    std::thread::sleep(Duration::from_millis(2500));
    // Expired, but nobody removed it yet.
    assert_eq!(c.stat("curr_items"), "1");
    exchange(&mut c, &[("lru_crawler enable\r\n", "OK\r\n")]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.stat("curr_items") != "0" {
        assert!(Instant::now() < deadline, "not reclaimed after enable");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn dash_f_disables_flush_all() {
    let server = ServerProcess::start(&["-F"]);
    let mut c = TextClient::connect(server.addr);
    c.set("k", b"v");
    exchange(
        &mut c,
        &[
            ("flush_all\r\n", "CLIENT_ERROR flush_all not allowed\r\n"),
            ("flush_all 10\r\n", "CLIENT_ERROR flush_all not allowed\r\n"),
            ("flush_all noreply\r\n", ""),
            ("flush_all 1 2 3\r\n", "ERROR\r\n"),
        ],
    );
    assert_eq!(c.get("k"), Some(b"v".to_vec()));
    assert_eq!(c.stat("cmd_flush"), "3");
    // Without -F it works.
    let server = ServerProcess::start(&[]);
    let mut c = TextClient::connect(server.addr);
    exchange(&mut c, &[("flush_all\r\n", "OK\r\n")]);
}

fn wait_exit(server: &mut ServerProcess) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.is_alive() {
        assert!(
            Instant::now() < deadline,
            "server still running after shutdown"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn dash_a_enables_shutdown() {
    for command in ["shutdown\r\n", "shutdown graceful\r\n"] {
        let mut server = ServerProcess::start(&["-A", "-t", "2"]);
        let mut other = TextClient::connect(server.addr);
        exchange(
            &mut other,
            &[(
                "shutdown bogus\r\n",
                "CLIENT_ERROR invalid shutdown mode\r\n",
            )],
        );
        assert_eq!(reply_then_close(&server, command.as_bytes()), b"");
        wait_exit(&mut server);
        assert_eq!(other.line(), "", "other connections close too");
    }
}

#[test]
fn idle_connections_close_after_idle_timeout() {
    let server = ServerProcess::start(&["-o", "idle_timeout=1"]);
    let mut idle = TcpStream::connect(server.addr).unwrap();
    let mut busy = TextClient::connect(server.addr);
    let start = Instant::now();
    // The busy connection keeps talking every 300 ms and stays open.
    let mut closed_after = None;
    idle.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 16];
    while start.elapsed() < Duration::from_secs(5) {
        exchange(&mut busy, &[("version\r\n", "VERSION 1.6.21\r\n")]);
        match idle.read(&mut buf) {
            Ok(0) => {
                closed_after = Some(start.elapsed());
                break;
            }
            Ok(n) => panic!("unexpected bytes {:?}", &buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                closed_after = Some(start.elapsed());
                break;
            }
            Err(_) => {}
        }
    }
    let closed_after = closed_after.expect("idle connection not closed within 5 s");
    assert!(
        closed_after >= Duration::from_millis(900),
        "closed too early: {closed_after:?}"
    );
    exchange(&mut busy, &[("version\r\n", "VERSION 1.6.21\r\n")]);
}

#[test]
fn udp_is_refused_at_startup() {
    let bin = env!("CARGO_BIN_EXE_netlib-memcached");
    let (status, text) = run_with_timeout(
        Command::new(bin).args(["-p", "0", "-U", "11211"]),
        Duration::from_secs(10),
    );
    assert_eq!(status, Some(2), "{text}");
    assert!(text.contains("UDP is not supported"), "{text}");
}

/// One value of `stats settings`.
fn setting(c: &mut TextClient, name: &str) -> String {
    c.send(b"stats settings\r\n");
    let mut found = None;
    loop {
        let line = c.line();
        assert!(!line.is_empty(), "closed during stats settings");
        if line == "END\r\n" {
            return found.unwrap_or_else(|| panic!("no setting {name}"));
        }
        let mut parts = line.trim_end().splitn(3, ' ');
        if let (Some("STAT"), Some(n), Some(v)) = (parts.next(), parts.next(), parts.next()) {
            if n == name {
                found = Some(v.to_string());
            }
        }
    }
}

#[test]
fn dash_m_refuses_to_store_instead_of_evicting() {
    // memcached's t/dash-M.t: fill until refused, then every item is there.
    let server = ServerProcess::start(&["-M", "-m", "2"]);
    let mut c = TextClient::connect(server.addr);
    assert_eq!(setting(&mut c, "evictions"), "off");
    let value = vec![b'B'; 8192];
    let mut stored = 0;
    loop {
        c.send(format!("set dash{stored} 0 0 8192\r\n").as_bytes());
        c.send(&value);
        c.send(b"\r\n");
        match c.line().as_str() {
            "STORED\r\n" => stored += 1,
            "SERVER_ERROR out of memory storing object\r\n" => break,
            other => panic!("unexpected {other:?}"),
        }
        assert!(stored < 10_000, "-M never refused");
    }
    assert!(stored > 100, "only {stored} items fit in 2 MB");
    c.send(b"set one_more 0 0 8192\r\n");
    c.send(&value);
    c.send(b"\r\n");
    assert_eq!(c.line(), "SERVER_ERROR out of memory storing object\r\n");
    assert_eq!(c.stat("store_no_memory"), "2");
    assert_eq!(c.stat("evictions"), "0");
    for key in 0..stored {
        assert_eq!(
            c.get(&format!("dash{key}")),
            Some(value.clone()),
            "dash{key}"
        );
    }
    // Expired items still make room.
    exchange(&mut c, &[("flush_all\r\n", "OK\r\n")]);
    c.set("after_flush", &value);
}

#[test]
fn no_lru_crawler_starts_the_reclaimer_off() {
    for flag in ["no_lru_crawler", "no_modern"] {
        let server = ServerProcess::start(&["-o", flag]);
        let mut c = TextClient::connect(server.addr);
        assert_eq!(setting(&mut c, "lru_crawler"), "no", "{flag}");
        exchange(
            &mut c,
            &[
                (
                    "lru_crawler crawl all\r\n",
                    "CLIENT_ERROR lru crawler disabled\r\n",
                ),
                ("lru_crawler enable\r\n", "OK\r\n"),
                (
                    "lru_crawler enable\r\n",
                    "ERROR failed to start lru crawler thread\r\n",
                ),
            ],
        );
        assert_eq!(setting(&mut c, "lru_crawler"), "yes", "{flag}");
    }
}

#[test]
fn items_dropped_by_flush_all_count_as_reclaimed_when_memory_is_reused() {
    // memcached's t/issue_183.t: memcached frees flushed items lazily and
    // counts each one reused for a new item as reclaimed.
    let server = ServerProcess::start(&[]);
    let mut c = TextClient::connect(server.addr);
    c.set("key", b"1");
    c.set("other", b"2");
    assert_eq!(c.get("other"), Some(b"2".to_vec()));
    assert_eq!(c.stat("reclaimed"), "0");
    exchange(&mut c, &[("flush_all\r\n", "OK\r\n")]);
    c.set("key", b"1");
    assert_eq!(c.stat("reclaimed"), "1");
    // "key" was never fetched; "other" was, and is reused next.
    assert_eq!(c.stat("expired_unfetched"), "1");
    c.set("x", b"1");
    c.set("y", b"1");
    assert_eq!(c.stat("reclaimed"), "2", "only two items were flushed");
    assert_eq!(c.stat("expired_unfetched"), "1");
}

/// memcached's t/daemonize.t: `-d -P FILE` detaches (the command returns
/// at once, exit 0), the pid file names the running server and `stats`
/// agrees; SIGTERM stops it and removes the pid file.
#[test]
fn dash_d_daemonizes_and_dash_p_records_the_pid() {
    let dir = std::env::temp_dir().join(format!("netlib-mc-daemon-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (pid_file, port_file) = (dir.join("mc.pid"), dir.join("mc.port"));
    let (status, text) = run_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_netlib-memcached"))
            .args(["-d", "-p", "0", "-l", "127.0.0.1", "-P"])
            .arg(&pid_file)
            .arg(format!("--port-file={}", port_file.display())),
        Duration::from_secs(10),
    );
    assert_eq!(status, Some(0), "the parent exits at once: {text}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
    };
    let (pid, port) = loop {
        if let (Some(pid), Some(port)) = (read(&pid_file), read(&port_file)) {
            break (pid, port);
        }
        assert!(Instant::now() < deadline, "no pid or port file");
        std::thread::sleep(Duration::from_millis(20));
    };
    // SAFETY: signal 0 only checks that the process exists.
    assert_eq!(
        unsafe { libc::kill(pid as i32, 0) },
        0,
        "daemon {pid} running"
    );
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port as u16));
    let mut c = TextClient::connect(addr);
    assert_eq!(c.stat("pid"), pid.to_string());
    // SAFETY: SIGTERM to the daemon this test started.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while pid_file.exists() || TcpStream::connect(addr).is_ok() {
        assert!(
            Instant::now() < deadline,
            "daemon still serving after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
