//! The benchmark driver: runs every scenario against its comparators in one
//! run and rewrites `BENCH.md` and `bench/pingpong.svg`.
//!
//! ```text
//! bench all [--seconds 5] [--reps 3] [--out BENCH.md] [--svg bench/pingpong.svg]
//! bench pingpong|pdu|timers|conn_scale|im [...]   # one scenario
//! ```
//!
//! `bench im` with an existing `--out` file rewrites only its
//! "5. IM routing" section and keeps the rest.
//!
//! It expects the binaries of this crate and `pingpong` (examples) next to
//! itself (`scripts/bench.sh` builds them). Servers run on core 0 and load
//! generators on core 1 (`taskset`) when there are two cores. Server CPU is
//! utime + stime from `/proc/<pid>/stat` over the client's run; system calls
//! come from `strace -c -f -p PID` on a separate, shorter run; allocations
//! from a counting global allocator inside each server.

use plotters::prelude::*;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
}

/// Runs the benchmark scenarios and rewrites BENCH.md and the pingpong chart.
#[derive(clap::Parser)]
#[command(name = "bench")]
struct Args {
    /// Scenario to run
    #[arg(default_value = "all", value_parser = ["all", "pingpong", "pdu", "timers", "conn_scale", "im", "group", "baseline"])]
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
}

fn free_addr() -> Res<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn cpu_ticks(pid: u32) -> Res<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = &stat[stat.rfind(')').ok_or("bad stat")? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if s.is_empty() {
        f64::NAN
    } else {
        s[s.len() / 2]
    }
}

fn min(v: &[f64]) -> f64 {
    v.iter().cloned().fold(f64::INFINITY, f64::min)
}

fn max(v: &[f64]) -> f64 {
    v.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
}

