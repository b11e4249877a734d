//! One client connection on the imconn connection server: the
//! [`Session`] driven by [`MemcachedCodec`] frames, the `-c` connection
//! limit, and output backpressure.
//!
//! The connection server ([`imconn::Server`], one per loop) owns
//! the sockets, the connection table, reading and batching; this file only
//! says what a frame does:
//!
//! - **Frames.** Each frame (a command, with its data block for storage
//!   commands) runs through the session, which writes its reply straight
//!   into the connection's outgoing batch (the codec encodes the session
//!   run itself, so replies are not copied on the way). Replies to one read
//!   go out in one `send`.
//! - **Backpressure.** Once the output the kernel has not taken reaches
//!   [`Config::output_high_water`], the connection pauses reading: no
//!   further frame is run (the input already read is held) until the
//!   output has drained. A client that pipelines requests without reading
//!   replies therefore holds at most the high-water mark plus one batch of
//!   replies.
//! - **Close.** When the session asks to close (`quit`, an overlong line)
//!   the output is sent first, then the socket is closed.
//! - **Limit.** Past the `-c` limit a client is told
//!   `ERROR Too many open connections` and closed.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use imconn::{Accepted, ConnConfig, ConnCtx, Connection, EncodeError, Encoder, Limits, Timeouts};
use netlib::{CloseReason, Poster};

use super::codec::MemcachedCodec;
use super::config::Config;
use super::protocol::{CloseReason as SessionClose, Session};
use super::stats::{Counter, Endpoint};
use super::store::Store;

/// What a client over the connection limit reads before it is closed
/// (memcached's reply with `maxconns_fast`, its default).
const TOO_MANY_CONNECTIONS: &[u8] = b"ERROR Too many open connections\r\n";

/// The server-wide cap on open client connections (`-c`), shared by every
/// loop: a client is refused when the sum over all loops is at the limit.
///
/// ```
/// use examples::memcached::server::ConnectionLimit;
/// let limit = ConnectionLimit::new(1);
/// assert!(limit.try_acquire());
/// assert!(!limit.try_acquire());
/// limit.release();
/// assert!(limit.try_acquire());
/// ```
#[derive(Debug)]
pub struct ConnectionLimit {
    open: AtomicUsize,
    max: usize,
}

impl ConnectionLimit {
    /// A limit of `max` open connections.
    pub fn new(max: usize) -> ConnectionLimit {
        ConnectionLimit {
            open: AtomicUsize::new(0),
            max,
        }
    }

    /// Takes a place; false if `max` connections are already open.
    pub fn try_acquire(&self) -> bool {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives a place back.
    pub fn release(&self) {
        let _ = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(1))
            });
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

/// One loop's own connection numbers: what [`Server::loops`] reports per
/// loop.
///
/// Only its own loop writes them (on accept and close), so the atomics are
/// never contended; they are atomics so that any thread can read them
/// without posting to the loop.
///
/// [`Server::loops`]: super::server::Server::loops
#[derive(Debug, Default)]
pub struct LoopStats {
    open: AtomicUsize,
    accepted: AtomicU64,
}

