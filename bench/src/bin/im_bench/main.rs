//! Scenario 5, IM routing: a load generator for msg_server, on netlib (one
//! [`EventDispatch`], one non-blocking connection per user, all of them
//! outgoing connections of one [`imconn::Server`] with the PDU codec).
//!
//! ```text
//! im_bench --users N [--rates 1000,2000,5000,...] [--step-secs 5]
//!          [--drain-secs 2] [--stall-secs 3] [--server PATH] [--no-pin] [--store sqlite|memory]
//!          [--fixed-rate R] [--idle-step] [--refine N] [--set KEY=VALUE ...]
//! im_bench ... --store postgres --postgres-url URL --nats ADDR --servers K
//!          [--watch NAME=PID ...]
//! ```
//!
//! It writes a users file with N users (ids 1..N, names `uID`, one fixed
//! salt, password `pw`), starts `msg_server` (the binary next to this one
//! unless `--server`) on port 0 with the message store `--store` (sqlite: a
//! fresh database file in the run's temporary directory, the default;
//! memory; or postgres: the database `--postgres-url`, which the caller
//! provides, empty) and reads its `LISTEN client ADDR` line. With
//! `--servers K` it starts K msg_servers sharing that database and routing
//! over NATS at `--nats` (the `bench im_cluster` driver starts both), and
//! user `u` connects directly to server `(u - 1) % K` (no login_server: the
//! split of same-server and crossing messages is then known). It logs
//! every user in on its own connection, then climbs the ladder of target
//! rates: for `--step-secs` a 1 ms repeating timer sends the messages due so
//! far (from random senders to random other users). Each message carries
//! (magic, sender, receiver, per-sender sequence number, send time in
//! monotonic ns) in `msg_data`; the header's seq_num is the low 16 bits of
//! the sequence number, which the server echoes in its IMMsgDataAck, so the
//! generator knows exactly which messages the server acknowledged.
//! Receivers ack every delivery (IMMsgDataAck with the server's msg_id),
//! record send-to-receive latency (hdrhistogram) and count receipts per
//! (sender, sequence number).
//!
//! After a step's sending ends it waits up to `--drain-secs` for every
//! message to be acknowledged by the server and received. Then:
//!
//! - everything acked and received exactly once, and the achieved send rate
//!   at least 95% of the target: the step **passes**;
//! - achieved rate below 95%: the step fails as `gen_limit` (the generator,
//!   not the server, could not go faster);
//! - messages still missing after the window: the step fails as `late`
//!   (the server fell behind). Its `im_step` line comes when it settles:
//!   acked, received and missing as at the end of the window, latency and
//!   CPU over every message until the last one arrived. The generator keeps waiting while anything
//!   still arrives; if all of them then arrive exactly once the run goes on,
//!   otherwise (nothing more for `--stall-secs`) it is an exactly-once
//!   violation.
//!
//! The ladder stops at the first failing step; with `--refine N`, up to N
//! steps (kind `refine`) then halve the gap between the highest passing
//! and the lowest failing rate, while they are more than 5% apart, so the
//! result is not only as fine as the ladder's rungs. Then, once msg_server
//! is quiet (under 0.10 cores over half a second, or after 60 s: a late
//! step's backlog and a durable store's deferred writes are done, so they
//! do not count against the latency of a moderate load), it runs at 50% and 90%
//! of the highest passing rate and reports latency percentiles. With
//! `--fixed-rate R` one step at R runs before the ladder (whatever its
//! outcome, the ladder follows): the same offered load for every run, to
//! compare CPU per message; if it passes it counts as a passing rate. With
//! `--idle-step` a step with nothing sent comes first (kind `idle`): the
//! CPU every process uses with all users logged in, to tell the fixed cost
//! from the cost per message.
//!
//! CPU columns: `*_cpu` are cores used (CPU seconds / wall seconds over the
//! step and its drain, or until a late step settled), `*_us_per_msg` CPU
//! microseconds per message sent;
//! `server_*` sums every msg_server, `NAME_*` a watched process and all its
//! descendants (PostgreSQL's backends). `same_*` / `cross_*` split the
//! latency by whether sender and receiver are on the same msg_server.
//!
//! Any exactly-once violation - a duplicate, a message lost for good, a
//! message delivered to the wrong user or with the wrong sender, an ack out
//! of order, a connection closed by the server - prints `im_fail ...` and
//! exits with status 1.
//!
//! Output, one line each (`key value` pairs, parsed by the `bench` driver):
//!
//! ```text
//! im_login users N secs S
//! im_step users N kind idle|fixed|ladder|refine|lat50|lat90 target R sent M secs S rate A acked M received M dup 0 missing 0 p50_us . p99_us . p999_us . max_us . gen_cpu . server_cpu . servers K server_us_per_msg . gen_us_per_msg . [NAME_cpu . NAME_us_per_msg . ...] same_n . same_p50_us . same_p99_us . cross_n . cross_p50_us . cross_p99_us . result pass|late|gen_limit
//! im_best users N rate R limit late|gen_limit|none
//! im_quiet users N after_s S server_cpu C
//! ```
//!
//! The parts, one job each: `main` (this file: the command line, the users
//! file, starting msg_server and the event loop), `gen` (the generator's
//! shared state: the rate ladder, the send schedule, the exactly-once
//! check and the `im_best` line), `user` (one user's connection: login,
//! acks, receipts), `report` (the CPU readings and the `im_step` line) and
//! `sys` (CPU accounting).

