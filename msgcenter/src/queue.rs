//! [`NetQueue`]: xx_net's queue API on the center, for programs with a main
//! loop of their own (a game server, a script): `listen(addr)`,
//! `send(addr, value)`, and `recv()` returning everything received since
//! the last call. Thread-safe; the center runs on a network thread of its
//! own ([`Center::spawn`]).
//!
//! Values are any serde type, encoded with `postcard` (compact, varint
//! based) as the body of one message type, [`QUEUE_TYPE`] - the seeds'
//! dictionaries become structs or maps. Every send is a NeedAck message, so
//! nothing disappears silently: a send that fails shows up in
//! [`failures`](NetQueue::failures) with its reason. The inbox is bounded
//! (`max_inbox`): while it is full, arriving values are refused and their
//! senders retry later, so a program that stops calling `recv` costs at
//! most that much memory.
//!
//! ```
//! use msgcenter::{Config, NetQueue};
//! use std::collections::BTreeMap;
//!
//! let a = NetQueue::start(Config::default())?;
//! let b = NetQueue::start(Config::default())?;
//! let b_addr = b.listen("127.0.0.1:0".parse()?)?;
//! let mut order = BTreeMap::new();
//! order.insert("item".to_string(), "tea".to_string());
//! a.send(b_addr, &order)?;
//! let got = loop {
//!     // The program's own loop: take what came, do the rest of its work.
//!     let got = b.recv::<BTreeMap<String, String>>();
//!     if !got.is_empty() {
//!         break got;
//!     }
//!     std::thread::sleep(std::time::Duration::from_millis(5));
//! };
//! assert_eq!(got[0].value.as_ref().unwrap()["item"], "tea");
//! assert_eq!(got[0].from, a.advertised_addr());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::center::{Center, CenterHandle, ListenError, Running, StartError};
use crate::config::Config;
use crate::handlers::Handlers;
use crate::message::{FailReason, Message, MsgId, Outcome};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// The message type queue values travel as ("xxne").
pub const QUEUE_TYPE: u32 = 0x7878_6e65;

/// Values kept for `recv` by default.
pub const DEFAULT_MAX_INBOX: usize = 100_000;

/// A value received by [`NetQueue::recv`].
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery<T> {
    /// The sender's advertised address (send replies here).
    pub from: SocketAddr,
    /// The value, or why its bytes are not a `T`.
    pub value: Result<T, postcard::Error>,
}

/// A send that failed (see [`NetQueue::failures`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendFailure {
    /// Where it was going.
    pub to: SocketAddr,
    /// The id [`NetQueue::send`] returned.
    pub id: MsgId,
    /// Why it failed.
    pub reason: FailReason,
}

#[derive(Default)]
struct Shared {
    inbox: Vec<(SocketAddr, Vec<u8>)>,
    failures: Vec<SendFailure>,
    advertised_set: bool,
}

/// xx_net's queue. See the module docs.
pub struct NetQueue {
    center: Running,
    shared: Arc<Mutex<Shared>>,
}

impl NetQueue {
    /// Starts the queue's center on its own thread, with an inbox of
    /// [`DEFAULT_MAX_INBOX`] values. The center listens on `config.listen`
    /// (default: a free port on 127.0.0.1) until [`listen`](Self::listen)
    /// says where peers should reach it.
    pub fn start(config: Config) -> Result<NetQueue, StartError> {
        NetQueue::with_inbox_limit(config, DEFAULT_MAX_INBOX)
    }

    /// Like [`start`](Self::start), keeping at most `max_inbox` values
    /// between two `recv` calls.
    pub fn with_inbox_limit(config: Config, max_inbox: usize) -> Result<NetQueue, StartError> {
        let advertised_set = config.advertise.is_some();
        let shared = Arc::new(Mutex::new(Shared {
            advertised_set,
            ..Shared::default()
        }));
        let inbox = shared.clone();
        let handlers = Handlers::new().on(QUEUE_TYPE, move |cx, msg| {
            let mut s = lock(&inbox);
            if s.inbox.len() >= max_inbox {
                cx.refuse(); // the sender retries once recv made room
            } else {
                s.inbox.push((msg.from, msg.body.to_vec()));
            }
        });
        Ok(NetQueue {
            center: Center::spawn(config, handlers)?,
            shared,
        })
    }

    /// Listens on `addr` and returns the bound address. The first call
    /// also makes it the address peers are told to answer to (unless
    /// `Config::advertise` was set). Listening twice on one address - the
    /// center's own `Config::listen` included - is
    /// [`ListenError::AlreadyListening`].
    pub fn listen(&self, addr: SocketAddr) -> Result<SocketAddr, ListenError> {
        let handle = self.center.handle();
        let bound = handle.listen(addr)?;
        let mut s = lock(&self.shared);
        if !s.advertised_set {
            s.advertised_set = true;
            handle.set_advertised(bound);
        }
        Ok(bound)
    }

    /// Encodes `value` and sends it to the queue at `to`; returns the
    /// message id. `Err` only when the value cannot be encoded; delivery
    /// failures come later through [`failures`](Self::failures).
    pub fn send<T: Serialize + ?Sized>(
        &self,
        to: SocketAddr,
        value: &T,
    ) -> Result<MsgId, postcard::Error> {
        let body = postcard::to_allocvec(value)?;
        let shared = self.shared.clone();
        let msg = Message::new(to, QUEUE_TYPE, body)
            .need_ack()
            .on_done(move |id, outcome| {
                if let Outcome::Failed(reason) = outcome {
                    lock(&shared).failures.push(SendFailure { to, id, reason });
                }
            });
        Ok(self.center.handle().post(msg))
    }

    /// Everything received since the last call, oldest first, decoded as
    /// `T` (a value that is not a `T` comes with its decoding error).
    pub fn recv<T: DeserializeOwned>(&self) -> Vec<Delivery<T>> {
        let items = std::mem::take(&mut lock(&self.shared).inbox);
        items
            .into_iter()
            .map(|(from, body)| Delivery {
                from,
                value: postcard::from_bytes(&body),
            })
            .collect()
    }

    /// The sends that failed since the last call.
    pub fn failures(&self) -> Vec<SendFailure> {
        std::mem::take(&mut lock(&self.shared).failures)
    }

    /// The address peers answer to (see [`listen`](Self::listen)).
    pub fn advertised_addr(&self) -> SocketAddr {
        self.center.handle().advertised_addr()
    }

    /// The center underneath (stats, peers, raw messages).
    pub fn center(&self) -> &CenterHandle {
        self.center.handle()
    }

    /// Shuts the center down: sends not yet acknowledged fail with
    /// `Shutdown` (and are dropped with the queue).
    pub fn shutdown(self) {
        self.center.shutdown();
    }
}

fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
