//! Handlers on the worker pool: [`to_worker`] hands a received message to
//! a [`Pool`](crate::pool::Pool) thread, and the job posts a [`WorkerDone`]
//! back to the loop, which acknowledges (NeedAck), queues the handler's
//! posts and resumes reading when the pool has room again.
//!
//! A handler that panics is caught on the worker (the thread carries on):
//! the message is not acknowledged and leaves the dedup window, so its
//! sender retries it; the handler's posts fail with `HandlerPanicked`.

use crate::codec::Outgoing;
use crate::conn::{ack_header, PeerConn};
use crate::dedup::Key;
use crate::handlers::{run_guarded, HandlerCtx};
use crate::message::{Message, MsgId, Received};
use crate::stats::StatsCell;
use imconn::{ConnCtx, Server};
use netlib::Context;
use std::net::SocketAddr;

/// Dispatches a received message to the worker pool (from `on_data`).
pub(crate) fn to_worker(
    cx: &mut ConnCtx<'_, PeerConn>,
    key: SocketAddr,
    dedup_key: Key,
    rx: &Received<'_>,
) {
    let h = cx.handle();
    let st = &mut *cx.shared;
    let (Some(handler), Some(server)) = (st.handlers.on_worker.get(&rx.msg_type), st.server) else {
        return;
    };
    let handler = handler.clone();
    let info = st.info.clone();
    let poster = cx.ctx.poster();
    let (from, to, msg_type, id, flags) = (rx.from, rx.to, rx.msg_type, rx.id, rx.flags);
    let body = rx.body.to_vec();
    let job = move || {
        let mut hcx = HandlerCtx::new(from, info);
        let rx = Received {
            from,
            to,
            msg_type,
            id,
            flags,
            body: &body,
        };
        let returned = run_guarded(&rx, || handler(&mut hcx, &rx));
        let done = WorkerDone {
            panicked: !returned,
            key,
            dedup_key,
            id,
            msg_type,
            need_ack: flags.need_ack,
            posts: std::mem::take(&mut hcx.posts),
        };
        // If the loop stopped meanwhile, the posts are dropped and report
        // Shutdown to their callbacks.
        let _ = poster.post(move |ctx| {
            ctx.with_handler(server, |s: &mut Server<PeerConn>, ctx| {
                worker_done(s, ctx, done)
            });
        });
    };
    let accepted = st.workers.as_ref().is_some_and(|w| w.run(job));
    if !accepted {
        st.dedup.forget(dedup_key);
        return;
    }
    st.worker_jobs += 1;
    if st.worker_jobs >= st.cfg.max_worker_jobs {
        st.paused.push(h);
        cx.pause_read();
    }
}

/// What a worker handler left for the loop.
struct WorkerDone {
    panicked: bool,
    key: SocketAddr,
    dedup_key: Key,
    id: MsgId,
    msg_type: u32,
    need_ack: bool,
    posts: Vec<Message>,
}

fn worker_done(s: &mut Server<PeerConn>, ctx: &mut Context, done: WorkerDone) {
    let st = &mut s.shared;
    st.worker_jobs = st.worker_jobs.saturating_sub(1);
    if st.worker_jobs < st.cfg.max_worker_jobs {
        for h in std::mem::take(&mut st.paused) {
            let _ = ctx.resume_read(h);
        }
    }
    if done.panicked {
        st.handler_panicked(done.dedup_key, done.posts);
        return;
    }
    st.pending_posts.extend(done.posts);
    st.schedule_sweep(ctx);
    StatsCell::bump(&st.info.stats.handled);
    if done.need_ack {
        st.dedup.finish(done.dedup_key);
        // On the peer's connection now (maybe not the one it came on); with
        // none, the sender's retry is acknowledged as a duplicate later.
        if let Some(h) = st.peers.get(&done.key).and_then(|p| p.conn) {
            let header = ack_header(st, done.key, done.id, done.msg_type, 0);
            let _ = s.send_to(ctx, h, Outgoing(&header, &[]));
        }
    }
}
