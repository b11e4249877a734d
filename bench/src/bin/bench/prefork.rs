//! Scenario 8: servers made of worker processes under a `prefork` master -
//! 100,000 idle connections over several workers (one process stops near
//! 20,000 descriptors here), and the memcached example as 1 and 2 worker
//! processes against memcached `-t 1` / `-t 2`, with the spread of
//! connections over the workers.
//!
//! Every master runs in its own process group, killed as a whole when a
//! run ends. A server's memory and CPU are summed over the master and its
//! workers (pids from the master's status file).

use super::*;
use crate::scale::rss_kib;
use std::os::unix::process::CommandExt;

/// A prefork master and its status file; its process group is killed on
/// drop.
struct Master {
    child: Child,
    status: PathBuf,
}

impl Master {
    /// Starts `cmd` (which must name `status` as its `--status-file`) and
    /// waits for `workers` running workers.
    fn start(mut cmd: Command, status: PathBuf, workers: usize) -> Res<Master> {
        let _ = std::fs::remove_file(&status);
        cmd.process_group(0).stdout(Stdio::null());
        let master = Master {
            child: cmd.spawn()?,
            status,
        };
        let t = Instant::now();
        while master.workers().len() < workers {
            if t.elapsed() > Duration::from_secs(20) {
                return Err(format!("{workers} workers did not start").into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(master)
    }

    /// `(pid, live connections)` of every running worker.
    fn workers(&self) -> Vec<(u32, u64)> {
        let text = std::fs::read_to_string(&self.status).unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with("worker ") && l.contains(" state=running"))
            .filter_map(|l| {
                let field = |k: &str| {
                    l.split_whitespace()
                        .find_map(|w| w.strip_prefix(k))
                        .and_then(|v| v.parse().ok())
                };
                Some((field("pid=")? as u32, field("connections=")?))
            })
            .collect()
    }

    /// The master and its workers.
    fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.child.id()];
        pids.extend(self.workers().iter().map(|w| w.0));
        pids
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        // SAFETY: kill has no memory effects.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.status);
    }
}

fn rss_sum(pids: &[u32]) -> Res<f64> {
    pids.iter().map(|&p| rss_kib(p)).sum()
}

fn cpu_sum(pids: &[u32]) -> Res<u64> {
    Ok(pids
        .iter()
        .map(|&p| cpu_ticks(p))
        .sum::<std::io::Result<u64>>()?)
}

fn status_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "bench-prefork-{}-{name}.status",
        std::process::id()
    ))
}

pub(crate) fn prefork(o: &Opts, md: &mut String) -> Res<()> {
    writeln!(md, "## 8. Worker processes (prefork)\n")?;
    let load_before = sh("cut -d' ' -f1-3 /proc/loadavg");
    let mut body = String::new();
    scale(o, &mut body)?;
    memcached(o, &mut body)?;
    let load_after = sh("cut -d' ' -f1-3 /proc/loadavg");
    writeln!(md, "Servers run as N worker processes under a `prefork` master that binds once and forks; every worker loop waits on the one shared listening socket with EPOLLEXCLUSIVE. Memory and CPU are summed over the master and its workers. Run: `scripts/bench_prefork.sh` (`bench prefork --seconds {} --reps {} --prefork-connections {}`) at commit {}, {} logical cores shared with other engineers' work, load average before / after {load_before} / {load_after}.\n", o.seconds, o.reps, o.prefork_connections, sh("git rev-parse --short HEAD"), sh("nproc"))?;
    md.push_str(&body);
    Ok(())
}

const SCALE_WORKERS: usize = 6;
const SCALE_CLIENTS: usize = 6;

