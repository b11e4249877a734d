//! [`PeerConn`]: one connection of the center, as an imconn
//! [`Connection`] - the handshake, the pool rule for crossing connections,
//! and what arrives on an established connection (DATA to handlers with
//! dedup and ack, ACKs to the waiting messages).
//!
//! ## Handshake and the one-connection rule
//!
//! The connecting side sends its preamble and HELLO; the accepting side
//! answers with its preamble and WELCOME (the connection is in use) or
//! REJECT. No DATA is sent on a connection before its handshake completed,
//! so a connection that loses the rule below never carried a message.
//!
//! When a HELLO arrives from a peer that we are connecting to ourselves
//! (both nodes connected at the same moment - xx_net's boundary 3), the
//! connection opened by the node with the lower (node id, incarnation)
//! wins. Both nodes apply the same rule to the same two connections: the
//! lower node rejects the HELLO it receives (its own connection wins), the
//! higher node accepts it and abandons its own attempt, which the lower
//! node rejects in turn. A HELLO that arrives after the lower node's own
//! connection was established (it crossed the WELCOME) is rejected the same
//! way. Any other HELLO from a peer that already has an established
//! connection replaces it (the peer only connects when it has none: it
//! restarted, or saw that connection die first); the old connection's
//! unwritten messages move to the new one.
//!
//! The peer's address (the pool key) is the address it listens on, from
//! its HELLO; an unspecified IP there is replaced by the one the connection
//! comes from, and a peer that does not listen is known by its connection's
//! address.

use crate::codec::{Incoming, MsgCodec, Outgoing, Preamble};
use crate::dedup::{Full, Seen};
use crate::frame::{
    FrameRef, Header, Hello, Kind, RejectCode, FLAG_DUPLICATE, FLAG_NEED_ACK, FLAG_NO_HANDLER,
    FLAG_URGENT,
};
use crate::handlers::{run_guarded, HandlerCtx};
use crate::message::{FailReason, Flags, Outcome, Received};
use crate::state::CenterState;
use crate::stats::StatsCell;
use imconn::{ConnCtx, Connection, DecodeError};
use netlib::{CloseReason, Handle};
use std::net::SocketAddr;
use std::time::Instant;

/// See the module docs.
#[derive(Debug)]
pub(crate) struct PeerConn {
    /// The pool key: the dialed address (outgoing), or the peer's listen
    /// address once its HELLO arrived (incoming).
    pub(crate) peer: Option<SocketAddr>,
    outgoing: bool,
    established: bool,
    protocol_error: bool,
    /// Lost the one-connection rule, was replaced, or closed for being
    /// idle: closing, and no longer the peer's connection.
    pub(crate) retired: bool,
}

impl PeerConn {
    pub(crate) fn outgoing(peer: SocketAddr) -> PeerConn {
        PeerConn {
            peer: Some(peer),
            outgoing: true,
            established: false,
            protocol_error: false,
            retired: false,
        }
    }

    pub(crate) fn incoming() -> PeerConn {
        PeerConn {
            peer: None,
            outgoing: false,
            established: false,
            protocol_error: false,
            retired: false,
        }
    }

    fn violation(&mut self, cx: &mut ConnCtx<'_, Self>, what: &str) {
        log::warn!(
            "msgcenter: {} {:?} closed: protocol violation: {what}",
            cx.handle(),
            cx.peer()
        );
        StatsCell::bump(&cx.shared.info.stats.protocol_errors);
        self.protocol_error = true;
        cx.close();
    }

    fn send_hello(cx: &mut ConnCtx<'_, Self>, kind: Kind, to: SocketAddr) {
        let header = Header {
            from: cx.shared.info.from(),
            to,
            ..Header::new(kind)
        };
        let body = cx.shared.me.to_body();
        let _ = cx.send(Preamble);
        let _ = cx.send(Outgoing(&header, &body));
    }

    fn reject(&mut self, cx: &mut ConnCtx<'_, Self>, code: RejectCode, why: &str) {
        log::info!("msgcenter: {} rejecting HELLO: {why}", cx.handle());
        let mut body = vec![code as u8];
        body.extend_from_slice(why.as_bytes());
        let header = Header {
            from: cx.shared.info.from(),
            ..Header::new(Kind::Reject)
        };
        let _ = cx.send(Preamble);
        let _ = cx.send(Outgoing(&header, &body));
        self.retired = true;
        cx.close_after_flush();
    }

