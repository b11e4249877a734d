//! The memcached server: N reactor threads over one shared, sharded store.
//!
//! Each thread runs its own [`EventDispatch`] with its own listening
//! sockets; with more than one thread they all bind the same address with
//! `SO_REUSEPORT`, and the kernel spreads new connections over them. A
//! connection stays on the thread that accepted it, so nothing but the
//! [`Store`] (a lock per shard) and a few counters is shared. With one thread
//! the server is a single netlib reactor doing everything, memcached's
//! `-t 1` without the separate accept thread.
//!
//! [`Server::start`] binds, starts the threads and returns once every
//! thread is listening, so a caller (a test, or `main`) can bind port 0 and
//! read the real address from [`Server::local_addrs`]. A [`ShutdownHandle`]
//! stops every loop from any thread; [`Server::wait`] joins them.
//!
//! ```
//! use examples::memcached::server::{Server, ServerConfig};
//! use std::io::{Read, Write};
//!
//! let server = Server::start(ServerConfig {
//!     listen: vec!["127.0.0.1:0".parse()?],
//!     ..ServerConfig::default()
//! })?;
//! let mut client = std::net::TcpStream::connect(server.local_addrs()[0])?;
//! client.write_all(b"set k 0 0 2\r\nhi\r\nget k\r\n")?;
//! let mut reply = [0u8; 30];
//! client.read_exact(&mut reply)?;
//! assert_eq!(&reply, b"STORED\r\nVALUE k 0 2\r\nhi\r\nEND\r\n");
//! server.shutdown()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use netlib::{EventDispatch, ListenOptions, Poster};

use super::clock::SystemClock;
use super::codec::MemcachedCodec;
use super::config::Config;
use super::connection::{accept, Client, Shared};
use super::store::Store;

pub use super::connection::ConnectionLimit;

/// memcached's port.
pub const DEFAULT_PORT: u16 = 11211;

/// Everything [`Server::start`] needs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Addresses to listen on. Port 0 picks a free port; with several
    /// threads they all share the port the first one got.
    pub listen: Vec<SocketAddr>,
    /// Reactor threads (`-t`), at least 1.
    pub threads: usize,
    /// The cache's limits. `threads` and `shards` are filled in from
    /// [`threads`](Self::threads) by [`Server::start`]: one shard with one
    /// thread, four per thread otherwise, so threads rarely meet on a lock.
    pub cache: Config,
}

impl Default for ServerConfig {
    /// memcached's defaults: all IPv4 interfaces, port 11211, one thread.
    fn default() -> Self {
        ServerConfig {
            listen: vec![SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT))],
            threads: 1,
            cache: Config::default(),
        }
    }
}

/// A running server. Dropping it leaves the threads running; call
/// [`shutdown`](Self::shutdown) or [`wait`](Self::wait).
pub struct Server {
    store: Arc<Store>,
    limit: Arc<ConnectionLimit>,
    local_addrs: Vec<SocketAddr>,
    posters: Vec<Poster>,
    threads: Vec<JoinHandle<netlib::Result<()>>>,
}

/// Stops every reactor thread of a [`Server`]; `Send + Clone`, for signal
/// handlers and tests.
#[derive(Clone)]
pub struct ShutdownHandle {
    posters: Vec<Poster>,
}

impl ShutdownHandle {
    /// Asks every loop to stop; open connections are closed. Returns at
    /// once; [`Server::wait`] waits for the threads.
    pub fn shutdown(&self) {
        for poster in &self.posters {
            poster.stop();
        }
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addrs", &self.local_addrs)
            .field("threads", &self.threads.len())
            .field("open_connections", &self.limit.open())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("threads", &self.posters.len())
            .finish()
    }
}

/// What a new reactor thread reports once it is listening, or why not.
type Ready = io::Result<(Poster, Vec<SocketAddr>)>;

