//! [`ServerGroup`]: a connection server on every loop of a netlib
//! [`LoopGroup`], all accepting on one port.
//!
//! One loop per thread, muduo-style: each loop runs its own [`Server`]
//! with its own connections and its own per-loop state
//! ([`Connection::Shared`](crate::Connection::Shared)); state that all loops must see is shared
//! explicitly, by putting an `Arc` of it (a sharded store, counters) into
//! each loop's state. The port is shared by SO_REUSEPORT: one listener per
//! loop, and the kernel spreads connections over them; a connection lives
//! and dies on the loop that accepted it.
//!
//! A group may serve a Unix-domain socket instead
//! ([`ServerGroup::start_unix`]): every loop then accepts on its own
//! duplicate of the one listening descriptor.
//!
//! The group is `Send` and may be driven from any thread; the servers
//! themselves are reached through their loop's [`Poster`].
//!
//! ```
//! use imconn::{ConnConfig, ConnCtx, Connection, LineCodec, Server, ServerGroup};
//! use netlib::ListenOptions;
//! use std::io::{BufRead, BufReader, Write};
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::sync::Arc;
//!
//! /// Per loop: nothing of its own; shared by all loops: a line counter.
//! struct Count;
//! impl Connection for Count {
//!     type Codec = LineCodec;
//!     type Shared = Arc<AtomicU64>;
//!     fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, _line: &[u8]) {
//!         let n = cx.shared.fetch_add(1, Ordering::Relaxed) + 1;
//!         let _ = cx.send(n.to_string().as_str());
//!     }
//! }
//!
//! let lines = Arc::new(AtomicU64::new(0));
//! let group = ServerGroup::start(
//!     2,
//!     netlib::Config::default(),
//!     "127.0.0.1:0".parse()?,
//!     &ListenOptions::default(),
//!     move |ctx, _loop_index| {
//!         let lines = lines.clone();
//!         Server::<Count>::register(ctx, lines, |_, _| Some((Count, ConnConfig::default())))
//!     },
//! )?;
//! let mut client = std::net::TcpStream::connect(group.local_addr().unwrap())?;
//! client.write_all(b"a\nb\n")?;
//! let mut reader = BufReader::new(client);
//! let mut line = String::new();
//! reader.read_line(&mut line)?;
//! reader.read_line(&mut line)?;
//! assert_eq!(line, "1\r\n2\r\n");
//! group.stop();
//! group.join()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::server::Server;
use netlib::{
    bind_reuseport, Config, Context, GroupError, HandlerRef, ListenOptions, LoopGroup, Poster,
};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixListener;
use std::sync::{Arc, Mutex};

/// A [`Server`] per loop of a [`LoopGroup`], sharing one port. See the
/// module docs.
pub struct ServerGroup {
    group: LoopGroup,
    /// `None` for a group serving a Unix-domain socket.
    addr: Option<SocketAddr>,
    servers: Vec<HandlerRef>,
}

/// One loop's listening socket.
enum LoopListener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl ServerGroup {
    /// Starts `n` loops (at least one). On each loop's own thread `setup`
    /// registers that loop's server (typically [`Server::register`]) and
    /// returns its reference; the loop then serves its SO_REUSEPORT
    /// listener on `addr` (port 0: one free port for all) with it.
    pub fn start<F>(
        n: usize,
        config: Config,
        addr: SocketAddr,
        opts: &ListenOptions,
        setup: F,
    ) -> Result<ServerGroup, GroupError>
    where
        F: Fn(&mut Context, usize) -> HandlerRef + Send + Sync + 'static,
    {
        let n = n.max(1);
        let listeners = bind_reuseport(addr, n, opts)?;
        let addr = listeners[0].local_addr()?;
        let listeners = listeners.into_iter().map(LoopListener::Tcp).collect();
        Self::serve(config, Some(addr), listeners, opts, setup)
    }