/// `--prefork-connections` (100,000) idle connections over `SCALE_WORKERS`
/// worker processes.
fn scale(o: &Opts, md: &mut String) -> Res<()> {
    let idle_secs = 10.0;
    let total = o.prefork_connections.max(SCALE_CLIENTS);
    writeln!(
        md,
        "### 8a. {total} idle connections over {SCALE_WORKERS} worker processes\n"
    )?;
    writeln!(md, "`conn_scale server ADDR --processes {SCALE_WORKERS}` (each worker one netlib loop with an ImServer, heartbeat and idle deadlines armed on every connection) holds {total} idle connections opened by {SCALE_CLIENTS} `conn_scale client ADDR N --src-base B` processes (blocking sockets, each from its own source address 127.0.0.B). The descriptor limit here ({} per process) is why it takes several workers. RSS per connection = (summed VmRSS with all connected - before) / {total}; idle CPU = summed utime+stime over {idle_secs} s. Not pinned.\n", bench::raise_nofile(200_000))?;
    let addr = free_addr()?;
    let status = status_path("scale");
    let mut cmd = Command::new(o.bin.join("conn_scale"));
    cmd.env("RUST_LOG", "warn")
        .arg("server")
        .arg(addr.to_string())
        .args(["--processes", &SCALE_WORKERS.to_string(), "--status-file"])
        .arg(&status);
    let master = Master::start(cmd, status, SCALE_WORKERS)?;
    std::thread::sleep(Duration::from_millis(500));
    let rss0 = rss_sum(&master.pids())?;
    let mut clients = Vec::new();
    for i in 0..SCALE_CLIENTS {
        let n =
            total / SCALE_CLIENTS + usize::from(i == SCALE_CLIENTS - 1) * (total % SCALE_CLIENTS);
        clients.push(
            Command::new(o.bin.join("conn_scale"))
                .arg("client")
                .arg(addr.to_string())
                .arg(n.to_string())
                .args(["--src-base", &(2 + i).to_string()])
                .stdout(Stdio::null())
                .spawn()?,
        );
    }
    let t = Instant::now();
    let connected = |m: &Master| m.workers().iter().map(|w| w.1).sum::<u64>() as usize;
    let mut failed = None;
    while connected(&master) < total {
        if t.elapsed() > Duration::from_secs(300) {
            failed = Some("not all connected within 300 s".to_string());
            break;
        }
        if let Some(i) = clients
            .iter_mut()
            .position(|c| matches!(c.try_wait(), Ok(Some(_))))
        {
            failed = Some(format!("client {i} exited"));
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let setup = t.elapsed().as_secs_f64();
    writeln!(md, "| workers | connections | connected in s | RSS before KiB | RSS after KiB | bytes per connection | idle CPU % of a core | <= 1 KiB/conn | < 1% CPU |")?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|")?;
    if let Some(why) = failed {
        eprintln!("prefork scale: {why}");
        writeln!(
            md,
            "| {SCALE_WORKERS} | {} | - | {rss0:.0} | - | - | - | failed: {why} | |\n",
            connected(&master)
        )?;
    } else {
        std::thread::sleep(Duration::from_secs(2));
        let pids = master.pids();
        let rss1 = rss_sum(&pids)?;
        let c0 = cpu_sum(&pids)?;
        std::thread::sleep(Duration::from_secs_f64(idle_secs));
        let c1 = cpu_sum(&pids)?;
        let per = (rss1 - rss0) * 1024.0 / total as f64;
        let cpu = (c1 - c0) as f64 / clk_tck() / idle_secs * 100.0;
        eprintln!("prefork scale: {per:.0} B/conn, {cpu:.2}% CPU idle (connected in {setup:.1} s)");
        writeln!(
            md,
            "| {SCALE_WORKERS} | {total} | {setup:.1} | {rss0:.0} | {rss1:.0} | {per:.0} | {cpu:.2} | {} | {} |\n",
            verdict(per <= 1024.0),
            verdict(cpu < 1.0)
        )?;
        let spread: Vec<String> = master.workers().iter().map(|w| w.1.to_string()).collect();
        writeln!(md, "Connections per worker (accept distribution): {}. A worker that reaches its descriptor limit stops accepting for 100 ms and leaves the listener's wait queue meanwhile, so the others take the rest. \"Connected in\" is the load generator's time: each client binds every socket to port 0 of its one source address before connecting, and the kernel's search for a free port slows as they fill up (a check by hand, not by this script, with 3 workers: 15,000 connections took 0.6 s, 45,000 took 56 s, and the server had accepted the last one 0.3 s after the clients finished).\n", spread.join(", "))?;
    }
    for mut c in clients {
        let _ = c.kill();
        let _ = c.wait();
    }
    drop(master);
    Ok(())
}

/// memaslap's workload: 64-byte keys, 1 KiB values, 90 % get / 10 % set.
const WORKLOAD: &str = "key\n64 64 1\nvalue\n1024 1024 1\ncmd\n0 0.1\n1 0.9\n";

/// One configuration of the memcached comparison.
struct McConfig {
    label: &'static str,
    ours: bool,
    args: &'static [&'static str],
    workers: usize,
    pin: bool,
}

const MC_CONFIGS: [McConfig; 5] = [
    McConfig {
        label: "netlib-memcached -t 1",
        ours: true,
        args: &["-t", "1"],
        workers: 0,
        pin: true,
    },
    McConfig {
        label: "netlib-memcached --processes 1",
        ours: true,
        args: &["--processes", "1"],
        workers: 1,
        pin: true,
    },
    McConfig {
        label: "memcached -t 1",
        ours: false,
        args: &["-t", "1"],
        workers: 0,
        pin: true,
    },
    McConfig {
        label: "netlib-memcached --processes 2",
        ours: true,
        args: &["--processes", "2"],
        workers: 2,
        pin: false,
    },
    McConfig {
        label: "memcached -t 2",
        ours: false,
        args: &["-t", "2"],
        workers: 0,
        pin: false,
    },
];

/// What one memaslap run measured.
struct McRun {
    tps: f64,
    us_per_op: f64,
    misses: String,
    spread: String,
}

/// The memcached example with 1 and 2 worker processes against memcached.
fn memcached(o: &Opts, md: &mut String) -> Res<()> {
    writeln!(
        md,
        "### 8b. memcached example as worker processes vs memcached\n"
    )?;
    let memaslap = sh("command -v memcaslap || command -v memaslap");
    let real = sh("command -v memcached");
    if memaslap.is_empty() || real.is_empty() {
        writeln!(
            md,
            "Skipped: memcached and memcaslap (libmemcached-tools) are needed.\n"
        )?;
        return Ok(());
    }
    let work = std::env::temp_dir().join(format!("bench-prefork-{}.cfg", std::process::id()));
    std::fs::write(&work, WORKLOAD)?;
    let secs = o.seconds.max(1.0);
    writeln!(md, "memaslap, 128 connections, 90 % get / 10 % set, 64-byte keys, 1 KiB values, 2 s warm-up then {secs} s measured, {} repetitions, the five configurations interleaved; every server gets `-m 1024`. One worker process is pinned to core 0 with memaslap on core 1, like `-t 1`; two processes or two threads share both cores with memaslap. Each worker process has its own cache (a key lives in the worker whose connection stored it), so memaslap's gets miss more with 2 processes; the miss counts are shown. Server CPU is summed over master and workers.\n", o.reps)?;
    let mut runs: Vec<Vec<McRun>> = (0..MC_CONFIGS.len()).map(|_| Vec::new()).collect();
    for _ in 0..o.reps {
        for (i, c) in MC_CONFIGS.iter().enumerate() {
            runs[i].push(mc_run(o, c, &memaslap, &real, &work, secs)?);
        }
    }
    let _ = std::fs::remove_file(&work);
    writeln!(md, "| server | ops/s | server CPU µs/op | get misses | connections per worker (mid-run) | ops/s vs memcached, same cores |")?;
    writeln!(md, "|---|---|---|---|---|---|")?;
    let tps = |i: usize| runs[i].iter().map(|r| r.tps).collect::<Vec<_>>();
    for (i, c) in MC_CONFIGS.iter().enumerate() {
        let us: Vec<f64> = runs[i].iter().map(|r| r.us_per_op).collect();
        let reference = if c.pin { 2 } else { 4 };
        let last = runs[i].last();
        writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            c.label,
            mm(&tps(i), 0),
            mm(&us, 2),
            last.map_or("-", |r| r.misses.as_str()),
            last.map_or("-", |r| r.spread.as_str()),
            if c.ours {
                ratio(median(&tps(i)), median(&tps(reference)))
            } else {
                "-".into()
            }
        )?;
    }
    writeln!(md)?;
    Ok(())
}

