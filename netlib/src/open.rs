//! Creating sockets: listeners, outgoing connections, accepted streams.
//!
//! Every socket starts here: a slot in the table, a handler (new, shared
//! with a listener, or registered), a kernel socket registered with the
//! loop's `mio::Poll`. Failures leave no half-made socket behind: the slot is
//! freed without a Close event, and the error is returned.
//!
//! Thread: the loop's own; reached through `&mut Context`.

use crate::context::{Context, TimerTask};
use crate::error::{Error, Result};
use crate::event::CloseReason;
use crate::handle::Handle;
use crate::handler::{Handler, HandlerRef};
use crate::socket::{
    bind_listener, register_exclusive, start_connect, unregister_exclusive, ConnectOptions, Io,
    ListenOptions, SocketState,
};
use crate::stream::{Listener, Stream};
use mio::Interest;
use std::net::SocketAddr;
use std::os::unix::net::UnixListener;
use std::time::Instant;

impl Context {
    /// Creates a socket in state [`SocketState::Idle`] served by `handler`;
    /// then [`listen_on`](Self::listen_on) or [`connect_on`](Self::connect_on).
    pub fn create_socket<H: Handler>(&mut self, handler: H) -> Handle {
        let id = self.handlers.insert(Box::new(handler));
        self.new_socket_with(id, SocketState::Idle)
    }

    /// Listens on `addr` (`netlib_listen`). Accepted connections arrive as
    /// [`Event::Connect`](crate::Event::Connect) on new handles served by `handler`.
    ///
    /// ```
    /// use netlib::{EventDispatch, ListenOptions};
    /// let mut dispatch = EventDispatch::new().unwrap();
    /// let ctx = dispatch.context();
    /// let listener = ctx
    ///     .listen("127.0.0.1:0".parse().unwrap(), &ListenOptions::default(), |_ctx: &mut netlib::Context, _h, _ev| {})
    ///     .unwrap();
    /// assert!(ctx.local_addr(listener).unwrap().port() != 0);
    /// ```
    pub fn listen<H: Handler>(
        &mut self,
        addr: SocketAddr,
        opts: &ListenOptions,
        handler: H,
    ) -> Result<Handle> {
        let h = self.create_socket(handler);
        if let Err(e) = self.listen_on(h, addr, opts) {
            self.free_slot(h);
            return Err(e);
        }
        Ok(h)
    }

    /// Listens on every address in `addrs` with one shared handler (TeamTalk's
    /// `;`-separated listen lists). Fails as a whole: on error no listener is
    /// left open.
    pub fn listen_all<H: Handler>(
        &mut self,
        addrs: &[SocketAddr],
        opts: &ListenOptions,
        handler: H,
    ) -> Result<Vec<Handle>> {
        let id = self.handlers.insert(Box::new(handler));
        let mut handles = Vec::with_capacity(addrs.len());
        for (i, addr) in addrs.iter().enumerate() {
            if i > 0 {
                self.handlers.add_ref(id);
            }
            let h = self.new_socket_with(id, SocketState::Idle);
            if let Err(e) = self.listen_on(h, *addr, opts) {
                self.free_slot(h);
                for h in handles {
                    self.close_with(h, CloseReason::Local);
                    self.pending.retain(|(p, _)| *p != h);
                    self.free_slot(h);
                }
                return Err(e);
            }
            handles.push(h);
        }
        if addrs.is_empty() {
            self.handlers.release(id);
        }
        Ok(handles)
    }

    /// [`listen`](Self::listen) with a registered handler.
    pub fn listen_with(
        &mut self,
        addr: SocketAddr,
        opts: &ListenOptions,
        r: HandlerRef,
    ) -> Result<Handle> {
        let h = self.socket_for(r)?;
        if let Err(e) = self.listen_on(h, addr, opts) {
            self.free_slot(h);
            return Err(e);
        }
        Ok(h)
    }

