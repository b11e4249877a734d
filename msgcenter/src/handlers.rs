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
//!
//! A handler that panics does not take its thread down (the loop, or a
//! worker): the panic is caught and logged, counted in
//! `Stats::handler_panics`, and the message counts as not handled - a
//! NeedAck message is not acknowledged and not remembered, so its sender
//! retries it (and, if the handler keeps panicking, ends with
//! `RetriesExhausted` or `DeadlineExceeded`). What the handler posted
//! before it panicked is not sent: each of those messages fails with
//! `FailReason::HandlerPanicked`, since a retry runs the handler again.

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
}

impl HandlerCtx {
    pub(crate) fn new(from: SocketAddr, info: Arc<Info>) -> HandlerCtx {
        HandlerCtx {
            from,
            info,
            posts: Vec::new(),
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

    /// Posts `msg` (to anyone, with any flags and callback); returns its id.
    pub fn post(&mut self, mut msg: Message) -> MsgId {
        let id = *msg.id.get_or_insert_with(|| self.info.ids.next());
        self.posts.push(msg);
        id
    }
}

/// Runs `handler` on `rx`, catching a panic (see the module docs). Returns
/// whether it returned normally; a panic is logged here.
pub(crate) fn run_guarded(rx: &Received<'_>, handler: impl FnOnce()) -> bool {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(handler)) {
        Ok(()) => true,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-text panic".into());
            log::error!(
                "msgcenter: the handler of type {} panicked on message {} from {}: {what}; \
                 not acknowledged, its posts discarded",
                rx.msg_type,
                rx.id,
                rx.from
            );
            false
        }
    }
}