    fn on_hello(&mut self, cx: &mut ConnCtx<'_, Self>, frame: FrameRef<'_>) {
        let Some(hello) = Hello::from_body(frame.body) else {
            return self.violation(cx, "malformed HELLO");
        };
        let key = pool_key(frame.header.from, cx.peer());
        let me = cx.shared.me;
        let (mine, theirs) = (
            (me.node_id, me.incarnation),
            (hello.node_id, hello.incarnation),
        );
        if mine == theirs {
            return self.reject(cx, RejectCode::SelfConnect, "connected to itself");
        }
        let (connecting, old) = {
            let p = cx.shared.peer(key);
            (p.connecting, p.conn)
        };
        if let Some(c) = connecting {
            if mine < theirs {
                return self.reject(cx, RejectCode::Crossing, "crossing connect: ours wins");
            }
            // Theirs wins: abandon our attempt (nothing was sent on it).
            cx.shared.peer(key).connecting = None;
            retire(cx, c);
        }
        if let Some(old) = old {
            // Our own connection, from the lower identity, to this very
            // process: the peer's HELLO crossed it (it was sent before the
            // peer accepted ours), so the crossing rule keeps ours.
            let same_process = cx
                .shared
                .peers
                .get(&key)
                .and_then(|p| p.remote)
                .is_some_and(|r| (r.node_id, r.incarnation) == theirs);
            let ours_outgoing = cx.conn(old).is_some_and(|c| c.outgoing);
            if same_process && ours_outgoing && mine < theirs {
                return self.reject(cx, RejectCode::Crossing, "crossing connect: ours is in use");
            }
            let bytes_out = cx.io_of(old).map_or(0, |io| io.bytes_out);
            let CenterState { peers, cfg, .. } = &mut *cx.shared;
            if let Some(p) = peers.get_mut(&key) {
                p.conn = None;
                p.requeue_unwritten(bytes_out, cfg);
            }
            log::info!("msgcenter: {key} connected again; replacing {old}");
            retire(cx, old);
        }
        self.peer = Some(key);
        Self::send_hello(cx, Kind::Welcome, key);
        self.establish(cx, key, hello);
    }

    fn on_welcome(&mut self, cx: &mut ConnCtx<'_, Self>, frame: FrameRef<'_>) {
        let (Some(hello), Some(key)) = (Hello::from_body(frame.body), self.peer) else {
            return self.violation(cx, "malformed WELCOME");
        };
        let me = cx.shared.me;
        if (me.node_id, me.incarnation) == (hello.node_id, hello.incarnation) {
            return self.violation(cx, "connected to itself");
        }
        let h = cx.handle();
        let p = cx.shared.peer(key);
        if p.connecting != Some(h) {
            // Abandoned meanwhile for the peer's own connection.
            self.retired = true;
            cx.close();
            return;
        }
        p.connecting = None;
        self.establish(cx, key, hello);
    }

    fn on_reject(&mut self, cx: &mut ConnCtx<'_, Self>, frame: FrameRef<'_>) {
        let code = RejectCode::from_u8(frame.body[0]);
        let why = String::from_utf8_lossy(&frame.body[1..]).into_owned();
        let h = cx.handle();
        self.retired = true;
        let Some(key) = self.peer else {
            return cx.close();
        };
        let CenterState { peers, cfg, .. } = &mut *cx.shared;
        if let Some(p) = peers.get_mut(&key) {
            if p.connecting == Some(h) {
                p.connecting = None;
            }
            match code {
                RejectCode::Crossing => {
                    // The peer's connection will be the one; if it does not
                    // come, the tick connects again after this wait.
                    log::debug!("msgcenter: {key} rejected our connect: {why}");
                    p.reconnect_at = Some(Instant::now() + cfg.handshake_timeout);
                }
                RejectCode::SelfConnect | RejectCode::Other => {
                    log::warn!("msgcenter: {key} rejected our connect: {why}");
                    p.last_failure = Some(FailReason::Protocol);
                    p.reconnect_at = Some(Instant::now() + p.backoff.next_delay());
                    let reason = FailReason::Protocol;
                    if code == RejectCode::SelfConnect {
                        p.fail_all(reason, cfg);
                    } else {
                        p.fail_queued(|m| !m.need_ack, reason, cfg);
                    }
                }
            }
        }
        cx.close();
    }

    /// The handshake completed: this connection is `key`'s.
    fn establish(&mut self, cx: &mut ConnCtx<'_, Self>, key: SocketAddr, hello: Hello) {
        let h = cx.handle();
        self.established = true;
        cx.set_logged_in();
        let now = cx.ctx.now();
        let CenterState {
            peers, cfg, info, ..
        } = &mut *cx.shared;
        let Some(p) = peers.get_mut(&key) else {
            return;
        };
        p.conn = Some(h);
        p.backoff.reset();
        p.reconnect_at = None;
        p.last_failure = None;
        p.last_used = now;
        // Messages sent to an earlier incarnation may or may not have been
        // handled there; sending them again could handle them twice.
        let restarted: Vec<u64> = p
            .awaiting
            .values()
            .filter(|m| m.sent_to.is_some_and(|inc| inc != hello.incarnation))
            .map(|m| m.id)
            .collect();
        if !restarted.is_empty() {
            log::warn!(
                "msgcenter: {key} restarted; {} unacknowledged messages failed",
                restarted.len()
            );
        }
        for id in restarted {
            if let Some(m) = p.awaiting.remove(&id) {
                p.finish(m, Outcome::Failed(FailReason::PeerRestarted), cfg);
            }
        }
        p.remote = Some(hello);
        StatsCell::bump(&info.stats.connections);
        log::debug!(
            "msgcenter: {h} established with {key} (node {:x})",
            hello.node_id
        );
        cx.shared.mark_dirty(key, cx.ctx);
    }

