//! The message center against ZeroMQ (DEALER/ROUTER with application-level
//! acknowledgements), same exchange, same run; writes `BENCH-msgcenter.md`.
//!
//! ```text
//! msgcenter_bench run [--seconds 5] [--reps 3] [--size 100] [--out BENCH-msgcenter.md]
//! msgcenter_bench recv --imp center|zmq                       # prints "ready ADDR"
//! msgcenter_bench send --imp center|zmq --to ADDR --mode oneway|ack --peers N [--window W]
//! ```
//!
//! Two exchanges, each with 1, 10 and 100 peers (senders), every peer its
//! own node and connection, spread over two sender processes: in each, the
//! peers' centers share one loop thread and are driven from their outcome
//! callbacks; the DEALER sockets share one ZeroMQ context (one I/O thread)
//! and each has an application thread of its own:
//!
//! - one way: plain messages as fast as the receiver takes them (a center
//!   keeps `--window` messages without an outcome per peer; a DEALER blocks
//!   at its high-water mark);
//! - NeedAck round trips: one message at a time per peer, each acknowledged
//!   by the receiver after its handler ran (the center's own NeedAck; for
//!   ZeroMQ the ROUTER application sends the message id back).
//!
//! The receiver runs alone on core 0 and the senders on core 1 (`taskset`,
//! when there are two cores). After a warm-up the driver reads the
//! receiver's message count (it answers `count` on stdin) and its CPU
//! (utime + stime from `/proc/PID/stat`) twice, `--seconds` apart: rate =
//! messages / time, CPU per message = CPU / messages. The senders' CPU over
//! the same window is reported to show whether they were the limit. A
//! `## Notes` section at the end of an existing report (written by hand:
//! profiles, caveats) is kept when the report is rewritten.

use clap::{Parser, Subcommand};
use msgcenter::{Center, Config, Handlers, Message, Outcome};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The center's message type in this benchmark.
const TYPE: u32 = 1;
/// First payload byte of a ZeroMQ message that wants an acknowledgement.
const WANT_ACK: u8 = 1;

#[derive(Parser)]
#[command(name = "msgcenter_bench")]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs every point for both implementations and writes the report
    Run {
        /// Seconds measured per point
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Repetitions per point, implementations interleaved (median reported)
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// Body bytes per message
        #[arg(long, default_value_t = 100)]
        size: usize,
        /// Peer counts to measure
        #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
        peers: Vec<usize>,
        /// The report to write
        #[arg(long, default_value = "BENCH-msgcenter.md")]
        out: PathBuf,
    },
    /// A receiver: counts messages (acknowledging those that ask)
    Recv {
        #[arg(long)]
        imp: Imp,
    },
    /// A sender process with `peers` peers; runs until killed
    Send {
        #[arg(long)]
        imp: Imp,
        #[arg(long)]
        to: SocketAddr,
        #[arg(long)]
        mode: Mode,
        #[arg(long)]
        peers: usize,
        /// One-way: messages in flight per peer (center)
        #[arg(long, default_value_t = 1024)]
        window: usize,
        #[arg(long, default_value_t = 100)]
        size: usize,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
enum Imp {
    Center,
    Zmq,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
enum Mode {
    Oneway,
    Ack,
}

fn main() -> Res<()> {
    match Args::parse().cmd {
        Cmd::Run {
            seconds,
            reps,
            size,
            peers,
            out,
        } => run(seconds, reps, size, &peers, &out),
        Cmd::Recv { imp } => recv(imp),
        Cmd::Send {
            imp,
            to,
            mode,
            peers,
            window,
            size,
        } => match imp {
            Imp::Center => send_center(to, mode, peers, window, size),
            Imp::Zmq => send_zmq(to, mode, peers, window, size),
        },
    }
}

// ------------------------------------------------------------ the receivers

/// Answers `count` lines on stdin with the messages received so far.
fn serve_counts(count: Arc<AtomicU64>) {
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            if line.trim() == "count" {
                println!("count {}", count.load(Relaxed));
            }
        }
        std::process::exit(0);
    });
}

