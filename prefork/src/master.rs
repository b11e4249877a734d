//! The master process: starts the workers, restarts the ones that die,
//! reloads on SIGHUP, drains on SIGTERM/SIGINT, stops on SIGQUIT, and
//! keeps the status file.
//!
//! It is one thread running a `poll` loop over its signal self-pipe and
//! every worker's control channel, so it can `fork` at any moment. It owns
//! the listening sockets for the life of the server: workers come and go,
//! the sockets (and the connections queued on them) stay.
//!
//! - **Crashes.** A worker that exits without being asked to (a panic
//!   exits 101, an abort or kill -9 is a signal) is reaped on SIGCHLD and
//!   its slot restarted after a backoff: [`Config::restart_backoff_min`]
//!   if it had lived longer than [`Config::crash_window`], else doubling
//!   with every immediate crash; after [`Config::crash_loop_limit`]
//!   immediate crashes in a row the master logs a crash loop and waits
//!   [`Config::restart_backoff_max`] between attempts.
//! - **Reload (SIGHUP).** A new generation of workers is started by
//!   executing the binary again; the old workers keep accepting until
//!   every slot of the new generation reported `ready`, then they are told
//!   to drain. The listening sockets are never closed, so a connection
//!   that arrives at any moment is accepted by someone.
//! - **Stop (SIGTERM/SIGINT).** The master closes its copies of the
//!   listening sockets and every worker drains (it accepts what is queued,
//!   then closes its own), so once the last worker stopped accepting new
//!   connections are refused; the master exits when the last worker has. A worker still there after the drain timeout plus a
//!   grace of 2 s is killed. **SIGQUIT** tells every worker to quit now
//!   (connections closed) and kills what is left after 1 s.

use crate::config::Config;
use crate::inherit::Inherited;
use crate::signals::Signals;
use crate::spawn::{self, Spawned};
use crate::status::{self, Line};
use imconn::Backoff;
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGKILL, SIGQUIT, SIGTERM};
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Time a stopping worker gets beyond its drain timeout before SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// Time a quitting worker gets before SIGKILL.
const QUIT_GRACE: Duration = Duration::from_secs(1);
/// Most unparsed bytes kept from a worker's channel.
const MAX_INPUT: usize = 4096;

/// How workers are started.
pub(crate) struct Launch<'a> {
    /// The binary to execute on a reload, and its arguments.
    pub exe: PathBuf,
    pub args: Vec<OsString>,
    /// What a forked worker runs.
    pub child_main: &'a dyn Fn(Inherited) -> i32,
}

/// One live worker process.
struct Worker {
    pid: libc::pid_t,
    slot: usize,
    generation: u32,
    started: Instant,
    channel: UnixStream,
    input: Vec<u8>,
    ready: bool,
    conns: u64,
    /// Told to drain or quit.
    told_to_stop: bool,
    /// Killed at this time if still alive.
    kill_at: Option<Instant>,
}

/// A worker position; its current worker is the live one of the current
/// generation.
struct Slot {
    restarts: u32,
    quick_crashes: u32,
    backoff: Backoff,
    restart_at: Option<Instant>,
    last_exit: Option<String>,
}

/// The master's state. See the module docs.
struct Master<'a> {
    config: &'a Config,
    listeners: Vec<TcpListener>,
    launch: Launch<'a>,
    signals: Signals,
    workers: Vec<Worker>,
    slots: Vec<Slot>,
    generation: u32,
    /// Start workers by executing the binary (after the first reload).
    exec: bool,
    /// A reload waiting for its workers, since when, and whether the wait
    /// was already reported as slow.
    reload: Option<(Instant, bool)>,
    stopping: bool,
    started: Instant,
    status_dirty: bool,
    status_written: Option<Instant>,
}

