//! Accept under descriptor exhaustion: with RLIMIT_NOFILE lowered (in a child
//! process, so the test runner is unaffected) a flood of connections must not
//! make the loop spin on EMFILE, and the queued connections are accepted once
//! descriptors free up.

mod util;

use netlib::{EventDispatch, ListenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use util::*;

const CHILD_ENV: &str = "NETLIB_EMFILE_CHILD";
const CLIENTS: usize = 60;

/// The server half; runs only when re-executed by the parent test.
#[test]
fn emfile_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    // SAFETY: setrlimit only reads the struct we pass.
    unsafe {
        let lim = libc::rlimit {
            rlim_cur: 32,
            rlim_max: 32,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    let mut d = EventDispatch::new().unwrap();
    let l = d
        .context()
        .listen(localhost(), &ListenOptions::default(), echo)
        .unwrap();
    let port = d.context().local_addr(l).unwrap().port();
    println!("NETLIB_PORT={port}");
    std::io::stdout().flush().unwrap();
    d.run().unwrap();
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields overall.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn echoed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(1))
}

#[test]
fn accept_pauses_on_emfile_without_spinning_and_recovers() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "emfile_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port: u16 = loop {
        let line = lines.next().expect("child exited").unwrap();
        // The harness prints "test emfile_child ... " on the same line.
        if let Some(at) = line.find("NETLIB_PORT=") {
            break line[at + "NETLIB_PORT=".len()..].trim().parse().unwrap();
        }
    };
    let result = std::panic::catch_unwind(|| {
        let mut clients: Vec<TcpStream> = (0..CLIENTS)
            .map(|_| {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_nonblocking(true).unwrap();
                s.write_all(b"x").unwrap();
                s
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let mut served = vec![false; CLIENTS];
        for (i, s) in clients.iter_mut().enumerate() {
            served[i] = echoed(s);
        }
        let first = served.iter().filter(|x| **x).count();
        assert!(
            first > 0 && first < CLIENTS,
            "{first} served under a 32-fd limit"
        );

        // Stalled on EMFILE: the loop must sleep, not spin.
        let before = cpu_ticks(pid);
        std::thread::sleep(Duration::from_millis(1000));
        let used = cpu_ticks(pid) - before;
        assert!(
            used < 30,
            "child used {used} ticks of 100 in 1 s while stalled"
        );

        // Free descriptors: close the served connections.
        let mut waiting: Vec<TcpStream> = Vec::new();
        for (s, was_served) in clients.into_iter().zip(served) {
            if !was_served {
                waiting.push(s);
            }
        }
        let deadline = Instant::now() + TIMEOUT;
        let mut done = vec![false; waiting.len()];
        while done.iter().any(|d| !d) {
            assert!(
                Instant::now() < deadline,
                "queued connections never accepted"
            );
            for (i, s) in waiting.iter_mut().enumerate() {
                if !done[i] && echoed(s) {
                    done[i] = true;
                }
            }
            // Served ones close after answering, making room for more.
            for (i, s) in waiting.iter_mut().enumerate() {
                if done[i] {
                    let _ = s.shutdown(std::net::Shutdown::Both);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