fn recv(imp: Imp) -> Res<()> {
    let count = Arc::new(AtomicU64::new(0));
    match imp {
        Imp::Center => {
            let c = count.clone();
            let cfg = Config {
                idle_close: None,
                ..Config::default()
            };
            let center = Center::spawn(
                cfg,
                Handlers::new().on(TYPE, move |_, _| {
                    c.fetch_add(1, Relaxed);
                }),
            )?;
            println!("ready {}", center.handle().local_addr());
            serve_counts(count);
            loop {
                std::thread::park();
            }
        }
        Imp::Zmq => {
            let ctx = zmq::Context::new();
            let router = ctx.socket(zmq::ROUTER)?;
            router.set_rcvhwm(100_000)?;
            router.bind("tcp://127.0.0.1:*")?;
            let ep = router.get_last_endpoint()?.map_err(|_| "endpoint")?;
            println!("ready {}", ep.trim_start_matches("tcp://"));
            serve_counts(count.clone());
            let mut identity = zmq::Message::new();
            let mut payload = zmq::Message::new();
            loop {
                router.recv(&mut identity, 0)?;
                router.recv(&mut payload, 0)?;
                count.fetch_add(1, Relaxed);
                if payload.first() == Some(&WANT_ACK) && payload.len() >= 9 {
                    // The acknowledgement: the message id back to its sender.
                    router.send(&identity[..], zmq::SNDMORE)?;
                    router.send(&payload[1..9], 0)?;
                }
            }
        }
    }
}

// -------------------------------------------------------------- the senders

/// `peers` centers on one loop (this thread), each keeping `window`
/// messages in flight: every outcome posts the next message, from the
/// loop thread. Runs until the process is killed.
fn send_center(to: SocketAddr, mode: Mode, peers: usize, window: usize, size: usize) -> Res<()> {
    let mut dispatch = netlib::EventDispatch::new()?;
    let body: Arc<[u8]> = vec![0x5a; size].into();
    let window = if mode == Mode::Ack { 1 } else { window };
    let mut handles = Vec::new();
    for _ in 0..peers {
        let cfg = Config {
            idle_close: None,
            ..Config::default()
        };
        handles.push(Center::register(dispatch.context(), cfg, Handlers::new())?);
    }
    for h in &handles {
        for _ in 0..window {
            fire(h.clone(), to, body.clone(), mode == Mode::Ack);
        }
    }
    dispatch.run()?;
    Ok(())
}

/// Posts one message whose outcome posts the next.
fn fire(h: msgcenter::CenterHandle, to: SocketAddr, body: Arc<[u8]>, need_ack: bool) {
    let next = (h.clone(), body.clone());
    let mut m = Message::new(to, TYPE, body.to_vec()).on_done(move |_, outcome| match outcome {
        Outcome::Failed(msgcenter::FailReason::Shutdown) => {}
        Outcome::Failed(reason) => {
            eprintln!("msgcenter_bench: a send failed: {reason}");
            fire(next.0, to, next.1, need_ack);
        }
        _ => fire(next.0, to, next.1, need_ack),
    });
    if need_ack {
        m = m.need_ack();
    }
    h.post(m);
}

/// `peers` DEALER sockets of one context (one I/O thread), each driven by a
/// thread of its own. Runs until the process is killed.
fn send_zmq(to: SocketAddr, mode: Mode, peers: usize, window: usize, size: usize) -> Res<()> {
    let ctx = zmq::Context::new();
    let threads: Vec<_> = (0..peers)
        .map(|_| {
            let ctx = ctx.clone();
            std::thread::spawn(move || {
                zmq_peer(&ctx, to, mode, window, size).map_err(|e| e.to_string())
            })
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| "sender thread panicked")??;
    }
    Ok(())
}

fn zmq_peer(ctx: &zmq::Context, to: SocketAddr, mode: Mode, window: usize, size: usize) -> Res<()> {
    let dealer = ctx.socket(zmq::DEALER)?;
    dealer.set_sndhwm(window.max(1) as i32)?;
    dealer.connect(&format!("tcp://{to}"))?;
    let mut msg = vec![0x5a; 9 + size];
    let mut ack = zmq::Message::new();
    msg[0] = u8::from(mode == Mode::Ack) * WANT_ACK;
    for id in 0u64.. {
        msg[1..9].copy_from_slice(&id.to_be_bytes());
        dealer.send(&msg[..], 0)?;
        if mode == Mode::Ack {
            dealer.recv(&mut ack, 0)?;
            if ack[..] != id.to_be_bytes() {
                return Err(format!("ack for the wrong id: {:?}", &ack[..]).into());
            }
        }
    }
    Ok(())
}

// --------------------------------------------------------------- the driver

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `prog args...`, pinned to `core` when there are two cores or more.
fn pinned(core: usize, args: &[String]) -> Res<Command> {
    let me = std::env::current_exe()?;
    let mut cmd = if cores() >= 2 {
        let mut c = Command::new("taskset");
        c.arg("-c").arg(core.to_string()).arg(me);
        c
    } else {
        Command::new(me)
    };
    cmd.args(args);
    Ok(cmd)
}

struct Receiver {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    addr: SocketAddr,
}

