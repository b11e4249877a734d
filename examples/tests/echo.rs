//! The echo and pingpong examples, driven by their own clients and by nc.

mod util;

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};
use util::{have, read_exactly, run_with_timeout, Proc};

const ECHO: &str = env!("CARGO_BIN_EXE_echo");
const PINGPONG: &str = env!("CARGO_BIN_EXE_pingpong");

#[test]
fn echo_client_checks_every_round_trip() {
    let server = Proc::start(ECHO, &["--port", "0"]);
    let out = run_with_timeout(
        Command::new(ECHO).args([
            "--connect",
            &server.addr.to_string(),
            "--count",
            "300",
            "--size",
            "5000",
        ]),
        Duration::from_secs(20),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("300 round trips of 5000 bytes"), "{stdout}");
}

#[test]
fn echo_answers_nc() {
    if !have("nc") {
        eprintln!("skipped: nc not installed");
        return;
    }
    let server = Proc::start(ECHO, &["--port", "0"]);
    let mut nc = Command::new("nc");
    nc.args(["-q", "1", "127.0.0.1", &server.addr.port().to_string()])
        .stdin(std::process::Stdio::piped());
    let mut child = nc.stdout(std::process::Stdio::piped()).spawn().expect("nc");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello netlib\n")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello netlib\n");
}

/// A client that sends 64 MiB and never reads: the server stops reading it
/// once the echo backs up, so its memory does not grow with what was sent.
#[test]
fn echo_does_not_buffer_for_a_client_that_never_reads() {
    let server = Proc::start(ECHO, &["--port", "0"]);
    let before = server.rss_kib();
    let mut s = server.connect();
    s.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let chunk = vec![7u8; 64 * 1024];
    let mut sent = 0usize;
    while sent < 64 << 20 {
        match s.write(&chunk) {
            Ok(n) => sent += n,
            Err(_) => break, // blocked: both kernels' buffers are full
        }
    }
    let after = server.rss_kib();
    assert!(
        sent < 64 << 20,
        "the server kept reading {sent} bytes it could not echo"
    );
    assert!(
        after < before + 4 * 1024,
        "server RSS grew from {before} KiB to {after} KiB"
    );
    // It still echoes once the client reads.
    let mut other = server.connect();
    other.write_all(b"ping").unwrap();
    assert_eq!(read_exactly(&mut other, 4), b"ping");
}

#[test]
fn pingpong_client_reports_throughput() {
    pingpong_run(&["server", "--port", "0"]);
}

#[test]
fn pingpong_server_on_a_loop_group() {
    pingpong_run(&["server", "--port", "0", "--threads", "2"]);
}

/// Starts a pingpong server with `server_args`, runs the client against
/// it for half a second and checks it moved data.
fn pingpong_run(server_args: &[&str]) {
    let server = Proc::start(PINGPONG, server_args);
    let out = run_with_timeout(
        Command::new(PINGPONG).args([
            "client",
            "--connect",
            &server.addr.to_string(),
            "--sessions",
            "20",
            "--block",
            "4096",
            "--seconds",
            "0.5",
        ]),
        Duration::from_secs(20),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("MiB/s"), "{stdout}");
    let bytes: u64 = stdout
        .split(" bytes read")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        bytes > 1 << 20,
        "pingpong moved only {bytes} bytes: {stdout}"
    );
}
