//! roundtrip: the client measures a server on the same host (small positive
//! round trips, offsets within half of them), the server stamps whatever
//! 16-byte units it gets, and a peer that never reads is not buffered.

mod util;

use std::io::Write;
use std::process::Command;
use std::time::Duration;
use util::{read_exactly, run_with_timeout, Proc};

const EXE: &str = env!("CARGO_BIN_EXE_roundtrip");

/// The number after `key ` in `line`, e.g. `rtt 85 us` -> 85.
fn field(line: &str, key: &str) -> i64 {
    let rest = line
        .split(&format!("{key} "))
        .nth(1)
        .unwrap_or_else(|| panic!("no {key:?} in {line:?}"));
    rest.split(|c: char| c != '-' && !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after {key:?} in {line:?}"))
}

#[test]
fn client_measures_rtt_and_offset_on_the_same_host() {
    let server = Proc::start(EXE, &["server", "--port", "0"]);
    let out = run_with_timeout(
        Command::new(EXE).args([
            "client",
            "--connect",
            &server.addr.to_string(),
            "--count",
            "8",
            "--interval-ms",
            "50",
        ]),
        Duration::from_secs(20),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("sample "))
        .collect();
    assert_eq!(samples.len(), 8, "{stdout}");
    for (i, line) in samples.iter().enumerate() {
        assert!(line.starts_with(&format!("sample {}:", i + 1)), "{line}");
        let rtt = field(line, "rtt");
        let offset = field(line, "offset");
        // Loopback round trips are tens of microseconds; a busy CI machine
        // may take far longer, but never a second.
        assert!(rtt > 0 && rtt < 1_000_000, "rtt {rtt} us: {line}");
        // One clock: the server's stamp lies between send and receipt, so the
        // offset is within half the round trip (plus the gap between the
        // wall clock and the monotonic one the rtt is measured on).
        assert!(
            offset.abs() <= rtt / 2 + 2_000,
            "offset {offset} us with rtt {rtt} us: {line}"
        );
    }
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("roundtrip: 8 samples"))
        .unwrap_or_else(|| panic!("no summary: {stdout}"));
    assert!(field(summary, "min") > 0, "{summary}");
}

#[test]
fn server_stamps_every_whole_frame_of_garbage() {
    let server = Proc::start(EXE, &["server", "--port", "0"]);
    let mut s = server.connect();
    let garbage: Vec<u8> = (0..40u8).collect(); // two frames and half of one
    s.write_all(&garbage).unwrap();
    let reply = read_exactly(&mut s, 32);
    assert_eq!(&reply[..8], &garbage[..8]);
    assert_eq!(&reply[16..24], &garbage[16..24]);
    let stamp = i64::from_be_bytes(reply[8..16].try_into().unwrap());
    assert!(stamp > 1_577_836_800_000_000, "server time {stamp}");
    // The rest of the third frame completes it.
    s.write_all(&[0xEE; 8]).unwrap();
    let third = read_exactly(&mut s, 16);
    assert_eq!(&third[..8], &garbage[32..40]);
    assert!(i64::from_be_bytes(third[8..].try_into().unwrap()) >= stamp);
}

/// A peer that sends 64 MiB and never reads: the server stops reading it
/// once its replies back up, so its memory does not grow with what was sent.
#[test]
fn a_peer_that_never_reads_is_not_buffered() {
    let server = Proc::start(EXE, &["server", "--port", "0"]);
    let before = server.rss_kib();
    let mut s = server.connect();
    s.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let chunk = vec![3u8; 64 * 1024];
    let mut sent = 0usize;
    while sent < 64 << 20 {
        match s.write(&chunk) {
            Ok(n) => sent += n,
            Err(_) => break, // blocked: both kernels' buffers are full
        }
    }
    let after = server.rss_kib();
    assert!(sent < 64 << 20, "the server kept reading {sent} bytes");
    assert!(
        after < before + 4 * 1024,
        "server RSS grew from {before} KiB to {after} KiB"
    );
    // Another client is still served.
    let mut other = server.connect();
    other.write_all(&[0; 16]).unwrap();
    assert_eq!(read_exactly(&mut other, 16).len(), 16);
}

#[test]
fn client_fails_when_nothing_listens() {
    // Bind and drop to find a port that is (almost certainly) closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = run_with_timeout(
        Command::new(EXE).args([
            "client",
            "--connect",
            &format!("127.0.0.1:{port}"),
            "--count",
            "3",
        ]),
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("closed early"), "{stderr}");
}