impl Receiver {
    fn start(imp: Imp) -> Res<Receiver> {
        let mut child = pinned(0, &["recv".into(), "--imp".into(), name(imp).into()])?
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().ok_or("stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or("stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let addr = line
            .strip_prefix("ready ")
            .ok_or_else(|| format!("receiver said {line:?}"))?
            .trim()
            .parse()?;
        Ok(Receiver {
            child,
            stdin,
            stdout,
            addr,
        })
    }

    fn count(&mut self) -> Res<u64> {
        writeln!(self.stdin, "count")?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        Ok(line
            .strip_prefix("count ")
            .ok_or_else(|| format!("receiver said {line:?}"))?
            .trim()
            .parse()?)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sender processes, killed when dropped.
struct Senders(Vec<Child>);

impl Drop for Senders {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn name(imp: Imp) -> &'static str {
    match imp {
        Imp::Center => "center",
        Imp::Zmq => "zmq",
    }
}

fn cpu_seconds(pid: u32) -> Res<f64> {
    Ok(bench::cpu_ticks(pid)? as f64 / bench::clk_tck())
}

/// One measured point: (messages per second, receiver CPU µs per message,
/// sender CPU in cores).
fn point(imp: Imp, mode: Mode, peers: usize, size: usize, seconds: f64) -> Res<(f64, f64, f64)> {
    let mut rx = Receiver::start(imp)?;
    let procs = peers.min(2);
    let mut senders = Senders(Vec::new());
    for p in 0..procs {
        let n = peers / procs + usize::from(p < peers % procs);
        let args: Vec<String> = [
            "send",
            "--imp",
            name(imp),
            "--to",
            &rx.addr.to_string(),
            "--mode",
            if mode == Mode::Ack { "ack" } else { "oneway" },
            "--peers",
            &n.to_string(),
            "--size",
            &size.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        senders.0.push(pinned(1, &args)?.spawn()?);
    }
    std::thread::sleep(Duration::from_secs(1) + Duration::from_millis(20 * peers as u64));
    let sender_cpu = |s: &Senders| -> Res<f64> { s.0.iter().map(|c| cpu_seconds(c.id())).sum() };
    let (c0, cpu0, s0, t0) = (
        rx.count()?,
        cpu_seconds(rx.child.id())?,
        sender_cpu(&senders)?,
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let (c1, cpu1, s1, dt) = (
        rx.count()?,
        cpu_seconds(rx.child.id())?,
        sender_cpu(&senders)?,
        t0.elapsed().as_secs_f64(),
    );
    for c in &mut senders.0 {
        if let Ok(Some(status)) = c.try_wait() {
            return Err(format!("a sender exited early: {status}").into());
        }
    }
    let n = (c1 - c0) as f64;
    if n == 0.0 {
        return Err(format!("{} {mode:?} {peers} peers: no messages", name(imp)).into());
    }
    Ok((n / dt, (cpu1 - cpu0) * 1e6 / n, (s1 - s0) / dt))
}

fn run(seconds: f64, reps: usize, size: usize, peer_counts: &[usize], out: &PathBuf) -> Res<()> {
    let started = Instant::now();
    let load_before = bench::sh("cut -d' ' -f1-3 /proc/loadavg");
    let mut md = String::new();
    let mut rows = Vec::new();
    for mode in [Mode::Oneway, Mode::Ack] {
        for &peers in peer_counts {
            // [imp] -> (rates, cpu per message, sender cores)
            let mut m: [(Vec<f64>, Vec<f64>, Vec<f64>); 2] = Default::default();
            for _ in 0..reps {
                for (i, imp) in [Imp::Center, Imp::Zmq].into_iter().enumerate() {
                    let (rate, cpu, scpu) = point(imp, mode, peers, size, seconds)?;
                    eprintln!(
                        "{mode:?} peers={peers} {}: {rate:.0} msg/s, {cpu:.2} us/msg, senders {scpu:.2} cores",
                        name(imp)
                    );
                    m[i].0.push(rate);
                    m[i].1.push(cpu);
                    m[i].2.push(scpu);
                }
            }
            rows.push((mode, peers, m));
        }
    }
    let load_after = bench::sh("cut -d' ' -f1-3 /proc/loadavg");
    writeln!(md, "# msgcenter against ZeroMQ")?;
    writeln!(md)?;
    writeln!(
        md,
        "Produced by `scripts/bench_msgcenter.sh` (`msgcenter_bench run --seconds {seconds} --reps {reps} --size {size}`); every figure below is what that run printed. Medians with min..max over the repetitions, the two implementations interleaved; ratios are msgcenter / ZeroMQ."
    )?;
    writeln!(md)?;
    writeln!(md, "## Machine")?;
    writeln!(md)?;
    writeln!(
        md,
        "- CPU: {}, {} logical cores",
        bench::sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"),
        cores()
    )?;
    writeln!(md, "- kernel: {}", bench::sh("uname -r"))?;
    writeln!(
        md,
        "- {}; msgcenter commit {}",
        bench::sh("rustc --version"),
        bench::sh("git rev-parse --short HEAD")
    )?;
    writeln!(md, "- libzmq {}", {
        let (a, b, c) = zmq::version();
        format!("{a}.{b}.{c}")
    })?;
    writeln!(
        md,
        "- load average before / after: {load_before} / {load_after} (2 logical cores: a figure above 2 means other work shared the cores during the run, and every figure is noisier for it)"
    )?;
    writeln!(
        md,
        "- pinning: receiver on core 0, senders on core 1 (taskset)"
    )?;
    writeln!(
        md,
        "- total run time: {:.0} s",
        started.elapsed().as_secs_f64()
    )?;
    writeln!(md)?;
    writeln!(md, "## What is measured")?;
    writeln!(md)?;
    writeln!(md, "Each peer is its own node with its own TCP connection to one receiver: a `msgcenter::Center` or a ZeroMQ DEALER socket; the peers are split over two sender processes. In a sender process the centers share one netlib loop thread and post each next message from the previous one's outcome callback; the DEALERs share one ZeroMQ context (one I/O thread), each driven by an application thread of its own. Bodies are {size} bytes.")?;
    writeln!(md)?;
    writeln!(md, "- **one way**: plain messages, as fast as they go. A center keeps 1,024 messages without an outcome per peer (its `Written` outcomes pace it); a DEALER blocks at a send high-water mark of 1,024.")?;
    writeln!(md, "- **NeedAck round trips**: each peer sends one message and waits for its acknowledgement before the next. The center's NeedAck: the receiver acknowledges after its handler returned, with dedup and retry machinery armed (retries never fired on loopback). ZeroMQ: the ROUTER application sends the message's 8-byte id back to the DEALER, which checks it (acknowledgements only - no dedup, no retries).")?;
    writeln!(md, "- **rate**: messages the receiver's handler counted per second over {seconds} s, after a warm-up of 1 s + 20 ms per peer.")?;
    writeln!(md, "- **receiver CPU per message**: the receiving process's utime + stime (`/proc/PID/stat`) over the same window, divided by the messages; ZeroMQ's includes its I/O thread.")?;
    writeln!(md, "- **sender cores**: CPU the sender processes used over the window (all pinned to one core: near 1.0 means the load generator, not the receiver, set the pace).")?;
    writeln!(md)?;
    writeln!(md, "## Results")?;
    writeln!(md)?;
    writeln!(md, "| exchange | peers | msgcenter msg/s | ZeroMQ msg/s | rate ratio | msgcenter µs CPU/msg | ZeroMQ µs CPU/msg | CPU ratio | sender cores (mc / zmq) | rate >= 1.0x | CPU <= 1.0x |")?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|")?;
    for (mode, peers, m) in &rows {
        let (rr, cr) = (
            bench::median(&m[0].0) / bench::median(&m[1].0),
            bench::median(&m[0].1) / bench::median(&m[1].1),
        );
        writeln!(
            md,
            "| {} | {peers} | {} | {} | {rr:.2}x | {} | {} | {cr:.2}x | {:.2} / {:.2} | {} | {} |",
            if *mode == Mode::Ack {
                "NeedAck round trips"
            } else {
                "one way"
            },
            bench::mm(&m[0].0, 0),
            bench::mm(&m[1].0, 0),
            bench::mm(&m[0].1, 2),
            bench::mm(&m[1].1, 2),
            bench::median(&m[0].2),
            bench::median(&m[1].2),
            if rr >= 1.0 { "met" } else { "**missed**" },
            if cr <= 1.0 { "met" } else { "**missed**" },
        )?;
    }
    writeln!(md)?;
    writeln!(md, "## Commands")?;
    writeln!(md)?;
    writeln!(md, "```sh")?;
    writeln!(md, "scripts/bench_msgcenter.sh   # = cargo build --release -p bench --bin msgcenter_bench; msgcenter_bench run")?;
    writeln!(
        md,
        "# each point (IMP = center or zmq, MODE = oneway or ack):"
    )?;
    writeln!(md, "taskset -c 0 msgcenter_bench recv --imp IMP            # prints \"ready ADDR\"; answers \"count\" on stdin")?;
    writeln!(md, "taskset -c 1 msgcenter_bench send --imp IMP --to ADDR --mode MODE --peers N/2 --size {size}   # x2 processes")?;
    writeln!(md, "```")?;
    // Notes written by hand (profiles of a separate run) are kept.
    if let Ok(old) = std::fs::read_to_string(out) {
        if let Some(i) = old.find("\n## Notes") {
            md.push_str(&old[i..]);
        }
    }
    std::fs::write(out, &md)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
