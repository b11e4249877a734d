//! Reg and several Exe processes on loopback, each job checked against a
//! single-machine computation; an executor killed with SIGKILL mid-job;
//! Reg killed and restarted mid-job.

mod common;
use cluster::jobs::{datagen, nqueens};
use common::*;
use std::time::Duration;

const JOB: Duration = Duration::from_secs(90);

fn three_exes(tag: &str) -> Cluster {
    let mut c = Cluster::reg(None, "127.0.0.1:0");
    for i in 0..3 {
        let d = tmpdir(&format!("{tag}{i}"));
        c.exe(None, "127.0.0.1:0", &d, 2);
    }
    c
}

fn count_of(lines: &[String], n: u32) -> u64 {
    let l = line(lines, &format!("RESULT nqueens {n} "));
    l.split(' ').nth(3).unwrap().parse().unwrap()
}

#[test]
fn nqueens_counts_match_brute_force_and_known_values() {
    let c = three_exes("nq");
    let lines = c.job(None, "127.0.0.1:0", &["nqueens", "--n", "10"], JOB);
    assert_eq!(count_of(&lines, 10), 724);
    assert_eq!(count_of(&lines, 10), nqueens::brute_force(10));
    let lines = c.job(
        None,
        "127.0.0.1:0",
        &["nqueens", "--n", "12", "--depth", "3"],
        JOB,
    );
    assert_eq!(count_of(&lines, 12), 14_200);
    // The work was spread: more than one executor returned results.
    assert!(
        lines.iter().filter(|l| l.starts_with("WORK ")).count() >= 2,
        "{lines:?}"
    );
}

#[test]
fn median_and_topk_match_one_machine() {
    let c = three_exes("data");
    let mut ints = Vec::new();
    let mut words = Vec::new();
    for (i, d) in c.dirs.iter().enumerate() {
        let f = d.join(format!("median-{i}.i64"));
        datagen::gen_ints(&f, 200_000 + i as u64, 10 + i as u64).unwrap();
        ints.push(f);
        let w = d.join(format!("words-{i}.txt"));
        datagen::gen_words(&w, 100_000, 20_000, 20 + i as u64).unwrap();
        words.push(w);
    }
    c.wait_announced(None, Duration::from_secs(20));
    let (want, n) = sort_median(&ints);
    let lines = c.job(None, "127.0.0.1:0", &["median"], JOB);
    let l = line(&lines, "RESULT median ");
    assert!(
        l.starts_with(&format!("RESULT median {want} of {n} values, 3 files")),
        "{l} want {want}"
    );
    // Plain binary search (2 buckets) gives the same.
    let lines = c.job(None, "127.0.0.1:0", &["median", "--buckets", "2"], JOB);
    assert!(line(&lines, "RESULT median ").starts_with(&format!("RESULT median {want} ")));

    let lines = c.job(
        None,
        "127.0.0.1:0",
        &["topk", "--k", "15", "--shards", "3"],
        JOB,
    );
    assert_eq!(top_lines(&lines), local_topk(&words, 15));
}

#[test]
fn executor_killed_mid_job_still_right() {
    let mut c = three_exes("kill");
    // 15 tasks of about a second: the killed executor is running some.
    let mut job = c.start_job(
        None,
        "127.0.0.1:0",
        &["nqueens", "--n", "15", "--depth", "1", "--progress-lines"],
    );
    wait_progress(&mut job, 0.2, JOB);
    c.exes[0].kill9();
    let (lines, ok) = job.finish(JOB);
    assert!(ok, "{lines:?}");
    assert_eq!(count_of(&lines, 15), 2_279_184);
    // The killed executor's running tasks went to others.
    let repeats = line(&lines, "REPEATS ");
    assert!(!repeats.contains("reassigned=0 "), "{repeats}");
}

