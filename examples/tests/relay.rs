//! tcprelay and socks4a: curl through the SOCKS proxy, half-close carried
//! through the relay, and backpressure keeping the relay's memory bounded
//! between a fast sender and a slow reader.

mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use util::{have, rss_kib, run_with_timeout, Proc};

const TCPRELAY: &str = env!("CARGO_BIN_EXE_tcprelay");
const SOCKS: &str = env!("CARGO_BIN_EXE_socks4a");

/// A one-page HTTP server on a thread: answers every request with `body`.
fn http_server(body: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

#[test]
fn curl_through_socks4a_and_socks4() {
    if !have("curl") {
        eprintln!("skipped: curl not installed");
        return;
    }
    let port = http_server("hello through the proxy\n");
    let proxy = Proc::start(SOCKS, &["--port", "0"]);
    for (flag, host) in [("--socks4a", "localhost"), ("--socks4", "127.0.0.1")] {
        let out = run_with_timeout(
            Command::new("curl").args([
                "-sS",
                "--max-time",
                "10",
                flag,
                &proxy.addr.to_string(),
                &format!("http://{host}:{port}/"),
            ]),
            Duration::from_secs(15),
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "hello through the proxy\n",
            "{flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn socks_refuses_long_requests_and_unknown_hosts() {
    let proxy = Proc::start(SOCKS, &["--port", "0"]);
    let mut s = proxy.connect();
    let mut req = vec![4, 1, 0, 80, 127, 0, 0, 1];
    req.extend(std::iter::repeat_n(b'u', 200));
    let _ = s.write_all(&req);
    let mut reply = [0u8; 8];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(reply[1], 0x5b);
    assert_eq!(s.read(&mut reply).unwrap_or(0), 0, "not closed");

    let mut s = proxy.connect();
    let mut req = vec![4, 1, 0, 80, 0, 0, 0, 1, 0];
    req.extend_from_slice(b"no-such-host.invalid\0");
    s.write_all(&req).unwrap();
    s.read_exact(&mut reply).unwrap();
    assert_eq!(reply[1], 0x5b);
}

#[test]
fn half_close_is_carried_through_the_relay() {
    // The backend reads to end-of-stream, then answers with what it counted.
    let backend = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = backend.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let (mut s, _) = backend.accept().unwrap();
        let mut total = 0;
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(_) => return,
            }
        }
        let _ = write!(s, "got {total} bytes");
    });
    let relay = Proc::start(TCPRELAY, &["--port", "0", "--to", &to]);
    let mut s = relay.connect();
    s.write_all(&[1u8; 100_000]).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert_eq!(answer, "got 100000 bytes");
}