    /// [`connect`](Self::connect) with a registered handler.
    pub fn connect_with(
        &mut self,
        addr: SocketAddr,
        opts: &ConnectOptions,
        r: HandlerRef,
    ) -> Result<Handle> {
        let h = self.socket_for(r)?;
        if let Err(e) = self.connect_on(h, addr, opts) {
            self.free_slot(h);
            return Err(e);
        }
        Ok(h)
    }

    pub(crate) fn socket_for(&mut self, r: HandlerRef) -> Result<Handle> {
        let id = self.resolve_handler(r)?;
        self.handlers.add_ref(id);
        Ok(self.new_socket_with(id, SocketState::Idle))
    }

    /// Makes an idle socket listen on `addr`. Listening twice, or on a socket
    /// that connects, is [`Error::InvalidState`].
    pub fn listen_on(&mut self, h: Handle, addr: SocketAddr, opts: &ListenOptions) -> Result<()> {
        let entry = self.open_entry(h)?;
        if entry.state != SocketState::Idle {
            return Err(Error::InvalidState {
                op: "listen",
                state: entry.state,
            });
        }
        let listener = bind_listener(addr, opts)?;
        self.install_listener(h, listener, opts)
    }

    /// Registers a bound, listening socket as `h`'s.
    fn install_listener(
        &mut self,
        h: Handle,
        mut listener: Listener,
        opts: &ListenOptions,
    ) -> Result<()> {
        if opts.exclusive_wakeup {
            register_exclusive(self.poll.registry(), &listener, h.token())?;
        } else {
            self.poll
                .registry()
                .register(&mut listener, h.token(), Interest::READABLE)?;
        }
        let entry = self.open_entry(h)?;
        entry.io = Io::Listener(listener);
        entry.state = SocketState::Listening;
        entry.accept_nodelay = opts.nodelay;
        entry.accept_half_close = opts.half_close;
        entry.accept_exclusive = opts.exclusive_wakeup;
        Ok(())
    }

