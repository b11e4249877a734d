//! Handlers by message type ([`Handlers`]), what a handler may do
//! ([`HandlerCtx`]: reply, post on). Handlers registered with
//! [`Handlers::on_worker`] run off the loop on a [`crate::pool::Pool`].
//!
//! A loop handler runs inside the connection's read hook: it must not
//! block. A worker handler runs on one of `Config::workers` threads; its
//! posts and its NeedAck acknowledgement are posted back to the loop when it
//! returns. Either way the ack is sent only after the handler returned, and
//! the handler's posts are queued in the center (in memory) by then; they
//! are written after the ack, so a receiver killed in between has acked a
//! message whose replies it never sent - a handler whose effects must
//! survive a crash makes them durable before it returns.

use crate::message::{Message, MsgId, Received};
use crate::outbound::Info;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// A handler run on the loop thread.
pub type LoopHandler = Box<dyn FnMut(&mut HandlerCtx, &Received<'_>) + Send>;
/// A handler run on the worker pool.
pub type WorkerHandler = Arc<dyn Fn(&mut HandlerCtx, &Received<'_>) + Send + Sync>;

/// The handlers of a center, by message type.
///
/// ```
/// use msgcenter::Handlers;
/// let handlers = Handlers::new()
///     .on(1, |cx, msg| {
///         cx.reply(2, msg.body.to_vec()); // on the loop
///     })
///     .on_worker(3, |_cx, msg| println!("{} bytes", msg.body.len())); // on the pool
/// assert!(handlers.handles(1) && handlers.handles(3) && !handlers.handles(2));
/// ```
#[derive(Default)]
pub struct Handlers {
    pub(crate) on_loop: HashMap<u32, LoopHandler>,
    pub(crate) on_worker: HashMap<u32, WorkerHandler>,
}

impl Handlers {
    /// No handlers.
    pub fn new() -> Handlers {
        Handlers::default()
    }

    /// Handles `msg_type` on the loop thread (replacing an earlier handler).
    pub fn on(
        mut self,
        msg_type: u32,
        f: impl FnMut(&mut HandlerCtx, &Received<'_>) + Send + 'static,
    ) -> Handlers {
        self.on_worker.remove(&msg_type);
        self.on_loop.insert(msg_type, Box::new(f));
        self
    }

    /// Handles `msg_type` on the worker pool (replacing an earlier handler).
    pub fn on_worker(
        mut self,
        msg_type: u32,
        f: impl Fn(&mut HandlerCtx, &Received<'_>) + Send + Sync + 'static,
    ) -> Handlers {
        self.on_loop.remove(&msg_type);
        self.on_worker.insert(msg_type, Arc::new(f));
        self
    }

    /// Whether a handler is registered for `msg_type`.
    pub fn handles(&self, msg_type: u32) -> bool {
        self.on_loop.contains_key(&msg_type) || self.on_worker.contains_key(&msg_type)
    }
}

/// What a handler may do while it runs: reply to the sender, post to
/// anyone. The messages are posted when the handler returns.
pub struct HandlerCtx {
    from: SocketAddr,
    info: Arc<Info>,
    pub(crate) posts: Vec<Message>,
    pub(crate) refused: bool,
}

impl HandlerCtx {
    pub(crate) fn new(from: SocketAddr, info: Arc<Info>) -> HandlerCtx {
        HandlerCtx {
            from,
            info,
            posts: Vec::new(),
            refused: false,
        }
    }

    /// The sender of the message being handled.
    pub fn from(&self) -> SocketAddr {
        self.from
    }

    /// Posts a plain message of `msg_type` back to the sender; returns its id.
    pub fn reply(&mut self, msg_type: u32, body: impl Into<Vec<u8>>) -> MsgId {
        self.post(Message::new(self.from, msg_type, body))
    }

    /// Refuses the message for now (backpressure: the application cannot
    /// take more). A NeedAck message is neither acknowledged nor
    /// remembered as handled, so the sender's next retry offers it again; a
    /// plain message is dropped. Counted in `Stats::refused`.
    pub fn refuse(&mut self) {
        self.refused = true;
    }

    /// Posts `msg` (to anyone, with any flags and callback); returns its id.
    pub fn post(&mut self, mut msg: Message) -> MsgId {
        let id = *msg.id.get_or_insert_with(|| self.info.ids.next());
        self.posts.push(msg);
        id
    }
}
