//! Scenario 5: IM routing through msg_server (im_bench).

use super::*;

// ---------------------------------------------------------------- IM routing

pub(crate) const IM_USERS: [u32; 2] = [1_000, 10_000];

/// msg_server's message stores, compared in the same run: in memory (the
/// comparator) and durable (SQLite, group commit, ack after commit).
pub(crate) const IM_STORES: [&str; 2] = ["memory", "sqlite"];

/// The ladder of target rates (msg/s): about 20% apart from 4000 up
/// (im_bench's default ladder doubles); [`IM_REFINE`] steps then narrow
/// the gap between the highest passing and the lowest failing rate, so the
/// durable / memory ratio is not only as fine as the rungs.
pub(crate) const IM_RATES: &str =
    "1000,2000,4000,6000,8000,10000,12000,14500,17500,21000,25000,30000,36000,43000,52000,62000,75000,90000";

/// Refinement steps after the ladder stops (`im_bench --refine`): two
/// bring a 20% gap down to 5%.
pub(crate) const IM_REFINE: u32 = 2;

/// `key value` pairs of one `im_*` line.
pub(crate) fn kv(line: &str) -> std::collections::HashMap<&str, &str> {
    let f: Vec<&str> = line.split_whitespace().collect();
    f[1..]
        .chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| (c[0], c[1]))
        .collect()
}

pub(crate) fn ms(us: &str) -> String {
    us.parse::<f64>()
        .map_or_else(|_| us.to_string(), |v| format!("{:.2}", v / 1000.0))
}

/// Runs one `im_bench` and returns its output; a failed run (an
/// exactly-once violation or anything else) is an error naming `what` and
/// its `im_fail` line. Echoes the `im_best` lines to stderr.
pub(crate) fn run_im_bench(mut cmd: Command, what: &str) -> Res<String> {
    let out = cmd.stdout(Stdio::piped()).output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        let why = text
            .lines()
            .find(|l| l.starts_with("im_fail"))
            .unwrap_or("no im_fail line: see stderr")
            .to_string();
        return Err(format!(
            "{what}: EXACTLY-ONCE OR RUN FAILURE ({}): {why}",
            out.status
        )
        .into());
    }
    for l in text.lines().filter(|l| l.starts_with("im_best")) {
        eprintln!("{what}: {l}");
    }
    Ok(text)
}

/// msg_server's CPU time per message of an `im_step` line, in µs: its
/// cores over the step divided by the achieved rate.
fn cpu_us_per_msg(m: &std::collections::HashMap<&str, &str>) -> Option<f64> {
    let f = |k: &str| m.get(k).and_then(|v| v.parse::<f64>().ok());
    match (f("server_cpu"), f("rate")) {
        (Some(cpu), Some(rate)) if rate > 0.0 => Some(cpu * 1e6 / rate),
        _ => None,
    }
}

/// [`cpu_us_per_msg`] as a table cell.
pub(crate) fn cpu_per_msg(m: &std::collections::HashMap<&str, &str>) -> String {
    cpu_us_per_msg(m).map_or_else(|| "-".to_string(), |us| format!("{us:.0}"))
}

/// One im_bench run of the section: a user count, a store, a repetition.
struct Run {
    users: u32,
    store: &'static str,
    /// 1, 2, ... in the order the pairs ran.
    rep: usize,
    /// What im_bench printed.
    text: String,
}

type Kv<'a> = std::collections::HashMap<&'a str, &'a str>;

impl Run {
    /// The `key value` maps of its lines starting with `prefix`.
    fn lines<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = Kv<'a>> {
        self.text
            .lines()
            .filter(move |l| l.starts_with(prefix))
            .map(kv)
    }

    /// The first `im_step` line of `kind`.
    fn step(&self, kind: &str) -> Option<Kv<'_>> {
        self.lines("im_step").find(|m| m.get("kind") == Some(&kind))
    }

    /// Its `im_best` line.
    fn best(&self) -> Option<Kv<'_>> {
        self.lines("im_best").next()
    }

    /// The highest zero-loss rate it found.
    fn best_rate(&self) -> Option<f64> {
        self.best()
            .and_then(|m| m.get("rate").and_then(|r| r.parse().ok()))
    }

    /// Its ladder steps that passed.
    fn passed_ladder(&self) -> Vec<Kv<'_>> {
        self.lines("im_step")
            .filter(|m| m.get("kind") == Some(&"ladder") && m.get("result") == Some(&"pass"))
            .collect()
    }
}

