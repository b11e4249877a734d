//! The memcached server: N event loops, one per thread, over one shared,
//! sharded store.
//!
//! The loops are netlib's loop group, run by [`imconn::ServerGroup`]: one
//! loop per thread (`-t N`), each with its own `SO_REUSEPORT` listener on
//! the same port, so the kernel spreads new connections over them and a
//! connection lives and dies on the loop that accepted it. Each loop runs
//! its own [`imconn::Server`] whose state (`LoopState`) is the loop's own
//! (its connections, its [`LoopStats`]) plus `Arc`s of what is shared on
//! purpose:
//!
//! - the [`Store`], locked per shard (four shards per loop, so loops rarely
//!   meet on a lock), with the `stats` counters: sessions count into plain
//!   local counters and add them to the store's atomics once per read, so
//!   `stats` on any loop reads the totals over all loops directly;
//! - the `-c` [`ConnectionLimit`], one atomic count over all loops.
//!
//! Nothing else crosses loops; per-loop connection numbers are atomics
//! written only by their loop, so [`Server::loops`] reads them from any
//! thread. With one loop the server is a single netlib reactor doing
//! everything, memcached's `-t 1` without the separate accept thread.
//!
//! With a Unix-domain socket (`-s`) the server listens on it instead of
//! TCP, as memcached does: one listening socket, which every loop serves
//! through its own duplicate descriptor. The socket's file is created with
//! the `-a` permission bits, replaces a stale file nobody listens on, and
//! is removed when the server stops.
//!
//! [`Server::start`] binds, starts the loops and returns once every loop
//! is listening, so a caller (a test, or `main`) can bind port 0 and read
//! the real address from [`Server::local_addrs`]. A [`ShutdownHandle`]
//! stops every loop from any thread; [`Server::wait`] joins them.
//!
//! ```
//! use examples::memcached::server::{Server, ServerConfig};
//! use std::io::{Read, Write};
//!
//! let server = Server::start(ServerConfig {
//!     listen: vec!["127.0.0.1:0".parse()?],
//!     threads: 2,
//!     ..ServerConfig::default()
//! })?;
//! let mut client = std::net::TcpStream::connect(server.local_addrs()[0])?;
//! client.write_all(b"set k 0 0 2\r\nhi\r\nget k\r\n")?;
//! let mut reply = [0u8; 30];
//! client.read_exact(&mut reply)?;
//! assert_eq!(&reply, b"STORED\r\nVALUE k 0 2\r\nhi\r\nEND\r\n");
//! assert_eq!(server.loops().len(), 2);
//! server.shutdown()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use imconn::ServerGroup;
use netlib::{Context, GroupError, HandlerRef, ListenOptions, Poster};

use super::clock::SystemClock;
use super::codec::MemcachedCodec;
use super::config::Config;
use super::connection::{accept, Client, LoopState};
use super::stats::Endpoint;
use super::store::Store;

pub use super::connection::{ConnectionLimit, LoopStats};

/// memcached's port.
pub const DEFAULT_PORT: u16 = 11211;

/// Everything [`Server::start`] needs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Addresses to listen on. Port 0 picks a free port; all loops share
    /// the port each address got. Ignored when [`unix`](Self::unix) is set.
    pub listen: Vec<SocketAddr>,
    /// A Unix-domain socket to listen on instead of TCP (`-s`, `-a`).
    pub unix: Option<UnixSocket>,
    /// Event loops, one per thread (`-t`), at least 1.
    pub threads: usize,
    /// The cache's limits. `threads` and `shards` are filled in from
    /// [`threads`](Self::threads) by [`Server::start`]: one shard with one
    /// loop, four per loop otherwise, so loops rarely meet on a lock.
    pub cache: Config,
}

impl Default for ServerConfig {
    /// memcached's defaults: all IPv4 interfaces, port 11211, one thread.
    fn default() -> Self {
        ServerConfig {
            listen: vec![SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT))],
            unix: None,
            threads: 1,
            cache: Config::default(),
        }
    }
}

/// A Unix-domain socket to serve (memcached's `-s <path>` and `-a <mask>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixSocket {
    /// Where the socket's file goes.
    pub path: PathBuf,
    /// Its permission bits (`-a`, default
    /// [`DEFAULT_UNIX_MASK`](super::DEFAULT_UNIX_MASK), 0700): a client
    /// needs write permission to connect.
    pub mode: u32,
}

