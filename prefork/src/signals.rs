//! The master's signals, caught without doing anything unsafe in a
//! handler: each signal sets its flag and writes a byte to a self-pipe
//! (signal-hook's `flag` and `pipe` helpers, both async-signal-safe), and
//! the master's poll loop wakes on the pipe and reads the flags.
//!
//! No thread is started here, so the master stays single-threaded and may
//! `fork` at any time.

use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The signals the master handles.
pub(crate) const HANDLED: [libc::c_int; 5] = [SIGCHLD, SIGHUP, SIGTERM, SIGINT, SIGQUIT];

/// Flags and the self-pipe of the master's signals.
pub(crate) struct Signals {
    wake: UnixStream,
    flags: Vec<(libc::c_int, Arc<AtomicBool>)>,
    /// The pipe's write ends, owned by the signal handlers; a forked
    /// worker closes them.
    write_fds: Vec<RawFd>,
}

impl Signals {
    /// Installs the handlers.
    pub(crate) fn install() -> io::Result<Signals> {
        let (wake, write) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let mut flags = Vec::new();
        let mut write_fds = Vec::new();
        for sig in HANDLED {
            let flag = Arc::new(AtomicBool::new(false));
            signal_hook::flag::register(sig, flag.clone())?;
            let end = write.try_clone()?.into_raw_fd();
            write_fds.push(end);
            signal_hook::low_level::pipe::register_raw(sig, end)?;
            flags.push((sig, flag));
        }
        Ok(Signals {
            wake,
            flags,
            write_fds,
        })
    }

    /// The descriptor to poll for readability.
    pub(crate) fn fd(&self) -> RawFd {
        self.wake.as_raw_fd()
    }

    /// Every descriptor of this machinery, for a forked child to close.
    pub(crate) fn fds(&self) -> Vec<RawFd> {
        let mut all = self.write_fds.clone();
        all.push(self.wake.as_raw_fd());
        all
    }

    /// Empties the self-pipe.
    pub(crate) fn drain(&mut self) {
        let mut buf = [0u8; 64];
        while matches!(self.wake.read(&mut buf), Ok(n) if n > 0) {}
    }

    /// Whether `sig` arrived since the last call; clears it.
    pub(crate) fn take(&self, sig: libc::c_int) -> bool {
        self.flags
            .iter()
            .any(|(s, f)| *s == sig && f.swap(false, Ordering::SeqCst))
    }
}

/// In a freshly forked child: default dispositions for the master's
/// signals, and an empty signal mask.
pub(crate) fn reset_in_child() {
    for sig in HANDLED {
        // SAFETY: restoring the default disposition is always valid.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    // SAFETY: an emptied, initialised set passed to sigprocmask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}
