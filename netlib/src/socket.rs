//! `BaseSocket`: one socket's state machine and the system calls that create it.
//!
//! TeamTalk's `CBaseSocket` kept a state (idle, listening, connecting,
//! connected, closing) but ignored it: sending while connecting or listening
//! twice silently did nothing. Here every operation checks the state and the
//! dispatcher returns [`Error::InvalidState`](crate::Error::InvalidState).
//!
//! ```text
//!   Idle --listen--> Listening --close--> Closing --Close event--> (slot freed)
//!   Idle --connect--> Connecting --Confirm--> Connected --close/EOF/error--> Closing
//! ```
//!
//! Sockets are created with `socket2` so the options TeamTalk set by hand
//! (SO_REUSEADDR, non-blocking, TCP_NODELAY) and the ones it lacked
//! (SO_REUSEPORT, IPv6-only, a configurable backlog) are set before
//! `bind`/`listen`/`connect`, then handed to mio. Owned by the dispatcher; only
//! its thread touches them.

use crate::handler::HandlerId;
use crate::stream::{Listener, Stream};
use crate::timer::TimerId;
use mio::net::{TcpListener, TcpStream};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::Duration;

/// The life cycle of a socket (TeamTalk's `SOCKET_STATE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketState {
    /// Created with [`Context::create_socket`](crate::Context::create_socket),
    /// not yet listening or connecting.
    Idle,
    /// Accepting connections.
    Listening,
    /// A non-blocking connect is in progress.
    Connecting,
    /// Connected; data may flow.
    Connected,
    /// Closed; its [`Close`](crate::Event::Close) event is about to be delivered.
    Closing,
}

/// How to listen. `ListenOptions::default()` is right for a public server port.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// Length of the kernel's accept queue. Default 1024 (TeamTalk used 64).
    pub backlog: i32,
    /// SO_REUSEADDR, so a restarted server can bind while old connections sit
    /// in TIME_WAIT. Default true.
    pub reuse_address: bool,
    /// SO_REUSEPORT, so several loops (threads or processes) can listen on the
    /// same port and the kernel spreads connections. Default false.
    pub reuse_port: bool,
    /// For IPv6 addresses: accept IPv6 only (true) or also IPv4-mapped (false).
    /// `None` keeps the system default.
    pub ipv6_only: Option<bool>,
    /// TCP_NODELAY on accepted sockets. Default true.
    pub nodelay: bool,
    /// Accepted sockets report end-of-stream as [`Event::ReadClosed`](crate::Event::ReadClosed)
    /// and stay open for sending. Default false (end-of-stream closes).
    pub half_close: bool,
    /// Register the listener with `EPOLLEXCLUSIVE`: when several loops -
    /// threads or processes - wait on one shared listening socket, a new
    /// connection wakes one idle waiter instead of all of them (the
    /// thundering herd). For a listener shared by descriptor (a pre-forked
    /// worker's inherited socket, or a `dup`); listeners of their own
    /// (SO_REUSEPORT) do not need it. While accepting is paused for want of
    /// descriptors, such a listener leaves the wait queue, so the wake-ups
    /// go to loops that can accept. Default false.
    pub exclusive_wakeup: bool,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            backlog: 1024,
            reuse_address: true,
            reuse_port: false,
            ipv6_only: None,
            nodelay: true,
            half_close: false,
            exclusive_wakeup: false,
        }
    }
}

/// How to connect. `ConnectOptions::default()`: no timeout, TCP_NODELAY on.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Give up with [`CloseReason::TimedOut`](crate::CloseReason::TimedOut)
    /// if the connection is not established within this time.
    pub timeout: Option<Duration>,
    /// TCP_NODELAY. Default true.
    pub nodelay: bool,
    /// Bind to this local address first (for example to spread source
    /// addresses over 127.0.0.x). Default none.
    pub bind: Option<SocketAddr>,
    /// Report end-of-stream as [`Event::ReadClosed`](crate::Event::ReadClosed)
    /// instead of closing. Default false.
    pub half_close: bool,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            timeout: None,
            nodelay: true,
            bind: None,
            half_close: false,
        }
    }
}

/// The kernel object behind a socket, if it has one yet.
pub(crate) enum Io {
    None,
    Listener(Listener),
    Stream(Stream),
}