/// The socket file this server created; removed when dropped, unless
/// something else has replaced it since.
#[derive(Debug)]
struct SocketFile {
    path: PathBuf,
    /// Device and inode of the file `bind` created.
    id: (u64, u64),
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours =
            std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id);
        if ours {
            if let Err(e) = std::fs::remove_file(&self.path) {
                log::warn!("memcached: cannot remove {}: {e}", self.path.display());
            }
        }
    }
}

/// A running server. Dropping it stops every loop and waits for them, as
/// [`shutdown`](Self::shutdown) does (without reporting errors).
pub struct Server {
    group: ServerGroup,
    store: Arc<Store>,
    limit: Arc<ConnectionLimit>,
    loops: Vec<Arc<LoopStats>>,
    local_addrs: Vec<SocketAddr>,
    /// Set when the server stops: the reclaimer thread then exits.
    reclaimer_stop: Arc<AtomicBool>,
    /// With `-s`: the socket file, removed once the loops have stopped.
    socket_file: Option<SocketFile>,
}

/// Stops every loop of a [`Server`]; `Send + Clone`, for signal handlers
/// and tests.
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
            .field("unix_socket", &self.socket_file.as_ref().map(|f| &f.path))
            .field("loops", &self.loops.len())
            .field("open_connections", &self.limit.open())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("loops", &self.posters.len())
            .finish()
    }
}

/// Listeners for the addresses after the first, bound before the loops
/// start: `per_loop[i]` holds loop `i`'s listener on each of them.
type ExtraListeners = Vec<Mutex<Vec<TcpListener>>>;

