//! The netlib handler of one reactor thread: accepts clients, enforces the
//! connection limit, and routes each socket's events to its [`Connection`].
//!
//! One `Worker` serves every socket of its dispatcher: it is the handler of
//! the thread's listeners, and accepted sockets keep their listener's
//! handler, so no per-connection handler is allocated. Connections live in a
//! table indexed by [`Handle::index`], which netlib keeps small by reusing
//! slots; the stored handle's generation guards against a stale event. The
//! worker also owns the thread's read buffer, lent to whichever connection
//! is reading (a reactor runs one callback at a time).
//!
//! Owned by one [`EventDispatch`](netlib::EventDispatch); it shares only the
//! [`Store`] and the [`ConnectionLimit`] with the other threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use netlib::{CloseReason, Context, Event, Handle, Handler};

use super::connection::Connection;
use super::stats::Counter;
use super::store::Store;

/// Size of the buffer each reactor thread reads into.
const READ_BUFFER: usize = 64 * 1024;

/// What a client over the connection limit reads before it is closed
/// (memcached's reply with `maxconns_fast`, its default).
const TOO_MANY_CONNECTIONS: &[u8] = b"ERROR Too many open connections\r\n";

/// The server-wide cap on open client connections (`-c`), shared by every
/// reactor thread.
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

/// The handler of one reactor thread. See the module docs.
pub(crate) struct Worker {
    store: Arc<Store>,
    limit: Arc<ConnectionLimit>,
    /// Indexed by `Handle::index()`.
    connections: Vec<Option<Connection>>,
    scratch: Box<[u8]>,
}

impl Worker {
    pub(crate) fn new(store: Arc<Store>, limit: Arc<ConnectionLimit>) -> Worker {
        Worker {
            store,
            limit,
            connections: Vec::new(),
            scratch: vec![0; READ_BUFFER].into_boxed_slice(),
        }
    }

    fn accept(&mut self, ctx: &mut Context, h: Handle) {
        if !self.limit.try_acquire() {
            self.store.counters().add(Counter::RejectedConnections, 1);
            log::debug!("memcached: {h} refused: too many open connections");
            // A best-effort notice; the socket is new, so its buffer has room.
            let _ = ctx.send(h, TOO_MANY_CONNECTIONS);
            let _ = ctx.close(h);
            return;
        }
        self.store.counters().connection_opened();
        if log::log_enabled!(log::Level::Debug) {
            if let Ok(peer) = ctx.peer_addr(h) {
                log::debug!("memcached: {h} accepted from {peer}");
            }
        }
        let index = h.index() as usize;
        if index >= self.connections.len() {
            self.connections.resize_with(index + 1, || None);
        }
        self.connections[index] = Some(Connection::new(h));
    }

    fn closed(&mut self, h: Handle, reason: CloseReason) {
        let Some(slot) = self.connections.get_mut(h.index() as usize) else {
            return;
        };
        if slot.as_ref().is_some_and(|c| c.handle() == h) {
            *slot = None;
            self.limit.release();
            self.store.counters().connection_closed();
            log::debug!("memcached: {h} closed: {reason}");
        } else {
            // A listener at shutdown, or a connection refused by the limit.
            log::trace!("memcached: {h} closed: {reason}");
        }
    }
}

/// The connection `h` names, if it is still the one in its slot.
fn connection(connections: &mut [Option<Connection>], h: Handle) -> Option<&mut Connection> {
    connections
        .get_mut(h.index() as usize)?
        .as_mut()
        .filter(|c| c.handle() == h)
}

impl Handler for Worker {
    fn on_event(&mut self, ctx: &mut Context, h: Handle, event: Event) {
        match event {
            Event::Connect { .. } => self.accept(ctx, h),
            Event::Read => {
                if let Some(c) = connection(&mut self.connections, h) {
                    c.on_read(ctx, &self.store, &mut self.scratch);
                }
            }
            Event::Write => {
                if let Some(c) = connection(&mut self.connections, h) {
                    c.on_write(ctx, &self.store);
                }
            }
            Event::Close(reason) => self.closed(h, reason),
            // Accepted sockets are not half-close and have no timers.
            _ => {}
        }
    }
}