    /// Like [`start`](Self::start), on a listening Unix-domain socket
    /// (from [`netlib::bind_unix`]): each of the `n` loops serves its own
    /// duplicate of it, and each connection is accepted by one loop. The
    /// caller owns the socket's file and removes it when done.
    pub fn start_unix<F>(
        n: usize,
        config: Config,
        listener: UnixListener,
        opts: &ListenOptions,
        setup: F,
    ) -> Result<ServerGroup, GroupError>
    where
        F: Fn(&mut Context, usize) -> HandlerRef + Send + Sync + 'static,
    {
        let n = n.max(1);
        let mut listeners = Vec::with_capacity(n);
        for _ in 1..n {
            listeners.push(LoopListener::Unix(listener.try_clone()?));
        }
        listeners.push(LoopListener::Unix(listener));
        Self::serve(config, None, listeners, opts, setup)
    }

    /// Starts one loop per listener; each serves its listener with the
    /// server `setup` registers on it.
    fn serve<F>(
        config: Config,
        addr: Option<SocketAddr>,
        listeners: Vec<LoopListener>,
        opts: &ListenOptions,
        setup: F,
    ) -> Result<ServerGroup, GroupError>
    where
        F: Fn(&mut Context, usize) -> HandlerRef + Send + Sync + 'static,
    {
        let n = listeners.len();
        let listeners: Arc<Mutex<Vec<Option<LoopListener>>>> =
            Arc::new(Mutex::new(listeners.into_iter().map(Some).collect()));
        let servers: Arc<Mutex<Vec<Option<HandlerRef>>>> = Arc::new(Mutex::new(vec![None; n]));
        let (listen_opts, recorded) = (opts.clone(), servers.clone());
        let group = LoopGroup::start(n, config, move |ctx, i| {
            let listener = listeners
                .lock()
                .map_err(|_| "listener table poisoned")?
                .get_mut(i)
                .and_then(Option::take)
                .ok_or("no listener for this loop")?;
            let server = setup(ctx, i);
            match listener {
                LoopListener::Tcp(l) => ctx.adopt_listener_with(l, &listen_opts, server)?,
                LoopListener::Unix(l) => ctx.adopt_unix_listener_with(l, &listen_opts, server)?,
            };
            if let Ok(mut refs) = recorded.lock() {
                refs[i] = Some(server);
            }
            Ok(())
        })?;
        let servers = servers
            .lock()
            .map(|refs| refs.iter().flatten().copied().collect())
            .unwrap_or_default();
        Ok(ServerGroup {
            group,
            addr,
            servers,
        })
    }

    /// The address every loop accepts on; `None` for a group started with
    /// [`start_unix`](Self::start_unix).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// The server of each loop, by loop index. A reference is valid only
    /// on its own loop: reach it with [`posters`](Self::posters)`()[i]` and
    /// [`Context::with_handler`].
    pub fn servers(&self) -> &[HandlerRef] {
        &self.servers
    }

    /// The poster of each loop, by loop index.
    pub fn posters(&self) -> &[Poster] {
        self.group.posters()
    }

    /// Number of loops.
    pub fn len(&self) -> usize {
        self.group.len()
    }

    /// Never true: a group has at least one loop.
    pub fn is_empty(&self) -> bool {
        self.group.is_empty()
    }

    /// Asks every loop to stop; each closes its connections
    /// (`Close(Shutdown)`) and exits. Returns at once.
    pub fn stop(&self) {
        self.group.stop();
    }

    /// Waits for every loop to exit (after [`stop`](Self::stop), or a
    /// stop from inside a loop).
    pub fn join(self) -> Result<(), GroupError> {
        self.group.join()
    }

    /// Runs `f` on loop `i`'s server, on that loop's thread.
    pub fn post_to<C, F>(&self, i: usize, f: F) -> netlib::Result<()>
    where
        C: crate::Connection,
        F: FnOnce(&mut Server<C>, &mut Context) + Send + 'static,
    {
        let server = *self.servers.get(i).ok_or(netlib::Error::InvalidHandle)?;
        self.group.posters()[i].post(move |ctx| {
            ctx.with_handler(server, |s: &mut Server<C>, ctx| f(s, ctx));
        })
    }
}
