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
//! - **Groups.** Every group change committed here (a temporary group
//!   created, members changed, a shield set) is announced on `im.group`,
//!   which every server subscribes to: the others read the group back from
//!   the shared store (the announcement carries only the group's id and,
//!   for the notify, who changed whom) - the store, not the message, is the
//!   truth, so an announcement lost or overtaken by a later change costs
//!   nothing but a read (see [`groups`](super::groups) for the version
//!   check that keeps concurrent changes apart). Every server must know
//!   every group, to route its users' group messages, so this one subject
//!   goes to all of them; group changes are rare next to messages.
//! - **Presence, for the status query (0x020a).** A user online on server
//!   A must be shown online when asked on B. Options were a presence table in
//!   the shared store (a write per login and logout on the database every
//!   message already waits on, and rows left behind by a killed server), a
//!   NATS request to every server per query (the asker does not know how
//!   many answers to wait for: a timeout per query), or presence kept by
//!   every server. The last is what TeamTalk's route_server did (it held
//!   every user's status and msg_servers asked it); here each server keeps
//!   the map itself: logins and logouts are published on `im.presence`
//!   (once per user and server, not per connection), and every
//!   [`PRESENCE_REFRESH`] each server republishes who is online on it, in
//!   chunks; a server whose link (re)connects asks the others to do so at
//!   once. An entry not refreshed within [`PRESENCE_TTL`](presence::PRESENCE_TTL) is dropped, so
//!   a server killed with `kill -9`, or a logout lost while NATS was down,
//!   stops counting after at most that long, and a login lost that way
//!   counts again at the next refresh. A query is then answered on the loop
//!   from memory. The map is bounded: only ids of the users file, at most
//!   [`PRESENCE_SERVERS_MAX`](presence::PRESENCE_SERVERS_MAX) servers per user.
//! - **Department status (0x0203).** A server tells its users of a
//!   department when a buddy's status changes as seen from it: by its own
//!   logins and logouts, and by presence - a login or logout heard on
//!   `im.presence`, a refresh naming a user it had stopped counting, an
//!   entry expiring. One source for the query and the notifications, so
//!   they agree, and outages are covered as presence is: a login published
//!   while a link was down is told at the refresh the link-up asks for, and
//!   the users of a server killed with `kill -9` are told off line when
//!   their entries expire (within `PRESENCE_TTL` + `PRESENCE_REFRESH`).
//!   (Changes used to travel on `im.dept.<id>`, to the servers with members
//!   of the department online: lost with a link, never sent for a killed
//!   server.)
//! - **NATS unavailable.** Nothing waits for NATS: messages are committed
//!   and acknowledged as before and stay in the receivers' mailboxes.
//!   Publications while the link is down are dropped (the database has
//!   them); when the link comes back, the server subscribes again to every
//!   user online on it, publishes who is online on it and asks the others
//!   to do the same; it and every server that hears the question catch up
//!   ([`catch_up`]): each feeds its online users their mailboxes (what a
//!   connection already has is skipped) and reads every group back from
//!   the store, telling its members what changed meanwhile - so a link
//!   that dropped on one side only loses nothing either. Meanwhile remote
//!   users count as online until their entries expire; then their
//!   departments here are told they went off line, and told again when
//!   the link is back and a refresh names them (an outage longer than
//!   `PRESENCE_TTL` shows as off line, then on line).
//!
//! The loop side ([`Cluster`], in [`MsgState`](super::MsgState)) queues what
//! to publish and flushes it through a posted closure into the NATS link's
//! server; what arrives on the link is posted back into msg_server the same
//! way. Payloads: a kind byte, then fixed little-endian fields.

use super::groups::Note;
use super::store::{SessionKey, StoredMessage};
use super::MsgConn;
use imconn::{
    Backoff, ConnConfig, ConnCtx, Connection, ImServer, NatsCodec, NatsFrame, NatsOut, Server,
    Timeouts,
};
use netlib::{CloseReason, Context, Handle, HandlerRef, Poster};
pub(super) use presence::{online_elsewhere, Change};
use presence::{
    publish_presence, refresh_presence, run_id, RemotePresence, ASK, OFF, ON, PRESENCE_REFRESH,
};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

