//! The center's work outside connection hooks, on the imconn
//! [`Server`] that owns the connections: queueing posts, feeding
//! connections (`pump`), opening them, the periodic `tick` (retries,
//! deadlines, reconnects, idle connections), worker results and shutdown.
//!
//! Everything here runs on the loop thread from a posted closure, a
//! deferred sweep or a timer - never inside a hook - so sends go straight
//! through to the kernel and the stream offsets used to report `Written`
//! are exact.

use crate::codec::Outgoing;
use crate::conn::{ack_header, PeerConn};
use crate::dedup::Key;
use crate::frame::HEADER_LEN;
use crate::message::{FailReason, Message, MsgId, Outcome, Received};
use crate::outbound::Held;
use crate::peer::Peer;
use crate::state::CenterState;
use crate::stats::StatsCell;
use imconn::{ConnConfig, ConnCtx, Limits, Server, Timeouts};
use netlib::{ConnectOptions, Context, Handle};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The imconn settings of every center connection.
pub(crate) fn conn_config(st: &CenterState) -> ConnConfig {
    let cfg = &st.cfg;
    let frame = HEADER_LEN + cfg.max_body;
    // The center keeps its own queues; imconn's output queue holds at most
    // the send window, retransmits and acks, so its cap is only a backstop
    // against a peer that reads nothing while sending NeedAck messages.
    let cap = cfg.backlog_high + cfg.send_window + 2 * frame + (4 << 20);
    ConnConfig {
        limits: Limits {
            high_water: cap,
            hard_cap: cap,
            ..Limits::default()
        },
        timeouts: Timeouts {
            heartbeat: Some(cfg.heartbeat),
            idle: Some(cfg.dead_after),
            login: Some(cfg.handshake_timeout),
        },
        max_frame: frame,
    }
}

/// Queues a message posted from any thread (already encoded there).
pub(crate) fn enqueue(s: &mut Server<PeerConn>, ctx: &mut Context, held: Held) {
    let st = &mut s.shared;
    if st.shutting_down {
        return held.finish(Outcome::Failed(FailReason::Shutdown));
    }
    let to = held.to;
    let posted = held.posted_at();
    let CenterState { peers, cfg, .. } = st;
    let p = peers
        .entry(to)
        .or_insert_with(|| Peer::new(to, cfg, posted));
    if p.accept(held, cfg) {
        p.last_used = p.last_used.max(posted);
        st.mark_dirty(to, ctx);
    }
}

/// Queues the posts of loop handlers, then serves every dirty peer.
pub(crate) fn sweep(s: &mut Server<PeerConn>, ctx: &mut Context) {
    let now = Instant::now();
    let posts = std::mem::take(&mut s.shared.pending_posts);
    for msg in posts {
        let info = s.shared.info.clone();
        if let Some(held) = Held::new(msg, &info, now) {
            enqueue(s, ctx, held);
        }
    }
    let dirty = std::mem::take(&mut s.shared.dirty);
    for addr in dirty {
        if let Some(p) = s.shared.peers.get_mut(&addr) {
            p.dirty = false;
        }
        serve(s, ctx, addr, now);
    }
}

/// Feeds `addr`'s connection, or opens one when there is work for it.
fn serve(s: &mut Server<PeerConn>, ctx: &mut Context, addr: SocketAddr, now: Instant) {
    let Some(p) = s.shared.peers.get(&addr) else {
        return;
    };
    match (p.conn, p.connecting) {
        (Some(h), _) => {
            resend_stale(s, ctx, addr, h, now);
            pump(s, ctx, addr, h, now);
        }
        (None, Some(_)) => {}
        (None, None) => {
            if p.has_work() && p.reconnect_at.is_none_or(|t| now >= t) {
                connect(s, ctx, addr, now);
            }
        }
    }
}

/// Opens an outgoing connection to `addr`.
fn connect(s: &mut Server<PeerConn>, ctx: &mut Context, addr: SocketAddr, now: Instant) {
    let opts = ConnectOptions {
        timeout: Some(s.shared.cfg.connect_timeout),
        ..ConnectOptions::default()
    };
    let config = conn_config(&s.shared);
    let result = s.connect(ctx, addr, &opts, PeerConn::outgoing(addr), config);
    let CenterState { peers, cfg, .. } = &mut s.shared;
    let Some(p) = peers.get_mut(&addr) else {
        return;
    };
    match result {
        Ok(h) => p.connecting = Some(h),
        Err(e) => {
            log::warn!("msgcenter: cannot connect to {addr}: {e}");
            p.last_failure = Some(FailReason::Unreachable);
            p.reconnect_at = Some(now + p.backoff.next_delay());
            p.fail_queued(|m| !m.need_ack, FailReason::Unreachable, cfg);
        }
    }
}

