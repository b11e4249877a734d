//! The benchmark driver: runs every scenario against its comparators in one
//! run and rewrites `BENCH.md` and `bench/pingpong.svg`.
//!
//! ```text
//! bench all [--seconds 5] [--reps 3] [--out BENCH.md] [--svg bench/pingpong.svg]
//! bench pingpong|pdu|timers|conn_scale|im|im_store|group|baseline|prefork|im_cluster [...]   # one scenario
//! bench im_store [--store-users 1000,10000] [--store-batches 64,512,4096]
//!                [--store-data-bytes 24,100] [--store-warmup 1] [--store-ack-lag 2] [--store-dir DIR]
//! ```
//!
//! One file per scenario: `pingpong`, `pdu`, `scale` (timers, connection
//! scale), `im`, `im_store` (the SQLite message store alone, on one core),
//! `compare` (loop group, baseline), `prefork`, `im_cluster`
//! (IM routing across msg_servers over NATS and PostgreSQL); this one holds the
//! options, the process and measurement helpers, and the report.
//!
//! `bench im` with an existing `--out` file rewrites only its
//! "5. IM routing" section (keeping its subsection "5a. The SQLite store
//! alone") and keeps the rest; `bench im_store` only that subsection
//! (added at the end of section 5 if missing); `bench prefork` likewise
//! only its "8. Worker processes (prefork)" section, `bench im_cluster`
//! only its "9. IM routing across msg_servers" section.
//!
//! It expects the binaries of this crate and `pingpong` (examples) next to
//! itself (`scripts/bench.sh` builds them). Servers run on core 0 and load
//! generators on core 1 (`taskset`) when there are two cores. Server CPU is
//! utime + stime from `/proc/<pid>/stat` over the client's run; system calls
//! come from `strace -c -f -p PID` on a separate, shorter run; allocations
//! from a counting global allocator inside each server.

use bench::{clk_tck, cpu_ticks, median, mm, sh};
use plotters::prelude::*;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod compare;
mod im;
mod im_cluster;
mod im_store;
mod pdu;
mod pingpong;
mod prefork;
mod scale;

use compare::{baseline, group};
use im::{im, splice_im};
use pdu::pdu_echo;
use pingpong::{pingpong, plot};
use prefork::prefork;
use scale::{conn_scale, timers};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

struct Opts {
    seconds: f64,
    reps: usize,
    out: PathBuf,
    svg: PathBuf,
    bin: PathBuf,
    pin: bool,
    strace: bool,
    baseline: Option<PathBuf>,
    prefork_connections: usize,
    store: im_store::Params,
}

/// Runs the benchmark scenarios and rewrites BENCH.md and the pingpong chart.
#[derive(clap::Parser)]
#[command(name = "bench")]
struct Args {
    /// Scenario to run
    #[arg(default_value = "all", value_parser = ["all", "pingpong", "pdu", "timers", "conn_scale", "im", "im_store", "group", "baseline", "prefork", "im_cluster"])]
    what: String,
    /// A directory holding an earlier build's `pdu_echo_server` and
    /// `netlib_pingpong_server` (scripts/bench.sh builds them from
    /// BENCH_BASELINE=<git revision>): section 7 compares them with this
    /// build's in the same run
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Seconds per measured point
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Repetitions per point (the median is reported)
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// The report to (re)write
    #[arg(long, default_value = "BENCH.md")]
    out: PathBuf,
    /// The pingpong chart to write
    #[arg(long, default_value = "bench/pingpong.svg")]
    svg: PathBuf,
    /// Idle connections of the prefork scale run (section 8a)
    #[arg(long, default_value_t = 100_000)]
    prefork_connections: usize,
    /// User counts of the store-alone run (section 5a)
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    store_users: Vec<u32>,
    /// Operations (messages + acks) per transaction of the store-alone run
    #[arg(long, value_delimiter = ',', default_value = "64,512,4096")]
    store_batches: Vec<usize>,
    /// Message sizes (`msg_data` bytes; im_bench sends 24) of the store-alone run
    #[arg(long, value_delimiter = ',', default_value = "24,100")]
    store_data_bytes: Vec<usize>,
    /// Seconds the store-alone run writes before each measured window
    #[arg(long, default_value_t = 1.0)]
    store_warmup: f64,
    /// Batches between a message's batch and its delivery ack's
    #[arg(long, default_value_t = 2)]
    store_ack_lag: usize,
    /// Directory for the store-alone run's database files (default: the
    /// system's temporary directory)
    #[arg(long)]
    store_dir: Option<PathBuf>,
}

fn free_addr() -> Res<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

struct Server {
    child: Child,
    stats: PathBuf,
    addr: SocketAddr,
}

impl Server {
    fn start(o: &Opts, name: &str) -> Res<Server> {
        Server::start_with(o, &o.bin.join(name), &[], true)
    }