fn mc_run(
    o: &Opts,
    c: &McConfig,
    memaslap: &str,
    real: &str,
    workload: &Path,
    secs: f64,
) -> Res<McRun> {
    let addr = free_addr()?;
    let port = addr.port().to_string();
    let status = status_path("memcached");
    let prog = if c.ours {
        o.bin.join("netlib-memcached")
    } else {
        PathBuf::from(real)
    };
    let mut cmd = if c.pin {
        pinned(o, 0, &prog)
    } else {
        Command::new(&prog)
    };
    cmd.env("RUST_LOG", "warn")
        .args(["-p", &port, "-l", "127.0.0.1", "-m", "1024"])
        .args(c.args);
    if !c.ours {
        cmd.arg("-U").arg("0");
        // SAFETY: geteuid only reads the process's credentials.
        if unsafe { libc::geteuid() } == 0 {
            cmd.args(["-u", "root"]);
        }
    }
    if c.workers > 0 {
        cmd.arg("--status-file").arg(&status);
    }
    let master = Master::start(cmd, status, c.workers)?;
    let t = Instant::now();
    while TcpStream::connect(addr).is_err() {
        if t.elapsed() > Duration::from_secs(10) {
            return Err(format!("{} did not start", c.label).into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let load = |seconds: f64| {
        let mut cmd = if c.pin {
            pinned(o, 1, Path::new(memaslap))
        } else {
            Command::new(memaslap)
        };
        cmd.args(["-s", &format!("127.0.0.1:{port}"), "-F"])
            .arg(workload)
            .args([
                "-T",
                if c.pin { "1" } else { "2" },
                "-c",
                "128",
                "-t",
                &format!("{seconds:.0}s"),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        cmd
    };
    load(2.0).output()?;
    let pids = master.pids();
    let c0 = cpu_sum(&pids)?;
    let run = load(secs).spawn()?;
    std::thread::sleep(Duration::from_secs_f64(secs / 2.0));
    let spread = if c.workers > 0 {
        let counts: Vec<String> = master.workers().iter().map(|w| w.1.to_string()).collect();
        counts.join(" / ")
    } else {
        "-".to_string()
    };
    let out = run.wait_with_output()?;
    let c1 = cpu_sum(&pids)?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rfind(|l| l.starts_with("Run time:") && l.contains(" TPS: "))
        .ok_or_else(|| format!("no result from memaslap against {}: {text}", c.label))?;
    let number = |key: &str| -> Res<f64> {
        let rest = line.split(key).nth(1).ok_or("bad memaslap line")?;
        Ok(rest
            .split_whitespace()
            .next()
            .ok_or("bad memaslap line")?
            .parse()?)
    };
    let (ops, tps) = (number("Ops: ")?, number("TPS: ")?);
    let misses = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("get_misses:"))
        .map_or("?".into(), |m| m.trim().to_string());
    let cpu = (c1 - c0) as f64 / clk_tck();
    eprintln!(
        "  {}: {tps:.0} ops/s, server cpu {cpu:.2} s, spread {spread}",
        c.label
    );
    Ok(McRun {
        tps,
        us_per_op: cpu * 1e6 / ops.max(1.0),
        misses,
        spread,
    })
}
