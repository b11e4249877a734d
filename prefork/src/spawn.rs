//! Starting a worker process: by `fork` (the first generation and its
//! restarts - the child runs the application's setup from the master's
//! memory) or by `fork` + `exec` of the binary (a reload, and restarts
//! after one - the child is whatever binary is at that path now).
//!
//! Either way the child inherits the listening sockets and one end of a
//! fresh control channel (a Unix socket pair); see [`crate::inherit`].

use crate::inherit::{self, Inherited, ENV_CHANNEL_FD, ENV_LISTEN_FDS, ENV_WORKER};
use crate::signals;
use std::ffi::OsString;
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// A started worker: its pid and the master's end of its channel.
pub(crate) struct Spawned {
    pub pid: libc::pid_t,
    pub channel: UnixStream,
}

/// Forks a worker that runs `child_main` and exits with what it returns.
/// `close_in_child` are the master's own descriptors (signal pipe, other
/// workers' channels), closed in the child first.
pub(crate) fn fork(
    slot: usize,
    generation: u32,
    listeners: &[TcpListener],
    close_in_child: &[RawFd],
    child_main: &dyn Fn(Inherited) -> i32,
) -> io::Result<Spawned> {
    let (master_end, worker_end) = UnixStream::pair()?;
    master_end.set_nonblocking(true)?;
    // SAFETY: the master is single-threaded (it never starts a thread), so
    // the child may do anything the parent could: no lock is held by a
    // thread that does not exist in the child.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid > 0 {
        return Ok(Spawned {
            pid,
            channel: master_end,
        });
    }
    // The child.
    signals::reset_in_child();
    for &fd in close_in_child.iter().chain([&master_end.as_raw_fd()]) {
        // SAFETY: closing descriptors the child must not hold; their
        // owners (in the parent's copy of memory) are never used here.
        unsafe { libc::close(fd) };
    }
    std::mem::forget(master_end);
    // The child owns the listening descriptors it inherited: it closes them
    // when it stops accepting, so that after a stop nothing holds them.
    let listeners = listeners
        .iter()
        // SAFETY: the master's owners of these descriptors live on in this
        // child's copy of memory but are never dropped here: the child
        // leaves through `exit` below and never unwinds into the master's
        // frames (catch_unwind), so each descriptor has one owner in use.
        .map(|l| unsafe { TcpListener::from_raw_fd(l.as_raw_fd()) })
        .collect();
    // Never unwind into the master's frames copied into this child.
    let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        child_main(Inherited {
            slot,
            generation,
            listeners,
            channel: worker_end,
        })
    }))
    .unwrap_or(101);
    std::process::exit(code);
}

/// Forks and executes `exe` with `args`, as worker `slot` of `generation`.
pub(crate) fn exec(
    slot: usize,
    generation: u32,
    exe: &Path,
    args: &[OsString],
    listeners: &[TcpListener],
) -> io::Result<Spawned> {
    let (master_end, worker_end) = UnixStream::pair()?;
    master_end.set_nonblocking(true)?;
    let fds: Vec<RawFd> = listeners.iter().map(AsRawFd::as_raw_fd).collect();
    let channel_fd = worker_end.as_raw_fd();
    let list = fds
        .iter()
        .map(RawFd::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let mut command = Command::new(exe);
    command
        .args(args)
        .env(ENV_WORKER, format!("{slot}:{generation}"))
        .env(ENV_LISTEN_FDS, list)
        .env(ENV_CHANNEL_FD, channel_fd.to_string());
    let inherit: Vec<RawFd> = fds.iter().copied().chain([channel_fd]).collect();
    // SAFETY: the closure only calls fcntl (async-signal-safe) on
    // descriptors that are open in the child.
    unsafe {
        command.pre_exec(move || {
            for &fd in &inherit {
                inherit::set_cloexec(fd, false)?;
            }
            Ok(())
        });
    }
    let child = command.spawn()?;
    drop(worker_end);
    Ok(Spawned {
        pid: child.id() as libc::pid_t,
        channel: master_end,
    })
}
