//! `cluster`: start a Reg or an Exe, generate data, run the jobs, list
//! what Reg knows. See the crate docs and the README's walk-through.
//!
//! ```text
//! cluster reg --listen 127.0.0.1:7600
//! cluster exe --reg 127.0.0.1:7600 --listen 127.0.0.1:7601 --data /tmp/exe1
//! cluster nqueens --reg 127.0.0.1:7600 --n 12
//! cluster list --reg 127.0.0.1:7600
//! ```
//!
//! Nodes print `LISTEN <role> <addr>` once listening; jobs print
//! `RESULT ...` lines (and `WORK <exe> <tasks>` per executor) on stdout,
//! and a progress bar on a terminal's stderr.

use clap::{Parser, Subcommand};
use cluster::jobs::{self, datagen, Work};
use cluster::proto::{Kind, ListReply};
use cluster::{Exe, ExeOptions, NodeConfig, Publisher, Reg};
use indicatif::{ProgressBar, ProgressStyle};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Reg/Exe cluster on msgcenter: N-queens, distributed median, top-k")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// This node's listen address (jobs and list listen too: executors
    /// connect back to them).
    #[arg(long, global = true, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// A setting as key=value (repeatable): lease_ms, exe_heartbeat_ms,
    /// republish_ms, grace_ms, max_tasks, max_shuffle_bytes,
    /// max_task_bytes, file_chunk, file_window, file_inactivity_ms,
    /// file_attempts, max_file_senders, or any msgcenter key
    /// (retry_interval_ms, dead_after_ms, ...).
    #[arg(long = "set", global = true)]
    settings: Vec<String>,
    /// Jobs: print `PROGRESS <done> <total> <note>` lines on stdout
    /// instead of drawing a progress bar (for scripts and tests).
    #[arg(long, global = true)]
    progress_lines: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the registry until killed.
    Reg,
    /// Run an executor until killed.
    Exe {
        /// Reg's address.
        #[arg(long)]
        reg: SocketAddr,
        /// Tasks run at once.
        #[arg(long, default_value_t = 2)]
        capacity: u32,
        /// Data directory (its files are announced to Reg).
        #[arg(long)]
        data: PathBuf,
    },
    /// Write a file of little-endian 64-bit integers (for `median`).
    GenData {
        /// The file (put it in an executor's data directory).
        #[arg(long)]
        out: PathBuf,
        /// How many integers.
        #[arg(long, default_value_t = 10_000_000)]
        count: u64,
        /// Generator seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Write a file of words, one per line (for `topk`).
    GenWords {
        /// The file.
        #[arg(long)]
        out: PathBuf,
        /// How many words.
        #[arg(long, default_value_t = 1_000_000)]
        count: u64,
        /// Distinct words possible.
        #[arg(long, default_value_t = 50_000)]
        vocab: u64,
        /// Generator seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Count the solutions of N-queens across the executors.
    Nqueens {
        /// Reg's address.
        #[arg(long)]
        reg: SocketAddr,
        /// Board size.
        #[arg(long, default_value_t = 12)]
        n: u32,
        /// Rows placed per task prefix (tasks: about N^depth).
        #[arg(long, default_value_t = 2)]
        depth: u32,
        /// Give up after this long without any progress.
        #[arg(long, default_value_t = 120)]
        stall_s: u64,
    },
    /// The median of the integer files the executors hold.
    Median {
        /// Reg's address.
        #[arg(long)]
        reg: SocketAddr,
        /// Data files are those whose name starts with this.
        #[arg(long, default_value = "median-")]
        prefix: String,
        /// Sub-ranges counted per round (2 = binary search).
        #[arg(long, default_value_t = 64)]
        buckets: u32,
        /// Give up after this long without any progress.
        #[arg(long, default_value_t = 120)]
        stall_s: u64,
    },
    /// The k most frequent words of the word files the executors hold.
    Topk {
        /// Reg's address.
        #[arg(long)]
        reg: SocketAddr,
        /// Word files are those whose name starts with this.
        #[arg(long, default_value = "words-")]
        prefix: String,
        /// How many words.
        #[arg(long, default_value_t = 10)]
        k: u32,
        /// Reducers (default: one per executor).
        #[arg(long)]
        shards: Option<u32>,
        /// Give up after this long without any progress.
        #[arg(long, default_value_t = 120)]
        stall_s: u64,
    },
    /// Copy a file to an executor that lacks it (it pulls the file from one
    /// that holds it: chunked, hashed, resumable).
    Replicate {
        /// Reg's address.
        #[arg(long)]
        reg: SocketAddr,
        /// The file's name.
        #[arg(long)]
        file: String,
        /// Give up after this long without any progress.
        #[arg(long, default_value_t = 600)]
        stall_s: u64,
    },
    /// The same jobs on this machine alone, single-threaded (baselines and
    /// checks): `local nqueens N`, `local median FILE...` (sorts
    /// everything), `local topk K FILE...`.
    Local {
        /// nqueens, median or topk.
        job: String,
        /// N, files, or K followed by files.
        args: Vec<String>,
    },
    /// List Reg's executors and unfinished tasks.
    List {
        /// Reg's address.
        #[arg(long)]
        reg: SocketAddr,
        /// List again every this many seconds, until interrupted (watch
        /// executors come and go and tasks move).
        #[arg(long)]
        watch: Option<u64>,
    },
}

fn main() {
    let cli = Cli::parse();
    let is_node = matches!(cli.cmd, Cmd::Reg | Cmd::Exe { .. });
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(if is_node {
        "info"
    } else {
        "warn"
    }))
    .init();
    if let Err(e) = run(cli) {
        eprintln!("cluster: {e}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let lines = cli.progress_lines;
    let mut cfg = NodeConfig::default();
    cfg.center.listen = cli.listen;
    for s in &cli.settings {
        cfg.set_pair(s)?;
    }
    match cli.cmd {
        Cmd::Reg => {
            let reg = Reg::start(cfg)?;
            println!("LISTEN reg {}", reg.addr());
            park()
        }
        Cmd::Exe {
            reg,
            capacity,
            data,
        } => {
            let exe = Exe::start(
                cfg,
                ExeOptions {
                    reg,
                    capacity: capacity.max(1),
                    data_dir: data,
                },
            )?;
            println!("LISTEN exe {}", exe.addr());
            park()
        }
        Cmd::GenData { out, count, seed } => {
            datagen::gen_ints(&out, count, seed).map_err(|e| format!("{}: {e}", out.display()))
        }
        Cmd::GenWords {
            out,
            count,
            vocab,
            seed,
        } => datagen::gen_words(&out, count, vocab.max(1), seed)
            .map_err(|e| format!("{}: {e}", out.display())),
        Cmd::Nqueens {
            reg,
            n,
            depth,
            stall_s,
        } => job(cfg, reg, lines, stall_s, |p, stall, progress, work| {
            let count = jobs::nqueens::run(p, n, depth, stall, progress, work)?;
            Ok(vec![format!("RESULT nqueens {n} {count}")])
        }),
        Cmd::Median {
            reg,
            prefix,
            buckets,
            stall_s,
        } => job(cfg, reg, lines, stall_s, |p, stall, progress, work| {
            let files = files_with(p, &prefix)?;
            let a = jobs::median::run(p, &files, buckets, stall, progress, work)?;
            Ok(vec![format!(
                "RESULT median {} of {} values, {} files, {} rounds,",
                a.median,
                a.count,
                files.len(),
                a.rounds
            )])
        }),
        Cmd::Topk {
            reg,
            prefix,
            k,
            shards,
            stall_s,
        } => job(cfg, reg, lines, stall_s, |p, stall, progress, work| {
            let files = files_with(p, &prefix)?;
            let exes = p
                .list(Duration::from_secs(5))
                .map_or(1, |l| l.exes.len() as u32);
            let shards = shards.unwrap_or(exes).max(1);
            let top = jobs::topk::run(p, &files, shards, k, stall, progress, work)?;
            let mut out = vec![format!(
                "RESULT topk {} words from {} files,",
                top.len(),
                files.len()
            )];
            out.extend(top.iter().map(|(w, n)| format!("TOP {w} {n}")));
            Ok(out)
        }),
        Cmd::Replicate { reg, file, stall_s } => {
            job(cfg, reg, lines, stall_s, |p, stall, progress, work| {
                let input = vec![(file.clone(), file.clone().into_bytes())];
                let r = jobs::run_all(p, Kind::PullFile, input, stall, progress, work)?;
                Ok(vec![format!(
                    "RESULT replicate {}",
                    String::from_utf8_lossy(&r[0])
                )])
            })
        }
        Cmd::Local { job, args } => local(&job, &args),
        Cmd::List { reg, watch } => {
            let p = Publisher::start(cfg, reg)?;
            loop {
                match p.list(Duration::from_secs(5)) {
                    Some(l) => print_list(&l),
                    None if watch.is_none() => return Err(format!("Reg {reg} did not answer")),
                    None => println!("Reg {reg} did not answer"),
                }
                let Some(every) = watch else {
                    return Ok(());
                };
                std::thread::sleep(Duration::from_secs(every.max(1)));
                println!("--");
            }
        }
    }
}

fn local(job: &str, args: &[String]) -> Result<(), String> {
    let t = Instant::now();
    let num = |s: Option<&String>| -> Result<u64, String> {
        s.ok_or("missing number")?
            .parse()
            .map_err(|e| format!("{e}"))
    };
    match job {
        "nqueens" => {
            let n = num(args.first())? as u32;
            if n == 0 || n > jobs::nqueens::MAX_N {
                return Err(format!("N must be between 1 and {}", jobs::nqueens::MAX_N));
            }
            let c = jobs::nqueens::count_from(n, &[]);
            println!("RESULT nqueens {n} {c} {:.3}s", t.elapsed().as_secs_f64());
        }
        "median" => {
            let mut all = Vec::new();
            for f in args {
                let b = std::fs::read(f).map_err(|e| format!("{f}: {e}"))?;
                all.extend(
                    b.chunks_exact(8)
                        .map(|c| i64::from_le_bytes(c.try_into().unwrap())),
                );
            }
            if all.is_empty() {
                return Err("no values".into());
            }
            all.sort_unstable();
            println!(
                "RESULT median {} of {} values, {:.3}s",
                all[(all.len() - 1) / 2],
                all.len(),
                t.elapsed().as_secs_f64()
            );
        }
        "topk" => {
            let k = num(args.first())? as usize;
            let mut counts = std::collections::HashMap::new();
            for f in &args[1..] {
                for (w, n) in jobs::topk::count_words(std::path::Path::new(f))
                    .map_err(|e| format!("{f}: {e}"))?
                {
                    *counts.entry(w).or_insert(0u64) += n;
                }
            }
            let top = jobs::topk::top(counts.into_iter().collect(), k);
            println!(
                "RESULT topk {} words, {:.3}s",
                top.len(),
                t.elapsed().as_secs_f64()
            );
            for (w, n) in top {
                println!("TOP {w} {n}");
            }
        }
        _ => return Err(format!("unknown local job {job:?} (nqueens, median, topk)")),
    }
    Ok(())
}

/// Runs a job as a publisher with a progress bar (or lines); prints the
/// job's lines, the first with the elapsed time appended, then the work
/// per executor.
fn job(
    cfg: NodeConfig,
    reg: SocketAddr,
    lines: bool,
    stall_s: u64,
    run: impl FnOnce(
        &Publisher,
        Duration,
        &dyn jobs::Progress,
        &mut Work,
    ) -> Result<Vec<String>, String>,
) -> Result<(), String> {
    let p = Publisher::start(cfg, reg)?;
    let (bar, progress) = bar(lines);
    let mut work = Work::default();
    let t = Instant::now();
    let out = run(&p, Duration::from_secs(stall_s), &progress, &mut work)?;
    bar.finish_and_clear();
    for (i, l) in out.iter().enumerate() {
        if i == 0 {
            println!("{l} {:.3}s", t.elapsed().as_secs_f64());
        } else {
            println!("{l}");
        }
    }
    print_work(&work);
    Ok(())
}

fn park() -> Result<(), String> {
    loop {
        std::thread::park();
    }
}

/// Distinct file names starting with `prefix` over all executors.
fn files_with(p: &Publisher, prefix: &str) -> Result<Vec<String>, String> {
    let l = p
        .list(Duration::from_secs(5))
        .ok_or("Reg did not answer the list request")?;
    let mut files: Vec<String> = l
        .exes
        .iter()
        .flat_map(|e| e.files.iter())
        .filter(|f| f.name.starts_with(prefix))
        .map(|f| f.name.clone())
        .collect();
    files.sort();
    files.dedup();
    if files.is_empty() {
        return Err(format!("no executor holds a file named {prefix}*"));
    }
    Ok(files)
}

fn bar(lines: bool) -> (ProgressBar, impl Fn(u64, u64, &str)) {
    let bar = if lines {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let b = bar.clone();
    (bar, move |done, total, note: &str| {
        if lines {
            println!("PROGRESS {done} {total} {note}");
        }
        b.set_length(total);
        b.set_position(done);
        b.set_message(note.to_string());
    })
}

fn print_work(w: &Work) {
    let mut rows: Vec<_> = w.tasks.iter().collect();
    rows.sort();
    for (exe, n) in rows {
        println!("WORK {exe} {n}");
    }
    println!(
        "REPEATS reassigned={} duplicate_results={}",
        w.reassigned, w.duplicates
    );
}

fn print_list(l: &ListReply) {
    println!("{} executors", l.exes.len());
    for e in &l.exes {
        let files: Vec<String> = e
            .files
            .iter()
            .map(|f| format!("{}({}B)", f.name, f.size))
            .collect();
        println!(
            "EXE {} capacity={} tasks={} lease_left={}ms files=[{}]",
            e.addr,
            e.capacity,
            e.running,
            e.lease_left_ms,
            files.join(" ")
        );
    }
    println!("{} unfinished tasks", l.tasks.len());
    println!("{} running tasks learned from heartbeats", l.rebuilt);
    for t in &l.tasks {
        println!(
            "TASK {:x} {} file={:?} publisher={} exe={} attempts={}",
            t.spec.id,
            t.spec.kind.name(),
            t.spec.file,
            t.publisher,
            t.exe.map_or("-".to_string(), |a| a.to_string()),
            t.attempts
        );
    }
}
