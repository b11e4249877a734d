//! sudoku: answers through nc, pipelined requests on the pool come back with
//! their ids, bad input is refused, and overload is shed with bounded
//! memory and latency.

mod util;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use util::{have, rss_kib, run_with_timeout, Proc};

const EXE: &str = env!("CARGO_BIN_EXE_sudoku");
const PUZZLE: &str =
    "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79";
const SOLUTION: &str =
    "534678912672195348198342567859761423426853791713924856961537284287419635345286179";
/// Takes the solver many more steps than PUZZLE.
const HARD: &str =
    "8..........36......7..9.2...5...7.......457.....1...3...1....68..85...1..9....4..";

#[test]
fn nc_gets_solutions_with_and_without_ids() {
    if !have("nc") {
        eprintln!("skipped: nc not installed");
        return;
    }
    for threads in ["0", "2"] {
        let server = Proc::start(EXE, &["--port", "0", "--threads", threads]);
        let input = format!("a1:{PUZZLE}\r\n");
        let mut nc = Command::new("sh");
        nc.args([
            "-c",
            &format!(
                "printf '{input}' | nc -q 2 127.0.0.1 {}",
                server.addr.port()
            ),
        ]);
        let out = run_with_timeout(&mut nc, Duration::from_secs(10));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("a1:{SOLUTION}\r\n"),
            "threads {threads}"
        );
        let mut s = server.connect();
        s.write_all(format!("{PUZZLE}\r\n").as_bytes()).unwrap();
        let mut line = String::new();
        BufReader::new(&mut s).read_line(&mut line).unwrap();
        assert_eq!(line, format!("{SOLUTION}\r\n"));
    }
}

#[test]
fn unsolvable_and_malformed_requests() {
    let server = Proc::start(EXE, &["--port", "0"]);
    let mut s = server.connect();
    let conflict = format!("55{}", &PUZZLE[2..]);
    s.write_all(format!("x:{conflict}\r\n").as_bytes()).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "x:NoSolution\r\n");

    s.write_all(b"hello\r\n").unwrap();
    line.clear();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "Bad Request!\r\n");
    line.clear();
    assert_eq!(r.read_line(&mut line).unwrap_or(0), 0, "not closed: {line}");

    // A line that never ends is refused too, without buffering it.
    let mut s = server.connect();
    let _ = s.write_all(&[b'1'; 4096]);
    let mut r = BufReader::new(s);
    line.clear();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "Bad Request!\r\n");
}

/// Sends `count` requests back to back, reading replies on another thread.
fn pipeline(server: &Proc, puzzle: &str, count: usize) -> (Vec<String>, Duration) {
    let mut s = server.connect();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let reader = {
        let s = s.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut lines = Vec::new();
            let mut r = BufReader::new(s);
            for _ in 0..count {
                let mut line = String::new();
                match r.read_line(&mut line) {
                    Ok(0) => {
                        eprintln!("EOF after {} lines, last {:?}", lines.len(), lines.last());
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => panic!("reply {} unreadable: {e}", lines.len()),
                }
                lines.push(line);
            }
            lines
        })
    };
    let start = Instant::now();
    let mut batch = String::new();
    for i in 0..count {
        batch.push_str(&format!("{i}:{puzzle}\r\n"));
        if batch.len() > 32 * 1024 {
            s.write_all(batch.as_bytes()).unwrap();
            batch.clear();
        }
    }
    s.write_all(batch.as_bytes()).unwrap();
    let lines = reader.join().unwrap();
    (lines, start.elapsed())
}

#[test]
fn pipelined_requests_on_the_pool_come_back_by_id() {
    let server = Proc::start(
        EXE,
        &["--port", "0", "--threads", "2", "--max-pending", "5000"],
    );
    let (lines, _) = pipeline(&server, PUZZLE, 2000);
    assert_eq!(lines.len(), 2000);
    let mut ids = HashSet::new();
    for line in &lines {
        let (id, body) = line.trim_end().split_once(':').unwrap();
        assert_eq!(body, SOLUTION);
        assert!(ids.insert(id.parse::<usize>().unwrap()), "id {id} twice");
    }
}

#[test]
fn overload_is_shed_with_bounded_memory_and_latency() {
    let server = Proc::start(
        EXE,
        &["--port", "0", "--threads", "1", "--max-pending", "20"],
    );
    let pid = server.child.id();
    let base = rss_kib(pid);
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(base));
    let worst_latency = Arc::new(AtomicU64::new(0));

    // A probe measures how long one request takes while the flood runs.
    let probe = {
        let (done, peak, worst) = (done.clone(), peak.clone(), worst_latency.clone());
        let mut s = server.connect();
        std::thread::spawn(move || {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut answers = 0;
            while !done.load(Ordering::Relaxed) {
                let t = Instant::now();
                s.write_all(format!("p:{PUZZLE}\r\n").as_bytes()).unwrap();
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                assert!(line.starts_with("p:"), "{line}");
                answers += 1;
                worst.fetch_max(t.elapsed().as_millis() as u64, Ordering::Relaxed);
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
            answers
        })
    };

    let (lines, elapsed) = pipeline(&server, HARD, 20_000);
    done.store(true, Ordering::Relaxed);
    let probes = probe.join().unwrap();
    assert_eq!(lines.len(), 20_000, "every request gets an answer");
    let busy = lines
        .iter()
        .filter(|l| l.ends_with(":ServerTooBusy\r\n"))
        .count();
    let solved = lines
        .iter()
        .filter(|l| l.trim_end().len() == l.find(':').unwrap() + 82)
        .count();
    let odd: Vec<_> = lines
        .iter()
        .filter(|l| {
            !l.ends_with(":ServerTooBusy\r\n") && l.trim_end().len() != l.find(':').unwrap() + 82
        })
        .take(3)
        .collect();
    assert!(odd.is_empty(), "unexpected replies: {odd:?}");
    assert!(busy > 10_000, "only {busy} of 20000 shed");
    assert!(solved >= 20, "only {solved} solved");
    let grown = peak.load(Ordering::Relaxed).saturating_sub(base);
    let worst = worst_latency.load(Ordering::Relaxed);
    eprintln!(
        "sudoku overload: 20000 requests in {elapsed:?}, {solved} solved, {busy} shed; \
         {probes} probes, worst latency {worst} ms; RSS +{grown} KiB"
    );
    assert!(grown < 16 * 1024, "server memory grew by {grown} KiB");
    assert!(worst < 5_000, "a probe waited {worst} ms");
}

#[test]
fn a_client_that_never_reads_is_eventually_closed() {
    let server = Proc::start(
        EXE,
        &["--port", "0", "--max-output", "4096", "--threads", "0"],
    );
    let mut s = server.connect();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let line = format!("{PUZZLE}\r\n");
    let batch = line.repeat(1000);
    let start = Instant::now();
    // Replies pile up unread: shed first, then the connection is closed.
    let closed = loop {
        if s.write_all(batch.as_bytes()).is_err() {
            break true;
        }
        if start.elapsed() > Duration::from_secs(20) {
            break false;
        }
    };
    assert!(closed, "server kept a client that never reads");
}
