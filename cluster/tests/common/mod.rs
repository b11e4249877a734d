//! Shared by the cluster's process tests: the `cluster` binary started as
//! real processes (optionally inside a network namespace), their stdout
//! lines collected (stderr shown with `NETLIB_TEST_LOGS`, as testkit
//! does), bounded waits, and temp directories.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use testkit::{collect_lines, spawn_piped, NetnsPair};

pub const BIN: &str = env!("CARGO_BIN_EXE_cluster");

/// Short timers so faults are noticed quickly in tests.
pub const SETTINGS: &[&str] = &[
    "lease_ms=1000",
    "exe_heartbeat_ms=200",
    "republish_ms=500",
    "grace_ms=1200",
    "heartbeat_ms=200",
    "dead_after_ms=1000",
    "connect_timeout_ms=500",
    "handshake_timeout_ms=1000",
    "reconnect_max_ms=300",
    "retry_interval_ms=200",
];

/// A fresh directory under the target's temp dir.
pub fn tmpdir(tag: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "cluster-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A `cluster` process whose stdout lines are collected; SIGKILLed on drop.
pub struct Proc {
    pub child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Starts `cluster args...` (inside `ns` if given) with [`SETTINGS`]
    /// (settings in `args` override them).
    pub fn start(ns: Option<&str>, args: &[&str]) -> Proc {
        let mut cmd = match ns {
            Some(ns) => NetnsPair::command(ns, BIN),
            None => Command::new(BIN),
        };
        // The subcommand, the defaults, then the caller's own (later --set win).
        cmd.arg(args[0]);
        for s in SETTINGS {
            cmd.args(["--set", s]);
        }
        cmd.args(&args[1..]).stdin(Stdio::null());
        let mut child = spawn_piped(cmd);
        let lines = collect_lines(&mut child);
        Proc { child, lines }
    }

    /// The first line starting with `prefix`, waiting up to `within`.
    pub fn wait_line(&self, prefix: &str, within: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(l) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.starts_with(prefix))
            {
                return l.clone();
            }
            assert!(
                start.elapsed() < within,
                "no {prefix:?} line within {within:?}: {:?}",
                self.lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The address of its `LISTEN role addr` line.
    pub fn listen_addr(&self) -> SocketAddr {
        let l = self.wait_line("LISTEN", Duration::from_secs(20));
        l.rsplit(' ').next().unwrap().parse().unwrap()
    }

    /// Waits for the process to exit (killing it after `within`); returns
    /// its stdout lines and whether it succeeded.
    pub fn finish(mut self, within: Duration) -> (Vec<String>, bool) {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                // let the reader thread drain the pipe
                std::thread::sleep(Duration::from_millis(50));
                return (self.lines.lock().unwrap().clone(), st.success());
            }
            if start.elapsed() > within {
                let _ = self.child.kill();
                panic!(
                    "process did not finish within {within:?}: {:?}",
                    self.lines.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Results seen so far (lines of a job with `WORK`, none before the end)
    /// - for jobs, the progress is read from Reg's list instead.
    pub fn line_count(&self, prefix: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with(prefix))
            .count()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Reg and executors on loopback or in namespaces.
pub struct Cluster {
    pub reg: Proc,
    pub reg_addr: SocketAddr,
    pub exes: Vec<Proc>,
    pub dirs: Vec<PathBuf>,
}

impl Cluster {
    /// A Reg at `listen` in `ns`.
    pub fn reg(ns: Option<&str>, listen: &str) -> Cluster {
        let reg = Proc::start(ns, &["reg", "--listen", listen]);
        let reg_addr = reg.listen_addr();
        Cluster {
            reg,
            reg_addr,
            exes: Vec::new(),
            dirs: Vec::new(),
        }
    }

    /// Adds an executor with data directory `dir`.
    pub fn exe(&mut self, ns: Option<&str>, listen: &str, dir: &std::path::Path, capacity: u32) {
        let reg = self.reg_addr.to_string();
        let cap = capacity.to_string();
        let p = Proc::start(
            ns,
            &[
                "exe",
                "--reg",
                &reg,
                "--listen",
                listen,
                "--capacity",
                &cap,
                "--data",
                dir.to_str().unwrap(),
            ],
        );
        p.listen_addr();
        self.exes.push(p);
        self.dirs.push(dir.to_path_buf());
    }

    /// Runs a job command to completion.
    pub fn job(
        &self,
        ns: Option<&str>,
        listen: &str,
        args: &[&str],
        within: Duration,
    ) -> Vec<String> {
        let reg = self.reg_addr.to_string();
        let mut all = vec![args[0], "--reg", &reg, "--listen", listen];
        all.extend_from_slice(&args[1..]);
        let (lines, ok) = Proc::start(ns, &all).finish(within);
        assert!(ok, "job {args:?} failed: {lines:?}");
        lines
    }

    /// Waits until Reg lists every file of every executor's data directory
    /// as it is now (name and size, as `cluster list` prints them): files a
    /// test just wrote are announced by the executors' next heartbeats.
    /// `cluster list` runs in `ns`.
    pub fn wait_announced(&self, ns: Option<&str>, within: Duration) {
        let want: Vec<Vec<String>> = self
            .dirs
            .iter()
            .map(|d| {
                cluster::exe::scan_files(d)
                    .iter()
                    .map(|f| format!("{}({}B)", f.name, f.size))
                    .collect()
            })
            .collect();
        let reg = self.reg_addr.to_string();
        let start = Instant::now();
        loop {
            let (lines, _) = Proc::start(ns, &["list", "--reg", &reg]).finish(within);
            let exes: Vec<&String> = lines.iter().filter(|l| l.starts_with("EXE ")).collect();
            let listed = |files: &Vec<String>| {
                exes.iter()
                    .any(|l| files.iter().all(|f| l.contains(f.as_str())))
            };
            if want.iter().all(listed) {
                return;
            }
            assert!(
                start.elapsed() < within,
                "Reg did not list {want:?} within {within:?}: {lines:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts a job command and returns it running.
    pub fn start_job(&self, ns: Option<&str>, listen: &str, args: &[&str]) -> Proc {
        let reg = self.reg_addr.to_string();
        let mut all = vec![args[0], "--reg", &reg, "--listen", listen];
        all.extend_from_slice(&args[1..]);
        Proc::start(ns, &all)
    }
}

impl Drop for Cluster {
    /// Stops the processes, then removes the executors' data directories.
    fn drop(&mut self) {
        self.exes.clear();
        for d in &self.dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// The line starting with `prefix`.
pub fn line<'a>(lines: &'a [String], prefix: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in {lines:?}"))
}

/// The median (rank (n-1)/2) of integer files, by sorting everything.
pub fn sort_median(files: &[PathBuf]) -> (i64, usize) {
    let mut all = Vec::new();
    for f in files {
        let b = std::fs::read(f).unwrap();
        all.extend(
            b.chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap())),
        );
    }
    all.sort_unstable();
    (all[(all.len() - 1) / 2], all.len())
}

/// The top k words of word files, counted on one machine.
pub fn local_topk(files: &[PathBuf], k: usize) -> Vec<(String, u64)> {
    let mut counts = std::collections::HashMap::new();
    for f in files {
        for w in std::fs::read_to_string(f).unwrap().split_whitespace() {
            *counts.entry(w.to_string()).or_insert(0u64) += 1;
        }
    }
    cluster::jobs::topk::top(counts.into_iter().collect(), k)
}

/// The `TOP word count` lines.
pub fn top_lines(lines: &[String]) -> Vec<(String, u64)> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("TOP "))
        .map(|l| {
            let (w, n) = l.split_once(' ').unwrap();
            (w.to_string(), n.parse().unwrap())
        })
        .collect()
}

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until a job (started with `--progress-lines`) printed progress of
/// at least `frac` of its total; panics if it finishes or stalls first.
pub fn wait_progress(job: &mut Proc, frac: f64, within: Duration) {
    let start = Instant::now();
    loop {
        let last = job
            .lines
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|l| l.starts_with("PROGRESS "))
            .cloned();
        if let Some(l) = last {
            let mut it = l.split(' ').skip(1);
            let done: f64 = it.next().unwrap().parse().unwrap();
            let total: f64 = it.next().unwrap().parse().unwrap();
            if total > 0.0 && done >= frac * total {
                assert!(done < total, "the job finished before the fault: {l}");
                return;
            }
        }
        assert!(
            job.child.try_wait().unwrap().is_none(),
            "the job ended early: {:?}",
            job.lines.lock().unwrap()
        );
        assert!(
            start.elapsed() < within,
            "no progress to {frac} within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The first chunk a resumed transfer started from, in a
/// `RESULT replicate ... resumed from chunks [a, b, ...]` line.
pub fn first_resumed_chunk(l: &str) -> u64 {
    let from = l
        .split("resumed from chunks [")
        .nth(1)
        .unwrap_or_else(|| panic!("no resume in {l}"));
    from.split([',', ']'])
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}