/// Runs the master until its workers are gone after SIGTERM/SIGINT/SIGQUIT.
pub(crate) fn run(
    config: &Config,
    listeners: Vec<TcpListener>,
    launch: Launch<'_>,
) -> io::Result<()> {
    let signals = Signals::install()?;
    let slots = (0..config.workers.max(1))
        .map(|_| Slot {
            restarts: 0,
            quick_crashes: 0,
            backoff: Backoff::new(config.restart_backoff_min, config.restart_backoff_max),
            restart_at: None,
            last_exit: None,
        })
        .collect();
    let mut master = Master {
        config,
        listeners,
        launch,
        signals,
        workers: Vec::new(),
        slots,
        generation: 1,
        exec: false,
        reload: None,
        stopping: false,
        started: Instant::now(),
        status_dirty: true,
        status_written: None,
    };
    log::info!(
        "prefork: master {} starting {} workers",
        std::process::id(),
        master.slots.len()
    );
    for slot in 0..master.slots.len() {
        master.start(slot);
    }
    master.serve()?;
    log::info!("prefork: master {} done", std::process::id());
    if let Some(path) = &config.status_file {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

impl Master<'_> {
    fn serve(&mut self) -> io::Result<()> {
        while !(self.stopping && self.workers.is_empty()) {
            let timeout = self
                .next_deadline()
                .map(|t| t.saturating_duration_since(Instant::now()));
            let ready = self.poll(timeout)?;
            for (i, readable) in ready.into_iter().enumerate() {
                if readable {
                    self.read_channel(i);
                }
            }
            self.signals.drain();
            self.handle_signals();
            let now = Instant::now();
            self.restart_due(now);
            self.kill_overdue(now);
            self.check_reload(now);
            self.write_status(now);
        }
        Ok(())
    }

    /// Waits for a signal or worker input; returns which workers' channels
    /// are readable (by index).
    fn poll(&mut self, timeout: Option<Duration>) -> io::Result<Vec<bool>> {
        let mut fds = Vec::with_capacity(self.workers.len() + 1);
        fds.push(pollfd(self.signals.fd()));
        fds.extend(self.workers.iter().map(|w| pollfd(w.channel.as_raw_fd())));
        let ms = timeout.map_or(-1, |t| t.as_millis().clamp(1, i32::MAX as u128) as i32);
        // SAFETY: `fds` is a valid array of `fds.len()` pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        Ok(fds[1..].iter().map(|f| f.revents != 0).collect())
    }

    fn next_deadline(&self) -> Option<Instant> {
        let restarts = self.slots.iter().filter_map(|s| s.restart_at);
        let kills = self.workers.iter().filter_map(|w| w.kill_at);
        let status = self
            .config
            .status_file
            .as_ref()
            .filter(|_| self.status_dirty)
            .map(|_| {
                self.status_written
                    .map_or_else(Instant::now, |t| t + self.config.status_interval)
            });
        let reload = self
            .reload
            .filter(|(_, warned)| !warned)
            .map(|(t, _)| t + self.config.ready_timeout);
        restarts.chain(kills).chain(status).chain(reload).min()
    }

    fn handle_signals(&mut self) {
        if self.signals.take(SIGCHLD) {
            self.reap();
        }
        if self.signals.take(SIGQUIT) {
            log::info!("prefork: SIGQUIT: stopping now");
            self.stop(false);
        }
        if self.signals.take(SIGTERM) | self.signals.take(SIGINT) {
            log::info!(
                "prefork: stopping: workers finish their connections (up to {:?})",
                self.config.drain_timeout
            );
            self.stop(true);
        }
        if self.signals.take(SIGHUP) {
            self.start_reload();
        }
    }

    /// Starts the worker of `slot` for the current generation.
    fn start(&mut self, slot: usize) {
        self.slots[slot].restart_at = None;
        let spawned = if self.exec {
            spawn::exec(
                slot,
                self.generation,
                &self.launch.exe,
                &self.launch.args,
                &self.listeners,
            )
        } else {
            let mut close = self.signals.fds();
            close.extend(self.workers.iter().map(|w| w.channel.as_raw_fd()));
            spawn::fork(
                slot,
                self.generation,
                &self.listeners,
                &close,
                self.launch.child_main,
            )
        };
        match spawned {
            Ok(Spawned { pid, channel }) => {
                log::info!(
                    "prefork: worker {slot} started: pid {pid}, generation {}",
                    self.generation
                );
                self.workers.push(Worker {
                    pid,
                    slot,
                    generation: self.generation,
                    started: Instant::now(),
                    channel,
                    input: Vec::new(),
                    ready: false,
                    conns: 0,
                    told_to_stop: false,
                    kill_at: None,
                });
            }
            Err(e) => {
                let s = &mut self.slots[slot];
                let delay = s.backoff.next_delay();
                log::error!("prefork: cannot start worker {slot}: {e}; retrying in {delay:?}");
                s.restart_at = Some(Instant::now() + delay);
            }
        }
        self.status_dirty = true;
    }

    fn restart_due(&mut self, now: Instant) {
        if self.stopping {
            return;
        }
        for slot in 0..self.slots.len() {
            if self.slots[slot].restart_at.is_some_and(|t| t <= now) {
                self.slots[slot].restarts += 1;
                self.start(slot);
            }
        }
    }

    /// Reaps every child that ended and decides what each exit means.
    fn reap(&mut self) {
        loop {
            let mut status = 0;
            // SAFETY: waitpid writes the status into a valid int.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            let Some(i) = self.workers.iter().position(|w| w.pid == pid) else {
                continue;
            };
            let w = self.workers.remove(i);
            self.status_dirty = true;
            let how = describe_exit(status);
            let lived = w.started.elapsed();
            if w.told_to_stop || self.stopping {
                log::info!("prefork: worker {} (pid {pid}) finished: {how}", w.slot);
            } else if w.generation != self.generation {
                log::warn!(
                    "prefork: old worker {} (pid {pid}) ended during a reload: {how}",
                    w.slot
                );
            } else {
                self.crashed(w.slot, pid, &how, lived);
            }
        }
    }

    /// The current worker of `slot` died unasked: schedule its restart.
    fn crashed(&mut self, slot: usize, pid: libc::pid_t, how: &str, lived: Duration) {
        let config = self.config;
        let s = &mut self.slots[slot];
        s.last_exit = Some(how.to_string());
        if lived < config.crash_window {
            s.quick_crashes += 1;
        } else {
            s.quick_crashes = 0;
            s.backoff.reset();
        }
        let mut delay = s.backoff.next_delay();
        if s.quick_crashes >= config.crash_loop_limit {
            delay = config.restart_backoff_max;
            log::error!(
                "prefork: worker {slot} (pid {pid}) {how} {lived:?} after start; crash loop: \
                 {} crashes in a row within {:?} of starting, next attempt in {delay:?}",
                s.quick_crashes,
                config.crash_window
            );
        } else {
            log::warn!(
                "prefork: worker {slot} (pid {pid}) {how} after {lived:?}; restarting in {delay:?}"
            );
        }
        s.restart_at = Some(Instant::now() + delay);
    }

    fn start_reload(&mut self) {
        if self.stopping {
            log::warn!("prefork: SIGHUP ignored: stopping");
            return;
        }
        self.generation += 1;
        self.exec = true;
        self.reload = Some((Instant::now(), false));
        log::info!(
            "prefork: reload: starting generation {} from {}",
            self.generation,
            self.launch.exe.display()
        );
        for slot in 0..self.slots.len() {
            let s = &mut self.slots[slot];
            s.quick_crashes = 0;
            s.backoff.reset();
            self.start(slot);
        }
    }

    /// Once every slot's new worker accepts, the older ones drain.
    fn check_reload(&mut self, now: Instant) {
        let Some((since, warned)) = self.reload else {
            return;
        };
        let all_ready = (0..self.slots.len()).all(|slot| {
            self.workers
                .iter()
                .any(|w| w.slot == slot && w.generation == self.generation && w.ready)
        });
        if all_ready {
            let old: Vec<usize> = (0..self.workers.len())
                .filter(|&i| self.workers[i].generation < self.generation)
                .filter(|&i| !self.workers[i].told_to_stop)
                .collect();
            log::info!(
                "prefork: reload: generation {} accepting after {:?}; draining {} old workers",
                self.generation,
                since.elapsed(),
                old.len()
            );
            for i in old {
                self.tell(i, true);
            }
            self.reload = None;
        } else if !warned && now >= since + self.config.ready_timeout {
            log::warn!(
                "prefork: reload: generation {} not accepting after {:?}; the old workers keep serving",
                self.generation,
                self.config.ready_timeout
            );
            self.reload = Some((since, true));
        }
    }

    /// Tells worker `i` to drain (or quit) and arms its kill deadline.
    fn tell(&mut self, i: usize, drain: bool) {
        let (line, kill_in) = if drain {
            let ms = self.config.drain_timeout.as_millis();
            (
                format!("drain {ms}\n"),
                self.config.drain_timeout + KILL_GRACE,
            )
        } else {
            ("quit\n".to_string(), QUIT_GRACE)
        };
        let w = &mut self.workers[i];
        if let Err(e) = w.channel.write_all(line.as_bytes()) {
            log::warn!("prefork: worker {} (pid {}): {e}", w.slot, w.pid);
        }
        w.told_to_stop = true;
        w.kill_at = Some(Instant::now() + kill_in);
        self.status_dirty = true;
    }

    fn stop(&mut self, drain: bool) {
        self.stopping = true;
        // No worker will be started again: the sockets close once the
        // workers have closed theirs, and new connections are refused
        // rather than left waiting in a backlog nobody accepts from.
        self.listeners.clear();
        self.reload = None;
        for s in &mut self.slots {
            s.restart_at = None;
        }
        for i in 0..self.workers.len() {
            // A drain already under way keeps its deadline; quit overrides.
            if !drain || !self.workers[i].told_to_stop {
                self.tell(i, drain);
            }
        }
    }

    fn kill_overdue(&mut self, now: Instant) {
        for w in &mut self.workers {
            if w.kill_at.is_some_and(|t| t <= now) {
                log::warn!(
                    "prefork: worker {} (pid {}) overdue; killing it",
                    w.slot,
                    w.pid
                );
                // SAFETY: kill has no memory effects; the pid is our
                // unreaped child, so it cannot have been reused.
                unsafe { libc::kill(w.pid, SIGKILL) };
                w.kill_at = None;
            }
        }
    }

    /// Reads what worker `i` reported.
    fn read_channel(&mut self, i: usize) {
        let w = &mut self.workers[i];
        let mut buf = [0u8; 1024];
        loop {
            match w.channel.read(&mut buf) {
                Ok(0) => break, // it exited; SIGCHLD tells the rest
                Ok(n) => w.input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        while let Some(end) = w.input.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = w.input.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let mut words = line.split_whitespace();
            match (words.next(), words.next().map(str::parse::<u64>)) {
                (Some("ready"), _) => w.ready = true,
                (Some("conns"), Some(Ok(n))) => w.conns = n,
                _ => log::warn!("prefork: worker {} sent `{}`", w.slot, line.trim()),
            }
            self.status_dirty = true;
        }
        if w.input.len() > MAX_INPUT {
            log::warn!("prefork: worker {} sends garbage; ignoring it", w.slot);
            w.input.clear();
        }
    }

    fn write_status(&mut self, now: Instant) {
        let Some(path) = &self.config.status_file else {
            return;
        };
        let due = self
            .status_written
            .is_none_or(|t| now >= t + self.config.status_interval);
        if !self.status_dirty || !due {
            return;
        }
        if let Err(e) = status::write(path, &status::render(&self.status_lines(now))) {
            log::warn!("prefork: status file {}: {e}", path.display());
        }
        self.status_dirty = false;
        self.status_written = Some(now);
    }

    fn status_lines(&self, now: Instant) -> Vec<Line> {
        let state = if self.stopping {
            "stopping"
        } else if self.reload.is_some() {
            "reloading"
        } else {
            "running"
        };
        let mut lines = vec![Line::new("master")
            .field("pid", std::process::id())
            .field("generation", self.generation)
            .field("state", state)
            .field("uptime_ms", self.started.elapsed().as_millis())
            .field("workers", self.slots.len())];
        let mut workers: Vec<&Worker> = self.workers.iter().collect();
        workers.sort_by_key(|w| (std::cmp::Reverse(w.generation), w.slot));
        for w in workers {
            let state = match (w.told_to_stop, w.ready) {
                (true, _) => "draining",
                (false, true) => "running",
                (false, false) => "starting",
            };
            lines.push(
                Line::new("worker")
                    .field("slot", w.slot)
                    .field("pid", w.pid)
                    .field("generation", w.generation)
                    .field("state", state)
                    .field("uptime_ms", w.started.elapsed().as_millis())
                    .field("restarts", self.slots[w.slot].restarts)
                    .field("connections", w.conns),
            );
        }
        for (slot, s) in self.slots.iter().enumerate() {
            if let Some(at) = s.restart_at {
                lines.push(
                    Line::new("slot")
                        .field("slot", slot)
                        .field("state", "backoff")
                        .field(
                            "restart_in_ms",
                            at.saturating_duration_since(now).as_millis(),
                        )
                        .field("restarts", s.restarts)
                        .field("last_exit", s.last_exit.as_deref().unwrap_or("-")),
                );
            }
        }
        lines
    }
}

fn pollfd(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// "exited with status 101", "killed by signal 9 (SIGKILL)".
fn describe_exit(status: libc::c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exited with status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        let name = signal_hook::low_level::signal_name(sig).unwrap_or("?");
        format!("killed by signal {sig} ({name})")
    } else {
        format!("ended (wait status {status:#x})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_are_described() {
        assert_eq!(describe_exit(101 << 8), "exited with status 101");
        assert_eq!(describe_exit(9), "killed by signal 9 (SIGKILL)");
    }
}
