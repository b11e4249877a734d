//! Scenario 9: IM routing across 1, 2 and 3 msg_servers that share one
//! PostgreSQL and route over NATS (issue 13's benchmark).
//!
//! One PostgreSQL (Debian's, in a temporary data directory) and one
//! `nats-server` on loopback, started by the helpers the servers' tests
//! use too (`testkit::pg`, `testkit::nats`), serve
//! the whole run; each server count gets a fresh database. `im_bench`
//! starts the msg_servers itself (`--servers K --store postgres`), connects
//! user `u` directly to server `(u - 1) % K`, and reports per step the CPU
//! of the msg_servers, of nats-server and of PostgreSQL (the postmaster and
//! all its backends), and the latency of same-server and crossing messages.
//! Nothing is pinned: every process shares the machine's cores, so the
//! figures to compare are CPU per message, not cores. The server counts
//! run interleaved (1, 2, 3, 1, 2, 3, ...) `--reps` times; the summary
//! gives medians with min..max.

use super::im::{kv, ms, run_im_bench};
use super::*;
use std::collections::HashMap;
use testkit::nats::Nats;
use testkit::pg::TempPostgres;

/// Users, spread evenly over the msg_servers.
const USERS: u32 = 1_000;
/// msg_server counts compared in one run.
const SERVER_COUNTS: [u32; 3] = [1, 2, 3];
/// The offered load every server count gets first: CPU per message and
/// latency are compared at this rate.
const FIXED_RATE: u64 = 1_000;
/// Then a ladder of rates, as in section 5, for the highest zero-loss rate.
const LADDER: &str = "2000,3000,5000,10000,20000";
/// After a late step, seconds without progress that count as a loss: the
/// shared database on a loaded machine can take seconds over one batch.
const STALL_SECS: u64 = 30;

pub(crate) const HEADING: &str = "## 9. IM routing across msg_servers";

/// One im_bench run: its server count and its output.
struct Run {
    k: u32,
    rep: usize,
    text: String,
}

/// Creates an empty database per run (`im_k{K}_r{rep}`) and returns the
/// postmaster's pid (the parent of this session's backend).
fn prepare_postgres(pg: &TempPostgres, reps: usize) -> Res<u32> {
    let mut c = postgres::Client::connect(&pg.url_of("postgres"), postgres::NoTls)?;
    for rep in 0..reps {
        for k in SERVER_COUNTS {
            c.batch_execute(&format!("CREATE DATABASE im_k{k}_r{rep}"))?;
        }
    }
    let backend: i32 = c.query_one("SELECT pg_backend_pid()", &[])?.get(0);
    let stat = std::fs::read_to_string(format!("/proc/{backend}/stat"))?;
    let after = &stat[stat.rfind(')').ok_or("bad /proc stat")? + 2..];
    let ppid = after
        .split_whitespace()
        .nth(1)
        .ok_or("bad /proc stat")?
        .parse()?;
    Ok(ppid)
}

/// The postgres and nats-server binaries this scenario needs, or why not.
fn missing_tools() -> Option<&'static str> {
    if !testkit::pg::available() {
        Some("Debian's postgresql is not installed")
    } else if !testkit::nats::available() {
        Some("Debian's nats-server is not installed")
    } else {
        None
    }
}

pub(crate) fn im_cluster(o: &Opts, md: &mut String) -> Res<()> {
    writeln!(md, "{HEADING}\n")?;
    if let Some(why) = missing_tools() {
        writeln!(md, "Not run: {why} (scripts/test.sh installs both).\n")?;
        return Ok(());
    }
    let started = Instant::now();
    let load_before = sh("cut -d' ' -f1-3 /proc/loadavg");
    let step = o.seconds.min(5.0);
    let reps = o.reps.max(1);
    let pg = TempPostgres::start();
    let pg_pid = prepare_postgres(&pg, reps)?;
    let nats = Nats::try_start()?;
    let mut runs = Vec::new();
    for rep in 0..reps {
        for k in SERVER_COUNTS {
            let mut cmd = Command::new(o.bin.join("im_bench"));
            cmd.args(["--users", &USERS.to_string()])
                .args(["--servers", &k.to_string()])
                .args(["--store", "postgres", "--postgres-url"])
                .arg(pg.url_of(&format!("im_k{k}_r{rep}")))
                .args(["--nats", &nats.addr.to_string()])
                .args(["--watch", &format!("nats={}", nats.pid())])
                .args(["--watch", &format!("postgres={pg_pid}")])
                .args(["--fixed-rate", &FIXED_RATE.to_string(), "--idle-step"])
                .args(["--rates", LADDER, "--step-secs", &step.to_string()])
                .args(["--stall-secs", &STALL_SECS.to_string()])
                .arg("--no-pin");
            let what = format!("IM cluster, {k} msg_servers, rep {}", rep + 1);
            let text = run_im_bench(cmd, &what)?;
            runs.push(Run { k, rep, text });
        }
    }
    drop(nats);
    drop(pg);
    let load_after = sh("cut -d' ' -f1-3 /proc/loadavg");
    let facts = Facts {
        step,
        reps,
        load: (load_before, load_after),
        secs: started.elapsed().as_secs_f64(),
    };
    write_section(o, md, &runs, &facts)
}

