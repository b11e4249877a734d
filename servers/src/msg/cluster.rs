//! Several msg_servers as one service: routing over NATS (`NatsAddr`).
//!
//! Each msg_server keeps one reconnecting link to a NATS server, spoken
//! with imconn's [`NatsCodec`] on the same loop as the clients (no second
//! runtime, the workspace's links and deadlines). A user's deliveries and
//! logins travel on the user's own subject, `im.user.<id>`, which a server
//! subscribes to while the user has a connection there and unsubscribes
//! from when the last one leaves: a message reaches every server where its
//! receiver is online and no other.
//!
//! - **Deliveries.** When the (shared) store has committed a message, the
//!   sending server publishes it with each receiver's mailbox position to
//!   the receiver's subject. The receiving server delivers it to the
//!   receiver's connections there like a local delivery; the receiver acks
//!   it to that server, which removes it from the shared mailbox. While the
//!   receiver's mailbox is being fed from the store (after a login), the
//!   live copy is skipped: the feed reads it from the database, in order.
//! - **Logins.** A login publishes a kick for the user and client class on
//!   the user's subject: the server holding the same user's same-class
//!   session kicks it, as a second login on one server does.
//! - **NATS unavailable.** Nothing waits for NATS: messages are committed
//!   and acknowledged as before and stay in the receivers' mailboxes, read
//!   at their next login. Publications while the link is down are dropped
//!   (the database has them); when the link comes back, the server
//!   subscribes again to every user online on it.
//!
//! The loop side ([`Cluster`], in [`MsgState`](super::MsgState)) queues what
//! to publish and flushes it through a posted closure into the NATS link's
//! server; what arrives on the link is posted back into msg_server the same
//! way. Payloads: a kind byte, then fixed little-endian fields.

use super::store::{SessionKey, StoredMessage};
use super::MsgConn;
use imconn::{
    Backoff, ConnConfig, ConnCtx, Connection, ImServer, NatsCodec, NatsFrame, NatsOut, Server,
    Timeouts,
};
use netlib::{CloseReason, Context, HandlerRef, Poster};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

const DELIVER: u8 = 1;
const KICK: u8 = 2;
const STATUS: u8 = 3;
const COPY: u8 = 4;

/// Subscription ids: a user's id, or this bit with a department's id.
const DEPT_SID: u64 = 1 << 32;

/// Most bytes of a NATS frame accepted (a message plus its header).
const MAX_FRAME: usize = 1024 * 1024;

/// The subject of subscription id `sid`: `im.user.<id>` or `im.dept.<id>`.
fn subject(sid: u64) -> String {
    if sid & DEPT_SID != 0 {
        format!("im.dept.{}", sid as u32)
    } else {
        format!("im.user.{sid}")
    }
}

/// Something to send to NATS; subjects named by subscription id.
enum Out {
    Pub(u64, Vec<u8>),
    Sub(u64),
    Unsub(u64),
}

/// msg_server's side of the cluster: what to send to NATS, queued.
pub(super) struct Cluster {
    poster: Poster,
    msg: HandlerRef,
    nats: HandlerRef,
    out: Vec<Out>,
    flush_posted: bool,
    /// Subscription ids on the link (users and departments online here).
    subscribed: HashSet<u64>,
}

/// Starts the NATS link of msg_server `msg` (registered on `ctx`).
pub(super) fn start(
    ctx: &mut Context,
    msg: HandlerRef,
    addr: SocketAddr,
    retry_min: Duration,
) -> Cluster {
    let poster = ctx.poster();
    let shared = NatsShared {
        msg,
        poster: poster.clone(),
    };
    let nats = Server::<NatsLink>::register(ctx, shared, |_, _| None);
    ctx.with_handler(nats, |s: &mut Server<NatsLink>, ctx| {
        let config = ConnConfig {
            timeouts: Timeouts {
                heartbeat: Some(Duration::from_secs(5)),
                idle: Some(Duration::from_secs(20)),
                login: None,
            },
            max_frame: MAX_FRAME,
            ..ConnConfig::default()
        };
        s.add_link(
            ctx,
            addr,
            config,
            Backoff::new(retry_min, Duration::from_secs(5)),
            |_| NatsLink,
        );
    });
    log::info!("cluster: routing over NATS at {addr}");
    Cluster {
        poster,
        msg,
        nats,
        out: Vec::new(),
        flush_posted: false,
        subscribed: HashSet::new(),
    }
}