impl LoopStats {
    /// Client connections open on this loop now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Client connections this loop has admitted since start (refusals by
    /// the `-c` limit are not counted).
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    fn opened(&self) {
        self.open.fetch_add(1, Ordering::Relaxed);
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    fn closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The state of one loop's [`imconn::Server`] (its
/// [`Connection::Shared`]): the loop's own [`LoopStats`] and connection
/// settings, plus `Arc`s of what every loop shares (the store, with its
/// counters, and the `-c` limit).
pub(crate) struct LoopState {
    store: Arc<Store>,
    limit: Arc<ConnectionLimit>,
    stats: Arc<LoopStats>,
    config: ConnConfig,
    /// Every loop's poster, filled once the group runs: `shutdown` (`-A`)
    /// stops them all.
    stoppers: Arc<OnceLock<Vec<Poster>>>,
}

impl LoopState {
    pub(crate) fn new(
        store: Arc<Store>,
        limit: Arc<ConnectionLimit>,
        stats: Arc<LoopStats>,
        stoppers: Arc<OnceLock<Vec<Poster>>>,
    ) -> LoopState {
        let config = conn_config(store.config());
        LoopState {
            store,
            limit,
            stats,
            config,
            stoppers,
        }
    }
}

/// The connection settings for a cache `config`: frames up to a whole
/// request with its largest value, and an output hard cap well above the
/// high-water mark at which reading pauses (one batch of replies, each at
/// most one get response, may land after it).
pub(crate) fn conn_config(config: &Config) -> ConnConfig {
    let hard_cap = config
        .output_high_water
        .saturating_add(config.max_get_response.saturating_mul(2))
        .saturating_add(1024 * 1024);
    ConnConfig {
        limits: Limits {
            high_water: config.output_high_water,
            hard_cap,
            ..Limits::default()
        },
        max_frame: MemcachedCodec::max_frame(config),
        timeouts: Timeouts {
            idle: config.idle_timeout,
            ..Timeouts::NONE
        },
    }
}

/// The accept callback: a connection, or a refusal past the limit.
pub(crate) fn accept(shared: &mut LoopState, a: &Accepted) -> Option<(Client, ConnConfig)> {
    let admitted = shared.limit.try_acquire();
    if admitted {
        shared.store.counters().connection_opened();
        shared.stats.opened();
        if let Some(peer) = a.peer {
            log::debug!("memcached: {} accepted from {peer}", a.handle);
        }
    } else {
        shared.store.counters().add(Counter::RejectedConnections, 1);
        log::debug!("memcached: {} refused: too many open connections", a.handle);
    }
    let mut session = Session::new();
    if admitted {
        let ends = match (a.peer, a.local, &shared.store.config().domain_socket) {
            (Some(peer), Some(local), _) => Some((Endpoint::Inet(peer), Endpoint::Inet(local))),
            (None, None, Some(path)) => Some((Endpoint::UnnamedUnix, Endpoint::Unix(path.clone()))),
            _ => None,
        };
        if let Some((peer, local)) = ends {
            let now = shared.store.now();
            session.set_conn(shared.store.counters().register_conn(peer, local, now));
        }
    }
    let client = Client {
        store: shared.store.clone(),
        session,
        admitted,
    };
    Some((client, shared.config))
}

/// One client. See the module docs.
pub(crate) struct Client {
    store: Arc<Store>,
    session: Session,
    /// False for a connection refused by the limit: it is told so and
    /// closed, and never counted.
    admitted: bool,
}

/// One session run, encoded straight into the connection's output.
pub(crate) struct Run<'a> {
    session: &'a mut Session,
    store: &'a Store,
    frame: &'a [u8],
    close: &'a mut Option<SessionClose>,
}

impl Encoder<Run<'_>> for MemcachedCodec {
    fn encode(&mut self, run: Run<'_>, dst: &mut Vec<u8>) -> Result<(), EncodeError> {
        *run.close = run.session.process_frame(run.store, run.frame, dst);
        Ok(())
    }
}

impl Connection for Client {
    type Codec = MemcachedCodec;
    type Shared = LoopState;

    fn on_connect(&mut self, cx: &mut ConnCtx<'_, Self>) {
        if !self.admitted {
            // A best-effort notice; the socket is new, so its buffer has room.
            let _ = cx.send_bytes(TOO_MANY_CONNECTIONS);
            cx.close_after_flush();
        }
    }

    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, frame: &[u8]) {
        if !self.admitted {
            return;
        }
        let mut close = None;
        let run = Run {
            session: &mut self.session,
            store: &self.store,
            frame,
            close: &mut close,
        };
        if cx.send(run).is_err() {
            return;
        }
        if let Some(reason) = close {
            match reason {
                SessionClose::BinaryProtocol => log::info!(
                    "memcached: {} closing: binary protocol request (only the text protocol is spoken)",
                    cx.handle()
                ),
                SessionClose::Shutdown => {
                    log::warn!("memcached: shutdown requested by {}", cx.handle());
                    if let Some(posters) = cx.shared.stoppers.get() {
                        for poster in posters {
                            poster.stop();
                        }
                    }
                }
                _ => log::debug!("memcached: {} closing: {reason:?}", cx.handle()),
            }
            cx.close_after_flush();
        } else if cx.io().queued() >= self.store.config().output_high_water {
            cx.pause_until_drained();
        }
    }

    fn on_close(&mut self, cx: &mut ConnCtx<'_, Self>, reason: CloseReason) {
        if self.admitted {
            cx.shared.limit.release();
            cx.shared.stats.closed();
            self.store.counters().connection_closed();
            if let Some(ticket) = self.session.conn() {
                self.store.counters().unregister_conn(ticket);
            }
            log::debug!("memcached: {} closed: {reason}", cx.handle());
        } else {
            log::trace!("memcached: {} closed: {reason}", cx.handle());
        }
    }
}