impl Server {
    /// Binds every address and starts serving on `threads` loops. Returns
    /// when all loops listen; an error (say, the port is taken) stops the
    /// loops already started.
    pub fn start(config: ServerConfig) -> io::Result<Server> {
        let (first, rest) = match (&config.unix, config.listen.split_first()) {
            (Some(_), _) => (None, &[][..]),
            (None, Some((&first, rest))) => (Some(first), rest),
            (None, None) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "no address to listen on",
                ))
            }
        };
        let threads = config.threads.max(1);
        let mut cache = cache_config(&config.cache, threads);
        if let Some(unix) = &config.unix {
            cache.domain_socket = Some(Arc::from(unix.path.as_path()));
            cache.unix_mask = unix.mode;
        }
        let store = Arc::new(Store::new(&cache, Arc::new(SystemClock)));
        let limit = Arc::new(ConnectionLimit::new(cache.max_connections));
        let loops: Vec<Arc<LoopStats>> = (0..threads).map(|_| Arc::default()).collect();
        let options = ListenOptions {
            backlog: i32::try_from(cache.backlog).unwrap_or(i32::MAX),
            ..ListenOptions::default()
        };

        // ServerGroup serves the first address; every further `-l` address
        // gets its own SO_REUSEPORT set, one listener per loop, adopted by
        // each loop in `setup`.
        let mut extra_addrs = Vec::with_capacity(rest.len());
        let per_loop: ExtraListeners = (0..threads).map(|_| Mutex::default()).collect();
        for &addr in rest {
            let listeners =
                netlib::bind_reuseport(addr, threads, &options).map_err(|e| at(addr, e))?;
            extra_addrs.push(listeners[0].local_addr()?);
            for (slot, listener) in per_loop.iter().zip(listeners) {
                slot.lock()
                    .map_err(|_| io::Error::other("poisoned"))?
                    .push(listener);
            }
        }
        let adopt_failed: Arc<Mutex<Option<io::Error>>> = Arc::default();
        let stoppers: Arc<OnceLock<Vec<Poster>>> = Arc::default();

        let setup = {
            let (store, limit, loops) = (store.clone(), limit.clone(), loops.clone());
            let (options, adopt_failed) = (options.clone(), adopt_failed.clone());
            let stoppers = stoppers.clone();
            move |ctx: &mut Context, i: usize| -> HandlerRef {
                let state = LoopState::new(
                    store.clone(),
                    limit.clone(),
                    loops[i].clone(),
                    stoppers.clone(),
                );
                let server = register_loop(ctx, &store, state);
                let mine = per_loop[i]
                    .lock()
                    .map(|mut l| std::mem::take(&mut *l))
                    .unwrap_or_default();
                for listener in mine {
                    if let Err(e) = ctx.adopt_listener_with(listener, &options, server) {
                        if let Ok(mut failed) = adopt_failed.lock() {
                            failed.get_or_insert(io::Error::other(format!(
                                "loop {i} cannot serve a listener: {e}"
                            )));
                        }
                    }
                }
                server
            }
        };
        if let Some(unix) = &config.unix {
            // Clients may connect as soon as the file exists: say what it
            // is before binding. memcached reports its -p setting as
            // tcpport even though -s turns TCP off.
            let counters = store.counters();
            counters.set_tcp_port(config.listen.first().map_or(DEFAULT_PORT, SocketAddr::port));
            let path = Arc::from(unix.path.as_path());
            counters.register_listener(Endpoint::Unix(path), store.now());
        }
        let started = match (first, &config.unix) {
            (Some(first), _) => {
                ServerGroup::start(threads, netlib::Config::default(), first, &options, setup)
                    .map_err(|e| group_error(e, |e| at(first, e)))
                    .map(|group| (group, None))
            }
            (None, Some(unix)) => bind_unix(unix, &options).and_then(|(listener, file)| {
                let loop_config = netlib::Config::default();
                ServerGroup::start_unix(threads, loop_config, listener, &options, setup)
                    .map_err(|e| group_error(e, |e| at_path(&unix.path, e)))
                    .map(|group| (group, Some(file)))
            }),
            (None, None) => unreachable!("checked above"),
        };
        let (group, socket_file) = started?;
        let failed = adopt_failed.lock().ok().and_then(|mut f| f.take());
        if let Some(e) = failed {
            group.stop();
            let _ = group.join();
            return Err(e);
        }
        let _ = stoppers.set(group.posters().to_vec());
        let reclaimer_stop = Arc::new(AtomicBool::new(false));
        spawn_reclaimer(Arc::downgrade(&store), reclaimer_stop.clone())?;
        let mut local_addrs: Vec<SocketAddr> = group.local_addr().into_iter().collect();
        local_addrs.extend(extra_addrs);
        if let Some(file) = &socket_file {
            log::info!(
                "memcached: listening on {} with {threads} loop(s)",
                file.path.display()
            );
        } else {
            log::info!("memcached: listening on {local_addrs:?} with {threads} loop(s)");
            store.counters().set_tcp_port(local_addrs[0].port());
            for addr in &local_addrs {
                store
                    .counters()
                    .register_listener(Endpoint::Inet(*addr), store.now());
            }
        }
        Ok(Server {
            group,
            store,
            limit,
            loops,
            local_addrs,
            reclaimer_stop,
            socket_file,
        })
    }

    /// The TCP addresses the server listens on, with real port numbers;
    /// none when it serves a Unix-domain socket.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The Unix-domain socket the server listens on (`-s`), if any.
    pub fn unix_path(&self) -> Option<&Path> {
        self.socket_file.as_ref().map(|f| f.path.as_path())
    }

    /// The cache every loop serves.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Client connections open now, over all loops.
    pub fn open_connections(&self) -> usize {
        self.limit.open()
    }

    /// Each loop's own connection numbers, by loop index.
    pub fn loops(&self) -> &[Arc<LoopStats>] {
        &self.loops
    }

    /// A handle that stops the server from anywhere.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            posters: self.group.posters().to_vec(),
        }
    }

    /// Stops every loop and waits for them.
    pub fn shutdown(self) -> io::Result<()> {
        self.group.stop();
        self.wait()
    }

    /// Waits until every loop has stopped (see [`ShutdownHandle`]), then
    /// removes the Unix socket's file, if there is one. Returns the first
    /// failure of a loop, if one failed.
    pub fn wait(self) -> io::Result<()> {
        let result = self.group.join();
        self.reclaimer_stop.store(true, Ordering::Relaxed);
        drop(self.socket_file);
        result.map_err(|e| io::Error::other(e.to_string()))
    }
}

/// The cache settings for `threads` loops: one shard with one loop, four
/// per loop otherwise, so loops rarely meet on a lock.
fn cache_config(cache: &Config, threads: usize) -> Config {
    let mut cache = cache.clone();
    cache.threads = threads;
    cache.shards = if threads == 1 { 1 } else { threads * 4 };
    cache
}

/// Registers one loop's memcached server.
fn register_loop(ctx: &mut Context, store: &Store, state: LoopState) -> HandlerRef {
    let codec = MemcachedCodec::new(store.config());
    imconn::Server::<Client>::register_with_codec(ctx, state, codec, accept)
}

