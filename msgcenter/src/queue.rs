//! xx_net's queue API for programs with their own main loop (a game server,
//! a script): [`Queue::listen`], [`Queue::send`], [`Queue::recv`] - all
//! `&self`, callable from any thread - with the message center on a
//! network thread of its own.
//!
//! ## Who owns what
//!
//! The network thread owns a netlib loop and one [`Center`] on it, with one
//! connection pool for everything the queue sends and receives; each
//! [`Queue::listen`] adds a listener to it. The application's threads own
//! nothing but the [`Queue`]:
//! `send` encodes the value (MessagePack, [`crate::value`]) on the calling
//! thread and posts it through a [`CenterHandle`]; received values are
//! decoded on the center's worker thread and pushed into the queue's inbox,
//! which `recv` empties.
//!
//! ## Nothing silently dropped, everything bounded
//!
//! - `send` returns the message's id. Its [`Outcome`] comes back from the
//!   center: success just releases its slot, a failure is kept until the
//!   application collects it with [`Queue::failures`]. Sends whose outcome
//!   is unknown or whose failure is uncollected count against
//!   `max_outstanding`; past it `send` refuses with [`SendError::Full`].
//! - The inbox holds at most `max_pending` values and `max_pending_bytes`
//!   encoded bytes. When it is full the worker that decodes the next value
//!   waits for `recv`; the center's job queue then fills up
//!   (`center.max_worker_jobs`) and the center stops reading those
//!   connections, so TCP flow control pushes back on the senders, whose own
//!   backlog limit then refuses their posts (`FailReason::Backlog`).
//!   Nothing is dropped to make room.
//! - A NeedAck value is acknowledged once it is in the inbox (not once the
//!   application has looked at it).
//!
//! Peers know the queue by the first address it listened on, so their
//! replies come back to it; before any `listen`, the center tells peers it
//! does not listen (they reply over the connection it opened). Values from
//! one sender arrive in the order sent (the center decodes on one worker
//! thread).

use crate::center::{Center, CenterHandle, ListenError, StartError};
use crate::config::{Config, ConfigError};
use crate::handlers::Handlers;
use crate::message::{FailReason, Message, MsgId, Outcome};
use crate::value::{self, CodecError, Value};
use netlib::{EventDispatch, Poster};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The message type queue values travel as (`"XQ"` + version 1). A center
/// answers other types with `NoHandler`.
pub const VALUE_TYPE: u32 = 0x5851_0001;

/// A queue's settings: the center's [`Config`] plus the queue's own bounds.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Settings of the queue's center (`listen` and `advertise` are set by
    /// the queue: see [`Queue::listen`]; `workers` is forced to 1 so values
    /// from one sender stay in order). Default: `Config::default()` with
    /// `max_worker_jobs` 64.
    pub center: Config,
    /// Values `recv` can have waiting (`max_pending`). Default 65,536.
    pub max_pending: usize,
    /// Encoded bytes `recv` can have waiting (`max_pending_bytes`); one
    /// value larger than this is still accepted into an empty inbox.
    /// Default 64 MiB.
    pub max_pending_bytes: usize,
    /// Sends without a known outcome or with an uncollected failure
    /// (`max_outstanding`). Default 65,536.
    pub max_outstanding: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            center: Config {
                max_worker_jobs: 64,
                ..Config::default()
            },
            max_pending: 65_536,
            max_pending_bytes: 64 << 20,
            max_outstanding: 65_536,
        }
    }
}

impl QueueConfig {
    /// Sets one key: the queue's own (`max_pending`, `max_pending_bytes`,
    /// `max_outstanding`) or any of the center's ([`crate::config::KEYS`]).
    ///
    /// ```
    /// let mut cfg = msgcenter::queue::QueueConfig::default();
    /// cfg.set("max_pending", "100").unwrap();
    /// cfg.set("heartbeat_ms", "500").unwrap();
    /// assert_eq!((cfg.max_pending, cfg.center.heartbeat.as_millis()), (100, 500));
    /// ```
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let n = || {
            value
                .trim()
                .parse::<usize>()
                .map_err(|_| ConfigError(format!("{key}: cannot parse {value:?}")))
        };
        match key {
            "max_pending" => self.max_pending = n()?,
            "max_pending_bytes" => self.max_pending_bytes = n()?,
            "max_outstanding" => self.max_outstanding = n()?,
            _ => return self.center.set(key, value),
        }
        Ok(())
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_pending == 0 || self.max_pending_bytes == 0 || self.max_outstanding == 0 {
            return Err(ConfigError(
                "max_pending, max_pending_bytes and max_outstanding must be above 0".into(),
            ));
        }
        self.center.validate()
    }
}

