//! chat: every member gets every message; one member that never reads is
//! disconnected instead of holding back the others or growing the server.

mod util;

use socket2::{Domain, Socket, Type};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use util::{rss_kib, Proc};

const EXE: &str = env!("CARGO_BIN_EXE_chat");

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

fn read_frame(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let mut body = vec![0; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body)?;
    Ok(body)
}

/// Reads `count` messages numbered 0.. in order; returns how many arrived.
fn receive_all(mut s: TcpStream, count: u32) -> u32 {
    for i in 0..count {
        match read_frame(&mut s) {
            Ok(body) => assert_eq!(&body[..4], &i.to_be_bytes(), "message out of order"),
            Err(_) => return i,
        }
    }
    count
}

#[test]
fn hundred_members_get_everything_while_a_slow_one_is_cut_off() {
    const MEMBERS: usize = 100;
    const MESSAGES: u32 = 1000;
    const SIZE: usize = 16 * 1024;
    let server = Proc::start(EXE, &["server", "--port", "0", "--max-queue", "1048576"]);
    let pid = server.child.id();

    // The slow member: a tiny receive buffer, and it never reads.
    let slow = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    slow.set_recv_buffer_size(4096).unwrap();
    slow.connect(&server.addr.into()).unwrap();
    let mut slow: TcpStream = slow.into();

    let readers: Vec<_> = (0..MEMBERS)
        .map(|_| {
            let s = server.connect();
            std::thread::spawn(move || receive_all(s, MESSAGES))
        })
        .collect();
    let mut sender = server.connect();
    let own = sender.try_clone().unwrap();
    let own_reader = std::thread::spawn(move || receive_all(own, MESSAGES));
    let base = rss_kib(pid);

    // Watch the server's memory while the messages flow.
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(base));
    let watcher = {
        let (done, peak) = (done.clone(), peak.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };

    let start = Instant::now();
    let mut body = vec![b'x'; SIZE];
    for i in 0..MESSAGES {
        body[..4].copy_from_slice(&i.to_be_bytes());
        sender.write_all(&frame(&body)).unwrap();
    }
    for r in readers {
        assert_eq!(r.join().unwrap(), MESSAGES, "a member missed messages");
    }
    assert_eq!(own_reader.join().unwrap(), MESSAGES);
    let elapsed = start.elapsed();
    done.store(true, Ordering::Relaxed);
    watcher.join().unwrap();

    // The slow member was disconnected: after what the kernel held, EOF.
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match slow.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("slow member still connected after {got} bytes: {e}"),
        }
    }
    let sent_each = MESSAGES as usize * (SIZE + 4);
    assert!(
        got < sent_each / 2,
        "the slow member got {got} of {sent_each} bytes"
    );

    let grown = peak.load(Ordering::Relaxed).saturating_sub(base);
    eprintln!(
        "chat: {MEMBERS} members, {} MiB each in {elapsed:?}; server RSS {base} KiB, peak +{grown} KiB",
        sent_each >> 20
    );
    // Without the policy the slow member alone would hold ~16 MiB.
    assert!(grown < 12 * 1024, "server memory grew by {grown} KiB");
}

#[test]
fn an_oversized_frame_closes_only_its_sender() {
    let server = Proc::start(EXE, &["server", "--port", "0"]);
    let mut good = server.connect();
    let mut bad = server.connect();
    bad.write_all(&(64 * 1024 + 1u32).to_be_bytes()).unwrap();
    let mut buf = [0u8; 16];
    assert!(
        matches!(bad.read(&mut buf), Ok(0) | Err(_)),
        "bad sender not closed"
    );
    good.write_all(&frame(b"still here")).unwrap();
    assert_eq!(read_frame(&mut good).unwrap(), b"still here");
}

#[test]
fn the_chat_client_sends_stdin_and_prints_messages() {
    let server = Proc::start(EXE, &["server", "--port", "0"]);
    let mut member = server.connect();
    let mut client = Command::new(EXE)
        .args(["client", "--connect", &server.addr.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(client.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    // The address as people write it, not `Some(127.0.0.1:..)`.
    assert_eq!(line.trim(), format!("connected to {}", server.addr));

    let mut stdin = client.stdin.take().unwrap();
    stdin.write_all(b"hello from stdin\n").unwrap();
    stdin.flush().unwrap();
    assert_eq!(read_frame(&mut member).unwrap(), b"hello from stdin");
    line.clear();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line, "hello from stdin\n"); // its own message, broadcast back

    member.write_all(&frame(b"hi client")).unwrap();
    line.clear();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line, "hi client\n");

    drop(stdin); // EOF: the client half-closes, the server closes, it exits
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = client.try_wait().unwrap();
    let _ = client.kill();
    let _ = client.wait();
    assert!(
        status.is_some_and(|s| s.success()),
        "client did not exit cleanly"
    );
}

/// The slow-consumer policy on its own: a member that stops reading is
/// disconnected by its own high-water hook although other members'
/// messages did the sending, promptly, and the others keep receiving -
/// also what is said after it left. The limit is 4 MiB so that a healthy
/// reader thread starved of CPU on a busy machine does not fall that far
/// behind; the slow member still passes it (16 MiB are sent).
#[test]
fn a_member_that_stops_reading_is_disconnected_while_others_keep_receiving() {
    const SIZE: usize = 8 * 1024;
    // 16 MiB: past the limit and all that the kernels buffer on loopback.
    const BEFORE: u32 = 2000;
    const AFTER: u32 = 20;
    let server = Proc::start(EXE, &["server", "--port", "0", "--max-queue", "4194304"]);
    let start = Instant::now();

    let slow = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    slow.set_recv_buffer_size(4096).unwrap();
    slow.connect(&server.addr.into()).unwrap();
    let mut slow: TcpStream = slow.into();
    let listener = server.connect();
    let listener = std::thread::spawn(move || receive_all(listener, BEFORE + AFTER));
    let mut sender = server.connect();
    let own = sender.try_clone().unwrap();
    let own = std::thread::spawn(move || receive_all(own, BEFORE + AFTER));

    let mut body = vec![b'y'; SIZE];
    for i in 0..BEFORE {
        body[..4].copy_from_slice(&i.to_be_bytes());
        sender.write_all(&frame(&body)).unwrap();
    }
    // The slow member is gone: what the kernels held, then EOF or a reset.
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match slow.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("slow member still connected after {got} bytes: {e}"),
        }
    }
    let sent = BEFORE as usize * (SIZE + 4);
    assert!(got < sent / 2, "the slow member got {got} of {sent} bytes");

    // The room goes on without it.
    for i in BEFORE..BEFORE + AFTER {
        body[..4].copy_from_slice(&i.to_be_bytes());
        sender.write_all(&frame(&body)).unwrap();
    }
    assert_eq!(
        listener.join().unwrap(),
        BEFORE + AFTER,
        "a member missed messages"
    );
    assert_eq!(
        own.join().unwrap(),
        BEFORE + AFTER,
        "the sender missed its own"
    );
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}
