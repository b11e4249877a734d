//! The center's work outside connection hooks, on the imconn
//! [`Server`] that owns the connections: queueing posts, feeding
//! connections (`pump`), opening them, the periodic `tick` (retries,
//! deadlines, reconnects, idle connections) and shutdown.
//!
//! Everything here runs on the loop thread from a posted closure, a
//! deferred sweep or a timer - never inside a hook - so sends go straight
//! through to the kernel and the stream offsets used to report `Written`
//! are exact.

use crate::conn::PeerConn;
use crate::frame::HEADER_LEN;
use crate::inbox::Drain;
use crate::message::{FailReason, MsgId, Outcome};
use crate::outbound::Held;
use crate::peer::Peer;
use crate::state::CenterState;
use crate::stats::StatsCell;
use imconn::{ConnConfig, Limits, Server, Timeouts};
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

/// Takes every message posted since the last drain (one posted closure
/// per batch, see [`crate::inbox`]) into the peers' queues and serves
/// them at once: a posted closure runs outside any hook, so there is no
/// reason to wait for a deferred sweep (and a loop turn) first.
pub(crate) fn drain_inbox(s: &mut Server<PeerConn>, ctx: &mut Context, drain: Drain) {
    let st = &mut s.shared;
    let mut msgs = std::mem::take(&mut st.drained);
    drain.take(&mut msgs);
    let now = ctx.now();
    for held in msgs.drain(..) {
        enqueue(st, held, now);
    }
    st.drained = msgs;
    sweep(s, ctx);
}

/// Queues one message taken by the loop at `now` and marks its peer dirty
/// (the caller, a sweep, then serves the dirty peers).
fn enqueue(st: &mut CenterState, mut held: Box<Held>, now: Instant) {
    if st.shutting_down {
        return held.finish(Outcome::Failed(FailReason::Shutdown));
    }
    held.start(now);
    let to = held.to;
    let CenterState {
        peers, cfg, dirty, ..
    } = st;
    let p = peers.entry(to).or_insert_with(|| Peer::new(to, cfg, now));
    if p.accept(held, cfg) {
        p.last_used = now;
        if !p.dirty {
            p.dirty = true;
            dirty.push(to);
        }
    }
}

/// Queues the posts of handlers, then serves every dirty peer.
pub(crate) fn sweep(s: &mut Server<PeerConn>, ctx: &mut Context) {
    let now = ctx.now();
    let posts = std::mem::take(&mut s.shared.pending_posts);
    for mut msg in posts {
        let info = s.shared.info.clone();
        if let Some(held) = Held::new(&mut msg, &info) {
            enqueue(&mut s.shared, held, now);
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
    let mut buf = std::mem::take(&mut s.shared.batch);
    buf.clear();
    held.encode(&mut buf, s.shared.info.from());
    let sent = s.send_bytes_to(ctx, h, &buf).ok().map(drop);
    buf.clear();
    s.shared.batch = buf;
    sent
}

/// Most bytes of frames written with one system call by [`pump`].
const BATCH: usize = 64 * 1024;

/// Hands queued messages to connection `h` while its output queue is
/// under the send window: urgent first, several frames per system call.
/// Each frame is encoded once, straight into the batch that is handed to
/// the kernel (imconn queues only what the kernel did not take).
///
/// A plain message is `Written` once the stream offset of its last byte is
/// within what the connection handed to the kernel (`bytes_out`); until
/// then it waits in the peer's `unwritten` list with that offset.
fn pump(s: &mut Server<PeerConn>, ctx: &mut Context, addr: SocketAddr, h: Handle, now: Instant) {
    let mut batch = std::mem::take(&mut s.shared.batch);
    let mut msgs = std::mem::take(&mut s.shared.batch_msgs);
    let from = s.shared.info.from();
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
            } else if held.expired(now) {
                p.finish(held, Outcome::Failed(FailReason::DeadlineExceeded), cfg);
            } else {
                held.encode(&mut batch, from);
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
    p.fail_queued(|m| m.expired(now), expired, cfg);
    let mut due = Vec::new();
    let mut done = Vec::new();
    for m in p.awaiting.values() {
        if m.expired(now) {
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

/// Fails everything held with `Shutdown`, closes every connection, and
/// refuses what comes later.
pub(crate) fn shutdown(s: &mut Server<PeerConn>, ctx: &mut Context) {
    let st = &mut s.shared;
    st.shutting_down = true;
    st.inbox.close();
    let posts = std::mem::take(&mut st.pending_posts);
    for mut msg in posts {
        if let Some(held) = Held::new(&mut msg, &st.info) {
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
