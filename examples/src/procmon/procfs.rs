//! Reading one process's state from `/proc`: the files `procmon` samples and
//! parsers for each, kept apart from the reading so they are tested on fixed
//! text.
//!
//! | file | what it gives |
//! |---|---|
//! | `/proc/PID/stat` | name, state, CPU ticks (user, system), threads, start time, virtual size, resident pages, page faults |
//! | `/proc/PID/status` | `Vm*` memory lines in KiB, context switches |
//! | `/proc/PID/io` | bytes and system calls read and written (owner or root only) |
//! | `/proc/PID/fd/` | one entry per open descriptor (owner or root only) |
//! | `/proc/PID/limits` | the open-files limit |
//!
//! `stat` and `status` must be readable - if they are not, the process is
//! gone - while the rest are optional: for another user's process they are
//! `None`, not an error. All are small files the kernel generates on read;
//! a sample costs a few system calls and a few microseconds, plus one per
//! open descriptor for the `fd` count.
//!
//! ```
//! use examples::procmon::procfs::parse_stat;
//! let stat = parse_stat("42 (my (odd) name) S 1 42 42 0 -1 4194560 500 0 2 0 \
//!     150 30 0 0 20 0 3 0 1000 10485760 256 18446744073709551615").unwrap();
//! assert_eq!(stat.comm, "my (odd) name");
//! assert_eq!((stat.utime_ticks, stat.stime_ticks, stat.threads), (150, 30, 3));
//! ```

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A `/proc` file whose text is not what the kernel writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

impl From<ParseError> for io::Error {
    fn from(e: ParseError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// The fields of `/proc/PID/stat` that procmon shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stat {
    /// The executable name (`comm`), at most 15 bytes, any characters.
    pub comm: String,
    /// `R` running, `S` sleeping, `D` disk wait, `Z` zombie, ...
    pub state: char,
    /// Parent process id.
    pub ppid: i64,
    /// Minor and major page faults.
    pub minor_faults: u64,
    /// Major page faults (needed disk).
    pub major_faults: u64,
    /// CPU time in user mode, in clock ticks.
    pub utime_ticks: u64,
    /// CPU time in kernel mode, in clock ticks.
    pub stime_ticks: u64,
    /// Nice value.
    pub nice: i64,
    /// Number of threads.
    pub threads: u64,
    /// Start time in clock ticks after boot.
    pub start_ticks: u64,
    /// Virtual memory size in bytes.
    pub vsize_bytes: u64,
    /// Resident set size in pages.
    pub rss_pages: u64,
}

/// Parses `/proc/PID/stat`. The name is in parentheses and may itself hold
/// spaces and parentheses, so the fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Result<Stat, ParseError> {
    let open = text.find('(').ok_or_else(|| bad("stat", "no '('"))?;
    let close = text.rfind(')').ok_or_else(|| bad("stat", "no ')'"))?;
    if close < open {
        return Err(bad("stat", "')' before '('"));
    }
    let comm = text[open + 1..close].to_string();
    // fields[0] is field 3 of proc(5), `state`.
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let field = |n: usize| -> Result<&str, ParseError> {
        fields
            .get(n - 3)
            .copied()
            .ok_or_else(|| bad("stat", &format!("field {n} missing")))
    };
    let num = |n: usize| -> Result<u64, ParseError> {
        field(n)?
            .parse()
            .map_err(|_| bad("stat", &format!("field {n} not a number")))
    };
    let signed = |n: usize| -> Result<i64, ParseError> {
        field(n)?
            .parse()
            .map_err(|_| bad("stat", &format!("field {n} not a number")))
    };
    Ok(Stat {
        comm,
        state: field(3)?.chars().next().unwrap_or('?'),
        ppid: signed(4)?,
        minor_faults: num(10)?,
        major_faults: num(12)?,
        utime_ticks: num(14)?,
        stime_ticks: num(15)?,
        nice: signed(19)?,
        threads: num(20)?,
        start_ticks: num(22)?,
        vsize_bytes: num(23)?,
        // Signed in the kernel's format, never negative in practice.
        rss_pages: u64::try_from(signed(24)?).unwrap_or(0),
    })
}

/// The lines of `/proc/PID/status` that procmon shows. Memory is in KiB;
/// kernel threads have no `Vm*` lines, hence the options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// Peak virtual memory size.
    pub vm_peak_kib: Option<u64>,
    /// Virtual memory size.
    pub vm_size_kib: Option<u64>,
    /// Peak resident set size ("high water mark").
    pub vm_hwm_kib: Option<u64>,
    /// Resident set size.
    pub vm_rss_kib: Option<u64>,
    /// Data and heap segment size.
    pub vm_data_kib: Option<u64>,
    /// Swapped-out memory.
    pub vm_swap_kib: Option<u64>,
    /// Context switches the process asked for (it blocked).
    pub voluntary_switches: Option<u64>,
    /// Context switches forced on it (its time slice ran out).
    pub involuntary_switches: Option<u64>,
}

