//! Shared pieces of the benchmark binaries: a counting global allocator, a
//! stats thread that publishes its count, the PDU-echo frame layout, CPU
//! readings and core pinning, and the IM traffic shape ([`traffic`]).
//!
//! Everything here is benchmark-only; nothing in netlib, imconn or pdu
//! depends on this crate.
#![warn(missing_docs)]

pub mod traffic;

use std::time::Duration;

/// The workspace's counting global allocator (see the `alloc-count` crate);
/// each server binary installs it and publishes [`alloc_count::total_allocs`].
pub use alloc_count::CountingAlloc;

/// Writes the allocation count to `path` every 50 ms from a background
/// thread (the same in every server, so its cost cancels out). The driver
/// reads it before and after a run.
pub fn publish_allocs(path: Option<String>) {
    let Some(path) = path else { return };
    std::thread::spawn(move || {
        let tmp = format!("{path}.tmp");
        loop {
            let n = alloc_count::total_allocs();
            if std::fs::write(&tmp, n.to_string()).is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
}

/// The command line every benchmark server takes:
/// `SERVER [ADDR] [STATS] [--threads N]`.
#[derive(clap::Parser)]
pub struct ServerArgs {
    /// Address to listen on
    #[arg(default_value = "127.0.0.1:2008")]
    pub addr: std::net::SocketAddr,
    /// File to keep the process's allocation count in (updated every 50 ms)
    pub stats: Option<String>,
    /// Event loops (netlib: a loop group sharing the port by SO_REUSEPORT)
    /// or runtime workers (tokio: the multi-thread runtime); 1 = one loop
    /// on the main thread (tokio: the current-thread runtime)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: u16,
}

/// Parses [`ServerArgs`]; `--help` describes them, anything else is an
/// error (exit 2).
pub fn server_args() -> ServerArgs {
    clap::Parser::parse()
}

/// Starts a benchmark server from its [`ServerArgs`]: raises the
/// descriptor limit, publishes allocations, then returns the arguments.
pub fn start_server() -> ServerArgs {
    let args = server_args();
    raise_nofile(65536);
    publish_allocs(args.stats.clone());
    args
}

/// The tokio runtime of a comparator server: the current-thread runtime
/// for one thread (the single-loop comparator), the multi-thread runtime
/// with `threads` workers otherwise.
pub fn tokio_runtime(threads: u16) -> std::io::Result<tokio::runtime::Runtime> {
    if threads > 1 {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(threads))
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
}

/// Runs a netlib server until killed: `register` sets up the server on a
/// loop and returns its handler, which serves a TCP_NODELAY listener on
/// `args.addr` - on one loop on this thread, or with `--threads N` on a
/// loop group of N loops sharing the port.
pub fn serve_netlib(
    args: &ServerArgs,
    register: fn(&mut netlib::Context) -> netlib::HandlerRef,
) -> Result<(), Box<dyn std::error::Error>> {
    let opts = netlib::ListenOptions {
        nodelay: true,
        ..netlib::ListenOptions::default()
    };
    if args.threads > 1 {
        let group = imconn::ServerGroup::start(
            usize::from(args.threads),
            netlib::Config::default(),
            args.addr,
            &opts,
            move |ctx, _| register(ctx),
        )?;
        group.join()?;
        return Ok(());
    }
    let mut dispatch = netlib::EventDispatch::new()?;
    let ctx = dispatch.context();
    let server = register(ctx);
    ctx.listen_with(args.addr, &opts, server)?;
    dispatch.run()?;
    Ok(())
}

/// Body bytes of a PDU-echo frame.
pub const BODY_LEN: usize = 64;
/// Whole TeamTalk frame: 16-byte header + body.
pub const FRAME_LEN: usize = pdu::HEADER_LEN + BODY_LEN;

/// Raises RLIMIT_NOFILE to `want` (soft and, when permitted, hard).
pub fn raise_nofile(want: u64) -> u64 {
    // SAFETY: getrlimit/setrlimit only read or write the local `rlimit`
    // structs whose valid pointers we pass.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        if r.rlim_cur >= want {
            return r.rlim_cur;
        }
        let mut n = libc::rlimit {
            rlim_cur: want,
            rlim_max: want.max(r.rlim_max),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &n) != 0 {
            n.rlim_cur = r.rlim_max;
            n.rlim_max = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &n);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur
    }
}

/// CPU time (utime + stime) process `pid` has used, in clock ticks
/// ([`clk_tck`] per second), from `/proc/PID/stat`.
pub fn cpu_ticks(pid: u32) -> std::io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "bad /proc stat");
    // Fields after the command name, which may hold spaces: state is 0,
    // utime 11 and stime 12.
    let rest = stat
        .get(stat.rfind(')').ok_or_else(bad)? + 2..)
        .ok_or_else(bad)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).ok_or_else(bad);
    Ok(tick(11)? + tick(12)?)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
