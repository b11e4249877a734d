//! Scenario 9: IM routing across 1, 2 and 3 msg_servers that share one
//! PostgreSQL and route over NATS (issue 13's benchmark).
//!
//! One PostgreSQL (Debian's, in a temporary data directory, started by the
//! servers' own test helper `servers/tests/common/pg.rs`, included here by
//! path so there is one copy of it) and one `nats-server` on loopback serve
//! the whole run; each server count gets a fresh database. `im_bench`
//! starts the msg_servers itself (`--servers K --store postgres`), connects
//! user `u` directly to server `(u - 1) % K`, and reports per step the CPU
//! of the msg_servers, of nats-server and of PostgreSQL (the postmaster and
//! all its backends), and the latency of same-server and crossing messages.
//! Nothing is pinned: every process shares the machine's cores, so the
//! figures to compare are CPU per message, not cores.

use super::im::{kv, ms};
use super::*;
use std::collections::HashMap;

#[allow(dead_code)] // the driver uses only `start` and `url_of`
#[path = "../../../../servers/tests/common/pg.rs"]
mod pg;

/// Users, spread evenly over the msg_servers.
const USERS: u32 = 1_000;
/// msg_server counts compared in one run.
const SERVER_COUNTS: [u32; 3] = [1, 2, 3];
/// The offered load every server count gets first: CPU per message and
/// latency are compared at this rate.
const FIXED_RATE: u64 = 1_000;
/// Then a ladder of rates, as in section 5, for the highest zero-loss rate.
const LADDER: &str = "2000,5000,10000,20000";

pub(crate) const HEADING: &str = "## 9. IM routing across msg_servers";

/// nats-server on a free loopback port, killed when dropped.
struct NatsServer {
    child: Child,
    addr: SocketAddr,
}