/// What the section says about the run besides the figures.
struct Facts {
    step: f64,
    reps: usize,
    load: (String, String),
    secs: f64,
}

type Line<'a> = HashMap<&'a str, &'a str>;

/// One `im_*` line of a run, by prefix and (for `im_step`) kind.
fn find<'a>(text: &'a str, prefix: &str, kind: Option<&str>) -> Option<Line<'a>> {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .map(kv)
        .find(|m| kind.is_none_or(|k| m.get("kind") == Some(&k)))
}

fn num(m: &Line, key: &str) -> f64 {
    m.get(key).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
}

/// `p50 / p99 ms (n)` of the same-server or crossing messages of a step.
fn split(m: &Line, which: &str) -> String {
    let g = |k: &str| m.get(format!("{which}_{k}").as_str()).copied();
    match g("n") {
        Some("0") | None => "-".into(),
        Some(n) => format!(
            "{} / {} ({n})",
            ms(g("p50_us").unwrap_or("?")),
            ms(g("p99_us").unwrap_or("?"))
        ),
    }
}

/// The figures of one server count over its repetitions.
struct Count<'a> {
    runs: Vec<&'a str>,
}

impl<'a> Count<'a> {
    fn of(runs: &'a [Run], k: u32) -> Count<'a> {
        Count {
            runs: runs
                .iter()
                .filter(|r| r.k == k)
                .map(|r| r.text.as_str())
                .collect(),
        }
    }

    /// `f` of each repetition that has a value.
    fn values(&self, f: impl Fn(&'a str) -> Option<f64>) -> Vec<f64> {
        self.runs
            .iter()
            .filter_map(|t| f(t))
            .filter(|v| v.is_finite())
            .collect()
    }

    /// `key` of the step `kind` of each repetition.
    fn step(&self, kind: &str, key: &str) -> Vec<f64> {
        self.values(|t| find(t, "im_step", Some(kind)).map(|m| num(&m, key)))
    }

    /// CPU µs per message of msg_servers, nats-server and PostgreSQL together
    /// in the fixed-rate step of each repetition.
    fn total_us(&self) -> Vec<f64> {
        self.values(|t| {
            find(t, "im_step", Some("fixed")).map(|m| {
                ["server", "nats", "postgres"]
                    .iter()
                    .map(|p| num(&m, &format!("{p}_us_per_msg")))
                    .sum()
            })
        })
    }

    /// CPU µs per message of `proc` (`server`, `nats`, `postgres`) in the
    /// fixed-rate step without what it uses idle: its µs per message times
    /// (1 - idle cores / fixed-step cores), per repetition.
    fn net_us(&self, proc: &str) -> Vec<f64> {
        let (us, cores) = (format!("{proc}_us_per_msg"), format!("{proc}_cpu"));
        self.values(|t| {
            let fixed = find(t, "im_step", Some("fixed"))?;
            let idle = find(t, "im_step", Some("idle"))?;
            let busy = num(&fixed, &cores);
            Some(num(&fixed, &us) * (1.0 - num(&idle, &cores) / busy).max(0.0))
        })
    }

    fn best(&self) -> Vec<f64> {
        self.values(|t| find(t, "im_best", None).map(|m| num(&m, "rate")))
    }

    /// Median p50 / p99 in ms of the `which` messages of step `kind` over
    /// the repetitions, with the messages counted in all of them, and the
    /// results of the steps that did not pass.
    fn latency(&self, kind: &str, which: &str) -> String {
        let p50 = self.step(kind, &format!("{which}_p50_us"));
        let p99 = self.step(kind, &format!("{which}_p99_us"));
        let n: f64 = self.step(kind, &format!("{which}_n")).iter().sum();
        if n == 0.0 {
            return "-".into();
        }
        let failed: Vec<String> = self
            .runs
            .iter()
            .filter_map(|t| find(t, "im_step", Some(kind)))
            .filter_map(|m| {
                m.get("result")
                    .filter(|r| **r != "pass")
                    .map(|r| r.to_string())
            })
            .collect();
        let note = if failed.is_empty() {
            String::new()
        } else {
            format!(", {}", failed.join(", "))
        };
        format!(
            "{:.2} / {:.2} ({n}{note})",
            bench::median(&p50) / 1000.0,
            bench::median(&p99) / 1000.0
        )
    }
}

/// `median (min..max)`, or `-` for no values.
fn cell(v: &[f64], prec: usize) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        mm(v, prec)
    }
}

