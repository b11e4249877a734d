//! File transfer between executor processes on loopback: a file replicated
//! from the executor holding it arrives identical; a transfer whose sender
//! stops (SIGSTOP) mid-file resumes from its last verified chunk once the
//! sender runs again, and the file is still identical.

mod common;
use common::*;
use std::time::{Duration, Instant};

fn blob(path: &std::path::Path, size: usize) {
    let mut rng = cluster::jobs::datagen::Rng::new(size as u64);
    let mut v = Vec::with_capacity(size);
    while v.len() < size {
        v.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    v.truncate(size);
    std::fs::write(path, v).unwrap();
}

/// A Reg and two executors; the second (the requester) gets `extra`
/// settings.
fn two_exes(tag: &str, extra: &[&str]) -> Cluster {
    let mut c = Cluster::reg(None, "127.0.0.1:0");
    c.exe(None, "127.0.0.1:0", &tmpdir(&format!("{tag}0")), 2);
    let d = tmpdir(&format!("{tag}1"));
    let reg = c.reg_addr.to_string();
    let mut args = vec![
        "exe",
        "--reg",
        &reg,
        "--listen",
        "127.0.0.1:0",
        "--data",
        d.to_str().unwrap(),
    ];
    for s in extra {
        args.extend(["--set", s]);
    }
    let exe = Proc::start(None, &args);
    exe.listen_addr();
    c.exes.push(exe);
    c.dirs.push(d);
    c
}

#[test]
fn replicated_file_is_identical() {
    // The timeout is on inactivity only: a transfer that takes longer than
    // it (32 MiB: about 5 s in a debug build), but keeps moving, completes
    // in one attempt (file_attempts=1: any timeout would fail it).
    let c = two_exes("rep", &["file_inactivity_ms=3000", "file_attempts=1"]);
    // Not a multiple of the chunk size; many more chunks than the window.
    let size = 32 * 1024 * 1024 + 12345;
    blob(&c.dirs[0].join("blob.bin"), size);
    c.wait_announced(None, Duration::from_secs(20));
    let start = Instant::now();
    let lines = c.job(
        None,
        "127.0.0.1:0",
        &["replicate", "--file", "blob.bin"],
        Duration::from_secs(120),
    );
    let took = start.elapsed();
    let l = line(&lines, "RESULT replicate ");
    assert!(
        l.contains(&format!("{size} bytes")) && l.contains(" 1 attempts"),
        "{l}"
    );
    // Longer than the timeout, or this test shows nothing.
    assert!(took > Duration::from_secs(3), "took only {took:?}");
    assert_eq!(
        std::fs::read(c.dirs[0].join("blob.bin")).unwrap(),
        std::fs::read(c.dirs[1].join("blob.bin")).unwrap()
    );
    assert!(!c.dirs[1].join("blob.bin.part").exists());
}

#[test]
fn stalled_transfer_resumes_from_last_verified_chunk() {
    let c = two_exes("stall", &["file_inactivity_ms=800", "file_attempts=50"]);
    let d1 = c.dirs[1].clone();
    let size = 24 * 1024 * 1024;
    blob(&c.dirs[0].join("big.bin"), size);
    c.wait_announced(None, Duration::from_secs(20));
    let job = c.start_job(None, "127.0.0.1:0", &["replicate", "--file", "big.bin"]);
    // Stop the holder once a quarter of the file arrived.
    let part = d1.join("big.bin.part");
    let start = Instant::now();
    while std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0) < size as u64 / 4 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the transfer did not start"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let holder = c.exes[0].child.id() as i32;
    unsafe { libc::kill(holder, libc::SIGSTOP) };
    std::thread::sleep(Duration::from_millis(2500));
    unsafe { libc::kill(holder, libc::SIGCONT) };
    let (lines, ok) = job.finish(Duration::from_secs(120));
    assert!(ok, "{lines:?}");
    let l = line(&lines, "RESULT replicate ");
    // Resumed, and never from scratch.
    assert!(!l.contains(" 1 attempts"), "{l}");
    let first = first_resumed_chunk(l);
    assert!(first > 0, "restarted from scratch: {l}");
    assert_eq!(
        std::fs::read(c.dirs[0].join("big.bin")).unwrap(),
        std::fs::read(d1.join("big.bin")).unwrap()
    );
}

#[test]
fn busy_holder_serves_requests_in_turn() {
    // The holder sends one file at a time; two executors pull at once.
    let mut c = Cluster::reg(None, "127.0.0.1:0");
    let holder = tmpdir("busy0");
    let reg = c.reg_addr.to_string();
    let p = Proc::start(
        None,
        &[
            "exe",
            "--reg",
            &reg,
            "--listen",
            "127.0.0.1:0",
            "--data",
            holder.to_str().unwrap(),
            "--set",
            "max_file_senders=1",
        ],
    );
    p.listen_addr();
    c.exes.push(p);
    c.dirs.push(holder.clone());
    for i in 1..=2 {
        c.exe(None, "127.0.0.1:0", &tmpdir(&format!("busy{i}")), 2);
    }
    blob(&holder.join("a.bin"), 6 * 1024 * 1024);
    c.wait_announced(None, Duration::from_secs(20));
    // Two PullFile tasks for the same file go to the two executors that
    // lack it (least loaded), whose requests reach the holder together.
    let jobs: Vec<Proc> = (0..2)
        .map(|_| c.start_job(None, "127.0.0.1:0", &["replicate", "--file", "a.bin"]))
        .collect();
    let mut results = Vec::new();
    for j in jobs {
        let (lines, ok) = j.finish(Duration::from_secs(120));
        assert!(ok, "{lines:?}");
        results.push(line(&lines, "RESULT replicate ").to_string());
    }
    // One of them was told "busy" and asked again (its attempts count it).
    assert!(
        results.iter().any(|l| !l.contains(" 1 attempts")),
        "{results:?}"
    );
    let want = std::fs::read(holder.join("a.bin")).unwrap();
    for d in &c.dirs[1..] {
        assert_eq!(std::fs::read(d.join("a.bin")).unwrap(), want);
    }
}
