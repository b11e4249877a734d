//! The master and its workers as real processes: `prefork-demo` started in
//! its own process group (killed as a whole when a test ends), driven by
//! signals, watched through its status file and by clients of its
//! protocol. Timings are printed, not asserted, except for generous bounds
//! that only a broken master would miss.

mod util;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use util::{alive, wait_for, Client, Demo, ECHO, SLOW};

/// What a load thread saw.
#[derive(Default, Debug)]
struct Seen {
    /// Answers by the pid that gave them.
    by_pid: BTreeMap<String, u64>,
    /// Answers by `generation/tag`.
    by_generation: BTreeMap<String, u64>,
    failures: Vec<String>,
}

/// Threads that open a connection, ask `whoami`, close, and again, until
/// stopped: every step that fails is a failure.
struct Load {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr, threads: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let threads = (0..threads)
            .map(|_| {
                let (stop, seen) = (stop.clone(), seen.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let answer = Client::connect(addr).and_then(|mut c| c.whoami());
                        let mut seen = seen.lock().unwrap();
                        match answer {
                            Ok(me) => {
                                *seen.by_pid.entry(me["pid"].clone()).or_default() += 1;
                                let g = format!("{}/{}", me["generation"], me["tag"]);
                                *seen.by_generation.entry(g).or_default() += 1;
                            }
                            Err(e) => seen.failures.push(e.to_string()),
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            seen,
            threads,
        }
    }

    fn finish(self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        Arc::try_unwrap(self.seen).unwrap().into_inner().unwrap()
    }
}

/// A connection kept open, asking `whoami` then echoing until stopped;
/// returns the pid that served it and the first error, if any.
fn persistent(addr: SocketAddr, stop: Arc<AtomicBool>) -> JoinHandle<(String, Option<String>)> {
    std::thread::spawn(move || {
        let mut c = match Client::connect(addr) {
            Ok(c) => c,
            Err(e) => return (String::new(), Some(e.to_string())),
        };
        let pid = match c.whoami() {
            Ok(me) => me["pid"].clone(),
            Err(e) => return (String::new(), Some(e.to_string())),
        };
        while !stop.load(Ordering::Relaxed) {
            match c.call(ECHO, b"ping") {
                Ok((0, body)) if body == b"ping" => {}
                Ok(other) => return (pid, Some(format!("bad answer {other:?}"))),
                Err(e) => return (pid, Some(e.to_string())),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        (pid, None)
    })
}

#[test]
fn kill_9_of_a_worker_leaves_the_others_clients_alone_and_is_replaced() {
    let demo = Demo::start(
        "kill9",
        &["--processes", "3", "--restart-backoff-min", "0.1"],
    );
    let pids = demo.wait_running(3, 1, Duration::from_secs(10));
    // Persistent clients until every worker holds at least one.
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    let spread_ok = wait_for(Duration::from_secs(10), || {
        if clients.len() >= 64 {
            return false;
        }
        for _ in 0..4 {
            clients.push(persistent(demo.addr, stop.clone()));
        }
        std::thread::sleep(Duration::from_millis(50));
        let conns: Vec<u64> = demo
            .status()
            .iter()
            .filter(|(k, _)| k == "worker")
            .map(|(_, f)| f["connections"].parse().unwrap())
            .collect();
        conns.len() == 3 && conns.iter().all(|&c| c > 0)
    });
    let load = Load::start(demo.addr, 3);
    std::thread::sleep(Duration::from_millis(300));

    let victim = pids[1];
    // SAFETY: kill has no memory effects.
    unsafe { libc::kill(victim, libc::SIGKILL) };
    let killed = Instant::now();
    let replacement = wait_for(Duration::from_secs(10), || {
        demo.workers()
            .iter()
            .any(|w| w.0 == 1 && w.1 != victim && w.3 == "running")
    })
    .expect("no replacement worker accepting");
    let new_pid = demo
        .workers()
        .into_iter()
        .find(|w| w.0 == 1)
        .map(|w| w.1)
        .unwrap();
    // The replacement serves: a connection it accepted answers.
    let served = wait_for(Duration::from_secs(10), || {
        let mut held = Vec::new();
        for _ in 0..16 {
            if let Ok(c) = Client::connect(demo.addr) {
                held.push(c);
            }
        }
        held.iter_mut()
            .any(|c| c.whoami().is_ok_and(|me| me["pid"] == new_pid.to_string()))
    });
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let seen = load.finish();
    let mut on_victim = 0;
    for c in clients {
        let (pid, error) = c.join().unwrap();
        if pid == victim.to_string() {
            on_victim += 1;
            assert!(
                error.is_some(),
                "a connection of the killed worker lived on"
            );
        } else {
            assert_eq!(error, None, "a client of worker {pid} was disturbed");
        }
    }
    println!(
        "kill -9: replacement accepting (reported ready) {:?} after the kill, first answer from it within {:?} more; \
         {on_victim} persistent clients were on the victim; spread over workers {:?}; \
         connect-per-request clients: {} answers by pid {:?}, {} failures {:?}",
        replacement,
        served,
        spread_ok,
        seen.by_pid.values().sum::<u64>(),
        seen.by_pid,
        seen.failures.len(),
        seen.failures.iter().take(3).collect::<Vec<_>>()
    );
    assert!(
        spread_ok.is_some(),
        "persistent clients never reached every worker"
    );
    assert!(served.is_some(), "the replacement worker never answered");
    assert!(killed.elapsed() < Duration::from_secs(30));
    // A connection the victim had accepted may fail with it; no more than
    // the few it held at the moment of the kill.
    assert!(seen.failures.len() <= 3, "{:?}", seen.failures);
    assert!(demo.log().contains("killed by signal 9"));
    assert!(!alive(victim));
    assert!(pids.iter().filter(|&&p| p != victim).all(|&p| alive(p)));
}

#[test]
fn sighup_reloads_an_upgraded_binary_under_load_without_a_failed_connection() {
    // Run a copy of the binary, so the test can "upgrade" it in place: the
    // new one is a wrapper that tags its workers.
    let dir = util::temp_dir("reload");
    let exe = dir.join("prefork-demo");
    let real = dir.join("prefork-demo.v1");
    std::fs::copy(env!("CARGO_BIN_EXE_prefork-demo"), &real).unwrap();
    std::fs::hard_link(&real, &exe).unwrap();
    let mut demo = Demo::start_with(
        &exe,
        dir.clone(),
        &["--processes", "2", "--drain-timeout", "10"],
    );
    let gen1 = demo.wait_running(2, 1, Duration::from_secs(10));

    let load = Load::start(demo.addr, 4);
    // A slow request in flight on an old worker across the reload.
    let slow = {
        let addr = demo.addr;
        std::thread::spawn(move || {
            let mut c = Client::connect(addr)?;
            c.call(SLOW, &1500u32.to_le_bytes())
        })
    };
    std::thread::sleep(Duration::from_millis(500));

    // Upgrade: a new file at the same path (rename, as installers do).
    let next = dir.join("prefork-demo.next");
    std::fs::write(
        &next,
        format!(
            "#!/bin/sh\nPREFORK_DEMO_TAG=v2 exec {} \"$@\"\n",
            real.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&next, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&next, &exe).unwrap();

    let mut reload_times = Vec::new();
    for generation in 2..=4 {
        let t = Instant::now();
        demo.signal(libc::SIGHUP);
        demo.wait_running(2, generation, Duration::from_secs(15));
        reload_times.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(700));
    }
    let slow = slow.join().unwrap();
    let seen = load.finish();
    println!(
        "reload x3 under load: new generation accepting after {reload_times:?}; \
         {} answers by generation/tag {:?}, by pid {:?}; failures {:?}",
        seen.by_generation.values().sum::<u64>(),
        seen.by_generation,
        seen.by_pid,
        seen.failures
    );
    assert!(seen.failures.is_empty(), "{:?}", seen.failures);
    assert_eq!(slow.expect("slow request across the reload").0, 0);
    assert!(seen.by_generation.contains_key("1/-"));
    assert!(
        seen.by_generation.contains_key("4/v2"),
        "the upgraded binary never answered"
    );
    // The old workers drained and exited.
    assert!(wait_for(Duration::from_secs(15), || gen1.iter().all(|&p| !alive(p))).is_some());
    let mut c = Client::connect(demo.addr).unwrap();
    assert_eq!(c.whoami().unwrap()["tag"], "v2");
    // A crash after a reload is restarted from the new binary too.
    let gen4 = demo.wait_running(2, 4, Duration::from_secs(5));
    // SAFETY: kill has no memory effects.
    unsafe { libc::kill(gen4[0], libc::SIGKILL) };
    let mut restarted = Vec::new();
    let replaced = wait_for(Duration::from_secs(10), || {
        restarted = demo.wait_running(2, 4, Duration::from_secs(10));
        restarted[0] != gen4[0]
    });
    assert!(replaced.is_some(), "worker 0 of generation 4 not replaced");
    let mut seen = Vec::new();
    let tag = wait_for(Duration::from_secs(10), || {
        // Connections held at once, so the other worker is not always the
        // idle one that gets the wake-up.
        let mut held: Vec<Client> = (0..16)
            .filter_map(|_| Client::connect(demo.addr).ok())
            .collect();
        held.iter_mut().filter_map(|c| c.whoami().ok()).any(|me| {
            seen.push(format!("{}/{}", me["pid"], me["tag"]));
            me["pid"] == restarted[0].to_string() && me["tag"] == "v2"
        })
    });
    seen.dedup();
    println!("after the restart, answers from {seen:?}");
    assert!(tag.is_some(), "the restarted worker never answered as v2");
    demo.signal(libc::SIGTERM);
    assert!(demo
        .wait_exit(Duration::from_secs(15))
        .is_some_and(|s| s.success()));
}

#[test]
fn a_worker_that_panics_at_start_is_restarted_with_backoff_not_in_a_tight_loop() {
    let demo = Demo::start(
        "crashloop",
        &[
            "--processes",
            "1",
            "--panic-at-start",
            "--restart-backoff-min",
            "0.1",
            "--restart-backoff-max",
            "1.5",
            "--crash-loop-limit",
            "3",
        ],
    );
    std::thread::sleep(Duration::from_secs(5));
    let log = demo.log();
    let starts = log.matches("worker 0 started").count();
    println!("crash loop: {starts} starts in 5 s");
    // 0, ~0.1, ~0.3, ~0.7 s, then one per 1.5 s: 6 or 7. A tight loop would
    // be hundreds.
    assert!((4..=9).contains(&starts), "{starts} starts:\n{log}");
    assert!(log.contains("crash loop"), "{log}");
    assert!(log.contains("exited with status 101"), "{log}");
    let status = demo.status();
    assert!(
        status
            .iter()
            .any(|(k, f)| k == "slot" && f["state"] == "backoff")
            || status.iter().any(|(k, _)| k == "worker"),
        "{status:?}"
    );
}

#[test]
fn sigterm_drains_an_in_flight_slow_request_then_exits() {
    let mut demo = Demo::start("drain", &["--processes", "2", "--drain-timeout", "10"]);
    let pids = demo.wait_running(2, 1, Duration::from_secs(10));
    let addr = demo.addr;
    let slow = std::thread::spawn(move || {
        let mut c = Client::connect(addr)?;
        let t = Instant::now();
        let answer = c.call(SLOW, &1200u32.to_le_bytes())?;
        Ok::<_, std::io::Error>((answer, t.elapsed()))
    });
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    demo.signal(libc::SIGTERM);
    // While the slow request drains, new connections are refused, not left
    // waiting in a backlog nobody accepts from.
    let refused = wait_for(Duration::from_millis(700), || {
        std::net::TcpStream::connect(addr)
            .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
    });
    let ((status, _), took) = slow.join().unwrap().expect("the slow request was cut");
    assert!(
        refused.is_some(),
        "connections still accepted after SIGTERM"
    );
    assert_eq!(status, 0);
    let exit = demo
        .wait_exit(Duration::from_secs(15))
        .expect("master did not exit");
    println!(
        "SIGTERM: new connections refused {refused:?} after the signal; slow request answered after {took:?}; master exited {:?} after the signal",
        t.elapsed()
    );
    assert!(exit.success());
    assert!(took >= Duration::from_millis(1100));
    assert!(pids.iter().all(|&p| !alive(p)));
    assert!(!demo.status.exists(), "status file left behind");
}

#[test]
fn drain_deadline_closes_what_is_left_and_sigquit_stops_at_once() {
    let mut demo = Demo::start("deadline", &["--processes", "1", "--drain-timeout", "0.5"]);
    demo.wait_running(1, 1, Duration::from_secs(10));
    let addr = demo.addr;
    let slow =
        std::thread::spawn(move || Client::connect(addr)?.call(SLOW, &20_000u32.to_le_bytes()));
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    demo.signal(libc::SIGTERM);
    assert!(
        slow.join().unwrap().is_err(),
        "a 20 s request outlived a 0.5 s drain"
    );
    assert!(demo.wait_exit(Duration::from_secs(10)).is_some());
    println!("drain deadline 0.5 s: master gone after {:?}", t.elapsed());

    let mut demo = Demo::start("quit", &["--processes", "2"]);
    let pids = demo.wait_running(2, 1, Duration::from_secs(10));
    let held = Client::connect(demo.addr).unwrap();
    let t = Instant::now();
    demo.signal(libc::SIGQUIT);
    assert!(demo.wait_exit(Duration::from_secs(5)).is_some());
    println!(
        "SIGQUIT with a connection open: master gone after {:?}",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(pids.iter().all(|&p| !alive(p)));
    drop(held);
}

#[test]
fn a_reload_onto_a_binary_that_crashes_keeps_the_old_workers_serving() {
    let dir = util::temp_dir("badreload");
    let exe = dir.join("prefork-demo");
    let real = dir.join("prefork-demo.v1");
    std::fs::copy(env!("CARGO_BIN_EXE_prefork-demo"), &real).unwrap();
    std::fs::hard_link(&real, &exe).unwrap();
    let demo = Demo::start_with(
        &exe,
        dir.clone(),
        &[
            "--processes",
            "2",
            "--restart-backoff-min",
            "0.1",
            "--restart-backoff-max",
            "0.5",
        ],
    );
    let gen1 = demo.wait_running(2, 1, Duration::from_secs(10));
    // The "upgrade" panics in every worker as it starts.
    let install = |script: String| {
        use std::os::unix::fs::PermissionsExt;
        let next = dir.join("next");
        std::fs::write(&next, script).unwrap();
        std::fs::set_permissions(&next, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&next, &exe).unwrap();
    };
    install(format!(
        "#!/bin/sh\nexec {} \"$@\" --panic-at-start\n",
        real.display()
    ));
    let load = Load::start(demo.addr, 2);
    demo.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_secs(2));
    let status = demo.status();
    assert!(
        gen1.iter().all(|&p| alive(p)),
        "old workers gone: {status:?}"
    );
    assert!(
        status
            .iter()
            .any(|(k, f)| k == "master" && f["state"] == "reloading"),
        "{status:?}"
    );
    // Fixed: the next reload completes and retires generation 1.
    install(format!(
        "#!/bin/sh\nPREFORK_DEMO_TAG=v3 exec {} \"$@\"\n",
        real.display()
    ));
    demo.signal(libc::SIGHUP);
    demo.wait_running(2, 3, Duration::from_secs(15));
    assert!(wait_for(Duration::from_secs(15), || gen1.iter().all(|&p| !alive(p))).is_some());
    std::thread::sleep(Duration::from_millis(300));
    let seen = load.finish();
    println!(
        "reload onto a crashing binary: answers by generation/tag {:?}, failures {:?}",
        seen.by_generation, seen.failures
    );
    assert!(seen.failures.is_empty(), "{:?}", seen.failures);
    assert!(
        !seen.by_generation.contains_key("2/-"),
        "a crashing worker answered"
    );
    assert!(seen.by_generation.contains_key("3/v3"));
    assert!(demo.log().contains("told to panic at start"));
}