    /// Serves a listening socket bound elsewhere - by
    /// [`bind_reuseport`](crate::bind_reuseport) for a
    /// [`LoopGroup`](crate::LoopGroup), or inherited from a pre-forking
    /// master process. Like [`listen`](Self::listen) otherwise: accepted
    /// connections arrive as [`Event::Connect`](crate::Event::Connect) on
    /// handles served by `handler`. The socket is made non-blocking; of
    /// `opts` only the options for accepted sockets (`nodelay`,
    /// `half_close`) and `exclusive_wakeup` apply, since it is already
    /// bound and listening.
    ///
    /// ```
    /// use netlib::{Context, EventDispatch, ListenOptions};
    /// let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let addr = l.local_addr()?;
    /// let mut dispatch = EventDispatch::new()?;
    /// let ctx = dispatch.context();
    /// let h = ctx.adopt_listener(l, &ListenOptions::default(), |_: &mut Context, _, _| {})?;
    /// assert_eq!(ctx.local_addr(h)?, addr);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn adopt_listener<H: Handler>(
        &mut self,
        listener: std::net::TcpListener,
        opts: &ListenOptions,
        handler: H,
    ) -> Result<Handle> {
        let h = self.create_socket(handler);
        self.adopt_on(h, listener, opts)
    }

    /// [`adopt_listener`](Self::adopt_listener) with a registered handler.
    pub fn adopt_listener_with(
        &mut self,
        listener: std::net::TcpListener,
        opts: &ListenOptions,
        r: HandlerRef,
    ) -> Result<Handle> {
        let h = self.socket_for(r)?;
        self.adopt_on(h, listener, opts)
    }

    /// Makes an adopted listening socket non-blocking and installs it as
    /// `h`'s, freeing `h`'s slot on failure. One path for both families.
    fn adopt_on(
        &mut self,
        h: Handle,
        listener: impl AdoptedListener,
        opts: &ListenOptions,
    ) -> Result<Handle> {
        let installed = listener
            .into_nonblocking()
            .map_err(Error::from)
            .and_then(|listener| self.install_listener(h, listener, opts));
        match installed {
            Ok(()) => Ok(h),
            Err(e) => {
                self.free_slot(h);
                Err(e)
            }
        }
    }

    /// Serves a listening Unix-domain socket, typically from
    /// [`bind_unix`](crate::bind_unix); otherwise as
    /// [`adopt_listener`](Self::adopt_listener). Accepted connections have
    /// no IP addresses: [`peer_addr`](Self::peer_addr) and
    /// [`local_addr`](Self::local_addr) are errors for them. Several loops
    /// may each adopt a [`try_clone`](UnixListener::try_clone) of one
    /// listener; each connection is accepted by one of them.
    ///
    /// ```
    /// use netlib::{Context, EventDispatch, ListenOptions};
    /// let dir = std::env::temp_dir().join(format!("netlib-adopt-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let l = netlib::bind_unix(&dir.join("s"), None, &ListenOptions::default())?;
    /// let mut dispatch = EventDispatch::new()?;
    /// let ctx = dispatch.context();
    /// let h = ctx.adopt_unix_listener(l, &ListenOptions::default(), |_: &mut Context, _, _| {})?;
    /// assert!(ctx.local_addr(h).is_err());
    /// std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn adopt_unix_listener<H: Handler>(
        &mut self,
        listener: UnixListener,
        opts: &ListenOptions,
        handler: H,
    ) -> Result<Handle> {
        let h = self.create_socket(handler);
        self.adopt_on(h, listener, opts)
    }

    /// [`adopt_unix_listener`](Self::adopt_unix_listener) with a registered handler.
    pub fn adopt_unix_listener_with(
        &mut self,
        listener: UnixListener,
        opts: &ListenOptions,
        r: HandlerRef,
    ) -> Result<Handle> {
        let h = self.socket_for(r)?;
        self.adopt_on(h, listener, opts)
    }

    /// Accepts the connections queued on listener `h` now, as if it had
    /// been reported readable. A listener registered with
    /// [`ListenOptions::exclusive_wakeup`] shares its wake-ups with other
    /// loops: one that died (a killed process) while holding a wake-up
    /// leaves its connection queued with nobody told, so such loops sweep
    /// their listeners now and then with this. Not listening is
    /// [`Error::InvalidState`].
    pub fn accept_pending(&mut self, h: Handle) -> Result<()> {
        self.check_listening(h, "accept")?;
        crate::dispatch::accept_all(self, h, true);
        Ok(())
    }

    /// Stops listening on `h` without losing a connection it was told
    /// about: takes it out of the loop's poll set, accepts what is queued
    /// (those connections are served as usual), then closes it. For a
    /// listening socket shared by EPOLLEXCLUSIVE with other loops or
    /// processes: a wake-up this loop received is not passed on to another
    /// waiter, so a plain [`close`](Self::close) could leave a connection
    /// queued with nobody woken; once out of the poll set, new connections
    /// wake the others. Not listening is [`Error::InvalidState`].
    pub fn close_listener_gracefully(&mut self, h: Handle) -> Result<()> {
        self.check_listening(h, "close gracefully")?;
        self.set_exclusive_waiting(h, false)?;
        crate::dispatch::accept_all(self, h, false);
        self.close(h)
    }

    /// Puts listener `h` into its loop's poll set with EPOLLEXCLUSIVE, or
    /// takes it out, leaving the socket open. Taking out a listener that is
    /// not in the set is not an error.
    pub(crate) fn set_exclusive_waiting(&mut self, h: Handle, waiting: bool) -> Result<()> {
        let Some(Io::Listener(l)) = self.entry(h).map(|e| &e.io) else {
            return Ok(());
        };
        if waiting {
            register_exclusive(self.poll.registry(), l, h.token())?;
        } else {
            unregister_exclusive(self.poll.registry(), l)?;
        }
        Ok(())
    }

    fn check_listening(&mut self, h: Handle, op: &'static str) -> Result<()> {
        let entry = self.open_entry(h)?;
        if entry.state != SocketState::Listening {
            return Err(Error::InvalidState {
                op,
                state: entry.state,
            });
        }
        Ok(())
    }

    /// Starts connecting to `addr` (`netlib_connect`). Completion arrives as
    /// [`Event::Confirm`](crate::Event::Confirm), failure as [`Event::Close`](crate::Event::Close) with the reason - also
    /// when `connect` fails at once, so callers have a single failure path.
    /// `Err` only when no socket could be created at all.
    pub fn connect<H: Handler>(
        &mut self,
        addr: SocketAddr,
        opts: &ConnectOptions,
        handler: H,
    ) -> Result<Handle> {
        let h = self.create_socket(handler);
        if let Err(e) = self.connect_on(h, addr, opts) {
            self.free_slot(h);
            return Err(e);
        }
        Ok(h)
    }

    /// Starts connecting an idle socket; see [`connect`](Self::connect).
    pub fn connect_on(&mut self, h: Handle, addr: SocketAddr, opts: &ConnectOptions) -> Result<()> {
        let entry = self.open_entry(h)?;
        if entry.state != SocketState::Idle {
            return Err(Error::InvalidState {
                op: "connect",
                state: entry.state,
            });
        }
        let (mut stream, failure) = start_connect(addr, opts)?;
        self.poll.registry().register(
            &mut stream,
            h.token(),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let timer = match (&failure, opts.timeout) {
            (None, Some(t)) => Some(self.timers.insert(
                Instant::now() + t,
                None,
                TimerTask::ConnectTimeout(h),
            )),
            _ => None,
        };
        let entry = self.open_entry(h)?;
        entry.io = Io::Stream(stream);
        entry.state = SocketState::Connecting;
        entry.peer = Some(addr);
        entry.half_close = opts.half_close;
        entry.internal_timer = timer;
        if let Some(e) = failure {
            log::debug!("netlib: {h} connect to {addr} failed at once: {e}");
            self.close_with(h, CloseReason::from_io(&e));
        }
        Ok(())
    }

    /// Registers an accepted stream under a new handle sharing the
    /// listener's handler.
    pub(crate) fn adopt_accepted(
        &mut self,
        listener: Handle,
        mut stream: Stream,
        peer: Option<SocketAddr>,
    ) -> Option<Handle> {
        let l = self.entry(listener)?;
        let (handler, nodelay, half_close) = (l.handler, l.accept_nodelay, l.accept_half_close);
        let from = Peer(peer);
        if nodelay {
            if let Err(e) = stream.set_nodelay(true) {
                log::warn!("netlib: TCP_NODELAY on connection from {from}: {e}");
            }
        }
        self.handlers.add_ref(handler);
        let h = self.new_socket_with(handler, SocketState::Connected);
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            h.token(),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::error!("netlib: cannot register connection from {from}: {e}");
            self.free_slot(h);
            return None;
        }
        let entry = self.entry_mut(h)?;
        entry.io = Io::Stream(stream);
        entry.peer = peer;
        entry.half_close = half_close;
        Some(h)
    }
}

/// A peer for log lines: its address, or what a Unix-domain peer is.
struct Peer(Option<SocketAddr>);

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(addr) => write!(f, "{addr}"),
            None => f.write_str("a Unix-domain peer"),
        }
    }
}

/// A bound, listening standard-library socket that
/// `Context::adopt_on` can serve: the only thing the two families do
/// differently when adopted is which [`Listener`] variant they become.
trait AdoptedListener {
    fn into_nonblocking(self) -> std::io::Result<Listener>;
}

impl AdoptedListener for std::net::TcpListener {
    fn into_nonblocking(self) -> std::io::Result<Listener> {
        self.set_nonblocking(true)?;
        Ok(Listener::Tcp(mio::net::TcpListener::from_std(self)))
    }
}

impl AdoptedListener for UnixListener {
    fn into_nonblocking(self) -> std::io::Result<Listener> {
        self.set_nonblocking(true)?;
        Ok(Listener::Unix(mio::net::UnixListener::from_std(self)))
    }
}