const DELIVER: u8 = 1;
const KICK: u8 = 2;
// 3 was a department status change on `im.dept.<id>`, now told by presence.
const COPY: u8 = 4;
const GROUP: u8 = 5;
const PRESENCE: u8 = 6;

/// Subscription ids: a user's id, or one of these.
/// `im.group`: every server's group changes.
const GROUP_SID: u64 = 2 << 32;
/// `im.presence`: every server's logins, logouts and refreshes.
const PRESENCE_SID: u64 = 3 << 32;

/// Most bytes of a NATS frame accepted (a message plus its header).
const MAX_FRAME: usize = 1024 * 1024;

mod presence;

/// The subject of subscription id `sid`.
fn subject(sid: u64) -> String {
    match sid >> 32 {
        0 => format!("im.user.{sid}"),
        2 => "im.group".into(),
        _ => "im.presence".into(),
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
    /// Subscription ids on the link (users online here, groups, presence).
    subscribed: HashSet<u64>,
    /// This run of this server, in presence messages.
    server_id: u64,
    /// Users online on other servers.
    remote: RemotePresence,
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
    ctx.add_repeating_timer(PRESENCE_REFRESH, move |ctx, _| {
        ctx.with_handler(msg, |s: &mut ImServer<MsgConn>, ctx| {
            let gone = refresh_presence(&mut s.shared);
            super::buddy::remote_changes(s, ctx, gone);
        });
    });
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
        server_id: run_id(),
        remote: RemotePresence::default(),
    }
}

/// A group change committed here: the other servers read the group back
/// (and tell their members `note`, if any).
pub(super) fn group_changed(state: &mut super::MsgState, group: u32, note: Option<&Note>) {
    if state.cluster.is_some() {
        queue(state, Out::Pub(GROUP_SID, encode_group(group, note)));
    }
}