    fn on_data(&mut self, cx: &mut ConnCtx<'_, Self>, key: SocketAddr, frame: FrameRef<'_>) {
        let hdr = frame.header;
        let need_ack = hdr.flags & FLAG_NEED_ACK != 0;
        let now = cx.ctx.now();
        let st = &mut *cx.shared;
        let p = st.peer(key);
        p.last_used = now;
        let node = p.remote.map_or(0, |r| r.node_id);
        let dedup_key = (node, hdr.id);
        if need_ack {
            match st.dedup.check(dedup_key, now) {
                Ok(Seen::New) => {}
                Ok(Seen::InProgress) => return,
                Ok(Seen::Done) => {
                    StatsCell::bump(&st.info.stats.duplicates);
                    return send_ack(cx, key, hdr.id, hdr.msg_type, FLAG_DUPLICATE);
                }
                Err(Full) => {
                    log::warn!(
                        "msgcenter: dedup window full; {key}'s message {} waits for a retry",
                        hdr.id
                    );
                    return;
                }
            }
        }
        let rx = Received {
            from: key,
            to: hdr.to,
            msg_type: hdr.msg_type,
            id: hdr.id,
            flags: Flags {
                need_ack,
                urgent: hdr.flags & FLAG_URGENT != 0,
            },
            body: frame.body,
        };
        if let Some(handler) = st.handlers.on_loop.get_mut(&hdr.msg_type) {
            let mut hcx = HandlerCtx::new(key, st.info.clone());
            if !run_guarded(&rx, || handler(&mut hcx, &rx)) {
                return st.handler_panicked(dedup_key, hcx.posts);
            }
            if !hcx.posts.is_empty() {
                st.pending_posts.append(&mut hcx.posts);
                st.schedule_sweep(cx.ctx);
            }
            StatsCell::bump(&st.info.stats.handled);
            if need_ack {
                cx.shared.dedup.finish(dedup_key);
                send_ack(cx, key, hdr.id, hdr.msg_type, 0);
            }
        } else if st.handlers.on_worker.contains_key(&hdr.msg_type) {
            crate::worker::to_worker(cx, key, dedup_key, &rx);
        } else {
            StatsCell::bump(&st.info.stats.unhandled);
            // Rate-limited: the 1st, 2nd, 4th, 8th... unhandled message.
            let n = st.info.stats.snapshot_unhandled();
            if n.is_power_of_two() {
                log::warn!(
                    "msgcenter: no handler for type {} from {key} ({n} unhandled so far)",
                    hdr.msg_type
                );
            }
            if need_ack {
                st.dedup.forget(dedup_key);
                send_ack(cx, key, hdr.id, hdr.msg_type, FLAG_NO_HANDLER);
            }
        }
    }

    fn on_ack(&mut self, cx: &mut ConnCtx<'_, Self>, key: SocketAddr, hdr: Header) {
        let CenterState { peers, cfg, .. } = &mut *cx.shared;
        let Some(p) = peers.get_mut(&key) else {
            return;
        };
        p.last_used = cx.ctx.now();
        // An ack for an id no longer waiting (a late ack of a retry) is
        // ignored: the message already has its outcome.
        if let Some(m) = p.awaiting.remove(&hdr.id) {
            let outcome = if hdr.flags & FLAG_NO_HANDLER != 0 {
                Outcome::Failed(FailReason::NoHandler)
            } else {
                Outcome::Acked {
                    duplicate: hdr.flags & FLAG_DUPLICATE != 0,
                }
            };
            p.finish(m, outcome, cfg);
        }
    }
}

/// Sends an ACK for `id` on the current connection.
pub(crate) fn send_ack(
    cx: &mut ConnCtx<'_, PeerConn>,
    to: SocketAddr,
    id: u64,
    msg_type: u32,
    flags: u8,
) {
    let header = ack_header(cx.shared, to, id, msg_type, flags);
    let _ = cx.send(Outgoing(&header, &[]));
}

/// The header of an ACK.
pub(crate) fn ack_header(
    st: &CenterState,
    to: SocketAddr,
    id: u64,
    msg_type: u32,
    flags: u8,
) -> Header {
    Header {
        kind: Kind::Ack,
        flags,
        id,
        msg_type,
        from: st.info.from(),
        to,
    }
}