/// Everything the dispatcher knows about one open socket.
pub(crate) struct SocketEntry {
    pub(crate) state: SocketState,
    pub(crate) io: Io,
    pub(crate) handler: HandlerId,
    pub(crate) peer: Option<SocketAddr>,
    /// The kernel may hold unread data (edge seen, and neither WouldBlock
    /// nor a short read since).
    pub(crate) readable: bool,
    /// The peer's FIN (or an error) was reported: no further edge will come,
    /// so a short read must not be taken as "drained".
    pub(crate) hangup_seen: bool,
    /// A send hit WouldBlock; deliver Write on the next writable edge.
    pub(crate) want_write: bool,
    /// The owner asked not to be told about incoming data for now.
    pub(crate) read_paused: bool,
    /// End-of-stream seen on a half-close socket.
    pub(crate) read_closed: bool,
    pub(crate) half_close: bool,
    /// Queued for a Read in the next turn (budget cut or unread data).
    pub(crate) read_again_queued: bool,
    /// `recv` was called since the current Read delivery began. A handler
    /// that never calls it is not offered the Read again until a new edge
    /// (otherwise the loop would spin on a socket nobody reads).
    pub(crate) recv_called: bool,
    /// Connect timeout or accept-resume timer owned by the dispatcher.
    pub(crate) internal_timer: Option<TimerId>,
    /// Listener options kept for accepted sockets.
    pub(crate) accept_nodelay: bool,
    pub(crate) accept_half_close: bool,
    /// Accepting is paused after EMFILE/ENFILE until a timer resumes it.
    pub(crate) accept_paused: bool,
    /// Registered with EPOLLEXCLUSIVE (a listener shared with other loops).
    pub(crate) accept_exclusive: bool,
}

impl SocketEntry {
    pub(crate) fn new(handler: HandlerId, state: SocketState, io: Io) -> Self {
        SocketEntry {
            state,
            io,
            handler,
            peer: None,
            readable: false,
            hangup_seen: false,
            want_write: false,
            read_paused: false,
            read_closed: false,
            half_close: false,
            read_again_queued: false,
            recv_called: false,
            internal_timer: None,
            accept_nodelay: true,
            accept_half_close: false,
            accept_paused: false,
            accept_exclusive: false,
        }
    }

    pub(crate) fn stream(&self) -> Option<&Stream> {
        match &self.io {
            Io::Stream(s) => Some(s),
            _ => None,
        }
    }

    /// Wants a Read event now: data may be waiting and nobody paused it.
    pub(crate) fn read_pending(&self) -> bool {
        self.state == SocketState::Connected
            && self.readable
            && !self.read_paused
            && !self.read_closed
    }
}

/// Creates a bound, listening, non-blocking socket.
pub(crate) fn bind_listener(addr: SocketAddr, opts: &ListenOptions) -> io::Result<Listener> {
    Ok(Listener::Tcp(TcpListener::from_std(bind_std(addr, opts)?)))
}

/// Binds `n` listening sockets to the same address with SO_REUSEPORT, so
/// that `n` loops (threads of a [`LoopGroup`](crate::LoopGroup), or
/// processes) can each accept on one and the kernel spreads incoming
/// connections over them. If `addr` has port 0 the first bind picks the
/// port and the others bind to it. Serve each with
/// [`Context::adopt_listener`](crate::Context::adopt_listener).
///
/// `opts` applies to every socket; for `n > 1` SO_REUSEPORT is set
/// whatever `opts.reuse_port` says. A single listener (`n == 1`) gets it
/// only if `opts.reuse_port` asks: nothing needs to share it, and another
/// process binding the same port by mistake should fail, not silently take
/// half the connections. The sockets are non-blocking and close-on-exec
/// (clear that to pass them to a child process). `n == 0` is an
/// `InvalidInput` error. Callable from any thread.
///
/// ```
/// let ls = netlib::bind_reuseport(
///     "127.0.0.1:0".parse().unwrap(),
///     3,
///     &netlib::ListenOptions::default(),
/// )?;
/// let port = ls[0].local_addr()?.port();
/// assert!(ls.iter().all(|l| l.local_addr().unwrap().port() == port));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn bind_reuseport(
    addr: SocketAddr,
    n: usize,
    opts: &ListenOptions,
) -> io::Result<Vec<std::net::TcpListener>> {
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bind_reuseport: zero listeners asked for",
        ));
    }
    let opts = ListenOptions {
        reuse_port: opts.reuse_port || n > 1,
        ..opts.clone()
    };
    let first = bind_std(addr, &opts)?;
    let addr = first.local_addr()?;
    let mut all = Vec::with_capacity(n);
    all.push(first);
    for _ in 1..n {
        all.push(bind_std(addr, &opts)?);
    }
    Ok(all)
}

fn bind_std(addr: SocketAddr, opts: &ListenOptions) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(opts.reuse_address)?;
    if opts.reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        if let Some(only) = opts.ipv6_only {
            socket.set_only_v6(only)?;
        }
    }
    socket.set_nonblocking(true)?;
    socket.set_cloexec(true)?;
    socket.bind(&SockAddr::from(addr))?;
    socket.listen(opts.backlog)?;
    Ok(socket.into())
}