pub(crate) fn im(o: &Opts, md: &mut String) -> Res<()> {
    let started = Instant::now();
    let load_before = sh("cut -d' ' -f1-3 /proc/loadavg");
    let cpu_before = bench::CpuTimes::now();
    let step = o.seconds.min(5.0);
    let reps = o.reps.max(1);
    let mut runs = Vec::new();
    // Pairs alternate (memory, sqlite, memory, sqlite...): whatever else
    // the machine does drifts over both stores alike.
    for users in IM_USERS {
        for rep in 1..=reps {
            for store in IM_STORES {
                let mut cmd = Command::new(o.bin.join("im_bench"));
                cmd.args([
                    "--users",
                    &users.to_string(),
                    "--step-secs",
                    &step.to_string(),
                    "--store",
                    store,
                    "--rates",
                    IM_RATES,
                    "--refine",
                    &IM_REFINE.to_string(),
                ]);
                if !o.pin {
                    cmd.arg("--no-pin");
                }
                let what = format!("IM routing, {users} users, {store} store, run {rep}/{reps}");
                let text = run_im_bench(cmd, &what)?;
                runs.push(Run {
                    users,
                    store,
                    rep,
                    text,
                });
            }
        }
    }
    let load_after = sh("cut -d' ' -f1-3 /proc/loadavg");
    let steal = bench::CpuTimes::now().steal_percent_since(&cpu_before);
    writeln!(md, "## 5. IM routing\n")?;
    writeln!(md, "`im_bench` (netlib: one EventDispatch, one non-blocking connection per user) writes a users file of N users, starts `msg_server --ListenPort 0 --UsersFile F --MsgRateLimit 1000000 --ClientIdleMs 600000 --MaxConnCnt 100000 --Store S --DbPath <fresh file> --StoreInFlightMax 1000000000` (no refusal when the store falls behind: it shows as a late step){}, logs all N users in ({} logins in flight at a time), then climbs a ladder of target rates ({IM_RATES} msg/s). Each step sends for {step} s from a 1 ms repeating timer (the messages due so far, at most 20 ms' worth per tick, so a generator that falls behind shows as a lower achieved rate), each message from a random user to a random other user, carrying its sender, receiver, per-sender sequence number and send time (monotonic ns) in `msg_data`. Receivers ack every delivery (IMMsgDataAck with the server's msg_id) and record send-to-receive latency (hdrhistogram). After sending it waits up to 2 s for stragglers, then checks exactly-once over every message of the step: acknowledged by the server (acks checked in order against the header seq_num), received once by the right user from the right sender. A step **passes** when all of that holds within the 2 s and the achieved rate is >= 95% of the target; it fails as `gen_limit` if the generator sent less, or as `late` if messages were still missing after 2 s (the generator then waits until they all arrive and checks them: a message that never arrives, a duplicate, a misrouted message or a closed connection ends the run with an error - none did in this run). The ladder stops at the first failing step; then up to {IM_REFINE} steps (`refine`) halve the gap between the highest passing and the lowest failing rate while they are more than 5% apart; the highest passing rate is the result; then, once msg_server is quiet again (under 0.10 cores over half a second: the late steps' backlog and the durable store's deferred writes done), {step} s runs at 50% and 90% of it give the latency figures. The highest passing rate is that of a {step} s burst the server absorbs and clears within the 2 s after it, above what it sustains, so 50% of it is already a heavy load (see msg_server's CPU on those steps). CPU columns are cores used (utime+stime / wall) by the generator and by msg_server over the step and its drain. msg_server CPU µs/msg is its cores divided by the achieved rate: the cost of one message (with its receiver's ack), steadier than the rate on a shared machine. Two stores of the same msg_server build are compared: `Store=memory` (messages in memory, lost at exit: the comparator) and `Store=sqlite` (the default: SQLite in WAL mode with `synchronous=FULL`, written by the store thread with group commit; the sender's ack leaves only after the commit, and the message commits with its own row; its mailbox rows, session rows and session-index entry (`message_index`) follow within `StoreDeferMs`={defer_ms} ms, half that time's worth at once, sorted, and a delivery acked meanwhile - here, nearly all - never gets a mailbox row; commits start at least `StoreCommitIntervalUs`={interval_us} µs apart). Each user count runs {reps} pairs of ladders, one after the other, alternating the stores (memory, sqlite, memory, sqlite, ...) so that what else the machine does weighs on both alike; the durable / memory ratio is taken within each pair (sqlite's run i over memory's run i), and the table gives the median of those ratios with their range.\n",
        if o.pin { " pinned to core 0 (taskset), the generator on core 1" } else { "" },
        256,
        defer_ms = servers::msg::store::sqlite::DEFAULT_DEFER.as_millis(),
        interval_us = servers::msg::store::GroupCommit::default().interval.as_micros())?;
    writeln!(md, "Run: `bench im --reps {reps}` at netlib commit {}, load average before / after {load_before} / {load_after}, {steal:.1}% of the cores' time stolen by the hypervisor (steal in /proc/stat: this virtual machine's host runs other machines, and every rate here is lower by at least that), {:.0} s.\n", sh("git rev-parse --short HEAD"), started.elapsed().as_secs_f64())?;
    summary(md, &runs)?;
    equal_load(md, &runs)?;
    writeln!(md, "\nEvery step:\n")?;
    writeln!(md, "| users | store | run | step | target msg/s | achieved msg/s | sent | acked by server | received once | dup | missing after 2 s | p50 ms | p99 ms | p999 ms | max ms | generator CPU | msg_server CPU | msg_server CPU µs/msg | result |")?;
    writeln!(
        md,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )?;
    for r in &runs {
        for m in r.lines("im_step") {
            let g = |k: &str| m.get(k).copied().unwrap_or("?");
            writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.users, r.store, r.rep,
                g("kind"), g("target"), g("rate"), g("sent"), g("acked"), g("received"), g("dup"), g("missing"),
                ms(g("p50_us")), ms(g("p99_us")), ms(g("p999_us")), ms(g("max_us")), g("gen_cpu"), g("server_cpu"), cpu_per_msg(&m), g("result")
            )?;
        }
        for l in r.text.lines().filter(|l| l.starts_with("im_late")) {
            writeln!(md, "\n`{} run {}: {l}`", r.store, r.rep)?;
        }
    }
    writeln!(md, "\nmsg_server's store thread runs on the same pinned core as its loop, so the durable store's CPU is taken from the loop's; a load average above the machine's core count means other processes shared the cores during the run, and the rates and latencies are then lower bounds of what this build does on a quiet machine (compare the two stores within the run, not across runs).\n")?;
    writeln!(md, "\nA generator CPU well under 1.0 on a `gen_limit` step means the generator was not busy but not scheduled either: core 1 is shared with other work on this machine (see the load average).\n")?;
    Ok(())
}