/// A value received, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound<T> {
    /// The sender's address (send replies here).
    pub from: SocketAddr,
    /// The local address it was sent to.
    pub to: SocketAddr,
    /// The sender's id of the message.
    pub id: MsgId,
    /// The sender asked for an acknowledgement (already sent).
    pub need_ack: bool,
    /// The value.
    pub value: T,
}

/// A send that failed, as [`Queue::failures`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// The id `send` returned.
    pub id: MsgId,
    /// Where it was going.
    pub to: SocketAddr,
    /// Why it failed.
    pub reason: FailReason,
}

/// Why `send` refused a value (nothing was sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// `max_outstanding` sends have no outcome yet or an uncollected
    /// failure: call [`Queue::failures`], or wait.
    Full,
    /// The value cannot be encoded.
    Encode(CodecError),
    /// The queue was shut down.
    Closed,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Full => f.write_str("too many sends outstanding (max_outstanding)"),
            SendError::Encode(e) => write!(f, "{e}"),
            SendError::Closed => f.write_str("queue shut down"),
        }
    }
}

impl std::error::Error for SendError {}

/// Why `listen` or starting the queue failed.
#[derive(Debug)]
pub enum QueueError {
    /// The center could not start (bad config, no thread...).
    Start(StartError),
    /// Listening failed: [`ListenError::AlreadyListening`] for an address
    /// this queue listens on already, `Io` for one the system refused.
    Listen(ListenError),
}
impl std::fmt::Display for QueueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueueError::Start(e) => write!(f, "{e}"),
            QueueError::Listen(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for QueueError {}

/// Counters of a queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Values put in the inbox.
    pub received: u64,
    /// Bodies that did not decode as the queue's value type (logged).
    pub malformed: u64,
    /// Values waiting for `recv`.
    pub pending: usize,
    /// Sends counted against `max_outstanding`.
    pub outstanding: usize,
    /// Sends that ended `Written` or `Acked`.
    pub delivered: u64,
    /// Sends that failed (collected or not).
    pub failed: u64,
}

/// The inbox: decoded values waiting for `recv`, and the room left.
struct Inbox<T> {
    items: VecDeque<(Inbound<T>, usize)>,
    bytes: usize,
    closed: bool,
}

/// What the application threads, the workers and the outcome callbacks
/// share.
struct Shared<T> {
    cfg: QueueConfig,
    inbox: Mutex<Inbox<T>>,
    /// Signalled when values arrive (for `recv_wait`) and when `recv`
    /// makes room (for the workers).
    changed: Condvar,
    failures: Mutex<Vec<Failure>>,
    outstanding: AtomicUsize,
    received: AtomicU64,
    malformed: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
}

impl<T> Shared<T> {
    fn inbox(&self) -> MutexGuard<'_, Inbox<T>> {
        self.inbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts `item` in the inbox, waiting while it is full. False if the
    /// queue closed meanwhile (the value is dropped with the queue).
    fn push(&self, item: Inbound<T>, size: usize) -> bool {
        let mut inbox = self.inbox();
        loop {
            if inbox.closed {
                return false;
            }
            let full = inbox.items.len() >= self.cfg.max_pending
                || (!inbox.items.is_empty() && inbox.bytes + size > self.cfg.max_pending_bytes);
            if !full {
                break;
            }
            inbox = self.changed.wait(inbox).unwrap_or_else(|p| p.into_inner());
        }
        inbox.bytes += size;
        inbox.items.push_back((item, size));
        self.received.fetch_add(1, Relaxed);
        drop(inbox);
        self.changed.notify_all();
        true
    }

    /// Refuses further pushes and wakes every waiter.
    fn close(&self) {
        self.inbox().closed = true;
        self.changed.notify_all();
    }

    fn outcome(&self, id: MsgId, to: SocketAddr, outcome: Outcome) {
        match outcome {
            Outcome::Written | Outcome::Acked { .. } => {
                self.delivered.fetch_add(1, Relaxed);
                self.outstanding.fetch_sub(1, Relaxed);
            }
            Outcome::Failed(reason) => {
                self.failed.fetch_add(1, Relaxed);
                self.failures
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(Failure { id, to, reason });
            }
        }
    }
}