/// `median (min..max)` with `prec` decimals.
fn mm(v: &[f64], prec: usize) -> String {
    format!(
        "{:.p$} ({:.p$}..{:.p$})",
        median(v),
        min(v),
        max(v),
        p = prec
    )
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

fn sh(cmd: &str) -> String {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
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

// ---------------------------------------------------------------- pingpong

const PP_SERVERS: [(&str, &str); 2] = [
    ("netlib", "netlib_pingpong_server"),
    ("tokio", "tokio_pingpong_server"),
];

struct PpPoint {
    block: usize,
    sessions: usize,
    mibs: [Vec<f64>; 2],
    cpu_gib: [Vec<f64>; 2],
    allocs_rt: [Vec<f64>; 2],
}

fn pingpong_args(addr: SocketAddr, sessions: usize, block: usize, secs: f64) -> Vec<String> {
    vec![
        "client".into(),
        "--connect".into(),
        addr.to_string(),
        "--sessions".into(),
        sessions.to_string(),
        "--block".into(),
        block.to_string(),
        "--seconds".into(),
        secs.to_string(),
    ]
}

fn pingpong(o: &Opts, md: &mut String) -> Res<Vec<PpPoint>> {
    let mut points = Vec::new();
    for block in [16384usize, 4096] {
        for sessions in [1usize, 10, 100, 1000] {
            let mut p = PpPoint {
                block,
                sessions,
                mibs: Default::default(),
                cpu_gib: Default::default(),
                allocs_rt: Default::default(),
            };
            for _ in 0..o.reps {
                for (i, (_, bin)) in PP_SERVERS.iter().enumerate() {
                    let s = Server::start(o, bin)?;
                    let args = pingpong_args(s.addr, sessions, block, o.seconds);
                    let (out, cpu, allocs, window) = measure(o, &s, "pingpong", &args, 1.0)?;
                    let bytes = parse_bytes_read(&out)?;
                    let mib = out
                        .split(',')
                        .next_back()
                        .and_then(|s| s.split_whitespace().next())
                        .and_then(|s| s.parse::<f64>().ok())
                        .ok_or("no MiB/s")?;
                    p.mibs[i].push(mib);
                    p.cpu_gib[i].push(cpu / (bytes / (1u64 << 30) as f64));
                    let rts = bytes / block as f64 * window;
                    p.allocs_rt[i].push(allocs as f64 / rts.max(1.0));
                }
            }
            eprintln!(
                "pingpong {block} B x {sessions}: netlib {:.1} MiB/s, tokio {:.1} MiB/s",
                median(&p.mibs[0]),
                median(&p.mibs[1])
            );
            points.push(p);
        }
    }
    writeln!(md, "## 1. pingpong\n")?;
    writeln!(md, "muduo's pingpong: each side echoes what it receives, TCP_NODELAY, fixed duration {} s, {} repetitions (servers interleaved). Client: `pingpong client` (examples, netlib) for both servers. MiB/s is what the client read per second; CPU/GiB is server utime+stime over the whole client run divided by the bytes it echoed. Allocations per round trip (one block echoed) are counted in the server from 1 s into the run to its end.\n", o.seconds, o.reps)?;
    writeln!(md, "| block | sessions | netlib MiB/s | tokio MiB/s | ratio | netlib CPU s/GiB | tokio CPU s/GiB | ratio | throughput >= 1.0x | CPU <= 0.8x |")?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|")?;
    for p in &points {
        let tr = median(&p.mibs[0]) / median(&p.mibs[1]);
        let cr = median(&p.cpu_gib[0]) / median(&p.cpu_gib[1]);
        writeln!(
            md,
            "| {} | {} | {} | {} | {:.2}x | {} | {} | {:.2}x | {} | {} |",
            p.block,
            p.sessions,
            mm(&p.mibs[0], 1),
            mm(&p.mibs[1], 1),
            tr,
            mm(&p.cpu_gib[0], 3),
            mm(&p.cpu_gib[1], 3),
            cr,
            verdict(tr >= 1.0),
            verdict(cr <= 0.8)
        )?;
    }
    writeln!(md, "\n![pingpong throughput](bench/pingpong.svg)\n")?;
    writeln!(md, "Not measured by this run: on 2026-12-03, by hand, the 16 KiB x 10 sessions point (0.69x tokio in an earlier run) was profiled with `perf record -e cpu-clock -F 2000 -p SERVER` while `pingpong client --sessions 10 --block 16384` ran (server on core 0, client on core 1): both servers spend about 92% of their time in the kernel (copying to and from socket buffers, TCP), and their user-space shares were equal (5.7% netlib, 5.5% tokio) but for one difference - netlib copied every echoed byte into its reply batch before writing (`memmove` 4.5% of server CPU). Replies of 4 KiB or more with nothing batched before them are now written straight through (`memmove` 0.4%). With the server kernel-bound, the remaining throughput spread at this point is scheduling noise between two processes on two shared cores: in 5 back-to-back pairs on a loaded machine (a shell loop timing `pingpong client --seconds 3` against each server) netlib ranged 410..1650 MiB/s and tokio 458..1582 MiB/s, with server CPU per GiB within 10% of each other; compare the CPU columns.\n")?;
    writeln!(
        md,
        "Server allocations per round trip (median over repetitions):\n"
    )?;
    writeln!(md, "| block | sessions | netlib | tokio |")?;
    writeln!(md, "|---|---|---|---|")?;
    for p in &points {
        writeln!(
            md,
            "| {} | {} | {:.4} | {:.4} |",
            p.block,
            p.sessions,
            median(&p.allocs_rt[0]),
            median(&p.allocs_rt[1])
        )?;
    }
    if o.strace {
        writeln!(md, "\nSystem calls (strace -c -f -p on the server, 100 sessions, 16 KiB blocks, 2 s; strace slows the server, so its throughput here is not comparable):\n")?;
        writeln!(
            md,
            "| server | syscalls | MiB moved | syscalls per 16 KiB block |"
        )?;
        writeln!(md, "|---|---|---|---|")?;
        let mut per = [0.0; 2];
        for (i, (name, bin)) in PP_SERVERS.iter().enumerate() {
            let s = Server::start(o, bin)?;
            let args = pingpong_args(s.addr, 100, 16384, 2.0);
            let (calls, out) = count_syscalls(o, &s, "pingpong", &args)?;
            let bytes = parse_bytes_read(&out)?;
            per[i] = calls as f64 / (bytes / 16384.0);
            writeln!(
                md,
                "| {name} | {calls} | {:.1} | {:.3} |",
                bytes / 1048576.0,
                per[i]
            )?;
        }
        writeln!(
            md,
            "\nnetlib / tokio syscalls per block: {}\n",
            ratio(per[0], per[1])
        )?;
    }
    Ok(points)
}

fn parse_bytes_read(out: &str) -> Res<f64> {
    // "pingpong: N sessions, B byte blocks, S s: X bytes read, Y MiB/s"
    let i = out.find(" bytes read").ok_or("no bytes read")?;
    let head = &out[..i];
    let num = head.rsplit(' ').next().ok_or("no number")?;
    Ok(num.parse()?)
}

fn plot(o: &Opts, points: &[PpPoint]) -> Res<()> {
    let ymax = points
        .iter()
        .flat_map(|p| [median(&p.mibs[0]), median(&p.mibs[1])])
        .fold(0.0, f64::max)
        * 1.15;
    let root = SVGBackend::new(&o.svg, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("pingpong throughput vs sessions", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((1f64..1000f64).log_scale(), 0f64..ymax)?;
    chart
        .configure_mesh()
        .x_desc("sessions")
        .y_desc("MiB/s (median)")
        .draw()?;
    let styles = [
        ("netlib 16 KiB", 16384, 0, RED),
        ("tokio 16 KiB", 16384, 1, BLUE),
        ("netlib 4 KiB", 4096, 0, MAGENTA),
        ("tokio 4 KiB", 4096, 1, CYAN),
    ];
    for (label, block, i, color) in styles {
        let data: Vec<(f64, f64)> = points
            .iter()
            .filter(|p| p.block == block)
            .map(|p| (p.sessions as f64, median(&p.mibs[i])))
            .collect();
        chart
            .draw_series(LineSeries::new(data.clone(), color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart.draw_series(
            data.iter()
                .map(|&(x, y)| Circle::new((x, y), 3, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}

// ---------------------------------------------------------------- PDU echo

const PDU_SERVERS: [(&str, &str, &str); 3] = [
    ("netlib ImServer", "pdu_echo_server", "teamtalk"),
    (
        "tokio + LengthDelimitedCodec",
        "tokio_pdu_echo_server",
        "teamtalk",
    ),
    (
        "message-io FramedTcp",
        "messageio_pdu_echo_server",
        "message-io",
    ),
];

fn pdu_args(o: &Opts, addr: SocketAddr, framing: &str, secs: f64) -> Vec<String> {
    let _ = o;
    [
        "--connect",
        &addr.to_string(),
        "--conns",
        "100",
        "--inflight",
        "16",
        "--warmup",
        "1",
        "--seconds",
        &secs.to_string(),
        "--framing",
        framing,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn pdu_echo(o: &Opts, md: &mut String) -> Res<()> {
    let n = PDU_SERVERS.len();
    let mut fps = vec![Vec::new(); n];
    let mut cpu_us = vec![Vec::new(); n];
    let mut p50 = vec![Vec::new(); n];
    let mut p99 = vec![Vec::new(); n];
    let mut p999 = vec![Vec::new(); n];
    let mut allocs = vec![Vec::new(); n];
    for _ in 0..o.reps {
        for (i, (_, bin, framing)) in PDU_SERVERS.iter().enumerate() {
            let s = Server::start(o, bin)?;
            let args = pdu_args(o, s.addr, framing, o.seconds);
            let (out, cpu, a, _) = measure(o, &s, "pdu_echo_client", &args, 1.1)?;
            let frames = field(&out, "frames")?;
            fps[i].push(field(&out, "fps")?);
            p50[i].push(field(&out, "p50_us")?);
            p99[i].push(field(&out, "p99_us")?);
            p999[i].push(field(&out, "p999_us")?);
            // CPU over warm-up + measurement; frames only over measurement:
            // scale frames by the ratio of the two windows.
            let all_frames = frames * (1.0 + o.seconds) / o.seconds;
            cpu_us[i].push(cpu * 1e6 / all_frames);
            allocs[i].push(a as f64 / frames);
        }
    }
    for i in 0..n {
        eprintln!(
            "pdu echo {}: {:.0} frames/s",
            PDU_SERVERS[i].0,
            median(&fps[i])
        );
    }
    let mut sys = vec![f64::NAN; n];
    if o.strace {
        for (i, (_, bin, framing)) in PDU_SERVERS.iter().enumerate() {
            let s = Server::start(o, bin)?;
            let mut args = pdu_args(o, s.addr, framing, 2.0);
            args[7] = "0.1".into();
            let (calls, out) = count_syscalls(o, &s, "pdu_echo_client", &args)?;
            let frames = field(&out, "frames")? * 2.1 / 2.0;
            sys[i] = calls as f64 / frames;
        }
    }
    writeln!(md, "## 2. PDU echo\n")?;
    writeln!(md, "TeamTalk frames (16-byte header, 64-byte body), 100 connections, 16 frames in flight each, 1 s warm-up then {} s measured, {} repetitions. Load generator: `pdu_echo_client` (netlib; answers all frames of one read with one write; latency = send to echo received, hdrhistogram, includes queueing behind the 15 other frames in flight). message-io's FramedTcp has its own framing (varint length), so against it each TeamTalk frame is prefixed by one length byte. CPU per frame = server utime+stime over the client run / frames echoed. Syscalls per frame from a separate 2 s run under `strace -c -f -p` (throughput under strace is lower; the count per frame is what matters).\n", o.seconds, o.reps)?;
    writeln!(md, "| server | frames/s | p50 µs | p99 µs | p999 µs | CPU µs/frame | syscalls/frame | allocs/frame |")?;
    writeln!(md, "|---|---|---|---|---|---|---|---|")?;
    for i in 0..n {
        writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {:.3} | {:.4} |",
            PDU_SERVERS[i].0,
            mm(&fps[i], 0),
            mm(&p50[i], 0),
            mm(&p99[i], 0),
            mm(&p999[i], 0),
            mm(&cpu_us[i], 3),
            sys[i],
            median(&allocs[i])
        )?;
    }
    let fr = median(&fps[0]) / median(&fps[1]);
    let cr = median(&cpu_us[0]) / median(&cpu_us[1]);
    let sr = sys[0] / sys[1];
    writeln!(md, "\nRatios netlib / tokio-util: frames/s {fr:.2}x (target >= 1.3x: {}), CPU per frame {cr:.2}x (target <= 0.7x: {}), syscalls per frame {sr:.2}x (target <= 0.7x: {}).", verdict(fr >= 1.3), verdict(cr <= 0.7), verdict(sr <= 0.7))?;
    writeln!(md, "Ratios netlib / message-io: frames/s {:.2}x, CPU per frame {:.2}x, syscalls per frame {:.2}x.\n",
        median(&fps[0]) / median(&fps[2]), median(&cpu_us[0]) / median(&cpu_us[2]), sys[0] / sys[2])?;
    Ok(())
}

// ---------------------------------------------------------------- timers

fn timers(o: &Opts, md: &mut String) -> Res<()> {
    let sizes = [1_000usize, 100_000, 1_000_000];
    let mut r: Vec<[Vec<f64>; 3]> = vec![Default::default(); sizes.len()];
    for _ in 0..o.reps {
        let out = pinned(o, 0, &o.bin.join("timers")).output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        for (i, line) in text.lines().enumerate().take(sizes.len()) {
            r[i][0].push(field(line, "schedule_ns")?);
            r[i][1].push(field(line, "cancel_ns")?);
            r[i][2].push(field(line, "fire_ns")?);
        }
    }
    writeln!(md, "## 4. Timers\n")?;
    writeln!(md, "`timers` (netlib `Context::add_timer` / `cancel_timer` / firing by `run_once`), one-shot boxed callbacks with scattered due times, {} repetitions, ns per timer:\n", o.reps)?;
    writeln!(md, "| timers | schedule ns | cancel ns | fire ns |")?;
    writeln!(md, "|---|---|---|---|")?;
    for (i, n) in sizes.iter().enumerate() {
        writeln!(
            md,
            "| {n} | {} | {} | {} |",
            mm(&r[i][0], 1),
            mm(&r[i][1], 1),
            mm(&r[i][2], 1)
        )?;
    }
    writeln!(md)?;
    Ok(())
}

// ---------------------------------------------------------------- connection scale

fn rss_kib(pid: u32) -> Res<f64> {
    let st = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = st
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or("no VmRSS")?;
    Ok(line.split_whitespace().nth(1).ok_or("bad VmRSS")?.parse()?)
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn conn_scale(o: &Opts, md: &mut String) -> Res<()> {
    let idle_secs = 10.0;
    writeln!(md, "## 3. Connection scale\n")?;
    writeln!(md, "`conn_scale server` (ImServer, heartbeat 300 s and idle 600 s deadlines armed on every connection, i.e. one netlib timer each) holds N idle connections opened by `conn_scale client` (blocking sockets, source addresses spread over 127.0.0.2.. in blocks of 30 000). RSS per connection = (VmRSS with N connections - VmRSS before) / N: user-space memory plus the pages the kernel charged to the process, not socket buffers. Idle CPU = server utime+stime over {idle_secs} s with all N connected. One repetition per size.\n")?;
    writeln!(md, "| connections | RSS before KiB | RSS after KiB | bytes per connection | idle CPU % of a core | <= 1 KiB/conn | < 1% CPU |")?;
    writeln!(md, "|---|---|---|---|---|---|---|")?;
    // What the server process may open: it inherits our limit, raised as far
    // as the hard limit allows.
    let nofile = bench::raise_nofile(200_000) as usize;
    for n in [10_000usize, 50_000, 100_000] {
        if n + 100 > nofile {
            // Trying anyway only fails half-way and leaves thousands of
            // TIME_WAIT sockets that starve the next scenario of ports.
            eprintln!("conn_scale {n}: skipped, RLIMIT_NOFILE allows {nofile}");
            writeln!(
                md,
                "| {n} | - | - | - | - | skipped: RLIMIT_NOFILE hard limit here is {nofile} (needs about {}) | |",
                n + 100
            )?;
            continue;
        }
        let addr = free_addr()?;
        let mut sc = pinned(o, 0, &o.bin.join("conn_scale"));
        let mut server = sc.arg("server").arg(addr.to_string()).spawn()?;
        let t = Instant::now();
        while TcpStream::connect(addr).is_err() {
            if t.elapsed() > Duration::from_secs(10) {
                let _ = server.kill();
                return Err("conn_scale server did not start".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        let pid = server.id();
        let rss0 = rss_kib(pid)?;
        let base_fds = fd_count(pid);
        let mut cc = pinned(o, 1, &o.bin.join("conn_scale"));
        let mut client = cc
            .arg("client")
            .arg(addr.to_string())
            .arg(n.to_string())
            .stdout(Stdio::null())
            .spawn()?;
        let t = Instant::now();
        let mut ok = true;
        while fd_count(pid) < base_fds + n {
            if t.elapsed() > Duration::from_secs(120) || client.try_wait()?.is_some() {
                ok = false;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let setup = t.elapsed().as_secs_f64();
        if !ok {
            writeln!(
                md,
                "| {n} | {rss0:.0} | - | - | - | failed: {} of {n} connected | |",
                fd_count(pid) - base_fds
            )?;
        } else {
            std::thread::sleep(Duration::from_secs(1));
            let rss1 = rss_kib(pid)?;
            let c0 = cpu_ticks(pid)?;
            std::thread::sleep(Duration::from_secs_f64(idle_secs));
            let c1 = cpu_ticks(pid)?;
            let per = (rss1 - rss0) * 1024.0 / n as f64;
            let cpu = (c1 - c0) as f64 / clk_tck() / idle_secs * 100.0;
            eprintln!(
                "conn_scale {n}: {per:.0} B/conn, {cpu:.2}% CPU idle (connected in {setup:.1} s)"
            );
            writeln!(
                md,
                "| {n} | {rss0:.0} | {rss1:.0} | {per:.0} | {cpu:.2} | {} | {} |",
                verdict(per <= 1024.0),
                verdict(cpu < 1.0)
            )?;
        }
        let _ = client.kill();
        let _ = client.wait();
        let _ = server.kill();
        let _ = server.wait();
    }
    writeln!(md)?;
    Ok(())
}

// ---------------------------------------------------------------- IM routing

const IM_USERS: [u32; 2] = [1_000, 10_000];

/// `key value` pairs of one `im_*` line.
fn kv(line: &str) -> std::collections::HashMap<&str, &str> {
    let f: Vec<&str> = line.split_whitespace().collect();
    f[1..]
        .chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| (c[0], c[1]))
        .collect()
}

fn ms(us: &str) -> String {
    us.parse::<f64>()
        .map_or_else(|_| us.to_string(), |v| format!("{:.2}", v / 1000.0))
}

fn im(o: &Opts, md: &mut String) -> Res<()> {
    let started = Instant::now();
    let load_before = sh("cut -d' ' -f1-3 /proc/loadavg");
    let step = o.seconds.min(5.0);
    let mut runs = Vec::new();
    for users in IM_USERS {
        let mut cmd = Command::new(o.bin.join("im_bench"));
        cmd.args([
            "--users",
            &users.to_string(),
            "--step-secs",
            &step.to_string(),
        ]);
        if !o.pin {
            cmd.arg("--no-pin");
        }
        let out = cmd.stdout(Stdio::piped()).output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            let why = text
                .lines()
                .find(|l| l.starts_with("im_fail"))
                .unwrap_or("no im_fail line: see stderr")
                .to_string();
            return Err(format!(
                "IM routing, {users} users: EXACTLY-ONCE OR RUN FAILURE ({}): {why}",
                out.status
            )
            .into());
        }
        for l in text.lines().filter(|l| l.starts_with("im_best")) {
            eprintln!("im {users} users: {l}");
        }
        runs.push((users, text));
    }
    let load_after = sh("cut -d' ' -f1-3 /proc/loadavg");
    writeln!(md, "## 5. IM routing\n")?;
    writeln!(md, "`im_bench` (netlib: one EventDispatch, one non-blocking connection per user) writes a users file of N users, starts `msg_server --ListenPort 0 --UsersFile F --MsgRateLimit 1000000 --ClientIdleMs 600000 --MaxConnCnt 100000`{}, logs all N users in ({} logins in flight at a time), then climbs a ladder of target rates. Each step sends for {step} s from a 1 ms repeating timer (the messages due so far, at most 20 ms' worth per tick, so a generator that falls behind shows as a lower achieved rate), each message from a random user to a random other user, carrying its sender, receiver, per-sender sequence number and send time (monotonic ns) in `msg_data`. Receivers ack every delivery (IMMsgDataAck with the server's msg_id) and record send-to-receive latency (hdrhistogram). After sending it waits up to 2 s for stragglers, then checks exactly-once over every message of the step: acknowledged by the server (acks checked in order against the header seq_num), received once by the right user from the right sender. A step **passes** when all of that holds within the 2 s and the achieved rate is >= 95% of the target; it fails as `gen_limit` if the generator sent less, or as `late` if messages were still missing after 2 s (the generator then waits until they all arrive and checks them: a message that never arrives, a duplicate, a misrouted message or a closed connection ends the run with an error - none did in this run). The ladder stops at the first failing step; the highest passing rate is the result, then {step} s runs at 50% and 90% of it give the latency figures. CPU columns are cores used (utime+stime / wall) by the generator and by msg_server over the step and its drain.\n",
        if o.pin { " pinned to core 0 (taskset), the generator on core 1" } else { "" },
        256)?;
    writeln!(md, "Run: `bench im` at netlib commit {}, load average before / after {load_before} / {load_after}, {:.0} s.\n", sh("git rev-parse --short HEAD"), started.elapsed().as_secs_f64())?;
    writeln!(md, "| users | login s | highest zero-loss rate msg/s | next step failed as | p50 / p99 ms at 50% | p50 / p99 ms at 90% |")?;
    writeln!(md, "|---|---|---|---|---|---|")?;
    for (users, text) in &runs {
        let find = |prefix: &str, kind: Option<&str>| {
            text.lines()
                .filter(|l| l.starts_with(prefix))
                .map(kv)
                .find(|m| kind.is_none_or(|k| m.get("kind") == Some(&k)))
        };
        let login = find("im_login", None).and_then(|m| m.get("secs").map(|s| s.to_string()));
        let best = find("im_best", None);
        let lat = |k: &str| {
            find("im_step", Some(k)).map_or("-".to_string(), |m| {
                let note = match m.get("result") {
                    Some(&"pass") => String::new(),
                    Some(r) => format!(" ({r} at {} msg/s)", m.get("rate").unwrap_or(&"?")),
                    None => String::new(),
                };
                format!(
                    "{} / {}{note}",
                    ms(m.get("p50_us").unwrap_or(&"?")),
                    ms(m.get("p99_us").unwrap_or(&"?"))
                )
            })
        };
        writeln!(
            md,
            "| {users} | {} | {} | {} | {} | {} |",
            login.unwrap_or_else(|| "-".into()),
            best.as_ref().and_then(|m| m.get("rate")).unwrap_or(&"-"),
            best.as_ref().and_then(|m| m.get("limit")).unwrap_or(&"-"),
            lat("lat50"),
            lat("lat90"),
        )?;
    }
    writeln!(md, "\nEvery step:\n")?;
    writeln!(md, "| users | step | target msg/s | achieved msg/s | sent | acked by server | received once | dup | missing after 2 s | p50 ms | p99 ms | p999 ms | max ms | generator CPU | msg_server CPU | result |")?;
    writeln!(
        md,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )?;
    for (users, text) in &runs {
        for m in text.lines().filter(|l| l.starts_with("im_step")).map(kv) {
            let g = |k: &str| m.get(k).copied().unwrap_or("?");
            writeln!(
                md,
                "| {users} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                g("kind"), g("target"), g("rate"), g("sent"), g("acked"), g("received"), g("dup"), g("missing"),
                ms(g("p50_us")), ms(g("p99_us")), ms(g("p999_us")), ms(g("max_us")), g("gen_cpu"), g("server_cpu"), g("result")
            )?;
        }
        for l in text.lines().filter(|l| l.starts_with("im_late")) {
            writeln!(md, "\n`{l}`")?;
        }
    }
    writeln!(md, "\nA generator CPU well under 1.0 on a `gen_limit` step means the generator was not busy but not scheduled either: core 1 is shared with other work on this machine (see the load average).\n")?;
    Ok(())
}

/// Replaces (or adds) the `## 5. IM routing` section of an existing
/// BENCH.md, keeping everything else.
fn splice_im(old: &str, section: &str) -> String {
    let cut = |text: &str, heading: &str| -> (usize, usize) {
        let Some(start) = text.find(heading) else {
            return (usize::MAX, usize::MAX);
        };
        let end = text[start + heading.len()..]
            .find("\n## ")
            .map_or(text.len(), |i| start + heading.len() + i + 1);
        (start, end)
    };
    let mut doc = old.to_string();
    let (s, e) = cut(&doc, "## Not measured in this run");
    if s != usize::MAX {
        doc.replace_range(s..e, "");
    }
    let (s, e) = cut(&doc, "## 5. IM routing");
    if s != usize::MAX {
        doc.replace_range(s..e, section);
    } else {
        if !doc.ends_with("\n\n") {
            doc.push('\n');
        }
        doc.push_str(section);
    }
    doc
}

// ------------------------------------------------------- one loop per thread

/// Median of each server's runs of one point: client output parsed by
/// `parse` into (units per second, units), server CPU seconds.
struct Runs {
    rate: Vec<Vec<f64>>,
    cpu_per_unit: Vec<Vec<f64>>,
}

impl Runs {
    fn new(n: usize) -> Runs {
        Runs {
            rate: vec![Vec::new(); n],
            cpu_per_unit: vec![Vec::new(); n],
        }
    }

    /// One table row comparing the first two servers: rate, rate ratio,
    /// CPU per unit, CPU ratio.
    fn row(&self, md: &mut String, label: &str, prec: usize) -> Res<()> {
        let (r, c) = (&self.rate, &self.cpu_per_unit);
        writeln!(
            md,
            "| {label} | {} | {} | {} | {} | {} | {} |",
            mm(&r[0], prec),
            mm(&r[1], prec),
            ratio(median(&r[0]), median(&r[1])),
            mm(&c[0], 3),
            mm(&c[1], 3),
            ratio(median(&c[0]), median(&c[1])),
        )?;
        Ok(())
    }
}

/// Runs `client` against each of `servers` (program, extra args), `reps`
/// times interleaved; `units` turns the client output into (rate, units
/// moved) and `cpu_scale` the server CPU seconds into CPU per unit.
#[allow(clippy::too_many_arguments)]
fn compare(
    o: &Opts,
    servers: &[(PathBuf, Vec<&str>)],
    pin: bool,
    client: &str,
    args: &dyn Fn(SocketAddr) -> Vec<String>,
    alloc_from: f64,
    units: &dyn Fn(&str) -> Res<(f64, f64)>,
    cpu_scale: f64,
) -> Res<Runs> {
    let mut runs = Runs::new(servers.len());
    for _ in 0..o.reps {
        for (i, (prog, extra)) in servers.iter().enumerate() {
            let s = Server::start_with(o, prog, extra, pin)?;
            let (out, cpu, _, _) = measure_with(o, &s, client, &args(s.addr), alloc_from, pin)?;
            let (rate, moved) = units(&out)?;
            runs.rate[i].push(rate);
            runs.cpu_per_unit[i].push(cpu * cpu_scale / moved.max(1.0));
        }
    }
    Ok(runs)
}

fn pingpong_units(out: &str) -> Res<(f64, f64)> {
    let bytes = parse_bytes_read(out)?;
    let mib = out
        .split(',')
        .next_back()
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse::<f64>().ok())
        .ok_or("no MiB/s")?;
    Ok((mib, bytes / (1u64 << 30) as f64))
}

/// (frames/s, frames over warm-up plus measurement) of a pdu_echo_client run.
fn pdu_units(secs: f64) -> impl Fn(&str) -> Res<(f64, f64)> {
    move |out: &str| {
        let frames = field(out, "frames")?;
        Ok((field(out, "fps")?, frames * (1.0 + secs) / secs))
    }
}

/// Scenario 6: the servers on two loops (netlib's loop group) against
/// tokio's multi-thread runtime with two workers.
fn group(o: &Opts, md: &mut String) -> Res<()> {
    let two = vec!["--threads", "2"];
    writeln!(md, "## 6. One loop per thread\n")?;
    writeln!(md, "The same servers on two event loops - netlib's `LoopGroup` through `imconn::ServerGroup` (`--threads 2`: two loops, one SO_REUSEPORT listener each) - against tokio's multi-thread runtime with two workers (`--threads 2`). Nothing is pinned: with 2 cores the servers' two threads and the load generator share them, so raw throughput mostly measures who leaves the client more CPU; server CPU per unit of work is the steadier figure. {} s per point, {} repetitions, interleaved.\n", o.seconds, o.reps)?;
    writeln!(md, "| workload | netlib 2 loops | tokio 2 workers | ratio | netlib server CPU | tokio server CPU | ratio |")?;
    writeln!(md, "|---|---|---|---|---|---|---|")?;
    let pp: Vec<(PathBuf, Vec<&str>)> = PP_SERVERS
        .iter()
        .map(|(_, bin)| (o.bin.join(bin), two.clone()))
        .collect();
    for (block, sessions) in [(16384usize, 10usize), (16384, 100), (4096, 100)] {
        let secs = o.seconds;
        let args = move |addr| pingpong_args(addr, sessions, block, secs);
        let r = compare(o, &pp, false, "pingpong", &args, 1.0, &pingpong_units, 1.0)?;
        eprintln!(
            "group pingpong {block} B x {sessions}: netlib {:.1} MiB/s, tokio {:.1} MiB/s",
            median(&r.rate[0]),
            median(&r.rate[1])
        );
        r.row(
            md,
            &format!("pingpong {block} B x {sessions} sessions (MiB/s; CPU s/GiB)"),
            1,
        )?;
    }
    let pdu: Vec<(PathBuf, Vec<&str>)> = PDU_SERVERS[..2]
        .iter()
        .map(|(_, bin, _)| (o.bin.join(bin), two.clone()))
        .collect();
    let args = |addr| pdu_args(o, addr, "teamtalk", o.seconds);
    let r = compare(
        o,
        &pdu,
        false,
        "pdu_echo_client",
        &args,
        1.1,
        &pdu_units(o.seconds),
        1e6,
    )?;
    eprintln!(
        "group pdu echo: netlib {:.0} frames/s, tokio {:.0} frames/s",
        median(&r.rate[0]),
        median(&r.rate[1])
    );
    r.row(
        md,
        "PDU echo, 100 conns x 16 in flight (frames/s; CPU µs/frame)",
        0,
    )?;
    writeln!(md)?;
    Ok(())
}

/// Scenario 7: this build's single-loop servers against an earlier
/// build's, in the same run (is the codec-generic server as cheap as the
/// PDU-only one it replaced?).
fn baseline(o: &Opts, md: &mut String) -> Res<()> {
    let Some(dir) = &o.baseline else {
        eprintln!("baseline: no --baseline directory; skipped");
        return Ok(());
    };
    let rev = std::fs::read_to_string(dir.join("REVISION")).unwrap_or_else(|_| "?".into());
    writeln!(md, "## 7. Against the previous connection layer\n")?;
    writeln!(md, "This build's single-loop servers against the same servers built from commit {} (before the codec-generic `imconn::Server`; PDU echo then ran on the PDU-only `ImServer`, pingpong on a hand-written handler), pinned as in sections 1 and 2, interleaved, {} s per point, {} repetitions.\n", rev.trim(), o.seconds, o.reps)?;
    writeln!(md, "| workload | this build | baseline | ratio | this build server CPU | baseline server CPU | ratio |")?;
    writeln!(md, "|---|---|---|---|---|---|---|")?;
    let pdu = vec![
        (o.bin.join("pdu_echo_server"), vec![]),
        (dir.join("pdu_echo_server"), vec![]),
    ];
    let args = |addr| pdu_args(o, addr, "teamtalk", o.seconds);
    let r = compare(
        o,
        &pdu,
        true,
        "pdu_echo_client",
        &args,
        1.1,
        &pdu_units(o.seconds),
        1e6,
    )?;
    r.row(md, "PDU echo (frames/s; CPU µs/frame)", 0)?;
    let pp = vec![
        (o.bin.join("netlib_pingpong_server"), vec![]),
        (dir.join("netlib_pingpong_server"), vec![]),
    ];
    for (block, sessions) in [(16384usize, 10usize), (16384, 100), (4096, 100)] {
        let secs = o.seconds;
        let args = move |addr| pingpong_args(addr, sessions, block, secs);
        let r = compare(o, &pp, true, "pingpong", &args, 1.0, &pingpong_units, 1.0)?;
        r.row(
            md,
            &format!("pingpong {block} B x {sessions} (MiB/s; CPU s/GiB)"),
            1,
        )?;
    }
    writeln!(md)?;
    Ok(())
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
    if run("group") {
        group(&o, &mut body)?;
    }
    if run("baseline") {
        baseline(&o, &mut body)?;
    }
    if let Some(points) = &pp {
        plot(&o, points)?;
    }
    let load_after = sh("cut -d' ' -f1-3 /proc/loadavg");
    let mut md = String::new();
    writeln!(md, "# netlib benchmarks\n")?;
    writeln!(md, "Produced by `scripts/bench.sh` (`bench {what} --seconds {} --reps {}`); every figure below is what that run printed. Medians with min..max over the repetitions; ratios are netlib / comparator, measured in the same run, interleaved.\n", o.seconds, o.reps)?;
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
    writeln!(md, "```sh\nscripts/bench.sh            # = cargo build --release -p bench -p examples --bins; target/release/bench all\n# each measurement, PORT a free loopback port:\ntaskset -c 0 netlib_pingpong_server 127.0.0.1:PORT STATS   # or tokio_pingpong_server\ntaskset -c 1 pingpong client --connect 127.0.0.1:PORT --sessions N --block B --seconds {s}\ntaskset -c 0 pdu_echo_server 127.0.0.1:PORT STATS          # or tokio_pdu_echo_server, messageio_pdu_echo_server\ntaskset -c 1 pdu_echo_client --connect 127.0.0.1:PORT --conns 100 --inflight 16 --warmup 1 --seconds {s} [--framing message-io]\nstrace -c -f -p SERVER_PID   # separate 2 s runs\ntaskset -c 0 timers 1000 100000 1000000\nnetlib_pingpong_server 127.0.0.1:PORT STATS --threads 2   # or tokio_pingpong_server --threads 2 (multi-thread runtime); no pinning\npdu_echo_server 127.0.0.1:PORT STATS --threads 2          # or tokio_pdu_echo_server --threads 2\nim_bench --users 1000 --step-secs {s}    # and --users 10000; starts msg_server itself (core 0), runs on core 1\n```\n", s = o.seconds)?;
    md.push_str(&body);
    std::fs::write(&o.out, md)?;
    eprintln!("wrote {}", o.out.display());
    Ok(())
}