/// Sends `held` on `h`; `None` if the connection is gone.
fn transmit(s: &mut Server<PeerConn>, ctx: &mut Context, h: Handle, held: &Held) -> Option<()> {
    s.send_bytes_to(ctx, h, &held.frame).ok().map(drop)
}

/// Most bytes of frames written with one system call by [`pump`].
const BATCH: usize = 64 * 1024;

/// Hands queued messages to connection `h` while its output queue is
/// under the send window: urgent first, several frames per system call.
///
/// A plain message is `Written` once the stream offset of its last byte is
/// within what the connection handed to the kernel (`bytes_out`); until
/// then it waits in the peer's `unwritten` list with that offset.
fn pump(s: &mut Server<PeerConn>, ctx: &mut Context, addr: SocketAddr, h: Handle, now: Instant) {
    let mut batch = std::mem::take(&mut s.shared.batch);
    let mut msgs = std::mem::take(&mut s.shared.batch_msgs);
    while let Some(io) = s.conns().io(h) {
        let (queued, base) = (io.queued(), io.bytes_out + io.queued() as u64);
        let window = s.shared.cfg.send_window;
        if queued >= window {
            break;
        }
        let room = (window - queued).min(BATCH);
        let CenterState { peers, cfg, .. } = &mut s.shared;
        let Some(p) = peers.get_mut(&addr) else {
            break;
        };
        let remote = p.remote;
        batch.clear();
        while batch.len() < room {
            let Some(held) = p.pop_next() else {
                break;
            };
            if remote.is_some_and(|r| held.body_len() > r.max_body as usize) {
                p.finish(held, Outcome::Failed(FailReason::TooLarge), cfg);
            } else if now >= held.deadline {
                p.finish(held, Outcome::Failed(FailReason::DeadlineExceeded), cfg);
            } else {
                batch.extend_from_slice(&held.frame);
                msgs.push(held);
            }
        }
        if msgs.is_empty() {
            break;
        }
        let sent = s.send_bytes_to(ctx, h, &batch).is_ok();
        let bytes_out = s.conns().io(h).map_or(0, |io| io.bytes_out);
        let CenterState { peers, cfg, .. } = &mut s.shared;
        let Some(p) = peers.get_mut(&addr) else {
            break;
        };
        if !sent {
            // The connection is gone: back to the front, in order.
            while let Some(held) = msgs.pop() {
                p.push_front(held);
            }
            break;
        }
        let window = remote.map_or(cfg.dedup_window, |r| {
            Duration::from_millis(r.dedup_window_ms as u64)
        });
        let mut end = base;
        for mut held in msgs.drain(..) {
            end += held.size() as u64;
            if held.need_ack {
                held.sent(h, remote.map(|r| r.incarnation), window, now);
                p.awaiting.insert(held.id, held);
            } else if end <= bytes_out {
                p.finish(held, Outcome::Written, cfg);
            } else {
                p.unwritten.push_back((end, held));
            }
        }
    }
    batch.clear();
    s.shared.batch = batch;
    msgs.clear();
    s.shared.batch_msgs = msgs;
    let bytes_out = s.conns().io(h).map_or(0, |io| io.bytes_out);
    let CenterState { peers, cfg, .. } = &mut s.shared;
    if let Some(p) = peers.get_mut(&addr) {
        p.written_up_to(bytes_out, cfg);
    }
}

/// Sends again, at once, the NeedAck messages last sent on another
/// connection (lost with it, or never acknowledged there).
fn resend_stale(
    s: &mut Server<PeerConn>,
    ctx: &mut Context,
    addr: SocketAddr,
    h: Handle,
    now: Instant,
) {
    let ids: Vec<MsgId> = match s.shared.peers.get(&addr) {
        Some(p) => p
            .awaiting
            .values()
            .filter(|m| m.sent_on != Some(h))
            .map(|m| m.id)
            .collect(),
        None => return,
    };
    for id in ids {
        retransmit(s, ctx, addr, h, id, now);
    }
}

/// Sends awaiting message `id` again on `h`.
fn retransmit(
    s: &mut Server<PeerConn>,
    ctx: &mut Context,
    addr: SocketAddr,
    h: Handle,
    id: MsgId,
    now: Instant,
) {
    let Some(held) = s
        .shared
        .peers
        .get_mut(&addr)
        .and_then(|p| p.awaiting.remove(&id))
    else {
        return;
    };
    let sent = transmit(s, ctx, h, &held);
    let mut held = held;
    if sent.is_some() {
        let st = &mut s.shared;
        StatsCell::bump(&st.info.stats.retransmits);
        let remote = st.peers.get(&addr).and_then(|p| p.remote);
        let window = remote.map_or(st.cfg.dedup_window, |r| {
            Duration::from_millis(r.dedup_window_ms as u64)
        });
        held.sent(h, remote.map(|r| r.incarnation), window, now);
    }
    if let Some(p) = s.shared.peers.get_mut(&addr) {
        p.awaiting.insert(id, held);
    }
}