fn encode_group(group: u32, note: Option<&Note>) -> Vec<u8> {
    let mut p = vec![GROUP];
    p.extend_from_slice(&group.to_le_bytes());
    if let Some(n) = note {
        p.extend_from_slice(&n.by.to_le_bytes());
        p.extend_from_slice(&n.change_type.to_le_bytes());
        for u in &n.changed {
            p.extend_from_slice(&u.to_le_bytes());
        }
    }
    p
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
    publish_presence(state, ON, &[user]);
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

/// The user's last connection here left.
pub(super) fn offline(state: &mut super::MsgState, user: u32) {
    subscribe(state, user.into(), false);
    publish_presence(state, OFF, &[user]);
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
    Copy {
        to: u32,
        message: StoredMessage,
    },
    Group {
        group: u32,
        note: Option<Note>,
    },
    Presence {
        server: u64,
        kind: u8,
        users: Vec<u32>,
    },
}

/// Little-endian u32s filling `p` exactly.
fn u32s(p: &[u8]) -> Option<Vec<u32>> {
    let chunks = p.chunks_exact(4);
    if !chunks.remainder().is_empty() {
        return None;
    }
    Some(
        chunks
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// An event on subject `sid`'s user (or department).
fn decode(user: u32, p: &[u8]) -> Option<Event> {
    let u32_at = |i: usize| Some(u32::from_le_bytes(p.get(i..i + 4)?.try_into().ok()?));
    let u64_at = |i: usize| Some(u64::from_le_bytes(p.get(i..i + 8)?.try_into().ok()?));
    match *p.first()? {
        KICK => Some(Event::Kick {
            mobile: *p.get(1)? != 0,
        }),
        GROUP => Some(Event::Group {
            group: u32_at(1)?,
            note: match p.len() {
                5 => None,
                _ => Some(Note {
                    by: u32_at(5)?,
                    change_type: u32_at(9)? as i32,
                    changed: u32s(p.get(13..)?)?,
                }),
            },
        }),
        PRESENCE => Some(Event::Presence {
            server: u64_at(1)?,
            kind: Some(*p.get(9)?).filter(|k| *k <= ASK)?,
            users: u32s(p.get(10..)?)?,
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
    log::debug!("cluster: on {}: {event:?}", subject(sid));
    let user = sid as u32;
    let handles = s.shared.online.get(user).to_vec();
    match event {
        Event::Group { group, note } => super::groups::reload(&mut s.shared, group, note),
        Event::Presence {
            server,
            kind,
            users,
        } => {
            if kind == ASK {
                catch_up(s, ctx);
            }
            let changes = presence::heard(&mut s.shared, server, kind, users);
            super::buddy::remote_changes(s, ctx, changes);
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

/// What NATS may have dropped while a link was down - this server's or
/// another's (it asks, `ASK`, when its link comes back): the groups are
/// read back, their members here told what changed ([`reload_all`]), and each
/// online user's mailbox is fed to one of its connections (what that
/// connection already has is skipped), as after a connection closes. A
/// user's other connections get what they missed at their next login. One
/// store read per online user: done once per link (re)connection.
///
/// [`reload_all`]: super::groups::reload_all
fn catch_up(s: &mut ImServer<MsgConn>, ctx: &mut Context) {
    super::groups::reload_all(&mut s.shared);
    let mut feeds: HashMap<u32, Handle> = HashMap::new();
    for (h, session) in &s.shared.sessions {
        feeds.entry(session.user_id).or_insert(*h);
    }
    for (user, h) in feeds {
        super::route::with_any(s, ctx, [h], |cx| super::route::start_drain(cx, user, h));
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
            let _ = ctx.with_handler(msg, |s: &mut ImServer<MsgConn>, ctx| {
                let st = &mut s.shared;
                let mut sids: HashSet<u64> = st
                    .sessions
                    .values()
                    .map(|session| u64::from(session.user_id))
                    .collect();
                sids.extend([GROUP_SID, PRESENCE_SID]);
                if let Some(c) = st.cluster.as_mut() {
                    c.subscribed.clear();
                }
                for sid in sids {
                    subscribe(st, sid, true);
                }
                let gone = refresh_presence(st);
                // The others catch up on what this server published while
                // its link was down (their links may never have dropped).
                publish_presence(st, ASK, &[]);
                super::buddy::remote_changes(s, ctx, gone);
                catch_up(s, ctx);
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
            decode(4, &[3, 9, 0, 0, 0, 1]),
            None,
            "department status (3) is told by presence now"
        );
        assert_eq!(decode(9, &[9]), None);
        assert_eq!(subject(7), "im.user.7");
        assert_eq!(subject(GROUP_SID), "im.group");
        assert_eq!(subject(PRESENCE_SID), "im.presence");
    }

    #[test]
    fn group_and_presence_events_round_trip() {
        let note = Note {
            by: 3,
            change_type: 2,
            changed: vec![4, 5],
        };
        let p = encode_group(77, Some(&note));
        assert_eq!(
            decode(0, &p),
            Some(Event::Group {
                group: 77,
                note: Some(note)
            })
        );
        assert_eq!(
            decode(0, &encode_group(77, None)),
            Some(Event::Group {
                group: 77,
                note: None
            })
        );
        assert_eq!(decode(0, &p[..p.len() - 1]), None, "a cut id");
        let mut p = vec![PRESENCE];
        p.extend_from_slice(&42u64.to_le_bytes());
        p.push(ON);
        p.extend_from_slice(&[7, 0, 0, 0, 8, 0, 0, 0]);
        assert_eq!(
            decode(0, &p),
            Some(Event::Presence {
                server: 42,
                kind: ON,
                users: vec![7, 8]
            })
        );
        p[9] = 9;
        assert_eq!(decode(0, &p), None, "unknown kind");
    }
}