/// xx_net's queue API. See the module docs.
///
/// ```
/// use msgcenter::queue::{Queue, QueueConfig};
/// use msgcenter::value::Value;
/// use std::time::Duration;
///
/// let server: Queue = Queue::start(QueueConfig::default())?;
/// let addr = server.listen("127.0.0.1:0".parse()?)?;
/// let client: Queue = Queue::start(QueueConfig::default())?;
/// client.send_need_ack(addr, &Value::map([("hello", Value::from("world"))]))?;
/// let got = server.recv_wait(Duration::from_secs(10));
/// assert_eq!(got[0].value.get("hello").and_then(Value::as_str), Some("world"));
/// // Reply to the sender's address; it lands in the client's queue.
/// server.send(got[0].from, &"welcome")?;
/// let reply = client.recv_wait(Duration::from_secs(10));
/// assert_eq!(reply[0].value, Value::from("welcome"));
/// assert!(client.failures().is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Queue<T: Send + 'static = Value> {
    shared: Arc<Shared<T>>,
    center: CenterHandle,
    /// The addresses listened on, in order.
    listening: Mutex<Vec<SocketAddr>>,
    poster: Poster,
    thread: Option<JoinHandle<()>>,
    _values: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned + Send + 'static> Queue<T> {
    /// Starts the network thread (`msgqueue`) and the center.
    pub fn start(cfg: QueueConfig) -> Result<Queue<T>, QueueError> {
        cfg.validate()
            .map_err(|e| QueueError::Start(StartError::Config(e)))?;
        let shared = Arc::new(Shared {
            cfg,
            inbox: Mutex::new(Inbox {
                items: VecDeque::new(),
                bytes: 0,
                closed: false,
            }),
            changed: Condvar::new(),
            failures: Mutex::new(Vec::new()),
            outstanding: AtomicUsize::new(0),
            received: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel();
        let on_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("msgqueue".into())
            .spawn(move || network_thread(on_thread, tx))
            .map_err(|e| QueueError::Start(StartError::Io(e)))?;
        let started = rx
            .recv()
            .unwrap_or_else(|_| Err(StartError::Io(std::io::Error::other("network thread died"))));
        let (poster, center) = match started {
            Ok(pair) => pair,
            Err(e) => {
                let _ = thread.join();
                return Err(QueueError::Start(e));
            }
        };
        Ok(Queue {
            shared,
            center,
            listening: Mutex::new(Vec::new()),
            poster,
            thread: Some(thread),
            _values: PhantomData,
        })
    }

    /// Listens on `addr` (port 0: a free port) and returns the bound
    /// address. Values sent to it arrive in [`recv`](Self::recv); the first
    /// address listened on is the one peers reply to. Listening again on an
    /// address this queue listens on is
    /// [`ListenError::AlreadyListening`]; an address another socket holds
    /// is `ListenError::Io` with the system's error.
    pub fn listen(&self, addr: SocketAddr) -> Result<SocketAddr, QueueError> {
        let mut listening = self.listening.lock().unwrap_or_else(|p| p.into_inner());
        let bound = self.center.listen(addr).map_err(QueueError::Listen)?;
        if listening.is_empty() {
            self.center.set_advertised(bound);
        }
        log::info!("msgqueue: listening on {bound}");
        listening.push(bound);
        Ok(bound)
    }
}
impl<T: Send + 'static> Queue<T> {
    /// The addresses this queue listens on, in the order listened.
    pub fn listening(&self) -> Vec<SocketAddr> {
        self.listening
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sends `value` to the queue listening at `to`, as a plain message
    /// (written once; lost if the connection dies after the kernel took
    /// it). Returns its id; a failure shows up in [`failures`](Self::failures).
    pub fn send<S: Serialize + ?Sized>(
        &self,
        to: SocketAddr,
        value: &S,
    ) -> Result<MsgId, SendError> {
        self.post(to, value, false)
    }

    /// Sends `value` with an acknowledgement: retried until the receiving
    /// queue has it in its inbox (deduplicated there), or failed.
    pub fn send_need_ack<S: Serialize + ?Sized>(
        &self,
        to: SocketAddr,
        value: &S,
    ) -> Result<MsgId, SendError> {
        self.post(to, value, true)
    }

    fn post<S: Serialize + ?Sized>(
        &self,
        to: SocketAddr,
        value: &S,
        need_ack: bool,
    ) -> Result<MsgId, SendError> {
        let body = value::encode(value).map_err(SendError::Encode)?;
        if self.shared.inbox().closed {
            return Err(SendError::Closed);
        }
        let max = self.shared.cfg.max_outstanding;
        self.shared
            .outstanding
            .fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1))
            .map_err(|_| SendError::Full)?;
        let shared = self.shared.clone();
        let mut msg = Message::new(to, VALUE_TYPE, body)
            .on_done(move |id, outcome| shared.outcome(id, to, outcome));
        if need_ack {
            msg = msg.need_ack();
        }
        Ok(self.center.post(msg))
    }

    /// Everything received since the last call (possibly nothing), oldest
    /// first. Never blocks.
    pub fn recv(&self) -> Vec<Inbound<T>> {
        let mut inbox = self.shared.inbox();
        let items: Vec<Inbound<T>> = inbox.items.drain(..).map(|(v, _)| v).collect();
        inbox.bytes = 0;
        drop(inbox);
        if !items.is_empty() {
            self.shared.changed.notify_all();
        }
        items
    }

    /// Like [`recv`](Self::recv), but waits up to `timeout` for at least
    /// one value (for scripts and tests).
    pub fn recv_wait(&self, timeout: Duration) -> Vec<Inbound<T>> {
        let end = Instant::now() + timeout;
        let mut inbox = self.shared.inbox();
        while inbox.items.is_empty() && !inbox.closed {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            inbox = self
                .shared
                .changed
                .wait_timeout(inbox, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        drop(inbox);
        self.recv()
    }

    /// The sends that failed since the last call, oldest first; collecting
    /// them frees their `max_outstanding` slots.
    pub fn failures(&self) -> Vec<Failure> {
        let list = std::mem::take(
            &mut *self
                .shared
                .failures
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        self.shared.outstanding.fetch_sub(list.len(), Relaxed);
        list
    }

    /// The counters.
    pub fn stats(&self) -> QueueStats {
        let s = &self.shared;
        QueueStats {
            received: s.received.load(Relaxed),
            malformed: s.malformed.load(Relaxed),
            pending: s.inbox().items.len(),
            outstanding: s.outstanding.load(Relaxed),
            delivered: s.delivered.load(Relaxed),
            failed: s.failed.load(Relaxed),
        }
    }

    /// Shuts the center down (outstanding sends fail with `Shutdown`, to
    /// no one: the queue is gone) and joins the network thread.
    pub fn shutdown(self) {}
}
impl<T: Send + 'static> Drop for Queue<T> {
    fn drop(&mut self) {
        self.center.shutdown(); // After the shutdown (same loop, posted in order): no connection
                                // is left to acknowledge a value, so workers waiting for room can
                                // be let go without pushing.
        let shared = self.shared.clone();
        let _ = self.poster.post(move |_| shared.close());
        self.poster.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The center's config: the queue's, with one worker (order).
fn center_config(cfg: &QueueConfig) -> Config {
    Config {
        workers: 1,
        ..cfg.center.clone()
    }
}

/// The handler the center runs on its worker: decode, then wait for room
/// in the inbox.
fn handlers<T: DeserializeOwned + Send + 'static>(shared: Arc<Shared<T>>) -> Handlers {
    Handlers::new().on_worker(VALUE_TYPE, move |_, m| match value::decode::<T>(m.body) {
        Ok(value) => {
            let item = Inbound {
                from: m.from,
                to: m.to,
                id: m.id,
                need_ack: m.flags.need_ack,
                value,
            };
            shared.push(item, m.body.len());
        }
        Err(e) => {
            shared.malformed.fetch_add(1, Relaxed);
            log::warn!("msgqueue: message {} from {}: {e}; dropped", m.id, m.from);
        }
    })
}

/// The network thread: a loop with the center, run until the queue is
/// dropped; then the inbox closes so workers waiting for room return, and
/// the center (and its worker) is dropped with the loop.
fn network_thread<T: DeserializeOwned + Send + 'static>(
    shared: Arc<Shared<T>>,
    tx: mpsc::Sender<Result<(Poster, CenterHandle), StartError>>,
) {
    let mut dispatch = match EventDispatch::new() {
        Ok(d) => d,
        Err(e) => return drop(tx.send(Err(StartError::Io(e)))),
    };
    let mut cfg = center_config(&shared.cfg);
    cfg.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    // A center always listens: here on a loopback port nobody is told
    // about. Advertised port 0 says "I do not listen": peers reply on the
    // connection we opened, until `listen` advertises a real address.
    cfg.advertise = Some(SocketAddr::from(([0, 0, 0, 0], 0)));
    match Center::register(dispatch.context(), cfg, handlers(shared.clone())) {
        Ok(h) => {
            let _ = tx.send(Ok((dispatch.poster(), h)));
        }
        Err(e) => return drop(tx.send(Err(e))),
    }
    if let Err(e) = dispatch.run() {
        log::error!("msgqueue: event loop failed: {e}");
    }
    shared.close();
    drop(dispatch);
}
