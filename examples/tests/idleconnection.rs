//! idleconnection: echo keeps working, talking connections stay, idle ones
//! are closed about `--idle` after their last data.

mod util;

use std::io::{Read, Write};
use std::time::{Duration, Instant};
use util::{read_exactly, Proc};

const EXE: &str = env!("CARGO_BIN_EXE_idleconnection");

/// When the server closed `s` (reads and discards until EOF).
fn closed_at(s: &mut std::net::TcpStream) -> Instant {
    let mut buf = [0u8; 64];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Instant::now(),
            Ok(_) => {}
            Err(e) => panic!("connection not closed: {e}"),
        }
    }
}

#[test]
fn idle_connections_close_and_busy_ones_stay() {
    let server = Proc::start(EXE, &["--port", "0", "--idle", "0.6", "--tick", "0.1"]);

    let mut silent = server.connect();
    let mut busy = server.connect();
    let start = Instant::now();
    let mut last_data = start;
    // busy talks every 0.2 s for 1.5 s - well past the idle limit.
    while start.elapsed() < Duration::from_millis(1500) {
        last_data = Instant::now();
        busy.write_all(b"tick").unwrap();
        assert_eq!(read_exactly(&mut busy, 4), b"tick");
        std::thread::sleep(Duration::from_millis(200));
    }
    // silent never sent anything: it was closed long ago, EOF at once.
    let now = Instant::now();
    assert!(closed_at(&mut silent) - now < Duration::from_millis(100));
    // busy stops talking now: closed between idle - tick and idle (+ slack).
    let closed_after = closed_at(&mut busy) - last_data;
    assert!(
        closed_after >= Duration::from_millis(450) && closed_after < Duration::from_millis(1500),
        "closed {closed_after:?} after the last data"
    );
}

#[test]
fn a_silent_connection_is_closed_on_time() {
    let server = Proc::start(EXE, &["--port", "0", "--idle", "0.5", "--tick", "0.1"]);
    let connected = Instant::now();
    let mut s = server.connect();
    let closed_after = closed_at(&mut s) - connected;
    assert!(
        closed_after >= Duration::from_millis(350) && closed_after < Duration::from_millis(1500),
        "closed after {closed_after:?}"
    );
}