impl NatsServer {
    fn start() -> Res<NatsServer> {
        let addr = free_addr()?;
        let child = Command::new("nats-server")
            .args(["-a", &addr.ip().to_string(), "-p", &addr.port().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("nats-server (Debian's nats-server package): {e}"))?;
        let nats = NatsServer { child, addr };
        let t = Instant::now();
        while TcpStream::connect(addr).is_err() {
            if t.elapsed() > Duration::from_secs(10) {
                return Err("nats-server did not listen".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(nats)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates one empty database per server count and returns the
/// postmaster's pid (the parent of this session's backend).
fn prepare_postgres(pg: &pg::TempPostgres) -> Res<u32> {
    let mut c = postgres::Client::connect(&pg.url_of("postgres"), postgres::NoTls)?;
    for k in SERVER_COUNTS {
        c.batch_execute(&format!("CREATE DATABASE im_k{k}"))?;
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
    let pg = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| rd.flatten().any(|v| v.path().join("bin/initdb").exists()))
        .unwrap_or(false);
    let nats = Command::new("nats-server").arg("--version").output().is_ok();
    match (pg, nats) {
        (true, true) => None,
        (false, _) => Some("Debian's postgresql is not installed"),
        (_, false) => Some("Debian's nats-server is not installed"),
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
    let pg = pg::TempPostgres::start();
    let pg_pid = prepare_postgres(&pg)?;
    let nats = NatsServer::start()?;
    let mut runs = Vec::new();
    for k in SERVER_COUNTS {
        let mut cmd = Command::new(o.bin.join("im_bench"));
        cmd.args(["--users", &USERS.to_string()])
            .args(["--servers", &k.to_string()])
            .args(["--store", "postgres", "--postgres-url"])
            .arg(pg.url_of(&format!("im_k{k}")))
            .args(["--nats", &nats.addr.to_string()])
            .args(["--watch", &format!("nats={}", nats.child.id())])
            .args(["--watch", &format!("postgres={pg_pid}")])
            .args(["--fixed-rate", &FIXED_RATE.to_string()])
            .args(["--rates", LADDER, "--step-secs", &step.to_string()])
            .arg("--no-pin");
        let out = cmd.stdout(Stdio::piped()).output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            let why = text
                .lines()
                .find(|l| l.starts_with("im_fail"))
                .unwrap_or("no im_fail line: see stderr")
                .to_string();
            return Err(format!(
                "IM cluster, {k} msg_servers: EXACTLY-ONCE OR RUN FAILURE ({}): {why}",
                out.status
            )
            .into());
        }
        for l in text.lines().filter(|l| l.starts_with("im_best")) {
            eprintln!("im_cluster {k} msg_servers: {l}");
        }
        runs.push((k, text));
    }
    drop(nats);
    drop(pg);
    let load_after = sh("cut -d' ' -f1-3 /proc/loadavg");
    write_section(o, md, &runs, step, (&load_before, &load_after), started)
}

/// The `im_step` line of a run's fixed-rate step.
fn fixed_of(text: &str) -> Option<HashMap<&str, &str>> {
    find(text, "im_step", Some("fixed"))
}

/// One `im_*` line of a run, by prefix and (for `im_step`) kind.
fn find<'a>(text: &'a str, prefix: &str, kind: Option<&str>) -> Option<HashMap<&'a str, &'a str>> {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .map(kv)
        .find(|m| kind.is_none_or(|k| m.get("kind") == Some(&k)))
}

fn num(m: &HashMap<&str, &str>, key: &str) -> f64 {
    m.get(key).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
}

/// `p50 / p99 ms (n)` of the same-server or crossing messages of a step.
fn split(m: &HashMap<&str, &str>, which: &str) -> String {
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

fn write_section(
    o: &Opts,
    md: &mut String,
    runs: &[(u32, String)],
    step: f64,
    load: (&str, &str),
    started: Instant,
) -> Res<()> {
    writeln!(md, "The routing scenario of section 5 over several msg_servers acting as one service (issue 13): they share one PostgreSQL database (`Store=postgres`, group commit on the store thread, the sender's ack after the commit) and route deliveries to users on other servers over NATS (`NatsAddr`, subject `im.user.<id>` subscribed while the user is online there). `bench im_cluster` starts Debian's PostgreSQL in a temporary data directory (initdb, loopback, `fsync=off` as the tests run it, so commits are not flushed to this machine's shared disk: the figures are routing and PostgreSQL's CPU, not the disk) and `nats-server` on loopback, then for K = 1, 2 and 3 runs `im_bench --servers K`, which starts K msg_servers on a fresh database with `NatsAddr` set (so K = 1 pays for publishing to NATS too) and logs {USERS} users in, user u directly on msg_server (u - 1) mod K (not through login_server, so that which messages cross servers is known: with random pairs about (K-1)/K of them). Each message goes from a random user to a random other user; exactly-once, the server's acks and the per-step pass/late/gen_limit verdicts are section 5's. Every K first gets {FIXED_RATE} msg/s for {step} s (the same offered load, to compare CPU per message), then the ladder {LADDER} msg/s for the highest zero-loss rate and {step} s at 50% and 90% of it for latency.\n")?;
    writeln!(md, "Nothing is pinned: the generator, the msg_servers, nats-server and PostgreSQL share the machine's {} cores, which other engineers' builds also used during the run (load average before / after {} / {}). Compare CPU per message (CPU seconds of a process over a step and its drain, from `/proc/PID/stat`, divided by the messages sent) more than rates; msg_server CPU is the sum over all K servers, PostgreSQL's the postmaster and every backend.\n", sh("nproc"), load.0, load.1)?;
    writeln!(md, "Run: `scripts/bench_im_cluster.sh` (= `bench im_cluster --seconds {}`) at netlib commit {}, {}, {}, {:.0} s. Each K ran: `im_bench --users {USERS} --servers K --store postgres --postgres-url URL --nats ADDR --watch nats=PID --watch postgres=PID --fixed-rate {FIXED_RATE} --rates {LADDER} --step-secs {step} --no-pin`.\n",
        o.seconds, sh("git rev-parse --short HEAD"),
        sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'"),
        sh("uname -r"), started.elapsed().as_secs_f64())?;

    let base = runs.iter().find(|(k, _)| *k == 1).map(|(_, t)| t.as_str());
    let ratio_to_base = |v: f64, f: &dyn Fn(&str) -> f64| {
        let b = base.map_or(f64::NAN, f);
        if b > 0.0 && v.is_finite() {
            format!("{:.2}", v / b)
        } else {
            "-".into()
        }
    };
    let server_us = |t: &str| fixed_of(t).map_or(f64::NAN, |m| num(&m, "server_us_per_msg"));
    let total_us = |t: &str| {
        fixed_of(t).map_or(f64::NAN, |m| {
            num(&m, "server_us_per_msg") + num(&m, "nats_us_per_msg") + num(&m, "postgres_us_per_msg")
        })
    };
    writeln!(md, "At the same offered load, {FIXED_RATE} msg/s (CPU in microseconds per message; ratios are K servers / 1 server):\n")?;
    writeln!(md, "| msg_servers | achieved msg/s | result | msg_servers CPU µs/msg (sum) | / 1 server | nats-server µs/msg | PostgreSQL µs/msg | all three µs/msg | / 1 server | generator µs/msg | same server p50 / p99 ms (n) | crossing p50 / p99 ms (n) |")?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|")?;
    for (k, text) in runs {
        let Some(m) = fixed_of(text) else {
            writeln!(md, "| {k} | no fixed-rate step |||||||||||")?;
            continue;
        };
        let g = |key: &str| m.get(key).copied().unwrap_or("?");
        writeln!(
            md,
            "| {k} | {} | {} | {} | {} | {} | {} | {:.1} | {} | {} | {} | {} |",
            g("rate"),
            g("result"),
            g("server_us_per_msg"),
            ratio_to_base(server_us(text), &server_us),
            g("nats_us_per_msg"),
            g("postgres_us_per_msg"),
            total_us(text),
            ratio_to_base(total_us(text), &total_us),
            g("gen_us_per_msg"),
            split(&m, "same"),
            split(&m, "cross"),
        )?;
    }
    let best = |t: &str| find(t, "im_best", None).map_or(f64::NAN, |m| num(&m, "rate"));
    writeln!(md, "\nCapacity: the highest ladder rate passed with zero loss, and latency at 50% / 90% of it:\n")?;
    writeln!(md, "| msg_servers | login s | highest zero-loss rate msg/s | / 1 server | next step failed as | at 50%: same server p50 / p99 ms (n) | at 50%: crossing | at 90%: same server | at 90%: crossing |")?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|")?;
    for (k, text) in runs {
        let login = find(text, "im_login", None)
            .and_then(|m| m.get("secs").map(|s| s.to_string()))
            .unwrap_or_else(|| "-".into());
        let b = find(text, "im_best", None);
        let lat = |kind: &str, which: &str| {
            find(text, "im_step", Some(kind)).map_or("-".to_string(), |m| {
                let note = match m.get("result") {
                    Some(&"pass") | None => String::new(),
                    Some(r) => format!(" ({r})"),
                };
                format!("{}{note}", split(&m, which))
            })
        };
        writeln!(
            md,
            "| {k} | {login} | {} | {} | {} | {} | {} | {} | {} |",
            b.as_ref().and_then(|m| m.get("rate")).unwrap_or(&"-"),
            ratio_to_base(best(text), &best),
            b.as_ref().and_then(|m| m.get("limit")).unwrap_or(&"-"),
            lat("lat50", "same"),
            lat("lat50", "cross"),
            lat("lat90", "same"),
            lat("lat90", "cross"),
        )?;
    }
    writeln!(md, "\nEvery step (CPU in cores = CPU seconds / wall seconds over the step and its drain, and in µs per message):\n")?;
    writeln!(md, "| msg_servers | step | target msg/s | achieved msg/s | sent | acked | received once | missing after drain | p50 / p99 ms | same server p50 / p99 ms (n) | crossing p50 / p99 ms (n) | msg_servers cores | µs/msg | nats-server cores | µs/msg | PostgreSQL cores | µs/msg | generator cores | result |")?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")?;
    for (k, text) in runs {
        for m in text.lines().filter(|l| l.starts_with("im_step")).map(kv) {
            let g = |key: &str| m.get(key).copied().unwrap_or("?");
            writeln!(
                md,
                "| {k} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                g("kind"), g("target"), g("rate"), g("sent"), g("acked"), g("received"), g("missing"),
                ms(g("p50_us")), ms(g("p99_us")), split(&m, "same"), split(&m, "cross"),
                g("server_cpu"), g("server_us_per_msg"), g("nats_cpu"), g("nats_us_per_msg"),
                g("postgres_cpu"), g("postgres_us_per_msg"), g("gen_cpu"), g("result")
            )?;
        }
        for l in text.lines().filter(|l| l.starts_with("im_late")) {
            writeln!(md, "\n`{l}` ({k} msg_servers)\n")?;
        }
    }
    writeln!(md)?;
    Ok(())
}