#[test]
fn reg_restarted_mid_job_still_right() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut c = Cluster::reg(None, &listen);
    for i in 0..2 {
        c.exe(None, "127.0.0.1:0", &tmpdir(&format!("regr{i}")), 2);
    }
    // 15 long tasks (one per first-row queen, about a second each), so
    // some run across the restart.
    let mut job = c.start_job(
        None,
        "127.0.0.1:0",
        &["nqueens", "--n", "15", "--depth", "1", "--progress-lines"],
    );
    wait_progress(&mut job, 0.2, JOB);
    // The executors are paused across the restart so that, however slow
    // this shared machine is, their tasks are still running when they
    // re-register (the point is what a new Reg does with running tasks).
    let pids: Vec<i32> = c.exes.iter().map(|e| e.child.id() as i32).collect();
    for &p in &pids {
        unsafe { libc::kill(p, libc::SIGSTOP) };
    }
    c.reg.kill9();
    c.reg = Proc::start(
        None,
        &["reg", "--listen", &listen, "--set", "grace_ms=4000"],
    );
    c.reg.listen_addr();
    for &p in &pids {
        unsafe { libc::kill(p, libc::SIGCONT) };
    }
    let (lines, ok) = job.finish(JOB);
    assert!(ok, "{lines:?}");
    // The new Reg learned the running tasks from the executors' heartbeats
    // (within its grace period it assigns nothing itself).
    let list = c.job(None, "127.0.0.1:0", &["list"], JOB);
    let learned = list
        .iter()
        .find(|l| l.ends_with("running tasks learned from heartbeats"))
        .and_then(|l| l.split(' ').next()?.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(learned >= 1, "{list:?}");
    assert_eq!(count_of(&lines, 15), 2_279_184);
    // Nothing ran twice: the running tasks kept running.
    assert_eq!(
        line(&lines, "REPEATS "),
        "REPEATS reassigned=0 duplicate_results=0"
    );
}

#[test]
fn topk_survives_an_executor_killed_mid_shuffle() {
    let mut c = three_exes("tkill");
    // Every word file on two executors, so killing one loses no data.
    let mut words = Vec::new();
    for i in 0..3 {
        let f = c.dirs[i].join(format!("all-words-{i}.txt"));
        datagen::gen_words(&f, 400_000, 30_000, 50 + i as u64).unwrap();
        for d in [&c.dirs[i], &c.dirs[(i + 1) % 3]] {
            std::fs::copy(&f, d.join(format!("words-{i}.txt"))).unwrap();
        }
        words.push(f);
    }
    c.wait_announced(None, Duration::from_secs(20));
    let mut job = c.start_job(
        None,
        "127.0.0.1:0",
        &["topk", "--k", "20", "--shards", "3", "--progress-lines"],
    );
    // Reducers are placed (one per executor: least loaded) and the maps
    // are running: kill one executor, reducer and maps with it.
    let start = std::time::Instant::now();
    while !job
        .lines
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("top-k: mapping"))
    {
        assert!(start.elapsed() < JOB, "maps never started");
        assert!(job.child.try_wait().unwrap().is_none(), "job ended");
        std::thread::sleep(Duration::from_millis(2));
    }
    c.exes[0].kill9();
    let (lines, ok) = job.finish(JOB);
    assert!(ok, "{lines:?}");
    assert_eq!(top_lines(&lines), local_topk(&words, 20));
    assert!(
        !line(&lines, "REPEATS ").contains("reassigned=0 "),
        "{lines:?}"
    );
}

#[test]
fn garbage_messages_are_refused_and_the_cluster_carries_on() {
    use msgcenter::{Center, Config, Handlers, Message, Outcome};
    let mut c = Cluster::reg(None, "127.0.0.1:0");
    c.exe(None, "127.0.0.1:0", &tmpdir("junk"), 2);
    let exe = c.exes[0].listen_addr();
    let junk = Center::spawn(Config::default(), Handlers::new()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let bodies: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff; 3],
        vec![0xff; 64],       // huge claimed lengths and counts
        (0..200u8).collect(), // plausible prefix, then nonsense
        [&7u64.to_be_bytes()[..], &[1, 0, 0, 0]].concat(), // an id and a truncated field
    ];
    let mut n = 0;
    for to in [c.reg_addr, exe] {
        for t in [
            100, 110, 111, 112, 114, 120, 121, 122, 130, 140, 141, 142, 143,
        ] {
            for b in &bodies {
                let tx = tx.clone();
                junk.handle().post(
                    Message::new(to, t, b.clone())
                        .need_ack()
                        .on_done(move |_, o| tx.send(o).unwrap()),
                );
                n += 1;
            }
        }
    }
    // Every one was handled (acknowledged: the handler returned after
    // logging the bad body) or refused for lack of a handler - none
    // crashed a node.
    for _ in 0..n {
        let o = rx.recv_timeout(JOB).unwrap();
        assert!(
            matches!(
                o,
                Outcome::Acked { .. } | Outcome::Failed(msgcenter::FailReason::NoHandler)
            ),
            "{o:?}"
        );
    }
    assert!(c.reg.child.try_wait().unwrap().is_none(), "Reg died");
    assert!(
        c.exes[0].child.try_wait().unwrap().is_none(),
        "executor died"
    );
    let lines = c.job(None, "127.0.0.1:0", &["nqueens", "--n", "8"], JOB);
    assert_eq!(count_of(&lines, 8), 92);
}
