//! Scenario 5a: the SQLite message store alone - how many messages one
//! store thread on one core commits per second, and its CPU per message.
//!
//! Section 5 (`bench im`) measures msg_server end to end. On a 2-core
//! machine its loop, its store thread and the load generator share the
//! cores, so there the durable store's cost is mixed with scheduling. This
//! scenario takes everything but the store away: it opens the backend that
//! msg_server's writer thread runs ([`open_backend`], `synchronous=FULL`) on
//! a fresh file and calls [`run_batch`](servers::msg::store::Backend::run_batch) from one thread pinned to
//! core 0, with batches shaped like the ones the writer takes under
//! im_bench's load: `ops/2` new single-chat messages from a random user to
//! a random other user (im_bench's [`traffic`](bench::traffic) shape and
//! `msg_data`, padded to the message size), interleaved with the delivery
//! acks ([`Op::Delivered`]) of the messages stored `ack_lag` batches
//! earlier - a receiver acks only after its delivery, which leaves after
//! the commit, so under load its ack joins a later batch.
//!
//! Per repetition: messages committed per second of wall time, the
//! thread's CPU inside `run_batch` per message (`CLOCK_THREAD_CPUTIME_ID`
//! around each call; the main figure: steadier than the rate on a shared
//! machine), commits per second, how much of `run_batch`'s wall time was
//! CPU (the rest is waiting for the disk), the bytes it wrote, the whole thread's user and
//! system CPU and context switches (`getrusage(RUSAGE_THREAD)`), and the
//! WAL and database file sizes at the end. The run checks the store's work:
//! every append must come back [`Outcome::Stored`] with one mailbox
//! position, every ack [`Outcome::Done`], and at the end the file's
//! mailbox must hold exactly the messages not yet acked.
//!
//! Not measured: sockets, msg_server's loop, the channel to the writer
//! thread and the completions posted back - section 5 has those.

use super::*;
use ::pdu::proto::MsgType;
use bench::traffic::{write_payload, Traffic};
use bench::{pin_self, rusage, secs, thread_cpu};
use servers::msg::store::sqlite::{mailbox_totals, open_backend, SqliteConfig};
use servers::msg::store::{Bounds, GroupCommit, NewMessage, Op, Outcome, SessionKey};
use std::collections::VecDeque;
use std::sync::Arc;

/// The subsection this scenario writes, inside section 5.
pub(crate) const HEADING: &str = "### 5a. The SQLite store alone";

/// The section it belongs to.
pub(crate) const PARENT: &str = "## 5. IM routing";

/// What to run (`bench --store-*` options).
#[derive(Debug, Clone)]
pub(crate) struct Params {
    /// User counts.
    pub(crate) users: Vec<u32>,
    /// Operations per transaction (messages + acks).
    pub(crate) batches: Vec<usize>,
    /// `msg_data` bytes per message (at least im_bench's 24).
    pub(crate) data_bytes: Vec<usize>,
    /// Seconds run before the measured window, on the same file.
    pub(crate) warmup: f64,
    /// Batches between a message's and its ack's.
    pub(crate) ack_lag: usize,
    /// Where the fresh database files go.
    pub(crate) dir: PathBuf,
}

/// One measured configuration.
#[derive(Debug, Clone, Copy)]
struct Point {
    users: u32,
    data_bytes: usize,
    batch: usize,
}

/// What one repetition of a [`Point`] measured over its window.
#[derive(Debug, Default)]
struct Sample {
    /// Messages stored.
    msgs: u64,
    /// Transactions committed.
    commits: u64,
    /// Operations run (messages + acks).
    ops: u64,
    /// Wall seconds of the window.
    wall: f64,
    /// Thread CPU seconds inside `run_batch`.
    batch_cpu: f64,
    /// Wall seconds inside `run_batch`.
    batch_wall: f64,
    /// The whole thread's user and system CPU seconds.
    utime: f64,
    stime: f64,
    /// Voluntary (waits, fsync) and involuntary (preempted) context switches.
    nvcsw: i64,
    nivcsw: i64,
    /// Bytes the thread passed to write(2)/pwrite(2) (WAL appends and
    /// checkpoints into the database).
    written: u64,
    /// File sizes at the end, bytes: `-wal` and the database.
    wal: u64,
    db: u64,
    /// 1-minute load average when the repetition started.
    load: f64,
}