mod gen;
mod report;
mod sys;
mod user;

use bench::pin_self;
use gen::{tick, Gen, GenServer, Kind, Phase, Split, PAYLOAD_LEN, TICK};
use hdrhistogram::Histogram;
use imconn::{Accepted, ConnConfig, Limits};
use netlib::EventDispatch;
use pdu::proto::{ImMsgData, MsgType};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use user::{opts, User, PASSWORD, SALT};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

struct ServerProc(Child);

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    match run() {
        Ok(()) => {}
        Err(e) => {
            eprintln!("im_bench: FAILED: {e}");
            std::process::exit(1);
        }
    }
}

/// A load generator for msg_server: N users, a ladder of message rates.
#[derive(clap::Parser)]
#[command(name = "im_bench")]
struct Args {
    /// Users, each logged in on its own connection (at least 2)
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(2..))]
    users: u32,
    /// Target messages per second, one ladder step each
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1000,2000,5000,10000,20000,30000,50000,70000,100000,150000,200000"
    )]
    rates: Vec<u64>,
    /// Seconds per ladder step
    #[arg(long, default_value_t = 5.0)]
    step_secs: f64,
    /// Seconds to wait for stragglers after each step
    #[arg(long, default_value_t = 2.0)]
    drain_secs: f64,
    /// After a late step, seconds without any ack or delivery that count
    /// as messages lost (exactly-once violated)
    #[arg(long, default_value_t = 3.0)]
    stall_secs: f64,
    /// msg_server binary [default: the one next to im_bench]
    #[arg(long)]
    server: Option<PathBuf>,
    /// Do not pin the server and the load generator to separate cores
    #[arg(long)]
    no_pin: bool,
    /// msg_server's message store: sqlite (durable, a fresh database file
    /// in the run's temporary directory), memory, or postgres
    /// (`--postgres-url`)
    #[arg(long, default_value = "sqlite", value_parser = ["sqlite", "memory", "postgres"])]
    store: String,
    /// The (empty) database of `--store postgres`, shared by every msg_server
    #[arg(long, required_if_eq("store", "postgres"))]
    postgres_url: Option<String>,
    /// msg_servers to start (more than one needs `--store postgres` and `--nats`)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    servers: u32,
    /// NATS server routing messages between the msg_servers (`NatsAddr`)
    #[arg(long)]
    nats: Option<SocketAddr>,
    /// A process (and its descendants) whose CPU is reported as NAME_cpu,
    /// e.g. `--watch nats=PID --watch postgres=PID`
    #[arg(long, value_parser = parse_watch)]
    watch: Vec<(String, u32)>,
    /// One step at this rate (msg/s) before the ladder
    #[arg(long)]
    fixed_rate: Option<u64>,
    /// First, one step with nothing sent: the CPU used with every user
    /// logged in and idle
    #[arg(long)]
    idle_step: bool,
    /// After the first failing step, up to this many steps halfway between
    /// the highest passing and the lowest failing rate (while those are
    /// more than 5% apart)
    #[arg(long, default_value_t = 0)]
    refine: u32,
    /// A further msg_server setting, e.g. `--set StoreCommitIntervalUs=0`
    /// (repeatable)
    #[arg(long, value_parser = parse_setting)]
    set: Vec<(String, String)>,
}