impl Server {
    /// Binds every address on every thread and starts serving. Returns when
    /// all threads listen; an error (say, the port is taken) stops the
    /// threads already started.
    pub fn start(config: ServerConfig) -> io::Result<Server> {
        if config.listen.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no address to listen on",
            ));
        }
        let threads = config.threads.max(1);
        let mut cache = config.cache.clone();
        cache.threads = threads;
        cache.shards = if threads == 1 { 1 } else { threads * 4 };
        let store = Arc::new(Store::new(&cache, Arc::new(SystemClock)));
        let limit = Arc::new(ConnectionLimit::new(cache.max_connections));
        let mut server = Server {
            store,
            limit,
            local_addrs: config.listen.clone(),
            posters: Vec::new(),
            threads: Vec::new(),
        };
        let options = ListenOptions {
            reuse_port: threads > 1,
            ..ListenOptions::default()
        };
        for index in 0..threads {
            if let Err(e) = server.spawn_reactor(index, &options) {
                let _ = server.shutdown();
                return Err(e);
            }
        }
        log::info!(
            "memcached: listening on {:?} with {threads} thread(s)",
            server.local_addrs
        );
        Ok(server)
    }

    /// Starts reactor thread `index` and waits until it listens. The first
    /// thread resolves port 0; the others bind what it got.
    fn spawn_reactor(&mut self, index: usize, options: &ListenOptions) -> io::Result<()> {
        let (ready_tx, ready_rx) = mpsc::channel::<Ready>();
        let addrs = self.local_addrs.clone();
        let options = options.clone();
        let store = self.store.clone();
        let limit = self.limit.clone();
        let thread = std::thread::Builder::new()
            .name(format!("memcached-{index}"))
            .spawn(move || reactor(addrs, options, Shared::new(store, limit), ready_tx))?;
        match ready_rx.recv() {
            Ok(Ok((poster, bound))) => {
                self.posters.push(poster);
                self.threads.push(thread);
                self.local_addrs = bound;
                Ok(())
            }
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let outcome = thread.join();
                Err(io::Error::other(format!(
                    "reactor thread {index} died while starting: {outcome:?}"
                )))
            }
        }
    }

    /// The addresses the server listens on, with real port numbers.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The cache every thread serves.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Client connections open now.
    pub fn open_connections(&self) -> usize {
        self.limit.open()
    }

    /// A handle that stops the server from anywhere.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            posters: self.posters.clone(),
        }
    }

    /// Stops every thread and waits for them.
    pub fn shutdown(self) -> io::Result<()> {
        self.shutdown_handle().shutdown();
        self.wait()
    }

    /// Waits until every thread has stopped (see [`ShutdownHandle`]).
    /// Returns the first failure of a loop, if one failed.
    pub fn wait(self) -> io::Result<()> {
        let mut outcome = Ok(());
        for (index, thread) in self.threads.into_iter().enumerate() {
            let result = match thread.join() {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(io::Error::other(format!("reactor thread {index}: {e}"))),
                Err(_) => Err(io::Error::other(format!("reactor thread {index} panicked"))),
            };
            if outcome.is_ok() {
                outcome = result;
            }
        }
        outcome
    }
}

/// The body of one reactor thread: listen, report, run until stopped.
fn reactor(
    addrs: Vec<SocketAddr>,
    options: ListenOptions,
    shared: Shared,
    ready: mpsc::Sender<Ready>,
) -> netlib::Result<()> {
    let mut dispatch = match EventDispatch::new() {
        Ok(d) => d,
        Err(e) => {
            let _ = ready.send(Err(e));
            return Ok(());
        }
    };
    let ctx = dispatch.context();
    let codec = MemcachedCodec::new(shared.store().config());
    let server = imconn::Server::<Client>::register_with_codec(ctx, shared, codec, accept);
    let bound = addrs
        .iter()
        .map(|&addr| {
            ctx.listen_with(addr, &options, server)
                .and_then(|l| ctx.local_addr(l))
        })
        .collect::<netlib::Result<Vec<_>>>();
    match bound {
        Ok(bound) => {
            if ready.send(Ok((dispatch.poster(), bound))).is_err() {
                return Ok(());
            }
        }
        Err(e) => {
            let e = match e {
                netlib::Error::Io(e) => {
                    io::Error::new(e.kind(), format!("listen on {addrs:?}: {e}"))
                }
                other => io::Error::other(format!("listen on {addrs:?}: {other}")),
            };
            let _ = ready.send(Err(e));
            return Ok(());
        }
    }
    dispatch.run()
}