    /// Starts the server binary `prog` with `extra` arguments, pinned to
    /// core 0 or free to use every core.
    fn start_with(o: &Opts, prog: &Path, extra: &[&str], pin: bool) -> Res<Server> {
        let name = prog
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("server")
            .to_string();
        let addr = free_addr()?;
        let stats =
            std::env::temp_dir().join(format!("bench-allocs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&stats);
        let mut cmd = if pin {
            pinned(o, 0, prog)
        } else {
            let mut c = Command::new(prog);
            c.env("RUST_LOG", "warn");
            c
        };
        cmd.arg(addr.to_string()).arg(&stats).args(extra);
        let child = cmd.stdout(Stdio::null()).spawn()?;
        let t = Instant::now();
        while TcpStream::connect(addr).is_err() || !stats.exists() {
            if t.elapsed() > Duration::from_secs(10) {
                return Err(format!("{name} did not start").into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(100));
        Ok(Server { child, stats, addr })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn allocs(&self) -> u64 {
        std::fs::read_to_string(&self.stats)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stats);
    }
}

fn pinned(o: &Opts, core: usize, prog: &Path) -> Command {
    if o.pin {
        let mut c = Command::new("taskset");
        c.arg("-c").arg(core.to_string()).arg(prog);
        c.env("RUST_LOG", "warn");
        c
    } else {
        let mut c = Command::new(prog);
        c.env("RUST_LOG", "warn");
        c
    }
}

/// One measured client run against `server`: client stdout, server CPU
/// seconds, and server allocations from `alloc_from` after the start to the end.
fn measure(
    o: &Opts,
    server: &Server,
    client: &str,
    args: &[String],
    alloc_from: f64,
) -> Res<(String, f64, u64, f64)> {
    measure_with(o, server, client, args, alloc_from, true)
}

/// [`measure`], with the client pinned to core 1 or free.
fn measure_with(
    o: &Opts,
    server: &Server,
    client: &str,
    args: &[String],
    alloc_from: f64,
    pin: bool,
) -> Res<(String, f64, u64, f64)> {
    let c0 = cpu_ticks(server.pid())?;
    let mut cmd = if pin {
        pinned(o, 1, &o.bin.join(client))
    } else {
        let mut c = Command::new(o.bin.join(client));
        c.env("RUST_LOG", "warn");
        c
    };
    cmd.args(args).stdout(Stdio::piped());
    let start = Instant::now();
    let child = cmd.spawn()?;
    std::thread::sleep(Duration::from_secs_f64(alloc_from));
    let a0 = server.allocs();
    let t_a0 = start.elapsed().as_secs_f64();
    let out = child.wait_with_output()?;
    let total = start.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(120));
    let a1 = server.allocs();
    let c1 = cpu_ticks(server.pid())?;
    if !out.status.success() {
        return Err(format!("{client} {args:?} failed").into());
    }
    let window = ((total - t_a0) / total).clamp(0.0, 1.0);
    Ok((
        String::from_utf8_lossy(&out.stdout).into_owned(),
        (c1 - c0) as f64 / clk_tck(),
        a1.saturating_sub(a0),
        window,
    ))
}

/// Total system calls of `pid` (all threads) while `client` runs.
fn count_syscalls(o: &Opts, server: &Server, client: &str, args: &[String]) -> Res<(u64, String)> {
    let out = std::env::temp_dir().join(format!("bench-strace-{}", std::process::id()));
    let mut st = Command::new("strace")
        .args(["-c", "-f", "-o"])
        .arg(&out)
        .arg("-p")
        .arg(server.pid().to_string())
        .stderr(Stdio::null())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(500));
    let mut cmd = pinned(o, 1, &o.bin.join(client));
    let res = cmd.args(args).stdout(Stdio::piped()).output()?;
    // SAFETY: kill(2) takes no pointers; at worst it signals nobody.
    unsafe {
        libc::kill(st.id() as i32, libc::SIGINT);
    }
    st.wait()?;
    let text = std::fs::read_to_string(&out)?;
    let _ = std::fs::remove_file(&out);
    let total = text
        .lines()
        .find(|l| l.trim_end().ends_with("total"))
        .and_then(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // % time, seconds, usecs/call, calls, [errors], "total"
            f.get(3).and_then(|s| s.parse().ok())
        })
        .ok_or("no total in strace output")?;
    Ok((total, String::from_utf8_lossy(&res.stdout).into_owned()))
}

fn field(out: &str, name: &str) -> Res<f64> {
    let f: Vec<&str> = out.split_whitespace().collect();
    let i = f
        .iter()
        .position(|w| *w == name)
        .ok_or_else(|| format!("no {name} in {out:?}"))?;
    Ok(f[i + 1].trim_end_matches(',').parse()?)
}

/// The `### ` subsection of `doc` that starts at `heading`, up to the next
/// `## ` or `### ` heading (or the end).
fn subsection<'a>(doc: &'a str, heading: &str) -> Option<&'a str> {
    let start = doc.find(heading)?;
    let body = start + heading.len();
    let end = [doc[body..].find("\n## "), doc[body..].find("\n### ")]
        .into_iter()
        .flatten()
        .min()
        .map_or(doc.len(), |i| body + i + 1);
    Some(&doc[start..end])
}