pub fn clk_tck() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

/// Pins the calling thread to CPU `core` (`sched_setaffinity`); threads and
/// processes it starts afterwards inherit the mask.
pub fn pin_self(core: usize) {
    // SAFETY: `cpu_set_t` is plain old data (all-zero is valid); the CPU_*
    // macros and sched_setaffinity touch only the local set, whose size we pass.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// `getrusage(who)`: `libc::RUSAGE_SELF` (the process) or
/// `libc::RUSAGE_THREAD` (the calling thread).
pub fn rusage(who: libc::c_int) -> libc::rusage {
    // SAFETY: `rusage` is plain old data, so all-zero is a valid value, and
    // getrusage writes only into the local struct we point it at.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut ru);
        ru
    }
}

/// A `timeval` in seconds.
pub fn secs(v: libc::timeval) -> f64 {
    v.tv_sec as f64 + v.tv_usec as f64 / 1e6
}

/// CPU time the calling thread has used, in seconds
/// (`CLOCK_THREAD_CPUTIME_ID`: nanosecond resolution, unlike rusage's ticks).
pub fn thread_cpu() -> f64 {
    // SAFETY: clock_gettime writes only into the local timespec we point it at.
    unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
        ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
    }
}

/// The median of `v` (NaN for none).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The smallest of `v`.
pub fn min(v: &[f64]) -> f64 {
    v.iter().cloned().fold(f64::INFINITY, f64::min)
}

/// The largest of `v`.
pub fn max(v: &[f64]) -> f64 {
    v.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
}

/// `median (min..max)` with `prec` decimals.
pub fn mm(v: &[f64], prec: usize) -> String {
    format!(
        "{:.p$} ({:.p$}..{:.p$})",
        median(v),
        min(v),
        max(v),
        p = prec
    )
}

/// What `sh -c cmd` printed, trimmed (empty if it could not run): machine
/// facts for the reports.
pub fn sh(cmd: &str) -> String {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The machine's CPU time counters of `/proc/stat` at one moment, to tell
/// how much of a run's CPU time the hypervisor gave to other machines
/// (steal): on a shared virtual machine that, more than the load average,
/// says whether a run's rates are comparable with another run's.
#[derive(Clone, Copy, Debug)]
pub struct CpuTimes {
    /// Every tick of every core so far (user, nice, system, idle, iowait,
    /// irq, softirq, steal).
    pub total: u64,
    /// Ticks stolen: the virtual cores were ready to run and did not.
    pub steal: u64,
}

impl CpuTimes {
    /// The counters now (zeros where `/proc/stat` cannot be read).
    pub fn now() -> CpuTimes {
        let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let fields: Vec<u64> = text
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .skip(1)
            .take(8)
            .filter_map(|f| f.parse().ok())
            .collect();
        CpuTimes {
            total: fields.iter().sum(),
            steal: fields.get(7).copied().unwrap_or(0),
        }
    }

    /// Percent of the cores' time stolen between `earlier` and `self`.
    pub fn steal_percent_since(&self, earlier: &CpuTimes) -> f64 {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            return 0.0;
        }
        100.0 * self.steal.saturating_sub(earlier.steal) as f64 / total as f64
    }
}