fn parse_setting(s: &str) -> Result<(String, String), String> {
    let (key, value) = s.split_once('=').ok_or("expected KEY=VALUE")?;
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!("bad setting name {key:?}"));
    }
    Ok((key.to_string(), value.to_string()))
}

fn parse_watch(s: &str) -> Result<(String, u32), String> {
    let (name, pid) = s.split_once('=').ok_or("expected NAME=PID")?;
    let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(format!("bad name {name:?}: letters, digits and _ only"));
    }
    Ok((name.to_string(), pid.parse().map_err(|e| format!("{e}"))?))
}

fn run() -> Res<()> {
    let args = <Args as clap::Parser>::parse();
    let users = args.users;
    let rates = args.rates;
    let (step_secs, drain_secs) = (args.step_secs, args.drain_secs);
    let exe = std::env::current_exe()?;
    let server: PathBuf = args
        .server
        .unwrap_or_else(|| exe.with_file_name("msg_server"));
    let pin = !args.no_pin
        && std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2
        && Command::new("taskset").arg("-V").output().is_ok();
    let nofile = bench::raise_nofile(u64::MAX);
    if u64::from(users) + 64 > nofile {
        return Err(format!("RLIMIT_NOFILE is {nofile}: too low for {users} users").into());
    }

    // Users file.
    let dir = std::env::temp_dir().join(format!("im_bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let users_file = dir.join("users");
    let mut text = String::with_capacity(users as usize * 100);
    for id in 1..=users {
        text.push_str(&servers::users::user_line(
            id,
            &format!("u{id}"),
            SALT,
            PASSWORD,
        ));
        text.push('\n');
    }
    std::fs::write(&users_file, text)?;

    if args.servers > 1 && (args.store != "postgres" || args.nats.is_none()) {
        return Err("several msg_servers need --store postgres and --nats".into());
    }
    let mut store_args = vec!["--Store".to_string(), args.store.clone()];
    if let Some(url) = &args.postgres_url {
        store_args.extend(["--PostgresUrl".into(), url.clone()]);
    }
    if let Some(nats) = args.nats {
        store_args.extend(["--NatsAddr".into(), nats.to_string()]);
    }
    for (key, value) in &args.set {
        store_args.extend([format!("--{key}"), value.clone()]);
    }
    let mut procs = Vec::new();
    let mut addrs = Vec::new();
    // One after the other: the first one migrates a fresh database's schema.
    for _ in 0..args.servers {
        let (p, addr) = start_server(&server, pin, &users_file, &dir, &store_args)?;
        procs.push(p);
        addrs.push(addr);
    }
    let server_pids = procs.iter().map(|p| p.0.id()).collect();
    if pin {
        pin_self(1);
    }

    // One connection per user: the limits need only fit a login and the
    // acks to one read, and frames up to what the old FrameDecoder took
    // (4 MiB). The output cap is far above anything a step queues, so the
    // generator never closes a connection of its own: a server that falls
    // behind shows as `late`.
    let config = ConnConfig {
        limits: Limits {
            high_water: 64 << 20,
            hard_cap: 64 << 20,
            ..Limits::default()
        },
        max_frame: pdu::DEFAULT_MAX_FRAME_LEN as usize,
        ..ConnConfig::default()
    };
    let mut dispatch = EventDispatch::new()?;
    let ctx = dispatch.context();
    let gen = Gen {
        users,
        addrs,
        config,
        by_user: vec![None; users as usize + 1],
        sent: vec![0; users as usize + 1],
        acked: vec![0; users as usize + 1],
        next_connect: 1,
        logged_in: 0,
        login_start: Instant::now(),
        recv: vec![Vec::new(); users as usize + 1],
        rng: bench::traffic::Traffic::new(0x9e37_79b9_7f4a_7c15 ^ u64::from(users)),
        epoch: Instant::now(),
        hist: Histogram::new_with_bounds(1, 600_000_000, 3)?,
        split: Split {
            same: Histogram::new_with_bounds(1, 600_000_000, 3)?,
            cross: Histogram::new_with_bounds(1, 600_000_000, 3)?,
        },
        msg: ImMsgData {
            msg_type: MsgType::SingleText as i32,
            msg_data: Vec::with_capacity(PAYLOAD_LEN),
            ..Default::default()
        },
        phase: Phase::Login,
        step: None,
        step_secs,
        drain: Duration::from_secs_f64(drain_secs),
        stall: Duration::from_secs_f64(args.stall_secs),
        rates,
        ladder_idx: 0,
        failed_at: None,
        refine_left: args.refine,
        best: None,
        limit: "none",
        server_pids,
        watch: args.watch,
        error: None,
        pending_next: match (args.idle_step, args.fixed_rate) {
            (true, _) => Some((Kind::Idle, 0)),
            (false, Some(r)) => Some((Kind::Fixed, r)),
            (false, None) => None,
        },
        fixed_rate: args.fixed_rate,
    };
    // Outgoing connections only: nothing is accepted.
    let r = GenServer::register(ctx, gen, |_, _: &Accepted| None);
    ctx.add_repeating_timer(TICK, move |ctx, _| {
        ctx.with_handler(r, tick);
    });
    ctx.with_handler(r, |s: &mut GenServer, ctx| {
        let config = s.shared.config;
        for user in s.shared.users_to_connect() {
            let conn = User {
                user,
                logged_in: false,
            };
            let addr = s.shared.addrs[s.shared.server_of(user)];
            let r = s.connect(ctx, addr, &opts(), conn, config);
            if !s.shared.connecting(ctx, user, r) {
                return;
            }
        }
    });
    dispatch.run()?;
    let error = dispatch
        .context()
        .with_handler(r, |s: &mut GenServer, _| s.shared.error.take())
        .ok_or("generator state lost")?;
    drop(procs);
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(e) = error {
        report::out(&format!("im_fail users {users} {e}"));
        return Err(e.into());
    }
    Ok(())
}

/// Starts one msg_server on port 0 (pinned to core 0 with `pin`) and reads
/// its client address from its `LISTEN client ADDR` line.
fn start_server(
    server: &std::path::Path,
    pin: bool,
    users_file: &std::path::Path,
    dir: &std::path::Path,
    store_args: &[String],
) -> Res<(ServerProc, SocketAddr)> {
    let mut cmd = if pin {
        let mut c = Command::new("taskset");
        c.arg("-c").arg("0").arg(server);
        c
    } else {
        Command::new(server)
    };
    cmd.args(["--ListenPort", "0", "--UsersFile"])
        .arg(users_file)
        .args([
            "--MsgRateLimit",
            "1000000",
            "--ClientIdleMs",
            "600000",
            "--MaxConnCnt",
            "100000",
            // Behind by this many operations the server refuses messages
            // (no ack); the bench measures how far it keeps up instead: a
            // store that falls behind shows as a `late` step.
            "--StoreInFlightMax",
            "1000000000",
        ])
        .args(store_args)
        .arg("--DbPath")
        .arg(dir.join("msg.db"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped());
    let mut child = ServerProc(
        cmd.spawn()
            .map_err(|e| format!("starting {}: {e}", server.display()))?,
    );
    let stdout = child.0.stdout.take().ok_or("no server stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let addr: SocketAddr = loop {
        let line = lines
            .next()
            .ok_or("msg_server exited before announcing its address")??;
        if let Some(a) = line.strip_prefix("LISTEN client ") {
            break a.trim().parse()?;
        }
    };
    // Keep draining its stdout so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok((child, addr))
}