/// `old` with the subsection `heading` replaced by `section`; without one,
/// `section` goes at the end of the `## ` section `parent` (or at the end
/// of the document if that is missing too).
fn splice_subsection(old: &str, parent: &str, heading: &str, section: &str) -> String {
    let mut doc = old.to_string();
    if let Some(sub) = subsection(old, heading) {
        let start = sub.as_ptr() as usize - old.as_ptr() as usize;
        doc.replace_range(start..start + sub.len(), section);
        return doc;
    }
    let next = doc.find(parent).and_then(|start| {
        doc[start + parent.len()..]
            .find("\n## ")
            .map(|i| start + parent.len() + i + 1)
    });
    match next {
        Some(at) => doc.insert_str(at, section),
        None => {
            if !doc.ends_with("\n\n") {
                doc.push('\n');
            }
            doc.push_str(section);
        }
    }
    doc
}

/// `old` with the section that starts at `heading` (up to the next `## `
/// heading) replaced by `section`, or with `section` appended if it has no
/// such section.
fn splice_section(old: &str, heading: &str, section: &str) -> String {
    let mut doc = old.to_string();
    match doc.find(heading) {
        Some(start) => {
            let end = doc[start + heading.len()..]
                .find("\n## ")
                .map_or(doc.len(), |i| start + heading.len() + i + 1);
            doc.replace_range(start..end, section);
        }
        None if section.is_empty() => {}
        None => {
            if !doc.ends_with("\n\n") {
                doc.push('\n');
            }
            doc.push_str(section);
        }
    }
    doc
}