/// Binds a listening Unix-domain stream socket at `path`, for
/// [`Context::adopt_unix_listener`](crate::Context::adopt_unix_listener)
/// (or several loops at once: each adopts a
/// [`try_clone`](UnixListener::try_clone) and the kernel hands each
/// connection to one of them).
///
/// `mode` sets the file's permission bits (as memcached's `-a`; a client
/// needs write permission to connect). They are set after `bind` and before
/// `listen`, so no client can connect while the file still has the bits the
/// umask gave it. Of `opts` only `backlog` applies.
///
/// A file already at `path` is replaced only if it is a socket nobody
/// listens on (left by a process that died): connecting to it is refused.
/// A live socket is `AddrInUse`, anything else (a regular file, a
/// directory) `AlreadyExists`, and neither is touched. The caller owns the
/// file: dropping the listener does not remove it.
///
/// The socket is non-blocking and close-on-exec. Callable from any thread.
///
/// ```
/// use std::os::unix::fs::PermissionsExt;
/// let dir = std::env::temp_dir().join(format!("netlib-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("s.sock");
/// let l = netlib::bind_unix(&path, Some(0o700), &netlib::ListenOptions::default())?;
/// assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o700);
/// drop(l);
/// std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn bind_unix(path: &Path, mode: Option<u32>, opts: &ListenOptions) -> io::Result<UnixListener> {
    remove_stale_socket(path)?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    socket.set_cloexec(true)?;
    socket.bind(&SockAddr::unix(path)?)?;
    let listening = mode
        .map_or(Ok(()), |mode| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        })
        .and_then(|()| socket.listen(opts.backlog));
    if let Err(e) = listening {
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(socket.into())
}

/// Removes a socket file at `path` that nobody listens on; see [`bind_unix`].
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("{}: another process listens on it", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            log::info!("netlib: removing stale socket file {}", path.display());
            std::fs::remove_file(path)
        }
        Err(e) => Err(e),
    }
}

/// Starts a non-blocking connect. `Ok` means in progress or already
/// connected; an error from `connect` itself is returned as `Err` so the
/// dispatcher can report it through the same Close path as a late failure.
pub(crate) fn start_connect(
    addr: SocketAddr,
    opts: &ConnectOptions,
) -> io::Result<(Stream, Option<io::Error>)> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    socket.set_cloexec(true)?;
    if opts.nodelay {
        socket.set_tcp_nodelay(true)?;
    }
    if let Some(local) = opts.bind {
        socket.bind(&SockAddr::from(local))?;
    }
    let failure = match socket.connect(&SockAddr::from(addr)) {
        Ok(()) => None,
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => None,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
        Err(e) => Some(e),
    };
    Ok((Stream::Tcp(TcpStream::from_std(socket.into())), failure))
}

/// Registers a listener for readability with `EPOLLEXCLUSIVE`, the way
/// mio registers it otherwise (edge-triggered, the token in the event's
/// data), so mio reports its events as usual and deregisters it as usual.
/// mio has no flag for this, hence the direct `epoll_ctl`.
pub(crate) fn register_exclusive(
    registry: &mio::Registry,
    listener: &impl std::os::fd::AsFd,
    token: mio::Token,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut event = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLET | libc::EPOLLEXCLUSIVE) as u32,
        u64: usize::from(token) as u64,
    };
    // SAFETY: both descriptors are open for the duration of the call (the
    // registry and the listener are borrowed), and `event` is a valid,
    // initialised epoll_event that the kernel only reads.
    let rc = unsafe {
        libc::epoll_ctl(
            registry.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            listener.as_fd().as_raw_fd(),
            &mut event,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Takes a listener registered by [`register_exclusive`] out of the poll
/// set. mio cannot: it only deregisters what it registered itself (debug
/// builds check, and refuse), and a descriptor closed while its open file
/// lives on in other processes stays in the epoll set - where, as an
/// exclusive waiter under a stale token, it would take wake-ups meant for
/// the loops that still accept. Not being in the set is not an error.
pub(crate) fn unregister_exclusive(
    registry: &mio::Registry,
    listener: &impl std::os::fd::AsFd,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: both descriptors are open (borrowed); EPOLL_CTL_DEL ignores
    // the event argument (null is allowed since Linux 2.6.9).
    let rc = unsafe {
        libc::epoll_ctl(
            registry.as_raw_fd(),
            libc::EPOLL_CTL_DEL,
            listener.as_fd().as_raw_fd(),
            std::ptr::null_mut(),
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENOENT) {
            return Err(e);
        }
    }
    Ok(())
}

/// Is this accept error a shortage of descriptors or memory, after which
/// accepting again at once would spin?
pub(crate) fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}