/// Parses `/proc/PID/status` (`Key:\tvalue [kB]` lines; unknown keys and
/// unparsable values are skipped, since the kernel adds keys over time).
pub fn parse_status(text: &str) -> Status {
    let mut s = Status::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let number = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok());
        let slot = match key {
            "VmPeak" => &mut s.vm_peak_kib,
            "VmSize" => &mut s.vm_size_kib,
            "VmHWM" => &mut s.vm_hwm_kib,
            "VmRSS" => &mut s.vm_rss_kib,
            "VmData" => &mut s.vm_data_kib,
            "VmSwap" => &mut s.vm_swap_kib,
            "voluntary_ctxt_switches" => &mut s.voluntary_switches,
            "nonvoluntary_ctxt_switches" => &mut s.involuntary_switches,
            _ => continue,
        };
        *slot = number;
    }
    s
}

/// `/proc/PID/io`: I/O counters since the process started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IoCounters {
    /// Bytes passed to read-like system calls (files, sockets, pipes).
    pub rchar: u64,
    /// Bytes passed to write-like system calls.
    pub wchar: u64,
    /// Read system calls.
    pub syscr: u64,
    /// Write system calls.
    pub syscw: u64,
    /// Bytes fetched from storage.
    pub read_bytes: u64,
    /// Bytes sent to storage.
    pub write_bytes: u64,
}

/// Parses `/proc/PID/io` (`key: value` lines).
pub fn parse_io(text: &str) -> IoCounters {
    let mut io = IoCounters::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let Ok(value) = value.trim().parse::<u64>() else {
            continue;
        };
        match key {
            "rchar" => io.rchar = value,
            "wchar" => io.wchar = value,
            "syscr" => io.syscr = value,
            "syscw" => io.syscw = value,
            "read_bytes" => io.read_bytes = value,
            "write_bytes" => io.write_bytes = value,
            _ => {}
        }
    }
    io
}

/// The soft open-files limit from `/proc/PID/limits`; `None` if unlimited
/// or absent.
pub fn parse_max_open_files(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Seconds since boot, the first number of `/proc/uptime`.
pub fn parse_uptime(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// Boot time in seconds since the Unix epoch, the `btime` line of `/proc/stat`.
pub fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

fn bad(file: &str, why: &str) -> ParseError {
    ParseError(format!("/proc/PID/{file}: {why}"))
}

/// What the kernel says about one process at one moment.
#[derive(Debug, Clone, Default)]
pub struct ProcSample {
    /// From `stat`.
    pub stat: Stat,
    /// From `status`.
    pub status: Status,
    /// From `io`, if readable.
    pub io: Option<IoCounters>,
    /// Entries of `fd/`, if readable.
    pub open_fds: Option<u64>,
    /// The soft limit on open files, if known and finite.
    pub max_fds: Option<u64>,
    /// Seconds since boot when sampled (from `/proc/uptime`).
    pub uptime_secs: Option<f64>,
}

/// Facts about the machine, read once: they turn ticks and pages into
/// seconds and bytes.
#[derive(Debug, Clone)]
pub struct System {
    /// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
    pub clock_ticks: u64,
    /// Bytes per page.
    pub page_size: u64,
    /// Boot time, seconds since the Unix epoch.
    pub boot_time: Option<u64>,
    /// The host's name.
    pub hostname: String,
}

impl System {
    /// Reads them from `sysconf` and `/proc`.
    pub fn read() -> System {
        // SAFETY: sysconf only reads a configuration value; any name is
        // allowed and an unknown one returns -1.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        // SAFETY: as above.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        System {
            clock_ticks: u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100),
            page_size: u64::try_from(page).ok().filter(|&p| p > 0).unwrap_or(4096),
            boot_time: std::fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|t| parse_boot_time(&t)),
            hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default(),
        }
    }
}

/// Reads the files of one process.
#[derive(Debug, Clone)]
pub struct ProcReader {
    pid: u32,
    dir: PathBuf,
}

