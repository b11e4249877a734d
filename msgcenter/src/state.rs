//! [`CenterState`]: the center's state, kept as the `Shared` state of the
//! imconn [`Server`] that serves its connections, so connection hooks
//! (through `ConnCtx::shared`) and work from outside the hooks (posted
//! closures, timers, through `Context::with_handler`) reach the same data
//! without `RefCell`.
//!
//! Posts from [`CenterHandle`](crate::CenterHandle)s arrive through the
//! [`Inbox`](crate::inbox::Inbox), one drain per batch.
//!
//! Work that a hook cannot do itself - sending data on a connection other
//! than its own with the right accounting, opening connections, processing
//! a handler's posts - is recorded here (`dirty` peers, `pending_posts`)
//! and done by one deferred sweep per loop turn
//! ([`driver::sweep`](crate::driver::sweep)), outside any hook.

use crate::config::Config;
use crate::conn::PeerConn;
use crate::dedup::{DedupWindow, Key};
use crate::frame::Hello;
use crate::handlers::Handlers;
use crate::inbox::Inbox;
use crate::message::{FailReason, Message, Outcome};
use crate::outbound::{Held, Info};
use crate::peer::Peer;
use crate::pool::Pool;
use crate::stats::StatsCell;
use crate::FastMap;
use imconn::Server;
use netlib::{Context, Handle, HandlerRef};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// See the module docs.
#[allow(clippy::vec_box, reason = "a Held moves between queues by its pointer")]
pub(crate) struct CenterState {
    pub(crate) cfg: Config,
    /// This node, as told to peers.
    pub(crate) me: Hello,
    pub(crate) info: Arc<Info>,
    /// The server handler, for deferred work and timers.
    pub(crate) server: Option<HandlerRef>,
    pub(crate) peers: FastMap<SocketAddr, Peer>,
    pub(crate) dirty: Vec<SocketAddr>,
    sweep_scheduled: bool,
    /// Messages posted through [`CenterHandle`](crate::CenterHandle)s,
    /// from any thread, until the loop drains them.
    pub(crate) inbox: Arc<Inbox>,
    /// The last drained batch's list, kept for its allocation.
    pub(crate) drained: Vec<Box<Held>>,
    /// Messages posted by loop handlers, queued at the next sweep.
    pub(crate) pending_posts: Vec<Message>,
    pub(crate) dedup: DedupWindow,
    pub(crate) handlers: Handlers,
    pub(crate) workers: Option<Pool>,
    /// Worker jobs queued or running.
    pub(crate) worker_jobs: usize,
    /// Connections whose reading is paused because the pool was full.
    pub(crate) paused: Vec<Handle>,
    pub(crate) shutting_down: bool,
    /// Shutdown stops the loop (a spawned center owns its loop).
    pub(crate) owns_loop: bool,
    /// Listening sockets and their bound addresses.
    pub(crate) listeners: Vec<(Handle, SocketAddr)>,
    /// Accepted connections open now (bounded by `max_incoming`).
    pub(crate) incoming: usize,
    /// Scratch buffer of `driver::pump`, kept between calls.
    pub(crate) batch: Vec<u8>,
    /// The messages of the write batch being built (kept to reuse its
    /// allocation, like `batch`).
    pub(crate) batch_msgs: Vec<Box<Held>>,
}

impl CenterState {
    pub(crate) fn new(
        cfg: Config,
        me: Hello,
        info: Arc<Info>,
        handlers: Handlers,
        workers: Option<Pool>,
    ) -> CenterState {
        CenterState {
            dedup: DedupWindow::new(cfg.dedup_window, cfg.dedup_max),
            cfg,
            me,
            info,
            server: None,
            peers: FastMap::default(),
            dirty: Vec::new(),
            sweep_scheduled: false,
            inbox: Arc::default(),
            drained: Vec::new(),
            pending_posts: Vec::new(),
            handlers,
            workers,
            worker_jobs: 0,
            paused: Vec::new(),
            shutting_down: false,
            owns_loop: false,
            listeners: Vec::new(),
            incoming: 0,
            batch: Vec::new(),
            batch_msgs: Vec::new(),
        }
    }

    /// The peer at `addr`, created if new.
    pub(crate) fn peer(&mut self, addr: SocketAddr) -> &mut Peer {
        let cfg = &self.cfg;
        self.peers
            .entry(addr)
            .or_insert_with(|| Peer::new(addr, cfg, Instant::now()))
    }

    /// Asks the next sweep to feed `addr`'s connection, or open one.
    pub(crate) fn mark_dirty(&mut self, addr: SocketAddr, ctx: &mut Context) {
        if let Some(p) = self.peers.get_mut(&addr) {
            if !p.dirty {
                p.dirty = true;
                self.dirty.push(addr);
            }
        }
        self.schedule_sweep(ctx);
    }

    /// Defers one sweep to after the current callback (once per turn).
    pub(crate) fn schedule_sweep(&mut self, ctx: &mut Context) {
        if self.sweep_scheduled || self.shutting_down {
            return;
        }
        let Some(server) = self.server else {
            return;
        };
        self.sweep_scheduled = true;
        ctx.defer(move |ctx| {
            ctx.with_handler(server, |s: &mut Server<PeerConn>, ctx| {
                s.shared.sweep_scheduled = false;
                crate::driver::sweep(s, ctx);
            });
        });
    }

    /// A handler panicked on the message `dedup_key` (see
    /// [`handlers`](crate::handlers)): it leaves the dedup window
    /// unacknowledged, so the sender retries, and the handler's posts fail
    /// with `HandlerPanicked`.
    pub(crate) fn handler_panicked(&mut self, dedup_key: Key, posts: Vec<Message>) {
        StatsCell::bump(&self.info.stats.handler_panics);
        self.dedup.forget(dedup_key);
        for mut msg in posts {
            if let Some(held) = Held::new(&mut msg, &self.info) {
                held.finish(Outcome::Failed(FailReason::HandlerPanicked));
            }
        }
    }
}