/// The main table: per user count and store, the highest zero-loss rate of
/// every run, the durable / memory ratio of each pair, and the latency and
/// CPU of the run whose rate is the median.
fn summary(md: &mut String, runs: &[Run]) -> Res<()> {
    writeln!(md, "| users | store | highest zero-loss rate msg/s, median (min..max) | each run | durable / memory, median of the pairs (min..max) | next step failed as | login s | p50 / p99 ms at 50% | p50 / p99 ms at 90% | msg_server CPU µs/msg at 50% / 90% |")?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|")?;
    for users in IM_USERS {
        for store in IM_STORES {
            let mine: Vec<&Run> = runs
                .iter()
                .filter(|r| r.users == users && r.store == store)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let rates: Vec<f64> = mine.iter().filter_map(|r| r.best_rate()).collect();
            let each = mine
                .iter()
                .map(|r| r.best_rate().map_or("-".into(), |v| format!("{v:.0}")))
                .collect::<Vec<_>>()
                .join(", ");
            let limits = mine
                .iter()
                .map(|r| {
                    r.best()
                        .and_then(|m| m.get("limit").map(|l| l.to_string()))
                        .unwrap_or_else(|| "-".into())
                })
                .collect::<Vec<_>>()
                .join(", ");
            let ratio = if store == "memory" {
                "-".to_string()
            } else {
                let pairs: Vec<f64> = mine
                    .iter()
                    .filter_map(|d| {
                        let m = runs
                            .iter()
                            .find(|m| m.users == users && m.store == "memory" && m.rep == d.rep)?;
                        let (d, m) = (d.best_rate()?, m.best_rate()?);
                        (m > 0.0).then(|| d / m)
                    })
                    .collect();
                if pairs.is_empty() {
                    "-".to_string()
                } else {
                    format!("**{}**", bench::mm(&pairs, 2))
                }
            };
            // Latency and CPU are per run: those of the median run.
            let median = bench::median(&rates);
            let typical = mine
                .iter()
                .find(|r| r.best_rate() == Some(median))
                .unwrap_or(&mine[0]);
            let lat = |k: &str| {
                typical.step(k).map_or("-".to_string(), |m| {
                    let note = match m.get("result") {
                        Some(&"pass") | None => String::new(),
                        Some(r) => format!(" ({r} at {} msg/s)", m.get("rate").unwrap_or(&"?")),
                    };
                    format!(
                        "{} / {}{note}",
                        ms(m.get("p50_us").unwrap_or(&"?")),
                        ms(m.get("p99_us").unwrap_or(&"?"))
                    )
                })
            };
            let cpu = |k: &str| typical.step(k).map_or("-".to_string(), |m| cpu_per_msg(&m));
            let login = typical
                .lines("im_login")
                .next()
                .and_then(|m| m.get("secs").map(|s| s.to_string()))
                .unwrap_or_else(|| "-".into());
            let rate_cell = if rates.is_empty() {
                "-".to_string()
            } else {
                bench::mm(&rates, 0)
            };
            writeln!(
                md,
                "| {users} | {store} | {rate_cell} | {each} | {ratio} | {limits} | {login} | {} (run {rep}) | {} | {} / {} |",
                lat("lat50"),
                lat("lat90"),
                cpu("lat50"),
                cpu("lat90"),
                rep = typical.rep,
            )?;
        }
    }
    Ok(())
}