#[test]
fn a_fast_sender_and_a_slow_reader_keep_relay_memory_bounded() {
    const TOTAL: usize = 32 << 20;
    const HIGH_WATER: usize = 1 << 20;
    let backend = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = backend.local_addr().unwrap().to_string();
    let received = std::thread::spawn(move || {
        let (mut s, _) = backend.accept().unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n,
            }
            std::thread::sleep(Duration::from_millis(1)); // a slow reader
        }
    });
    let relay = Proc::start(
        TCPRELAY,
        &[
            "--port",
            "0",
            "--to",
            &to,
            "--high-water",
            &HIGH_WATER.to_string(),
            "--stats",
            "0.05",
        ],
    );
    let pid = relay.child.id();
    let mut s = relay.connect();
    s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
    let base = rss_kib(pid);
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(base));
    let watcher = {
        let (done, peak) = (done.clone(), peak.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let start = Instant::now();
    let chunk = vec![9u8; 1 << 20];
    for _ in 0..TOTAL / chunk.len() {
        s.write_all(&chunk).unwrap();
    }
    s.shutdown(Shutdown::Write).unwrap();
    let got = received.join().unwrap();
    done.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    assert_eq!(got, TOTAL, "the backend got everything");
    let grown = peak.load(Ordering::Relaxed).saturating_sub(base);
    // The relay's own account: the most bytes one connection had queued.
    relay.expect_line("stats:", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(200));
    let stats = std::iter::from_fn(|| relay.lines.try_recv().ok())
        .filter(|l| l.starts_with("stats:"))
        .last()
        .expect("a stats line after the transfer");
    let peak_queued: usize = stats
        .split("peak ")
        .nth(1)
        .and_then(|p| p.split(' ').next())
        .and_then(|p| p.parse().ok())
        .expect("peak in stats line");
    eprintln!(
        "tcprelay: {} MiB in {:?}; peak queued {peak_queued} bytes (high-water {HIGH_WATER}); \
         relay RSS {base} KiB, peak +{grown} KiB",
        TOTAL >> 20,
        start.elapsed(),
    );
    assert!(
        peak_queued >= HIGH_WATER / 2,
        "the reader was not slow enough to test anything"
    );
    // Backpressure stops reading within one read chunk of the mark.
    assert!(
        peak_queued < HIGH_WATER + 64 * 1024,
        "queued {peak_queued} bytes"
    );
    // RSS: buffers grow by doubling, and the allocator keeps some; still
    // a small multiple of the mark, not the 32 MiB that went through.
    assert!(
        (grown as usize) < 4 * HIGH_WATER / 1024 + 2048,
        "relay memory grew by {grown} KiB"
    );
}

/// The last `stats:` line's peak, once the relay has printed a few.
fn peak_queued_from_stats(relay: &Proc) -> usize {
    relay.expect_line("stats:", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(200));
    std::iter::from_fn(|| relay.lines.try_recv().ok())
        .filter(|l| l.starts_with("stats:"))
        .last()
        .expect("a stats line after the transfer")
        .split("peak ")
        .nth(1)
        .and_then(|p| p.split(' ').next())
        .and_then(|p| p.parse().ok())
        .expect("peak in stats line")
}

#[test]
fn a_fast_backend_and_a_slow_client_are_held_back_too() {
    // The other direction: the backend floods, the client reads slowly.
    const TOTAL: usize = 16 << 20;
    const HIGH_WATER: usize = 1 << 20;
    let backend = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = backend.local_addr().unwrap().to_string();
    let sender = std::thread::spawn(move || {
        let (mut s, _) = backend.accept().unwrap();
        s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
        let chunk = vec![5u8; 1 << 20];
        for _ in 0..TOTAL / chunk.len() {
            s.write_all(&chunk).unwrap();
        }
        s.shutdown(Shutdown::Write).unwrap();
        // Reads the client's end-of-stream before closing.
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    });
    let relay = Proc::start(
        TCPRELAY,
        &[
            "--port",
            "0",
            "--to",
            &to,
            "--high-water",
            &HIGH_WATER.to_string(),
            "--stats",
            "0.05",
        ],
    );
    let mut s = relay.connect();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        match s.read(&mut buf).unwrap() {
            0 => break,
            n => total += n,
        }
        std::thread::sleep(Duration::from_micros(500)); // a slow reader
    }
    assert_eq!(
        total, TOTAL,
        "the client got everything, then end-of-stream"
    );
    s.shutdown(Shutdown::Write).unwrap();
    sender.join().unwrap();
    let peak_queued = peak_queued_from_stats(&relay);
    eprintln!("tcprelay, backend to client: peak queued {peak_queued} bytes");
    assert!(
        peak_queued >= HIGH_WATER / 2,
        "the reader was not slow enough to test anything"
    );
    assert!(
        peak_queued < HIGH_WATER + 64 * 1024,
        "queued {peak_queued} bytes"
    );
}

#[test]
fn socks_carries_early_bytes_and_half_close_from_the_backend() {
    // The backend answers the first bytes, finishes its direction, and
    // still reads what the client sends afterwards.
    let backend = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = backend.local_addr().unwrap().port();
    let backend = std::thread::spawn(move || {
        let (mut s, _) = backend.accept().unwrap();
        let mut ping = [0u8; 4];
        s.read_exact(&mut ping).unwrap();
        assert_eq!(&ping, b"ping");
        s.write_all(b"pong").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        rest
    });
    let proxy = Proc::start(SOCKS, &["--port", "0"]);
    let mut s = proxy.connect();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The request and the first bytes in one write, before the reply.
    let mut req = vec![4, 1];
    req.extend_from_slice(&port.to_be_bytes());
    req.extend_from_slice(&[127, 0, 0, 1, b'u', 0]);
    req.extend_from_slice(b"ping");
    s.write_all(&req).unwrap();
    let mut reply = [0u8; 8];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(reply[1], 0x5a);
    let mut pong = Vec::new();
    s.read_to_end(&mut pong).unwrap(); // the backend's end-of-stream arrives
    assert_eq!(pong, b"pong");
    // The client's direction is still open.
    s.write_all(b"after the backend finished").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(backend.join().unwrap(), b"after the backend finished");
}

#[test]
fn socks_refuses_when_the_backend_is_unreachable() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let proxy = Proc::start(SOCKS, &["--port", "0"]);
    let mut s = proxy.connect();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut req = vec![4, 1];
    req.extend_from_slice(&port.to_be_bytes());
    req.extend_from_slice(&[127, 0, 0, 1, 0]);
    s.write_all(&req).unwrap();
    let mut reply = [0u8; 8];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(reply[1], 0x5b);
    assert_eq!(s.read(&mut reply).unwrap_or(0), 0, "not closed");
}