fn queue(state: &mut super::MsgState, item: Out) {
    let Some(c) = state.cluster.as_mut() else {
        return;
    };
    c.out.push(item);
    if c.flush_posted {
        return;
    }
    c.flush_posted = true;
    let (msg, nats) = (c.msg, c.nats);
    let posted = c.poster.post(move |ctx| flush(ctx, msg, nats));
    if posted.is_err() {
        log::debug!("cluster: loop stopped");
    }
}

/// Sends what msg_server queued on the NATS link (dropped while it is down:
/// the database has the messages; subscriptions are renewed at reconnect).
fn flush(ctx: &mut Context, msg: HandlerRef, nats: HandlerRef) {
    let items = ctx
        .with_handler(msg, |s: &mut ImServer<MsgConn>, _| {
            s.shared.cluster.as_mut().map(|c| {
                c.flush_posted = false;
                std::mem::take(&mut c.out)
            })
        })
        .flatten()
        .unwrap_or_default();
    let _ = ctx.with_handler(nats, |s: &mut Server<NatsLink>, ctx| {
        let Some(h) = s.link_handle(0) else {
            return;
        };
        s.with_conn(ctx, h, |_, cx| {
            for item in &items {
                let sent = match item {
                    Out::Pub(sid, payload) => cx.send(NatsOut::Pub {
                        subject: &subject(*sid),
                        reply: None,
                        payload,
                    }),
                    Out::Sub(sid) => cx.send(NatsOut::Sub {
                        subject: &subject(*sid),
                        queue: None,
                        sid: *sid,
                    }),
                    Out::Unsub(sid) => cx.send(NatsOut::Unsub {
                        sid: *sid,
                        max: None,
                    }),
                };
                if let Err(e) = sent {
                    log::warn!("cluster: NATS send failed: {e}");
                }
            }
        });
    });
}

/// A user's first connection here logged in (`mobile`: its class):
/// subscribe to the user's subject, kick the same class elsewhere.
pub(super) fn logged_in(state: &mut super::MsgState, user: u32, mobile: bool) {
    if state.cluster.is_none() {
        return;
    }
    queue(state, Out::Pub(user.into(), vec![KICK, u8::from(mobile)]));
    subscribe(state, user.into(), true);
}

/// Subscribes to `sid` (`on`) or unsubscribes, once.
fn subscribe(state: &mut super::MsgState, sid: u64, on: bool) {
    let changed = state.cluster.as_mut().is_some_and(|c| {
        if on {
            c.subscribed.insert(sid)
        } else {
            c.subscribed.remove(&sid)
        }
    });
    if changed {
        queue(state, if on { Out::Sub(sid) } else { Out::Unsub(sid) });
    }
}

/// `user` of department `dept` went on line (`online`) or off line here;
/// `local_members`: whether the department still has members online here
/// (then this server keeps listening to the department's changes).
pub(super) fn presence(
    state: &mut super::MsgState,
    user: u32,
    dept: u32,
    online: bool,
    local_members: bool,
) {
    if state.cluster.is_none() {
        return;
    }
    let sid = DEPT_SID | u64::from(dept);
    let mut p = vec![STATUS];
    p.extend_from_slice(&user.to_le_bytes());
    p.push(u8::from(online));
    queue(state, Out::Pub(sid, p));
    subscribe(state, sid, local_members);
}

/// The user's last connection here left.
pub(super) fn offline(state: &mut super::MsgState, user: u32) {
    subscribe(state, user.into(), false);
}

/// A committed message for `receiver` at mailbox position `pos` (none: not
/// kept in its mailbox) goes to the servers where the receiver is online.
pub(super) fn publish_delivery(
    state: &mut super::MsgState,
    m: &StoredMessage,
    receiver: u32,
    pos: Option<u64>,
) {
    if state.cluster.is_some() {
        queue(
            state,
            Out::Pub(receiver.into(), encode_delivery(m, receiver, pos)),
        );
    }
}