/// The ratio of the medians of `v` and `base`.
fn ratio_of(v: &[f64], base: &[f64]) -> String {
    let (a, b) = (bench::median(v), bench::median(base));
    if b > 0.0 && a.is_finite() {
        format!("{:.2}", a / b)
    } else {
        "-".into()
    }
}

fn write_section(o: &Opts, md: &mut String, runs: &[Run], f: &Facts) -> Res<()> {
    let step = f.step;
    writeln!(md, "The routing scenario of section 5 over several msg_servers acting as one service (issue 13): they share one PostgreSQL database (`Store=postgres`, group commit on the store thread, the sender's ack after the commit) and route deliveries to users on other servers over NATS (`NatsAddr`; subject `im.user.<id>`, subscribed while the user is online there). `bench im_cluster` starts Debian's PostgreSQL in a temporary data directory (initdb, loopback, `fsync=off` as the tests run it, so commits are not flushed to this machine's shared disk: the figures are routing and PostgreSQL's CPU, not the disk) and `nats-server` on loopback. Then for K = 1, 2 and 3 it runs `im_bench --servers K`, which starts K msg_servers on a fresh database with `NatsAddr` set (so K = 1 publishes to NATS too) and logs {USERS} users in, user u directly on msg_server (u - 1) mod K. They do not go through login_server, so it is known which messages cross servers: with random pairs, about (K-1)/K of them. Each message goes from a random user to a random other user; the exactly-once check, the server's acks and the pass/late/gen_limit verdicts are those of section 5 (a late step must then settle with every message received exactly once, or the run fails; none failed). Every K first idles for {step} s with every user logged in (the CPU each process uses with nothing sent: timers, links, the store thread), then gets {FIXED_RATE} msg/s for {step} s, the same offered load, to compare CPU per message. Then the ladder {LADDER} msg/s finds the highest zero-loss rate (the fixed step counts if it passed), and {step} s at 50% and 90% of it measure latency. The counts ran interleaved, 1, 2, 3, then again, {} times in all.\n", f.reps)?;
    writeln!(md, "Nothing is pinned: the generator, the msg_servers, nats-server and PostgreSQL share the machine's {} cores ({}), which other engineers' builds were also using during the run (load average before / after {} / {}). Compare CPU per message more than rates. CPU per message is the CPU seconds a process used over a step and its drain (from `/proc/PID/stat`), divided by the messages sent; a late step is measured until its last message arrived, and so are its latencies. msg_server CPU is the sum over all K servers, PostgreSQL's covers the postmaster and every backend.\n",
        sh("nproc"), sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'"), f.load.0, f.load.1)?;
    writeln!(md, "Run: `scripts/bench_im_cluster.sh` (= `bench im_cluster --seconds {} --reps {}`) at netlib commit {}, kernel {}, {:.0} s. Each K ran `im_bench --users {USERS} --servers K --store postgres --postgres-url URL --nats ADDR --watch nats=PID --watch postgres=PID --fixed-rate {FIXED_RATE} --idle-step --rates {LADDER} --step-secs {step} --stall-secs {STALL_SECS} --no-pin`.\n",
        o.seconds, f.reps, sh("git rev-parse --short HEAD"), sh("uname -r"), f.secs)?;
    let counts: Vec<(u32, Count)> = SERVER_COUNTS
        .iter()
        .map(|&k| (k, Count::of(runs, k)))
        .collect();
    let base = Count::of(runs, 1);
    writeln!(md, "At the same offered load, {FIXED_RATE} msg/s: CPU in µs per message, median (min..max) over the repetitions; ratios are K servers / 1 server, of the medians; \"net of idle\" takes out what the msg_servers use idle (µs/msg × (1 - idle cores / fixed-step cores)); latency is the median over the repetitions of each one's p50 / p99, with the messages counted in all of them:\n")?;
    writeln!(md, "| msg_servers | achieved msg/s | msg_servers µs/msg (sum) | / 1 server | nats-server µs/msg | PostgreSQL µs/msg | all three µs/msg | / 1 server | idle cores: msg_servers, nats-server, PostgreSQL | msg_servers µs/msg net of idle | / 1 server | generator µs/msg | same server p50 / p99 ms (n) | crossing p50 / p99 ms (n) |")?;
    writeln!(
        md,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )?;
    for (k, c) in &counts {
        let server = c.step("fixed", "server_us_per_msg");
        writeln!(
            md,
            "| {k} | {} | {} | {} | {} | {} | {} | {} | {}, {}, {} | {} | {} | {} | {} | {} |",
            cell(&c.step("fixed", "rate"), 0),
            cell(&server, 1),
            ratio_of(&server, &base.step("fixed", "server_us_per_msg")),
            cell(&c.step("fixed", "nats_us_per_msg"), 1),
            cell(&c.step("fixed", "postgres_us_per_msg"), 1),
            cell(&c.total_us(), 1),
            ratio_of(&c.total_us(), &base.total_us()),
            cell(&c.step("idle", "server_cpu"), 2),
            cell(&c.step("idle", "nats_cpu"), 2),
            cell(&c.step("idle", "postgres_cpu"), 2),
            cell(&c.net_us("server"), 1),
            ratio_of(&c.net_us("server"), &base.net_us("server")),
            cell(&c.step("fixed", "gen_us_per_msg"), 1),
            c.latency("fixed", "same"),
            c.latency("fixed", "cross"),
        )?;
    }
    writeln!(md, "\nCapacity: the highest rate passed with zero loss, and latency at 50% / 90% of it (each repetition at its own best rate):\n")?;
    writeln!(md, "| msg_servers | highest zero-loss rate msg/s | / 1 server | next step failed as | at 50%: same server p50 / p99 ms (n) | at 50%: crossing | at 90%: same server | at 90%: crossing |")?;
    writeln!(md, "|---|---|---|---|---|---|---|---|")?;
    for (k, c) in &counts {
        let limits: Vec<&str> = c
            .runs
            .iter()
            .filter_map(|t| find(t, "im_best", None).and_then(|m| m.get("limit").copied()))
            .collect();
        writeln!(
            md,
            "| {k} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&c.best(), 0),
            ratio_of(&c.best(), &base.best()),
            limits.join(", "),
            c.latency("lat50", "same"),
            c.latency("lat50", "cross"),
            c.latency("lat90", "same"),
            c.latency("lat90", "cross"),
        )?;
    }
    writeln!(
        md,
        "\nEvery step (cores = CPU seconds / wall seconds over the step and its drain, for a late step until its last message arrived):\n"
    )?;
    writeln!(md, "| msg_servers | rep | step | target msg/s | achieved msg/s | sent | acked | received once | missing after drain | p50 / p99 ms | same server p50 / p99 ms (n) | crossing p50 / p99 ms (n) | msg_servers cores | µs/msg | nats-server cores | µs/msg | PostgreSQL cores | µs/msg | generator cores | result |")?;
    writeln!(
        md,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )?;
    for r in runs {
        for m in r.text.lines().filter(|l| l.starts_with("im_step")).map(kv) {
            let g = |key: &str| m.get(key).copied().unwrap_or("?");
            // Nothing is sent in the idle step: no CPU per message.
            let us = |key: &str| if g("kind") == "idle" { "-" } else { g(key) };
            writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.k, r.rep + 1, g("kind"), g("target"), g("rate"), g("sent"), g("acked"), g("received"), g("missing"),
                ms(g("p50_us")), ms(g("p99_us")), split(&m, "same"), split(&m, "cross"),
                g("server_cpu"), us("server_us_per_msg"), g("nats_cpu"), us("nats_us_per_msg"),
                g("postgres_cpu"), us("postgres_us_per_msg"), g("gen_cpu"), g("result")
            )?;
        }
    }
    let late: Vec<String> = runs
        .iter()
        .flat_map(|r| {
            r.text
                .lines()
                .filter(|l| l.starts_with("im_late"))
                .map(move |l| format!("- {} msg_servers, rep {}: `{l}`", r.k, r.rep + 1))
        })
        .collect();
    if !late.is_empty() {
        writeln!(
            md,
            "\nLate steps, every message of which was then received exactly once:\n"
        )?;
        writeln!(md, "{}", late.join("\n"))?;
    }
    writeln!(md)?;
    Ok(())
}
