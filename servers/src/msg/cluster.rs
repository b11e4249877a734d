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

/// Most bytes of a NATS frame accepted (a message plus its header).
const MAX_FRAME: usize = 1024 * 1024;

fn subject(user: u32) -> String {
    format!("im.user.{user}")
}

enum Out {
    Pub(u32, Vec<u8>),
    Sub(u32),
    Unsub(u32),
}

/// msg_server's side of the cluster: what to send to NATS, queued.
pub(super) struct Cluster {
    poster: Poster,
    msg: HandlerRef,
    nats: HandlerRef,
    out: Vec<Out>,
    flush_posted: bool,
    /// Users subscribed on the link (while it is up).
    subscribed: HashSet<u32>,
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
                    Out::Pub(user, payload) => cx.send(NatsOut::Pub {
                        subject: &subject(*user),
                        reply: None,
                        payload,
                    }),
                    Out::Sub(user) => cx.send(NatsOut::Sub {
                        subject: &subject(*user),
                        queue: None,
                        sid: u64::from(*user),
                    }),
                    Out::Unsub(user) => cx.send(NatsOut::Unsub {
                        sid: u64::from(*user),
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
    queue(state, Out::Pub(user, vec![KICK, u8::from(mobile)]));
    if state
        .cluster
        .as_mut()
        .is_some_and(|c| c.subscribed.insert(user))
    {
        queue(state, Out::Sub(user));
    }
}

/// The user's last connection here left.
pub(super) fn offline(state: &mut super::MsgState, user: u32) {
    if state
        .cluster
        .as_mut()
        .is_some_and(|c| c.subscribed.remove(&user))
    {
        queue(state, Out::Unsub(user));
    }
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
        queue(state, Out::Pub(receiver, encode_delivery(m, receiver, pos)));
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
}

fn decode(user: u32, p: &[u8]) -> Option<Event> {
    let u32_at = |i: usize| Some(u32::from_le_bytes(p.get(i..i + 4)?.try_into().ok()?));
    let u64_at = |i: usize| Some(u64::from_le_bytes(p.get(i..i + 8)?.try_into().ok()?));
    match *p.first()? {
        KICK => Some(Event::Kick {
            mobile: *p.get(1)? != 0,
        }),
        DELIVER => {
            let receiver = u32_at(1)?;
            if receiver != user {
                return None;
            }
            let pos = u64_at(5)?.checked_sub(1);
            let session = SessionKey::from_i64(u64_at(13)? as i64);
            Some(Event::Deliver {
                receiver,
                pos,
                message: StoredMessage {
                    session,
                    msg_id: u32_at(21)?,
                    from: u32_at(25)?,
                    create_time: u32_at(29)?,
                    msg_type: u32_at(33)? as i32,
                    data: p.get(37..)?.to_vec(),
                },
            })
        }
        _ => None,
    }
}

/// An event from NATS, on msg_server's loop side.
fn on_event(s: &mut ImServer<MsgConn>, ctx: &mut Context, user: u32, event: Event) {
    let handles = s.shared.online.get(user).to_vec();
    match event {
        Event::Kick { mobile } => {
            super::route::with_any(s, ctx, handles, |cx| {
                super::session::kick_same_class(cx, user, mobile);
                if !cx.shared.online.is_online(user) {
                    offline(cx.shared, user);
                }
            });
        }
        Event::Deliver {
            receiver,
            pos,
            message,
        } => {
            // A mailbox being fed from the store gets it from there, in order.
            if s.shared.drains.contains_key(&receiver) {
                return;
            }
            super::route::with_any(s, ctx, handles.clone(), |cx| {
                for h in handles {
                    super::route::deliver_once(cx, h, &message, receiver, pos);
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
                let users: Vec<u32> = s
                    .shared
                    .sessions
                    .values()
                    .map(|session| session.user_id)
                    .collect::<HashSet<_>>()
                    .into_iter()
                    .collect();
                if let Some(c) = s.shared.cluster.as_mut() {
                    c.subscribed.clear();
                }
                for u in users {
                    if s.shared
                        .cluster
                        .as_mut()
                        .is_some_and(|c| c.subscribed.insert(u))
                    {
                        queue(&mut s.shared, Out::Sub(u));
                    }
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
                let user = sid as u32;
                let Some(event) = decode(user, payload) else {
                    log::warn!("cluster: undecodable NATS message for user {user}, dropped");
                    return;
                };
                let msg = cx.shared.msg;
                let _ = cx.shared.poster.post(move |ctx| {
                    let _ = ctx.with_handler(msg, |s: &mut ImServer<MsgConn>, ctx| {
                        on_event(s, ctx, user, event)
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
        assert_eq!(decode(9, &[9]), None);
    }
}