/// The periodic check: deadlines and retries of held messages, reconnects
/// after a backoff, idle connections, forgotten peers.
pub(crate) fn tick(s: &mut Server<PeerConn>, ctx: &mut Context) {
    if s.shared.shutting_down {
        return;
    }
    let now = Instant::now();
    let addrs: Vec<SocketAddr> = s.shared.peers.keys().copied().collect();
    for addr in addrs {
        tick_peer(s, ctx, addr, now);
    }
}

fn tick_peer(s: &mut Server<PeerConn>, ctx: &mut Context, addr: SocketAddr, now: Instant) {
    let CenterState { peers, cfg, .. } = &mut s.shared;
    let Some(p) = peers.get_mut(&addr) else {
        return;
    };
    let connected = p.conn.is_some();
    // Given up while no connection exists: say why none exists.
    let expired = if connected {
        FailReason::DeadlineExceeded
    } else {
        p.last_failure.unwrap_or(FailReason::DeadlineExceeded)
    };
    p.fail_queued(|m| now >= m.deadline, expired, cfg);
    let mut due = Vec::new();
    let mut done = Vec::new();
    for m in p.awaiting.values() {
        if now >= m.deadline {
            done.push((m.id, expired));
        } else if m.retry_due(now) {
            if m.sends > m.retry.max_retries {
                done.push((m.id, FailReason::RetriesExhausted));
            } else {
                due.push(m.id);
            }
        }
    }
    for (id, reason) in done {
        if let Some(m) = p.awaiting.remove(&id) {
            p.finish(m, Outcome::Failed(reason), cfg);
        }
    }
    let (conn, connecting, has_work) = (p.conn, p.connecting, p.has_work());
    let idle = cfg.idle_close.is_some_and(|d| now >= p.last_used + d);
    if let Some(h) = conn {
        for id in due {
            retransmit(s, ctx, addr, h, id, now);
        }
        if idle && !has_work {
            log::debug!("msgcenter: closing idle connection to {addr}");
            if let Some(c) = s.conns_mut().get_mut(h) {
                c.retired = true;
            }
            s.close_conn_after_flush(ctx, h);
            if let Some(p) = s.shared.peers.get_mut(&addr) {
                p.conn = None;
            }
        }
    } else if connecting.is_none() {
        if has_work {
            serve(s, ctx, addr, now);
        } else {
            s.shared.peers.remove(&addr);
        }
    }
}

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
    let job = Box::new(move || {
        let mut hcx = crate::handlers::HandlerCtx::new(from, info);
        let rx = Received {
            from,
            to,
            msg_type,
            id,
            flags,
            body: &body,
        };
        handler(&mut hcx, &rx);
        let posts = std::mem::take(&mut hcx.posts);
        let done = WorkerDone {
            refused: hcx.refused,
            key,
            dedup_key,
            id,
            msg_type,
            need_ack: flags.need_ack,
            posts,
        };
        // If the loop stopped meanwhile, the posts are dropped and report
        // Shutdown to their callbacks.
        let _ = poster.post(move |ctx| {
            ctx.with_handler(server, |s: &mut Server<PeerConn>, ctx| {
                worker_done(s, ctx, done)
            });
        });
    });
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
pub(crate) struct WorkerDone {
    refused: bool,
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
    st.pending_posts.extend(done.posts);
    st.schedule_sweep(ctx);
    if st.worker_jobs < st.cfg.max_worker_jobs {
        for h in std::mem::take(&mut st.paused) {
            let _ = ctx.resume_read(h);
        }
    }
    if done.refused {
        StatsCell::bump(&st.info.stats.refused);
        st.dedup.forget(done.dedup_key);
        return;
    }
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

/// Fails everything held with `Shutdown`, closes every connection, and
/// refuses what comes later.
pub(crate) fn shutdown(s: &mut Server<PeerConn>, ctx: &mut Context) {
    let st = &mut s.shared;
    st.shutting_down = true;
    let now = Instant::now();
    let posts = std::mem::take(&mut st.pending_posts);
    for msg in posts {
        if let Some(held) = Held::new(msg, &st.info, now) {
            held.finish(Outcome::Failed(FailReason::Shutdown));
        }
    }
    let CenterState { peers, cfg, .. } = st;
    for p in peers.values_mut() {
        p.fail_all(FailReason::Shutdown, cfg);
    }
    for (l, _) in std::mem::take(&mut s.shared.listeners) {
        let _ = ctx.close(l);
    }
    let handles: Vec<Handle> = s.conns().iter().map(|(h, _)| h).collect();
    for h in handles {
        s.close_conn(ctx, h);
    }
}