/// The sender's copy of a committed message (`to`: the session as the
/// sender names it) goes to the sender's connections on other servers.
pub(super) fn publish_copy(state: &mut super::MsgState, m: &StoredMessage, to: u32) {
    if state.cluster.is_some() {
        let mut p = encode_delivery(m, to, None);
        p[0] = COPY;
        queue(state, Out::Pub(m.from.into(), p));
    }
}

fn encode_delivery(m: &StoredMessage, receiver: u32, pos: Option<u64>) -> Vec<u8> {
    let mut p = Vec::with_capacity(40 + m.data.len());
    p.push(DELIVER);
    p.extend_from_slice(&receiver.to_le_bytes());
    p.extend_from_slice(&pos.map_or(0, |p| p + 1).to_le_bytes());
    p.extend_from_slice(&m.session.to_i64().to_le_bytes());
    p.extend_from_slice(&m.msg_id.to_le_bytes());
    p.extend_from_slice(&m.from.to_le_bytes());
    p.extend_from_slice(&m.create_time.to_le_bytes());
    p.extend_from_slice(&m.msg_type.to_le_bytes());
    p.extend_from_slice(&m.data);
    p
}

/// What arrived on a user's subject.
#[derive(Debug, PartialEq)]
enum Event {
    Deliver {
        receiver: u32,
        pos: Option<u64>,
        message: StoredMessage,
    },
    Kick {
        mobile: bool,
    },
    Status {
        user: u32,
        online: bool,
    },
    Copy {
        to: u32,
        message: StoredMessage,
    },
}

/// An event on subject `sid`'s user (or department).
fn decode(user: u32, p: &[u8]) -> Option<Event> {
    let u32_at = |i: usize| Some(u32::from_le_bytes(p.get(i..i + 4)?.try_into().ok()?));
    let u64_at = |i: usize| Some(u64::from_le_bytes(p.get(i..i + 8)?.try_into().ok()?));
    match *p.first()? {
        KICK => Some(Event::Kick {
            mobile: *p.get(1)? != 0,
        }),
        STATUS => Some(Event::Status {
            user: u32_at(1)?,
            online: *p.get(5)? != 0,
        }),
        kind @ (DELIVER | COPY) => {
            let receiver = u32_at(1)?;
            let pos = u64_at(5)?.checked_sub(1);
            let message = StoredMessage {
                session: SessionKey::from_i64(u64_at(13)? as i64),
                msg_id: u32_at(21)?,
                from: u32_at(25)?,
                create_time: u32_at(29)?,
                msg_type: u32_at(33)? as i32,
                data: p.get(37..)?.to_vec(),
            };
            if kind == COPY {
                return (message.from == user).then_some(Event::Copy {
                    to: receiver,
                    message,
                });
            }
            (receiver == user).then_some(Event::Deliver {
                receiver,
                pos,
                message,
            })
        }
        _ => None,
    }
}

/// An event from NATS, on msg_server's loop side.
fn on_event(s: &mut ImServer<MsgConn>, ctx: &mut Context, sid: u64, event: Event) {
    let user = sid as u32;
    let handles = s.shared.online.get(user).to_vec();
    match event {
        Event::Status { user, online } => {
            if sid & DEPT_SID != 0 {
                super::buddy::remote_presence(s, ctx, user, sid as u32, online);
            }
        }
        Event::Kick { mobile } => {
            super::route::with_any(s, ctx, handles, |cx| {
                super::session::kick_same_class(cx, user, mobile);
                if !cx.shared.online.is_online(user) {
                    offline(cx.shared, user);
                }
            });
        }
        Event::Copy { to, message } => {
            let copy = message.to_msg_data(to);
            let header = pdu::Header::new(pdu::sid::MSG, pdu::cid::msg::DATA);
            super::route::with_any(s, ctx, handles.clone(), |cx| {
                for h in handles {
                    let _ = cx.send_pdu_to(h, &header, &copy);
                }
            });
        }
        Event::Deliver {
            receiver,
            pos,
            message,
        } => {
            // The connection being fed the mailbox from the store gets it
            // from there, in order: the feed fetches once more before it
            // ends. The user's other connections get it now.
            let fed = match s.shared.drains.get_mut(&receiver) {
                Some(d) => {
                    d.recheck = true;
                    Some(d.conn)
                }
                None => None,
            };
            let body = message.to_msg_data(receiver);
            super::route::with_any(s, ctx, handles.clone(), |cx| {
                for h in handles.into_iter().filter(|h| Some(*h) != fed) {
                    super::route::deliver_once(cx, h, &message, &body, pos);
                }
            });
        }
    }
}

