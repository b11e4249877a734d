//! SIGINT and SIGTERM for a server process: caught early, acted on once.
//!
//! A server that cleans up when it stops (writes what it owes to disk,
//! removes a socket file, drops a pid file) must not be killed by a SIGTERM
//! that arrives while it is still starting, before anything watches for
//! signals. [`StopSignals::catch`] replaces the default action at once, so
//! such a signal waits; [`StopSignals::on_arrival`], called once the server
//! runs, starts a thread that takes the first signal (also one that came
//! before) and runs the stop action given, typically [`Poster::stop`] of
//! the loop or a server's shutdown handle.
//!
//! The signal is taken on that helper thread, never in a loop and never in a
//! signal handler, so the stop action may do anything a thread may.
//! A process that forks (the `prefork` crate's master) needs a self-pipe
//! its own poll loop reads instead, and has its own.
//!
//! [`Poster::stop`]: crate::Poster::stop

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::io;

/// SIGINT and SIGTERM, caught from [`StopSignals::catch`] on.
///
/// ```no_run
/// let signals = netlib::signal::StopSignals::catch()?;
/// let mut dispatch = netlib::EventDispatch::new()?;
/// // ... listen, open files ...
/// signals.on_arrival({
///     let poster = dispatch.poster();
///     move || poster.stop()
/// })?;
/// dispatch.run()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct StopSignals {
    signals: Signals,
}

impl StopSignals {
    /// Catches SIGINT and SIGTERM from now on: one that arrives before
    /// [`on_arrival`](Self::on_arrival) waits instead of killing the
    /// process.
    pub fn catch() -> io::Result<StopSignals> {
        Ok(StopSignals {
            signals: Signals::new([SIGINT, SIGTERM])?,
        })
    }

    /// Runs `stop` on a thread named `signals` when the first SIGINT or
    /// SIGTERM arrives (at once if one already has), and logs which one.
    /// Later ones are logged and ignored while the stop is underway (the
    /// thread keeps catching them until the process exits).
    pub fn on_arrival(self, stop: impl FnOnce() + Send + 'static) -> io::Result<()> {
        let mut signals = self.signals;
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let mut stop = Some(stop);
                for sig in signals.forever() {
                    match stop.take() {
                        Some(stop) => {
                            log::info!("signal {sig}: shutting down");
                            stop();
                        }
                        None => log::info!("signal {sig}: already shutting down"),
                    }
                }
            })?;
        Ok(())
    }
}