impl ProcReader {
    /// A reader of `/proc/<pid>`.
    pub fn new(pid: u32) -> ProcReader {
        ProcReader {
            pid,
            dir: PathBuf::from(format!("/proc/{pid}")),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The command line, arguments separated by spaces (empty for kernel
    /// threads and zombies).
    pub fn cmdline(&self) -> io::Result<String> {
        let raw = std::fs::read(self.dir.join("cmdline"))?;
        let args: Vec<String> = raw
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        Ok(args.join(" "))
    }

    /// Reads everything; an error means the process is gone (or `/proc`
    /// is not mounted).
    pub fn sample(&self) -> io::Result<ProcSample> {
        let stat = parse_stat(&std::fs::read_to_string(self.dir.join("stat"))?)?;
        let status = parse_status(&std::fs::read_to_string(self.dir.join("status"))?);
        let optional = |name: &str| std::fs::read_to_string(self.dir.join(name)).ok();
        Ok(ProcSample {
            stat,
            status,
            io: optional("io").map(|t| parse_io(&t)),
            open_fds: std::fs::read_dir(self.dir.join("fd"))
                .ok()
                .map(|dir| dir.count() as u64),
            max_fds: optional("limits").and_then(|t| parse_max_open_files(&t)),
            uptime_secs: std::fs::read_to_string("/proc/uptime")
                .ok()
                .and_then(|t| parse_uptime(&t)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "1234 (cat) R 1000 1234 1000 34816 1234 4194304 90 0 1 0 \
        7 3 0 0 20 0 1 0 5000 5685248 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";

    #[test]
    fn stat_fields_by_position() {
        let s = parse_stat(STAT).unwrap();
        assert_eq!(s.comm, "cat");
        assert_eq!(s.state, 'R');
        assert_eq!(s.ppid, 1000);
        assert_eq!((s.minor_faults, s.major_faults), (90, 1));
        assert_eq!((s.utime_ticks, s.stime_ticks), (7, 3));
        assert_eq!((s.nice, s.threads, s.start_ticks), (0, 1, 5000));
        assert_eq!((s.vsize_bytes, s.rss_pages), (5685248, 200));
    }

    #[test]
    fn stat_rejects_truncated_and_garbage_text() {
        assert!(parse_stat("").is_err());
        assert!(parse_stat("1 (x) R 1 2").is_err());
        assert!(parse_stat(") 1 (").is_err());
        let bad = STAT.replace(" 7 3 ", " seven 3 ");
        assert!(parse_stat(&bad).is_err());
    }

    #[test]
    fn status_picks_memory_and_switches() {
        let text = "Name:\tcat\nVmPeak:\t    5552 kB\nVmSize:\t    5552 kB\nVmHWM:\t     900 kB\n\
                    VmRSS:\t     896 kB\nVmData:\t     360 kB\nThreads:\t1\n\
                    voluntary_ctxt_switches:\t2\nnonvoluntary_ctxt_switches:\t0\n";
        let s = parse_status(text);
        assert_eq!(s.vm_rss_kib, Some(896));
        assert_eq!(s.vm_peak_kib, Some(5552));
        assert_eq!(s.vm_swap_kib, None);
        assert_eq!(
            (s.voluntary_switches, s.involuntary_switches),
            (Some(2), Some(0))
        );
        assert_eq!(parse_status("garbage\n:\nVmRSS: lots\n"), Status::default());
    }

    #[test]
    fn io_limits_uptime_and_boot_time() {
        let io = parse_io("rchar: 10\nwchar: 20\nsyscr: 1\nsyscw: 2\nread_bytes: 4096\nwrite_bytes: 0\ncancelled_write_bytes: 0\n");
        assert_eq!((io.rchar, io.wchar, io.read_bytes), (10, 20, 4096));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 1048576              files\n";
        assert_eq!(parse_max_open_files(limits), Some(1024));
        assert_eq!(
            parse_max_open_files(
                "Max open files            unlimited            unlimited            files\n"
            ),
            None
        );
        assert_eq!(parse_uptime("350735.47 234388.90\n"), Some(350735.47));
        assert_eq!(
            parse_boot_time("cpu 1 2\nbtime 1700000000\n"),
            Some(1700000000)
        );
    }

    #[test]
    fn reads_this_process() {
        let reader = ProcReader::new(std::process::id());
        let sample = reader.sample().unwrap();
        assert!(sample.stat.threads >= 1);
        assert!(sample.status.vm_rss_kib.unwrap_or(0) > 0);
        assert!(sample.open_fds.unwrap_or(0) >= 3);
        assert!(reader.cmdline().unwrap().contains("examples"));
        let system = System::read();
        assert!(system.clock_ticks > 0 && system.page_size >= 4096);
    }

    #[test]
    fn a_missing_process_is_an_error() {
        // Above the largest pid_max Linux allows (2^22).
        assert!(ProcReader::new(4_194_305).sample().is_err());
    }
}