/// The NATS link's shared state.
pub struct NatsShared {
    msg: HandlerRef,
    poster: Poster,
}

/// The connection to the NATS server.
pub struct NatsLink;

impl Connection for NatsLink {
    type Codec = NatsCodec;
    type Shared = NatsShared;

    fn on_confirm(&mut self, cx: &mut ConnCtx<'_, Self>) {
        let connect = r#"{"verbose":false,"pedantic":false,"echo":false,"headers":false,"name":"msg_server"}"#;
        let _ = cx.send(NatsOut::Connect(connect));
        log::info!("cluster: NATS link up");
        // Subscribe again to every user online here.
        let msg = cx.shared.msg;
        let _ = cx.shared.poster.post(move |ctx| {
            let _ = ctx.with_handler(msg, |s: &mut ImServer<MsgConn>, _| {
                let st = &mut s.shared;
                let mut sids: HashSet<u64> = st
                    .sessions
                    .values()
                    .map(|session| u64::from(session.user_id))
                    .collect();
                sids.extend(super::buddy::online_departments(st).map(|d| DEPT_SID | u64::from(d)));
                if let Some(c) = st.cluster.as_mut() {
                    c.subscribed.clear();
                }
                for sid in sids {
                    subscribe(st, sid, true);
                }
            });
        });
    }

    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, frame: NatsFrame<'_>) {
        match frame {
            NatsFrame::Ping => {
                let _ = cx.send(NatsOut::Pong);
            }
            NatsFrame::Msg { sid, payload, .. } => {
                let Some(event) = decode(sid as u32, payload) else {
                    log::warn!(
                        "cluster: undecodable NATS message on {}, dropped",
                        subject(sid)
                    );
                    return;
                };
                let msg = cx.shared.msg;
                let _ = cx.shared.poster.post(move |ctx| {
                    let _ = ctx.with_handler(msg, |s: &mut ImServer<MsgConn>, ctx| {
                        on_event(s, ctx, sid, event)
                    });
                });
            }
            NatsFrame::Err(e) => log::warn!("cluster: NATS error: {e}"),
            NatsFrame::Info(_) | NatsFrame::Pong | NatsFrame::Ok => {}
        }
    }

    fn on_close(&mut self, _cx: &mut ConnCtx<'_, Self>, reason: CloseReason) {
        log::warn!("cluster: NATS link down ({reason}); messages wait in the database");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_and_kicks_round_trip() {
        let m = StoredMessage {
            session: SessionKey::single(3, 9),
            msg_id: 77,
            from: 3,
            create_time: 1_700_000_000,
            msg_type: 1,
            data: b"hi\r\n".to_vec(),
        };
        let p = encode_delivery(&m, 9, Some(5));
        assert_eq!(
            decode(9, &p),
            Some(Event::Deliver {
                receiver: 9,
                pos: Some(5),
                message: m.clone()
            })
        );
        let unkept = encode_delivery(&m, 9, None);
        assert!(matches!(
            decode(9, &unkept),
            Some(Event::Deliver { pos: None, .. })
        ));
        assert_eq!(decode(8, &p), None, "for another user");
        assert_eq!(decode(9, &p[..20]), None, "cut short");
        assert_eq!(decode(9, &[KICK, 1]), Some(Event::Kick { mobile: true }));
        let mut copy = encode_delivery(&m, 9, None);
        copy[0] = COPY;
        assert!(matches!(decode(3, &copy), Some(Event::Copy { to: 9, .. })));
        assert_eq!(decode(9, &copy), None, "a copy goes to its sender");
        assert_eq!(
            decode(4, &[STATUS, 9, 0, 0, 0, 1]),
            Some(Event::Status {
                user: 9,
                online: true
            })
        );
        assert_eq!(decode(9, &[9]), None);
        assert_eq!(subject(7), "im.user.7");
        assert_eq!(subject(DEPT_SID | 7), "im.dept.7");
    }
}
