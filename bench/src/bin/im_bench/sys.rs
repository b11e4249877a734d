//! What im_bench asks of the operating system: CPU time used by itself, by
//! the msg_servers and by watched process trees (nats-server, PostgreSQL:
//! the CPU columns of `im_step`). Pinning is [`bench::pin_self`].

pub(crate) fn self_cpu() -> f64 {
    let ru = bench::rusage(libc::RUSAGE_SELF);
    bench::secs(ru.ru_utime) + bench::secs(ru.ru_stime)
}

/// Fields 3.. of `/proc/PID/stat` (after the command name, which may hold
/// spaces), or `None` if the process is gone.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let i = stat.rfind(')')?;
    Some(
        stat.get(i + 2..)?
            .split_whitespace()
            .map(String::from)
            .collect(),
    )
}

/// Field `field` of stat(5) (numbered from 1, as there) out of [`stat_fields`].
fn num(f: &[String], field: usize) -> u64 {
    f.get(field - 3).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// utime + stime of process `pid`, all its threads, in seconds (NaN if it
/// is gone).
pub(crate) fn proc_cpu(pid: u32) -> f64 {
    bench::cpu_ticks(pid).map_or(f64::NAN, |t| t as f64 / bench::clk_tck())
}

/// CPU seconds of process `root` and every process below it: utime + stime
/// of the live ones plus cutime + cstime (children already reaped), so a
/// PostgreSQL backend that exits between two readings is still counted.
pub(crate) fn tree_cpu(root: u32) -> f64 {
    let mut parent = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(f) = stat_fields(pid) {
                parent.push((pid, num(&f, 4) as u32, f));
            }
        }
    }
    let mut inside = vec![root];
    let mut ticks = 0;
    let mut found = false;
    // Parents come before children only by chance: grow the set to a fixpoint.
    loop {
        let before = inside.len();
        for (pid, ppid, _) in &parent {
            if !inside.contains(pid) && inside.contains(ppid) {
                inside.push(*pid);
            }
        }
        if inside.len() == before {
            break;
        }
    }
    for (pid, _, f) in &parent {
        if inside.contains(pid) {
            found |= *pid == root;
            ticks += num(f, 14) + num(f, 15) + num(f, 16) + num(f, 17);
        }
    }
    if found {
        ticks as f64 / bench::clk_tck()
    } else {
        f64::NAN
    }
}