fn ratio(a: f64, b: f64) -> String {
    format!("{:.2}x", a / b)
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

fn main() -> Res<()> {
    let args = <Args as clap::Parser>::parse();
    let what = args.what;
    let exe = std::env::current_exe()?;
    let o = Opts {
        seconds: args.seconds,
        reps: args.reps,
        out: args.out,
        svg: args.svg,
        bin: exe.parent().ok_or("no exe dir")?.to_path_buf(),
        pin: std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2
            && Command::new("taskset").arg("-V").output().is_ok(),
        strace: Command::new("strace").arg("-V").output().is_ok(),
        baseline: args.baseline,
        prefork_connections: args.prefork_connections,
        store: im_store::Params {
            users: args.store_users,
            batches: args.store_batches,
            data_bytes: args.store_data_bytes,
            warmup: args.store_warmup,
            ack_lag: args.store_ack_lag,
            dir: args.store_dir.unwrap_or_else(std::env::temp_dir),
        },
    };
    bench::raise_nofile(65536);
    let load_before = sh("cut -d' ' -f1-3 /proc/loadavg");
    let started = Instant::now();
    let mut body = String::new();
    let run = |name: &str| what == "all" || what == name;
    let mut pp = None;
    if run("pingpong") {
        pp = Some(pingpong(&o, &mut body)?);
    }
    if run("pdu") {
        pdu_echo(&o, &mut body)?;
    }
    if run("timers") {
        timers(&o, &mut body)?;
    }
    if run("conn_scale") {
        conn_scale(&o, &mut body)?;
    }
    if run("im") {
        let mut section = String::new();
        im(&o, &mut section)?;
        if what == "im" {
            // Only this section: keep the rest of the existing file.
            if let Ok(old) = std::fs::read_to_string(&o.out) {
                std::fs::write(&o.out, splice_im(&old, &section))?;
                eprintln!("updated the IM routing section of {}", o.out.display());
                return Ok(());
            }
        }
        body.push_str(&section);
    }
    if run("im_store") {
        let mut section = String::new();
        im_store::im_store(&o, &mut section)?;
        if what == "im_store" {
            // Only this subsection: keep the rest of the existing file.
            if let Ok(old) = std::fs::read_to_string(&o.out) {
                let doc = splice_subsection(&old, im_store::PARENT, im_store::HEADING, &section);
                std::fs::write(&o.out, doc)?;
                eprintln!("updated the SQLite store section of {}", o.out.display());
                return Ok(());
            }
        }
        body.push_str(&section);
    }
    if run("group") {
        group(&o, &mut body)?;
    }
    if run("baseline") {
        baseline(&o, &mut body)?;
    }
    if run("prefork") {
        let mut section = String::new();
        prefork(&o, &mut section)?;
        if what == "prefork" {
            // Only this section: keep the rest of the existing file.
            if let Ok(old) = std::fs::read_to_string(&o.out) {
                let heading = "## 8. Worker processes (prefork)";
                std::fs::write(&o.out, splice_section(&old, heading, &section))?;
                eprintln!("updated the prefork section of {}", o.out.display());
                return Ok(());
            }
        }
        body.push_str(&section);
    }
    if run("im_cluster") {
        let mut section = String::new();
        im_cluster::im_cluster(&o, &mut section)?;
        if what == "im_cluster" {
            // Only this section: keep the rest of the existing file.
            if let Ok(old) = std::fs::read_to_string(&o.out) {
                let doc = splice_section(&old, im_cluster::HEADING, &section);
                std::fs::write(&o.out, doc)?;
                eprintln!("updated the IM cluster section of {}", o.out.display());
                return Ok(());
            }
        }
        body.push_str(&section);
    }
    if let Some(points) = &pp {
        plot(&o, points)?;
    }
    let load_after = sh("cut -d' ' -f1-3 /proc/loadavg");
    let mut md = String::new();
    writeln!(md, "# netlib benchmarks\n")?;
    writeln!(md, "Produced by `scripts/bench.sh` (`bench {what} --seconds {} --reps {}`); every figure below is what that run printed. Medians with min..max over the repetitions; ratios are netlib / comparator, measured in the same run, interleaved.\n", o.seconds, o.reps)?;
    writeln!(md, "Elsewhere: the memcached example against memcached in [BENCH-memcached.md](BENCH-memcached.md) (`scripts/bench_memcached.sh`), the message center against ZeroMQ in [BENCH-msgcenter.md](BENCH-msgcenter.md) (`scripts/bench_msgcenter.sh`).\n")?;
    writeln!(md, "## Machine\n")?;
    writeln!(
        md,
        "- CPU: {}, {} logical cores",
        sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'"),
        sh("nproc")
    )?;
    writeln!(md, "- kernel: {}", sh("uname -r"))?;
    writeln!(
        md,
        "- {}; netlib commit {}",
        sh("rustc -V"),
        sh("git rev-parse --short HEAD")
    )?;
    writeln!(md, "- load average before / after: {} / {} (the machine is shared with other engineers' builds; a high load makes every figure noisier)", load_before, load_after)?;
    writeln!(
        md,
        "- pinning: {}",
        if o.pin {
            "servers on core 0, load generators on core 1 (taskset)"
        } else {
            "none (fewer than 2 cores or no taskset)"
        }
    )?;
    writeln!(
        md,
        "- strace: {}",
        if o.strace {
            sh("strace -V | head -1")
        } else {
            "not installed: syscall columns are NaN".into()
        }
    )?;
    writeln!(
        md,
        "- total run time: {:.0} s\n",
        started.elapsed().as_secs_f64()
    )?;
    writeln!(md, "## Commands\n")?;
    writeln!(md, "```sh\nscripts/bench.sh            # = cargo build --release -p bench -p examples --bins; target/release/bench all\n# each measurement, PORT a free loopback port:\ntaskset -c 0 netlib_pingpong_server 127.0.0.1:PORT STATS   # or tokio_pingpong_server\ntaskset -c 1 pingpong client --connect 127.0.0.1:PORT --sessions N --block B --seconds {s}\ntaskset -c 0 pdu_echo_server 127.0.0.1:PORT STATS          # or tokio_pdu_echo_server, messageio_pdu_echo_server\ntaskset -c 1 pdu_echo_client --connect 127.0.0.1:PORT --conns 100 --inflight 16 --warmup 1 --seconds {s} [--framing message-io]\nstrace -c -f -p SERVER_PID   # separate 2 s runs\ntaskset -c 0 timers 1000 100000 1000000\nnetlib_pingpong_server 127.0.0.1:PORT STATS --threads 2   # or tokio_pingpong_server --threads 2 (multi-thread runtime); no pinning\npdu_echo_server 127.0.0.1:PORT STATS --threads 2          # or tokio_pdu_echo_server --threads 2\nim_bench --users 1000 --step-secs {s}    # and --users 10000; starts msg_server itself (core 0), runs on core 1\nscripts/bench_im_store.sh               # section 5a alone: bench im_store (the SQLite store's backend on core 0, no msg_server)\nscripts/bench_im_cluster.sh             # section 9 alone: bench im_cluster (PostgreSQL, nats-server, 1/2/3 msg_servers)\n```\n", s = o.seconds)?;
    md.push_str(&body);
    std::fs::write(&o.out, md)?;
    eprintln!("wrote {}", o.out.display());
    Ok(())
}