/// Marks connection `h` as no longer its peer's and closes it.
fn retire(cx: &mut ConnCtx<'_, PeerConn>, h: Handle) {
    if let Some(c) = cx.conn_mut(h) {
        c.retired = true;
    }
    cx.close_conn(h);
}

/// The pool key of a peer that says it listens on `advertised` and
/// connected from `observed`.
pub(crate) fn pool_key(advertised: SocketAddr, observed: Option<SocketAddr>) -> SocketAddr {
    match observed {
        Some(seen) if advertised.port() == 0 => seen,
        Some(seen) if advertised.ip().is_unspecified() => {
            SocketAddr::new(seen.ip(), advertised.port())
        }
        _ => advertised,
    }
}

impl Connection for PeerConn {
    type Codec = MsgCodec;
    type Shared = CenterState;

    fn on_confirm(&mut self, cx: &mut ConnCtx<'_, Self>) {
        if let Some(to) = self.peer {
            Self::send_hello(cx, Kind::Hello, to);
        }
    }

    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, frame: Incoming<'_>) {
        let Incoming::Frame(frame) = frame else {
            return; // the preamble: checked by the codec
        };
        let kind = frame.header.kind;
        match (kind, self.established, self.peer) {
            (Kind::Heartbeat, _, _) => {}
            // A connection that lost the crossing rule carried nothing;
            // one retired after use (idle close, replaced) may still bring
            // the peer's last messages and acks: they are taken.
            _ if self.retired && !self.established => {}
            (Kind::Data, true, Some(key)) => self.on_data(cx, key, frame),
            (Kind::Ack, true, Some(key)) => self.on_ack(cx, key, frame.header),
            (Kind::Hello, false, _) if !self.outgoing => self.on_hello(cx, frame),
            (Kind::Welcome, false, _) if self.outgoing => self.on_welcome(cx, frame),
            (Kind::Reject, false, _) if self.outgoing => self.on_reject(cx, frame),
            _ => self.violation(cx, &format!("unexpected {kind:?} frame")),
        }
    }

    fn on_write_complete(&mut self, cx: &mut ConnCtx<'_, Self>) {
        if let (true, false, Some(key)) = (self.established, self.retired, self.peer) {
            cx.shared.mark_dirty(key, cx.ctx);
        }
    }

    fn on_protocol_error(&mut self, cx: &mut ConnCtx<'_, Self>, _error: &DecodeError) {
        self.protocol_error = true;
        StatsCell::bump(&cx.shared.info.stats.protocol_errors);
    }

    fn on_close(&mut self, cx: &mut ConnCtx<'_, Self>, reason: CloseReason) {
        if !self.outgoing {
            cx.shared.incoming = cx.shared.incoming.saturating_sub(1);
        }
        if reason == CloseReason::Shutdown {
            cx.shared.shutting_down = true;
        }
        let Some(key) = self.peer else {
            return;
        };
        let h = cx.handle();
        let bytes_out = cx.io().bytes_out;
        let now = Instant::now();
        let shutting_down = cx.shared.shutting_down;
        let CenterState { peers, cfg, .. } = &mut *cx.shared;
        let Some(p) = peers.get_mut(&key) else {
            return;
        };
        if p.conn == Some(h) {
            p.conn = None;
            p.requeue_unwritten(bytes_out, cfg);
            if self.protocol_error {
                p.last_failure = Some(FailReason::Protocol);
            }
            log::info!("msgcenter: connection to {key} lost: {reason}");
        } else if p.connecting == Some(h) {
            p.connecting = None;
            let reason_failed = if self.protocol_error {
                FailReason::Protocol
            } else {
                FailReason::Unreachable
            };
            log::info!("msgcenter: cannot reach {key}: {reason}");
            p.last_failure = Some(reason_failed);
            p.reconnect_at = Some(now + p.backoff.next_delay());
            // Plain messages have no retries: tell the application now.
            p.fail_queued(|m| !m.need_ack, reason_failed, cfg);
        } else {
            return;
        }
        if shutting_down {
            p.fail_all(FailReason::Shutdown, cfg);
        } else if p.has_work() {
            cx.shared.mark_dirty(key, cx.ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::pool_key;

    #[test]
    fn pool_key_fills_in_what_the_peer_cannot_know() {
        let seen = Some("10.0.0.7:40000".parse().unwrap());
        let k = |adv: &str| pool_key(adv.parse().unwrap(), seen).to_string();
        assert_eq!(k("10.0.0.7:7000"), "10.0.0.7:7000");
        assert_eq!(k("0.0.0.0:7000"), "10.0.0.7:7000");
        assert_eq!(k("[::]:0"), "10.0.0.7:40000", "a peer that does not listen");
    }
}