/// im_bench's messages, as msg_server's loop hands them to the store.
struct Messages {
    users: u32,
    traffic: Traffic,
    /// Next sequence number per sender.
    seq: Vec<u32>,
    data_bytes: usize,
    epoch: Instant,
    create_time: u32,
}

impl Messages {
    fn new(users: u32, data_bytes: usize, seed: u64) -> Messages {
        let create_time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as u32);
        Messages {
            users,
            traffic: Traffic::new(seed),
            seq: vec![0; users as usize + 1],
            data_bytes,
            epoch: Instant::now(),
            create_time,
        }
    }

    fn next(&mut self) -> NewMessage {
        let (from, to) = self.traffic.pair(self.users);
        let seq = &mut self.seq[from as usize];
        let mut data = Vec::with_capacity(self.data_bytes);
        write_payload(
            &mut data,
            from,
            to,
            *seq,
            self.epoch.elapsed().as_nanos() as u64,
        );
        data.resize(self.data_bytes.max(data.len()), 0);
        *seq += 1;
        NewMessage {
            session: SessionKey::single(from, to),
            from,
            receivers: Arc::from([to]),
            msg_type: MsgType::SingleText as i32,
            data,
            create_time: self.create_time,
        }
    }
}

/// One batch: `appends` new messages interleaved with the acks `due`
/// (the rest of them after the last message).
fn batch(messages: &mut Messages, appends: usize, due: Vec<(u32, u64)>) -> Vec<Op> {
    let mut ops = Vec::with_capacity(appends + due.len());
    let mut due = due.into_iter();
    for _ in 0..appends {
        ops.push(Op::Append(messages.next()));
        if let Some((user, pos)) = due.next() {
            ops.push(Op::Delivered { user, pos });
        }
    }
    ops.extend(due.map(|(user, pos)| Op::Delivered { user, pos }));
    ops
}

/// The mailbox positions of a batch's stored messages, checking every
/// outcome is what the operation must get.
fn positions(outcomes: Vec<Outcome>, appends: usize) -> Result<Vec<(u32, u64)>, String> {
    let mut stored = Vec::with_capacity(appends);
    for o in outcomes {
        match o {
            Outcome::Stored(_, p) if p.len() == 1 => stored.extend(p),
            Outcome::Done => {}
            other => return Err(format!("unexpected outcome: {other:?}")),
        }
    }
    if stored.len() != appends {
        return Err(format!("{} of {appends} messages stored", stored.len()));
    }
    Ok(stored)
}

fn load1() -> f64 {
    sh("cut -d' ' -f1 /proc/loadavg")
        .parse()
        .unwrap_or(f64::NAN)
}