/// The cost of durability at the same offered load: for each user count,
/// msg_server's CPU per message on the highest ladder step every run of
/// both stores passed (where batching is at its best for both) and on a
/// moderate one (at most 40% of that), median (min..max) over the runs. When the memory
/// store's ladders end at `gen_limit`, its highest rate is the generator's,
/// not the server's, and this is the comparison left.
fn equal_load(md: &mut String, runs: &[Run]) -> Res<()> {
    writeln!(md, "\nAt the same offered load - the highest ladder step every run of both stores passed, and a moderate one (the highest step at most 40% of that) - CPU is all of msg_server's threads, its store thread included; median (min..max) over the runs:\n")?;
    writeln!(md, "| users | target msg/s | memory CPU µs/msg | sqlite CPU µs/msg | memory / sqlite CPU per message (of the medians) |")?;
    writeln!(md, "|---|---|---|---|---|")?;
    for users in IM_USERS {
        let mine: Vec<&Run> = runs.iter().filter(|r| r.users == users).collect();
        let passed: Vec<Vec<Kv<'_>>> = mine.iter().map(|r| r.passed_ladder()).collect();
        let target = |m: &Kv<'_>| m.get("target").and_then(|t| t.parse::<u64>().ok());
        let common = passed
            .iter()
            .map(|steps| steps.iter().filter_map(target).max().unwrap_or(0))
            .min()
            .unwrap_or(0);
        if common == 0 {
            continue;
        }
        let passed_targets: Vec<u64> = passed[0].iter().filter_map(target).collect();
        let moderate = passed_targets
            .iter()
            .copied()
            .filter(|t| *t * 10 <= common * 4)
            .max();
        for rate in [Some(common), moderate].into_iter().flatten() {
            let cpu = |store: &str| -> Vec<f64> {
                mine.iter()
                    .zip(&passed)
                    .filter(|(r, _)| r.store == store)
                    .filter_map(|(_, steps)| {
                        steps
                            .iter()
                            .find(|m| target(m) == Some(rate))
                            .and_then(cpu_us_per_msg)
                    })
                    .collect()
            };
            let (memory, sqlite) = (cpu("memory"), cpu("sqlite"));
            if memory.is_empty() || sqlite.is_empty() {
                continue;
            }
            writeln!(
                md,
                "| {users} | {rate} | {} | {} | {:.2} |",
                bench::mm(&memory, 0),
                bench::mm(&sqlite, 0),
                bench::median(&memory) / bench::median(&sqlite)
            )?;
        }
    }
    Ok(())
}

/// Replaces (or adds) the `## 5. IM routing` section of an existing
/// BENCH.md, keeping everything else - its subsection written by `bench
/// im_store` too, at the section's end.
pub(crate) fn splice_im(old: &str, section: &str) -> String {
    let doc = splice_section(old, "## Not measured in this run", "");
    let mut section = section.to_string();
    if let Some(store) = subsection(&doc, super::im_store::HEADING) {
        section.push_str(store);
    }
    splice_section(&doc, "## 5. IM routing", &section)
}
