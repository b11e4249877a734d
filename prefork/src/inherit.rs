//! What a re-executed worker inherits from its master, and how it finds it.
//!
//! On a reload the master starts the binary again (`fork` + `exec` of the
//! path it was started from, so an upgraded binary takes over). The new
//! process gets the listening sockets and its control channel as open
//! descriptors - their close-on-exec flag cleared in the child between
//! `fork` and `exec` - and learns their numbers, its slot and its
//! generation from environment variables:
//!
//! | variable | value |
//! |---|---|
//! | `PREFORK_WORKER` | `<slot>:<generation>` |
//! | `PREFORK_LISTEN_FDS` | the listening sockets' descriptors, comma-separated, in address order |
//! | `PREFORK_CHANNEL_FD` | the worker's end of its control channel to the master |
//!
//! The worker takes the variables out of its environment at once, so a
//! process it starts does not take itself for a worker, and sets
//! close-on-exec on the descriptors again.

use std::io;
use std::net::TcpListener;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixStream;

/// `<slot>:<generation>` of a re-executed worker.
pub const ENV_WORKER: &str = "PREFORK_WORKER";
/// The listening descriptors, comma-separated.
pub const ENV_LISTEN_FDS: &str = "PREFORK_LISTEN_FDS";
/// The control channel's descriptor.
pub const ENV_CHANNEL_FD: &str = "PREFORK_CHANNEL_FD";

/// What a worker process starts from, whether forked or re-executed.
pub(crate) struct Inherited {
    pub slot: usize,
    pub generation: u32,
    pub listeners: Vec<TcpListener>,
    pub channel: UnixStream,
}

/// The worker identity in the environment, if this process is a
/// re-executed worker; removes the variables. `Err` if they are present
/// but malformed or name descriptors that are not what they should be.
pub(crate) fn from_env() -> io::Result<Option<Inherited>> {
    let Some(worker) = std::env::var_os(ENV_WORKER) else {
        return Ok(None);
    };
    let fds = std::env::var_os(ENV_LISTEN_FDS).unwrap_or_default();
    let channel = std::env::var_os(ENV_CHANNEL_FD).unwrap_or_default();
    // Single-threaded still: nothing else reads the environment meanwhile.
    std::env::remove_var(ENV_WORKER);
    std::env::remove_var(ENV_LISTEN_FDS);
    std::env::remove_var(ENV_CHANNEL_FD);
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_string());
    let worker = worker.to_string_lossy().into_owned();
    let (slot, generation) = worker
        .split_once(':')
        .and_then(|(s, g)| Some((s.parse().ok()?, g.parse().ok()?)))
        .ok_or_else(|| bad(&format!("{ENV_WORKER}={worker} is not <slot>:<generation>")))?;
    let mut listeners = Vec::new();
    for fd in fds.to_string_lossy().split(',').filter(|s| !s.is_empty()) {
        let fd: RawFd = fd
            .parse()
            .map_err(|_| bad(&format!("{ENV_LISTEN_FDS} holds `{fd}`, not a descriptor")))?;
        check_socket(fd, true)?;
        // SAFETY: the master passed this descriptor for us to own, it is
        // open (checked above) and nothing else in this process uses it.
        listeners.push(unsafe { TcpListener::from_raw_fd(fd) });
    }
    let channel = channel.to_string_lossy().into_owned();
    let fd: RawFd = channel
        .parse()
        .map_err(|_| bad(&format!("{ENV_CHANNEL_FD}=`{channel}` is not a descriptor")))?;
    check_socket(fd, false)?;
    // SAFETY: as above, an open descriptor handed to this process alone.
    let channel = unsafe { UnixStream::from_raw_fd(fd) };
    Ok(Some(Inherited {
        slot,
        generation,
        listeners,
        channel,
    }))
}

/// Checks that `fd` is an open socket (a listening one if `listening`) and
/// sets close-on-exec on it again.
fn check_socket(fd: RawFd, listening: bool) -> io::Result<()> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `value`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("inherited descriptor {fd} is not a socket: {e}"),
        ));
    }
    if listening && value == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("inherited descriptor {fd} is not a listening socket"),
        ));
    }
    set_cloexec(fd, true)
}

/// Sets or clears close-on-exec. Async-signal-safe (only `fcntl`), so it
/// may run between `fork` and `exec`.
pub(crate) fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor number has no memory effects.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let flags = if on {
        flags | libc::FD_CLOEXEC
    } else {
        flags & !libc::FD_CLOEXEC
    };
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