/// Bytes the calling thread has passed to write system calls (`wchar` of
/// `/proc/thread-self/io`; 0 where that file is missing).
fn thread_written() -> u64 {
    std::fs::read_to_string("/proc/thread-self/io")
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("wchar:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

/// Runs one repetition of `p` on a fresh file for `warmup` + `seconds`, on
/// a thread of its own pinned to core 0 with `pin`.
fn run(p: Point, prm: &Params, seconds: f64, seed: u64, pin: bool) -> Res<Sample> {
    let dir = testkit::TempDir::new_in(&prm.dir, "bench-im-store")?;
    let path = dir.join("msg.db");
    let config = SqliteConfig {
        path: path.clone(),
        sync_full: true,
        busy_timeout: servers::msg::store::sqlite::DEFAULT_BUSY_TIMEOUT,
        // The batch is the point's; `run_batch` is called directly, so
        // the writer thread's interval between commits plays no part.
        commit: GroupCommit {
            batch_max: p.batch,
            interval: std::time::Duration::ZERO,
        },
        // msg_server's default (`StoreDeferMs`).
        defer: servers::msg::store::sqlite::DEFAULT_DEFER,
        // Never refuse: the mailboxes hold only the messages not acked yet.
        bounds: Bounds {
            user_msgs: usize::MAX,
            user_bytes: usize::MAX,
            total_bytes: usize::MAX,
        },
    };
    let (warmup, ack_lag) = (prm.warmup, prm.ack_lag);
    let load = load1();
    let worker = std::thread::Builder::new().name("im-store".into()).spawn(
        move || -> Result<Sample, String> {
            if pin {
                pin_self(0);
            }
            let mut backend = open_backend(config)?;
            let mut messages = Messages::new(p.users, p.data_bytes, seed);
            let appends = (p.batch / 2).max(1);
            // The acks of each batch stored and not yet acked, oldest first.
            let mut unacked: VecDeque<Vec<(u32, u64)>> = VecDeque::new();
            let started = Instant::now();
            let window = started + Duration::from_secs_f64(warmup);
            let end = window + Duration::from_secs_f64(seconds);
            let mut s = Sample::default();
            let mut at_window: Option<(Instant, libc::rusage, u64)> = None;
            loop {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                if at_window.is_none() && now >= window {
                    at_window = Some((now, rusage(libc::RUSAGE_THREAD), thread_written()));
                }
                let due = if unacked.len() >= ack_lag {
                    unacked.pop_front().unwrap_or_default()
                } else {
                    Vec::new()
                };
                let ops = batch(&mut messages, appends, due);
                let n_ops = ops.len() as u64;
                let (c0, t0) = (thread_cpu(), Instant::now());
                let outcomes = backend.run_batch(ops)?;
                let (c1, t1) = (thread_cpu(), Instant::now());
                unacked.push_back(positions(outcomes, appends)?);
                if at_window.is_some() {
                    s.msgs += appends as u64;
                    s.commits += 1;
                    s.ops += n_ops;
                    s.batch_cpu += c1 - c0;
                    s.batch_wall += (t1 - t0).as_secs_f64();
                }
            }
            let (t0, r0, w0) = at_window.ok_or("no batch ran in the measured window")?;
            let r1 = rusage(libc::RUSAGE_THREAD);
            s.written = thread_written().saturating_sub(w0);
            s.wall = t0.elapsed().as_secs_f64();
            s.utime = secs(r1.ru_utime) - secs(r0.ru_utime);
            s.stime = secs(r1.ru_stime) - secs(r0.ru_stime);
            s.nvcsw = r1.ru_nvcsw - r0.ru_nvcsw;
            s.nivcsw = r1.ru_nivcsw - r0.ru_nivcsw;
            // Before the backend closes: the last connection's close
            // checkpoints the WAL and removes it.
            let mut wal = path.clone().into_os_string();
            wal.push("-wal");
            s.wal = file_len(Path::new(&wal));
            s.db = file_len(&path);
            let waiting: usize = unacked.iter().map(Vec::len).sum();
            // A graceful stop writes the rows still deferred
            // (`StoreDeferMs`): then the file knows every ack.
            backend.close()?;
            let (inbox, _) = mailbox_totals(&path).map_err(|e| e.to_string())?;
            if inbox != waiting as u64 {
                return Err(format!(
                    "the mailbox holds {inbox} messages, {waiting} are not acked"
                ));
            }
            drop(backend);
            Ok(s)
        },
    )?;
    let mut s = worker
        .join()
        .map_err(|_| "the store thread panicked")?
        .map_err(|e| format!("{p:?}: {e}"))?;
    s.load = load;
    Ok(s)
}

/// Runs every point `o.reps` times, interleaved, and writes subsection 5a.
pub(crate) fn im_store(o: &Opts, md: &mut String) -> Res<()> {
    let prm = &o.store;
    if prm.users.iter().any(|&u| u < 2) || prm.batches.contains(&0) || prm.ack_lag == 0 {
        return Err("--store-users must be >= 2, --store-batches and --store-ack-lag >= 1".into());
    }
    let started = Instant::now();
    let load_before = sh("cut -d' ' -f1-3 /proc/loadavg");
    let cpu_before = bench::CpuTimes::now();
    let points: Vec<Point> = prm
        .users
        .iter()
        .flat_map(|&users| {
            prm.data_bytes.iter().flat_map(move |&data_bytes| {
                prm.batches.iter().map(move |&batch| Point {
                    users,
                    data_bytes,
                    batch,
                })
            })
        })
        .collect();
    let mut samples: Vec<Vec<Sample>> = points.iter().map(|_| Vec::new()).collect();
    for rep in 0..o.reps {
        for (i, p) in points.iter().enumerate() {
            let seed = 0x9e37_79b9_7f4a_7c15 ^ u64::from(p.users) ^ ((rep as u64) << 40);
            let s = run(*p, prm, o.seconds, seed, o.pin)?;
            eprintln!(
                "im_store users {} bytes {} ops {} rep {rep}: {:.0} msg/s, {:.1} µs CPU/msg, {:.0} commits/s",
                p.users,
                p.data_bytes,
                p.batch,
                s.msgs as f64 / s.wall,
                s.batch_cpu * 1e6 / s.msgs as f64,
                s.commits as f64 / s.wall
            );
            samples[i].push(s);
        }
    }
    let load_after = sh("cut -d' ' -f1-3 /proc/loadavg");
    let steal = bench::CpuTimes::now().steal_percent_since(&cpu_before);
    let fs = sh(&format!(
        "findmnt -no FSTYPE,SOURCE -T '{}'",
        prm.dir.display()
    ))
    .split_whitespace()
    .collect::<Vec<_>>()
    .join(" on ");
    let list = |v: &[usize]| {
        v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    writeln!(md, "{HEADING}\n")?;
    writeln!(md, "What one SQLite store thread can commit on one core, without msg_server around it: the end-to-end figures above put msg_server's loop, its store thread and the generator on two shared cores, so they mix the store's cost with scheduling. `bench im_store` opens the backend msg_server's writer thread runs (`servers::msg::store::sqlite::open_backend`: WAL, `synchronous=FULL`, the default) on a fresh file in `{}` ({fs}) for every repetition, with mailbox bounds too large to refuse, and calls `Backend::run_batch` (one transaction, one commit) from one thread{}. Each batch holds half new messages and half delivery acks, interleaved, as the writer takes them under im_bench's load: messages from a random user to a random other user (`Op::Append`, single chat, msg_type 1, im_bench's `msg_data` padded to the size shown), and the acks (`Op::Delivered` with the mailbox position the store gave) of the messages stored {} batches earlier: a receiver acks after its delivery, which leaves after the commit. Batches of {} operations (msg_server's writer takes whatever is queued, up to `StoreBatchMax`=4096). Each repetition runs {} s on the same file before its {} s window; repetitions of all points run interleaved. The run checks the store's answers: every message stored with one mailbox position, every ack done, and at the end the file's mailbox holds exactly the messages not acked yet.\n",
        prm.dir.display(),
        if o.pin { " pinned to core 0 (sched_setaffinity)" } else { " (not pinned: fewer than 2 cores or no taskset)" },
        prm.ack_lag,
        list(&prm.batches),
        prm.warmup,
        o.seconds,
    )?;
    writeln!(md, "Measured: messages committed per second of wall time; **store CPU µs/msg**, the thread's CPU inside `run_batch` (CLOCK_THREAD_CPUTIME_ID around each call) per message, its ack included - the main figure, steadier than the rate on this shared machine; commits per second; how much of `run_batch`'s wall time was CPU (the rest is waiting for the disk: fsync at each commit); bytes the thread wrote per message (`wchar` of /proc/thread-self/io: WAL pages appended at each commit and pages copied into the database at checkpoints); the whole thread's user and system CPU per message and its voluntary (waits) and involuntary (preempted by other processes) context switches per commit (getrusage RUSAGE_THREAD; this includes building the operations, a small part); WAL and database size at the end. **Not measured**: sockets, msg_server's loop and its protocol work, the channel to the store thread and the completions posted back to the loop - section 5 has all of that. The rate is what one core does when it does nothing else; in msg_server the loop shares the core (pinned runs of section 5) and the disk waits are time the loop can use.\n")?;
    writeln!(md, "Run: `bench im_store --seconds {} --reps {}` at netlib commit {}, load average before / after {load_before} / {load_after}, {steal:.1}% of the cores' time stolen by the hypervisor (steal in /proc/stat), {:.0} s. The machine is shared with other engineers' builds: a 1-minute load above {} means other processes took turns on the cores (see the involuntary switches), which lowers the rate more than the CPU per message.\n",
        o.seconds, o.reps, sh("git rev-parse --short HEAD"), started.elapsed().as_secs_f64(), sh("nproc"))?;
    writeln!(md, "| users | msg bytes | ops per commit (messages + acks) | messages/s committed | store CPU µs/msg | commits/s | run_batch CPU / wall | KiB written per msg | thread user / sys µs/msg | voluntary / involuntary switches per commit | WAL / db MiB at end | load (1 min) at start |")?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|")?;
    for (p, ss) in points.iter().zip(&samples) {
        let col = |f: &dyn Fn(&Sample) -> f64| ss.iter().map(f).collect::<Vec<f64>>();
        let per_msg = |f: &dyn Fn(&Sample) -> f64| col(&|s| f(s) * 1e6 / s.msgs as f64);
        let per_commit = |f: &dyn Fn(&Sample) -> f64| col(&|s| f(s) / s.commits as f64);
        let mib = |v: u64| v as f64 / (1024.0 * 1024.0);
        writeln!(
            md,
            "| {} | {} | {} | {} | **{}** | {} | {} | {:.1} | {} / {} | {} / {} | {:.1} / {:.1} | {} |",
            p.users,
            p.data_bytes.max(bench::traffic::PAYLOAD_LEN),
            p.batch,
            mm(&col(&|s| s.msgs as f64 / s.wall), 0),
            mm(&per_msg(&|s| s.batch_cpu), 1),
            mm(&col(&|s| s.commits as f64 / s.wall), 0),
            mm(&col(&|s| s.batch_cpu / s.batch_wall), 2),
            median(&col(&|s| s.written as f64 / 1024.0 / s.msgs as f64)),
            median(&per_msg(&|s| s.utime)).round(),
            median(&per_msg(&|s| s.stime)).round(),
            mm(&per_commit(&|s| s.nvcsw as f64), 1),
            mm(&per_commit(&|s| s.nivcsw as f64), 1),
            median(&col(&|s| mib(s.wal))),
            median(&col(&|s| mib(s.db))),
            mm(&col(&|s| s.load), 2),
        )?;
    }
    writeln!(md, "\nMedians with (min..max) over the repetitions. Thread user / sys µs/msg come from getrusage, whose user/system split is estimated from scheduler ticks: their sum, not each part, is the exact figure. The WAL file is reused, not shortened, after a checkpoint: its size is the most it held; SQLite checkpoints it into the database inside a commit once it passes `wal_autocheckpoint`=10000 pages (~40 MiB), and that cost is in the figures of the windows that reach it.\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_run_stores_and_acks_every_message() {
        let prm = Params {
            users: vec![10],
            batches: vec![8],
            data_bytes: vec![100],
            warmup: 0.05,
            ack_lag: 2,
            dir: std::env::temp_dir(),
        };
        let p = Point {
            users: 10,
            data_bytes: 100,
            batch: 8,
        };
        let s = run(p, &prm, 0.2, 1, false).expect("run");
        assert!(s.commits > 0 && s.msgs == 4 * s.commits && s.ops == 8 * s.commits);
        assert!(s.batch_cpu > 0.0 && s.batch_wall > 0.0);
        assert!(s.db > 0);
    }

    #[test]
    fn sections_5_and_5a_are_rewritten_without_losing_each_other() {
        let doc = "# t\n\n## 5. IM routing\n\nold five\n\n## 6. Next\n\nsix\n";
        let with_a =
            splice_subsection(doc, PARENT, HEADING, &format!("{HEADING}\n\nstore one\n\n"));
        assert_eq!(
            with_a,
            format!("# t\n\n## 5. IM routing\n\nold five\n\n{HEADING}\n\nstore one\n\n## 6. Next\n\nsix\n")
        );
        let again = splice_subsection(
            &with_a,
            PARENT,
            HEADING,
            &format!("{HEADING}\n\nstore two\n\n"),
        );
        assert!(again.contains("store two") && !again.contains("store one"));
        let five = im::splice_im(&again, "## 5. IM routing\n\nnew five\n\n");
        assert_eq!(
            five,
            format!("# t\n\n## 5. IM routing\n\nnew five\n\n{HEADING}\n\nstore two\n\n## 6. Next\n\nsix\n")
        );
        let appended = splice_subsection("# t\n", PARENT, HEADING, "x\n");
        assert_eq!(appended, "# t\n\nx\n");
    }
}
