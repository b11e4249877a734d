//! [`Config`]: what the master needs to know, and [`Args`], the same as
//! command-line flags a server can flatten into its own `clap` parser.
//!
//! Every knob has a default that suits a small server; the crash-loop rule
//! is spelled out on [`Config::crash_window`] and
//! [`Config::crash_loop_limit`].

use std::path::PathBuf;
use std::time::Duration;

/// The master's settings. `Config::default()` runs one worker.
#[derive(Debug, Clone)]
pub struct Config {
    /// Worker processes (at least 1).
    pub workers: usize,
    /// Event loops (threads) in each worker (at least 1).
    pub threads: usize,
    /// How long a worker told to stop (SIGTERM/SIGINT on the master, or an
    /// old worker after a reload) may take to finish its connections before
    /// it closes what is left and exits. Default 30 s.
    pub drain_timeout: Duration,
    /// First delay before a crashed worker is started again; doubles with
    /// every crash that follows an immediate crash. Default 100 ms.
    pub restart_backoff_min: Duration,
    /// Largest delay before a restart. Default 30 s.
    pub restart_backoff_max: Duration,
    /// A worker that dies sooner than this after it started crashed
    /// "immediately": its slot's backoff keeps doubling. One that lived
    /// longer resets the backoff, so a rare crash costs only
    /// [`restart_backoff_min`](Self::restart_backoff_min). Default 2 s.
    pub crash_window: Duration,
    /// After this many immediate crashes in a row, the slot is in a crash
    /// loop: the master logs so, with the last exit status, and waits
    /// [`restart_backoff_max`](Self::restart_backoff_max) before each
    /// further attempt. Default 5.
    pub crash_loop_limit: u32,
    /// How long a reload waits for the new workers to accept before it logs
    /// that it is still waiting (the old workers keep serving meanwhile).
    /// Default 10 s.
    pub ready_timeout: Duration,
    /// Where the master keeps its status (one `key=value` line per
    /// process, rewritten atomically); none by default.
    pub status_file: Option<PathBuf>,
    /// How often the status file is rewritten at most, and how often
    /// workers report their connection counts. Default 250 ms.
    pub status_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            workers: 1,
            threads: 1,
            drain_timeout: Duration::from_secs(30),
            restart_backoff_min: Duration::from_millis(100),
            restart_backoff_max: Duration::from_secs(30),
            crash_window: Duration::from_secs(2),
            crash_loop_limit: 5,
            ready_timeout: Duration::from_secs(10),
            status_file: None,
            status_interval: Duration::from_millis(250),
        }
    }
}

/// A duration in (fractional) seconds: `0.5`, `30`.
pub fn seconds(value: &str) -> Result<Duration, String> {
    let secs: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("`{value}` is not a number of seconds"))?;
    if !(secs.is_finite() && secs >= 0.0) {
        return Err(format!("`{value}` is not a duration (seconds >= 0)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The master's flags, for `#[command(flatten)]` in a server's own
/// parser. `--processes 0` (the default) means "no master": the server
/// runs as one process, as it did before.
///
/// ```
/// use clap::Parser;
/// #[derive(Parser)]
/// struct Cli {
///     #[command(flatten)]
///     prefork: prefork::Args,
/// }
/// let cli = Cli::try_parse_from(["x", "--processes", "4", "--drain-timeout", "5"]).unwrap();
/// let config = cli.prefork.config(1).unwrap();
/// assert_eq!((config.workers, config.drain_timeout.as_secs()), (4, 5));
/// assert!(Cli::try_parse_from(["x"]).unwrap().prefork.config(1).is_none());
/// ```
#[derive(Debug, Clone, clap::Args)]
#[group(id = "prefork")]
#[command(next_help_heading = "Worker processes")]
pub struct Args {
    /// Worker processes under a master that binds, restarts crashed workers
    /// and reloads on SIGHUP (0: run as a single process)
    #[arg(long, default_value_t = 0)]
    pub processes: usize,
    /// Seconds a stopping worker may take to finish its connections
    #[arg(long, default_value = "30", value_parser = seconds)]
    pub drain_timeout: Duration,
    /// Seconds before the first restart of a crashed worker
    #[arg(long, default_value = "0.1", value_parser = seconds)]
    pub restart_backoff_min: Duration,
    /// Largest restart delay, in seconds
    #[arg(long, default_value = "30", value_parser = seconds)]
    pub restart_backoff_max: Duration,
    /// A worker dying within this many seconds of its start crashed immediately
    #[arg(long, default_value = "2", value_parser = seconds)]
    pub crash_window: Duration,
    /// Immediate crashes in a row that make a crash loop (restarts then wait the largest delay)
    #[arg(long, default_value_t = 5)]
    pub crash_loop_limit: u32,
    /// File the master keeps its workers' status in (pid, uptime, restarts, connections)
    #[arg(long, value_name = "PATH")]
    pub status_file: Option<PathBuf>,
}

impl Args {
    /// The master's configuration with `threads` loops per worker, or
    /// `None` when `--processes` was not given (single process).
    pub fn config(&self, threads: usize) -> Option<Config> {
        (self.processes > 0).then(|| Config {
            workers: self.processes,
            threads: threads.max(1),
            drain_timeout: self.drain_timeout,
            restart_backoff_min: self.restart_backoff_min,
            restart_backoff_max: self.restart_backoff_max.max(self.restart_backoff_min),
            crash_window: self.crash_window,
            crash_loop_limit: self.crash_loop_limit.max(1),
            status_file: self.status_file.clone(),
            ..Config::default()
        })
    }
}