/// Runs the server as `processes.workers` worker processes under a
/// [`prefork`] master, each with `config.threads` loops, all accepting on
/// the same sockets; `announce` gets the bound addresses (in the master).
///
/// Each worker is a cache of its own: `-m` and `-c` are split evenly over
/// the workers, and a key lives in the worker whose connection stored it
/// (a client on one connection sees its own writes; use `-t` for one
/// cache shared by every loop). The ASCII `shutdown` command closes only
/// its connection here; stop the master with SIGTERM (drain) or SIGQUIT.
pub fn serve_processes(
    config: ServerConfig,
    processes: prefork::Config,
    announce: impl FnOnce(&[SocketAddr]),
) -> io::Result<()> {
    let threads = config.threads.max(1);
    let workers = processes.workers.max(1);
    let mut cache = cache_config(&config.cache, threads);
    cache.memory_limit /= workers;
    cache.max_connections = cache.max_connections.div_ceil(workers);
    let processes = prefork::Config {
        threads,
        ..processes
    };
    let opts = ListenOptions::default();
    prefork::serve(processes, &config.listen, &opts, announce, |info| {
        // After the fork: the store and its reclaimer thread are this
        // worker's own.
        let store = Arc::new(Store::new(&cache, Arc::new(SystemClock)));
        let limit = Arc::new(ConnectionLimit::new(cache.max_connections));
        spawn_reclaimer(Arc::downgrade(&store), Arc::new(AtomicBool::new(false)))?;
        log::info!(
            "memcached: worker {} serving with {threads} loop(s)",
            info.slot
        );
        Ok(move |ctx: &mut Context, _| {
            let state =
                LoopState::new(store.clone(), limit.clone(), Arc::default(), Arc::default());
            Ok(register_loop(ctx, &store, state))
        })
    })
}

/// How often the reclaimer thread takes a step.
const RECLAIM_TICK: Duration = Duration::from_millis(100);

/// Slots of each shard the reclaimer looks at per step: bounded work under
/// each shard lock, so no loop waits long behind it.
const RECLAIM_SLOTS_PER_TICK: usize = 1024;

/// Starts the background reclaimer (memcached's LRU maintainer and
/// crawler): one thread for the whole server that, every
/// [`RECLAIM_TICK`], walks the next [`RECLAIM_SLOTS_PER_TICK`] slots of
/// every shard and removes expired items, so items nobody touches again
/// still leave `curr_items` and free their memory. `lru_crawler disable`
/// pauses it. It exits when the server stops or the store is dropped.
fn spawn_reclaimer(store: Weak<Store>, stop: Arc<AtomicBool>) -> io::Result<()> {
    std::thread::Builder::new()
        .name("memcached-reclaim".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(RECLAIM_TICK);
                let Some(store) = store.upgrade() else {
                    break;
                };
                if store.crawler_enabled() {
                    let removed = store.reclaim_expired(RECLAIM_SLOTS_PER_TICK);
                    if removed > 0 {
                        log::trace!("memcached: reclaimed {removed} expired item(s)");
                    }
                }
            }
        })
        .map(drop)
}

/// Binds the `-s` socket with the `-a` bits and notes which file it made.
fn bind_unix(
    unix: &UnixSocket,
    options: &ListenOptions,
) -> io::Result<(std::os::unix::net::UnixListener, SocketFile)> {
    let listener = netlib::bind_unix(&unix.path, Some(unix.mode & 0o777), options)
        .map_err(|e| at_path(&unix.path, e))?;
    let meta = std::fs::symlink_metadata(&unix.path).map_err(|e| at_path(&unix.path, e))?;
    let file = SocketFile {
        path: unix.path.clone(),
        id: (meta.dev(), meta.ino()),
    };
    Ok((listener, file))
}

/// A loop group's failure to start as an I/O error; `io` says where.
fn group_error(e: GroupError, io: impl FnOnce(io::Error) -> io::Error) -> io::Error {
    match e {
        GroupError::Io(e) => io(e),
        other => io::Error::other(other.to_string()),
    }
}

/// An I/O error of binding the socket file at `path`, saying so.
fn at_path(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("listen on {}: {e}", path.display()))
}

/// An I/O error of binding `addr`, saying so.
fn at(addr: SocketAddr, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("listen on {addr}: {e}"))
}
