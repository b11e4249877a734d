//! A message's way: from its sender, through the store, to its receivers.
//!
//! 1. [`message`] checks the message (a receiver that exists, a known type,
//!    content) and submits it to the store; nothing is sent yet.
//! 2. When the store has committed it ([`Outcome::Stored`], with its id in
//!    its session), the sender gets its `IMMsgDataAck`, every connection of
//!    the receiver gets the message, and the sender's other connections a
//!    copy. A refused message is logged and not acknowledged: TeamTalk's
//!    `IMMsgDataAck` has no result field, and a TeamTalk client shows a
//!    message without an ack as not sent - TeamTalk's own msg_server
//!    signals its failures the same way.
//! 3. The message stays in the receiver's mailbox until one of its
//!    connections acks the delivery ([`delivery_ack`]). A connection's
//!    unacknowledged deliveries are bounded in count and bytes (past them it
//!    is closed; the messages stay in the mailbox).
//! 4. At login, and when a connection closes with deliveries unacknowledged,
//!    the mailbox is fed from the store to one connection of the user
//!    ([`start_drain`]), a window at a time, paced by acks and by the
//!    connection's output queue. While a mailbox is being fed, new messages
//!    for that user reach the fed connection through the feed (they are in
//!    the mailbox, after what it has fed so far), so its order is kept; the
//!    user's other connections get them directly, as always. An ack from
//!    one of those other connections for a message the feed has not reached
//!    yet is held back ([`Drain::deferred`](super::Drain)) until the feed
//!    passes it, so that the fed connection gets it too.
//!
//! Delivery is at least once: a client may see a message id twice (after a
//! reconnect, or on two devices) and keeps the first.

use super::store::{Done, NewMessage, Op, Outcome, SessionKey, StoredMessage};
use super::{unix_now, Drain, MsgConn, MsgState};
use imconn::{ConnCtx, ImServer};
use netlib::{Context, Handle};
use pdu::proto::{ImMsgData, ImMsgDataAck, MsgType};
use pdu::{cid, sid, Header, PduRef};
use std::sync::Arc;

/// Deliveries in flight per connection while feeding it a mailbox.
const BACKLOG_WINDOW: usize = 256;

/// Runs `f` as a hook of the first open connection among `handles` (any
/// one gives access to every connection); false if none is open.
pub(super) fn with_any(
    s: &mut ImServer<MsgConn>,
    ctx: &mut Context,
    handles: impl IntoIterator<Item = Handle>,
    f: impl FnOnce(&mut ConnCtx<'_, MsgConn>),
) -> bool {
    let Some(h) = handles.into_iter().find(|h| s.conns().get(*h).is_some()) else {
        return false;
    };
    s.with_conn(ctx, h, |_, cx| f(cx)).is_some()
}

/// `IMMsgData` from a logged-in client.
pub(super) fn message(cx: &mut ConnCtx<'_, MsgConn>, pdu: &PduRef<'_>) {
    let Some(msg) = super::decode::<ImMsgData>(cx, pdu) else {
        return;
    };
    check_and_submit(cx, msg, pdu.seq_num(), true);
}

/// Checks `msg` (request `seq`) and submits it to the store. A group this
/// server does not know yet may have been created on another msg_server
/// while the NATS link was down: with a cluster (a shared store) it is read
/// from the store once (`may_look_up`) before the message is refused. Such
/// reads are bounded like the messages that cause them (`MsgRateLimit`,
/// `StoreInFlightMax`), and the store answers in order, so one connection's
/// messages keep their order.
fn check_and_submit(cx: &mut ConnCtx<'_, MsgConn>, msg: ImMsgData, seq: u16, may_look_up: bool) {
    let h = cx.handle();
    let Some(from) = cx.shared.user_of(h) else {
        return;
    };
    let to = msg.to_session_id;
    let refuse = |cx: &mut ConnCtx<'_, MsgConn>, why: &str| {
        log::warn!("{h} message from {from} to {to} refused: {why} (not acknowledged, not stored)");
        cx.shared.refused += 1;
    };
    let (session, receivers): (_, Arc<[u32]>) = match MsgType::try_from(msg.msg_type) {
        Ok(MsgType::SingleText | MsgType::SingleAudio) => {
            if !cx.shared.user_ids.contains(&to) {
                return refuse(cx, "no such user");
            }
            (SessionKey::single(from, to), Arc::new([to]))
        }
        Ok(MsgType::GroupText | MsgType::GroupAudio) => match cx.shared.groups.get(&to) {
            None if may_look_up && cx.shared.cluster.is_some() && !cx.shared.store_busy() => {
                return look_up_group(cx, msg, seq)
            }
            None => return refuse(cx, "no such group"),
            Some(g) if g.members.binary_search(&from).is_err() => {
                return refuse(cx, "not a member of the group")
            }
            Some(g) => (
                SessionKey::Group(to),
                g.members.iter().copied().filter(|m| *m != from).collect(),
            ),
        },
        Err(_) => return refuse(cx, "unknown message type"),
    };
    if msg.msg_data.is_empty() {
        return refuse(cx, "empty message");
    }
    if cx.shared.store_busy() {
        return refuse(cx, "store busy (StoreInFlightMax)");
    }
    let new = NewMessage {
        session,
        from,
        receivers: Arc::clone(&receivers),
        msg_type: msg.msg_type,
        data: msg.msg_data,
        create_time: unix_now(),
    };
    let done: Done =
        Box::new(move |s, ctx, outcome| stored(s, ctx, h, seq, to, &receivers, outcome));
    cx.shared.submit(Op::Append(new), Some(done));
}

/// Reads group `msg.to_session_id` from the shared store, then checks `msg`
/// again (refused if the group is still unknown or the connection closed).
fn look_up_group(cx: &mut ConnCtx<'_, MsgConn>, msg: ImMsgData, seq: u16) {
    let h = cx.handle();
    let group = msg.to_session_id;
    let done: Done = Box::new(move |s, ctx, outcome| {
        if let Outcome::Groups(groups) = outcome {
            super::groups::apply_read(s, ctx, groups);
        }
        let checked = s.with_conn(ctx, h, |_, cx| check_and_submit(cx, msg, seq, false));
        if checked.is_none() {
            log::info!("{h} message to group {group} dropped: connection closed during the group's lookup (not acknowledged)");
        }
    });
    cx.shared
        .submit(Op::LoadGroups { only: Some(group) }, Some(done));
}

/// The store answered a message from connection `h` (request `seq`) to
/// session `to` (a user or a group) for `receivers`.
fn stored(
    s: &mut ImServer<MsgConn>,
    ctx: &mut Context,
    h: Handle,
    seq: u16,
    to: u32,
    receivers: &[u32],
    outcome: Outcome,
) {
    let (m, mut mailbox) = match outcome {
        Outcome::Stored(m, mailbox) => (m, mailbox),
        Outcome::Refused(why) => {
            // A failed store logs its failure once; the messages it refuses
            // are counted, and logged at debug level only.
            let level = [log::Level::Warn, log::Level::Debug][why.is_store_failure() as usize];
            log::log!(
                level,
                "{h} message to {to} refused: {why} (not acknowledged)"
            );
            s.shared.refused += 1;
            return;
        }
        other => {
            log::error!("{h} message to {to}: unexpected store answer {other:?}");
            return;
        }
    };
    s.shared.messages += 1;
    // Each receiver's mailbox position, found in O(log R) (a group has R).
    mailbox.sort_unstable_by_key(|&(u, _)| u);
    let pos_of = |r: u32| {
        mailbox
            .binary_search_by_key(&r, |&(u, _)| u)
            .ok()
            .map(|i| mailbox[i].1)
    };
    // Servers where a receiver is online too get it over NATS.
    for &r in receivers {
        super::cluster::publish_delivery(&mut s.shared, &m, r, pos_of(r));
    }
    if !receivers.contains(&m.from) {
        super::cluster::publish_copy(&mut s.shared, &m, to);
    }
    let from = m.from;
    let online = &s.shared.online;
    let first_open = std::iter::once(h)
        .chain(online.get(from).iter().copied())
        .chain(
            receivers
                .iter()
                .flat_map(|r| online.get(*r).iter().copied()),
        )
        .find(|c| s.conns().get(*c).is_some());
    with_any(s, ctx, first_open, |cx| {
        let ack = ImMsgDataAck {
            user_id: from,
            session_id: to,
            msg_id: m.msg_id,
            session_type: m.session.session_type() as i32,
        };
        let header = Header::new(sid::MSG, cid::msg::DATA_ACK).with_seq_num(seq);
        let _ = cx.send_pdu_to(h, &header, &ack);
        // The connection being fed a receiver's mailbox gets the message
        // from the feed (it is in the mailbox, after what was fed: order);
        // the receiver's other connections get it now.
        // A group member whose mailbox was full gets it pushed once, not
        // kept pending (the history has it) - on the connections not being
        // fed, as pushing it to the fed one would put it before older
        // messages of the group still to come from the mailbox.
        // One frame body (one copy of the content) serves every receiver
        // and connection; only its `to_session_id` differs between them.
        let mut body = m.to_msg_data(to);
        for &r in receivers {
            let pos = pos_of(r);
            let fed = cx.shared.drains.get(&r).map(|d| d.conn);
            body.to_session_id = m.session_id_for(r);
            for target in cx.shared.online.get(r).to_vec() {
                if Some(target) != fed {
                    deliver(cx, target, &m, &body, pos);
                }
            }
        }
        if !receivers.contains(&from) {
            body.to_session_id = m.session_id_for(to);
            let header = Header::new(sid::MSG, cid::msg::DATA);
            for other in cx.shared.online.get(from).to_vec() {
                if other != h {
                    let _ = cx.send_pdu_to(other, &header, &body);
                }
            }
        }
    });
}

/// Sends `m` as `body` (its frame body for the receiver,
/// [`StoredMessage::to_msg_data`]) to connection `conn` and, if it is in the
/// receiver's mailbox at `pos`, keeps it pending until acked; closes the
/// connection past its unacknowledged bounds.
fn deliver(
    cx: &mut ConnCtx<'_, MsgConn>,
    conn: Handle,
    m: &StoredMessage,
    body: &ImMsgData,
    pos: Option<u64>,
) {
    let header = Header::new(sid::MSG, cid::msg::DATA);
    let _ = cx.send_pdu_to(conn, &header, body);
    let Some(pos) = pos else {
        return;
    };
    let (max, max_bytes) = (
        cx.shared.settings.unacked_max,
        cx.shared.settings.unacked_max_bytes,
    );
    let pending = cx.shared.pending.entry(conn).or_default();
    if pending
        .msgs
        .insert((m.session, m.msg_id), (m.data.len(), pos))
        .is_none()
    {
        pending.bytes += m.data.len();
    }
    if pending.msgs.len() > max || pending.bytes > max_bytes {
        log::warn!(
            "{conn} closed: {} deliveries ({} bytes) left unacknowledged \
             (ConnUnackedMax {max}, ConnUnackedMaxBytes {max_bytes})",
            pending.msgs.len(),
            pending.bytes
        );
        if conn == cx.handle() {
            cx.close();
        } else {
            cx.close_conn(conn);
        }
    }
}

/// [`deliver`] unless connection `conn` already holds `m` unacknowledged (a
/// copy from another server that the mailbox feed also read).
pub(super) fn deliver_once(
    cx: &mut ConnCtx<'_, MsgConn>,
    conn: Handle,
    m: &StoredMessage,
    body: &ImMsgData,
    pos: Option<u64>,
) {
    let held = cx
        .shared
        .pending
        .get(&conn)
        .is_some_and(|p| p.msgs.contains_key(&(m.session, m.msg_id)));
    if !held {
        deliver(cx, conn, m, body, pos);
    }
}

/// `IMMsgDataAck` from a receiver: the delivery leaves its mailbox.
pub(super) fn delivery_ack(cx: &mut ConnCtx<'_, MsgConn>, pdu: &PduRef<'_>) {
    let Some(ack) = super::decode::<ImMsgDataAck>(cx, pdu) else {
        return;
    };
    let h = cx.handle();
    let Some(user) = cx.shared.user_of(h) else {
        return;
    };
    let session = SessionKey::of(user, ack.session_type, ack.session_id);
    let acked = cx.shared.pending.get_mut(&h).and_then(|p| {
        let (bytes, pos) = p.msgs.remove(&(session, ack.msg_id))?;
        p.bytes -= bytes;
        Some(pos)
    });
    // Only what was delivered here costs the store an operation. What the
    // feed of another connection of the user has not reached yet stays in
    // the mailbox until it has (module docs).
    if let Some(pos) = acked {
        match cx.shared.drains.get_mut(&user) {
            Some(d) if d.conn != h && pos > d.after => d.deferred.push(pos),
            _ => cx.shared.submit(Op::Delivered { user, pos }, None),
        }
    }
    pump_if_draining(cx);
}

/// Submits the acks that waited for `user`'s feed to pass them: those at or
/// before its position, or all of them when `all` (the feed ends).
fn release_deferred(state: &mut MsgState, user: u32, all: bool) {
    let Some(d) = state.drains.get_mut(&user) else {
        return;
    };
    let after = d.after;
    let released: Vec<u64> = if all {
        std::mem::take(&mut d.deferred)
    } else {
        let (passed, waiting) = d.deferred.iter().partition(|&&p| p <= after);
        d.deferred = waiting;
        passed
    };
    for pos in released {
        state.submit(Op::Delivered { user, pos }, None);
    }
}

/// Ends the feed of `user`'s mailbox, releasing the acks it held back.
fn end_drain(state: &mut MsgState, user: u32) {
    release_deferred(state, user, true);
    state.drains.remove(&user);
}

/// Starts feeding `user`'s mailbox to connection `conn` (unless a feed is
/// already running).
pub(super) fn start_drain(cx: &mut ConnCtx<'_, MsgConn>, user: u32, conn: Handle) {
    if cx.shared.drains.contains_key(&user) {
        return;
    }
    let generation = cx.shared.next_generation;
    cx.shared.next_generation += 1;
    cx.shared.drains.insert(
        user,
        Drain {
            conn,
            after: 0,
            fetching: false,
            recheck: false,
            generation,
            deferred: Vec::new(),
        },
    );
    pump(cx, user);
}

/// Stops the feed of `user`'s mailbox if it goes to `conn`; true if it did.
pub(super) fn stop_drain_on(state: &mut MsgState, user: u32, conn: Handle) -> bool {
    if state.drains.get(&user).is_some_and(|d| d.conn == conn) {
        end_drain(state, user);
        true
    } else {
        false
    }
}

/// Feeds more of the mailbox if this connection is being fed one.
pub(super) fn pump_if_draining(cx: &mut ConnCtx<'_, MsgConn>) {
    let h = cx.handle();
    if let Some(user) = cx.shared.user_of(h) {
        if cx.shared.drains.get(&user).is_some_and(|d| d.conn == h) {
            pump(cx, user);
        }
    }
}

/// Fetches the next part of `user`'s mailbox while fewer than
/// `BACKLOG_WINDOW` deliveries (and less than half the connection's
/// unacknowledged bounds) are unacknowledged and the connection's output
/// queue is below a quarter of the output cap.
fn pump(cx: &mut ConnCtx<'_, MsgConn>, user: u32) {
    let Some(d) = cx.shared.drains.get(&user) else {
        return;
    };
    if d.fetching {
        return;
    }
    let (conn, after, generation) = (d.conn, d.after, d.generation);
    let (in_flight, held) = cx
        .shared
        .pending
        .get(&conn)
        .map_or((0, 0), |p| (p.msgs.len(), p.bytes));
    let window = BACKLOG_WINDOW
        .min(cx.shared.settings.unacked_max / 2)
        .max(1);
    let queued = if conn == cx.handle() {
        cx.queued()
    } else {
        match cx.io_of(conn) {
            Some(io) => io.queued(),
            None => return,
        }
    };
    if in_flight >= window
        || held >= cx.shared.settings.unacked_max_bytes / 2
        || queued >= cx.shared.settings.client_output_max / 4
    {
        return;
    }
    if let Some(d) = cx.shared.drains.get_mut(&user) {
        d.fetching = true;
    }
    let done: Done = Box::new(move |s, ctx, outcome| backlog(s, ctx, user, generation, outcome));
    cx.shared.submit(
        Op::Undelivered {
            user,
            after,
            limit: window - in_flight,
        },
        Some(done),
    );
}

/// The store answered a mailbox fetch.
fn backlog(
    s: &mut ImServer<MsgConn>,
    ctx: &mut Context,
    user: u32,
    generation: u64,
    outcome: Outcome,
) {
    let Some(conn) = s
        .shared
        .drains
        .get(&user)
        .filter(|d| d.generation == generation)
        .map(|d| d.conn)
    else {
        return; // no feed, or it moved on and its own fetch will come
    };
    let (items, complete) = match outcome {
        Outcome::Backlog { items, complete } => (items, complete),
        other => {
            log::error!("user {user}: mailbox fetch failed: {other:?}; retried at next login");
            end_drain(&mut s.shared, user);
            return;
        }
    };
    let fed = with_any(s, ctx, [conn], |cx| {
        // A feed keeps within half the connection's unacknowledged bounds;
        // what does not fit now is fetched again later.
        let byte_budget = cx.shared.settings.unacked_max_bytes / 2;
        let mut all_fed = true;
        for (pos, m) in &items {
            let (already, held) = cx.shared.pending.get(&conn).map_or((false, 0), |p| {
                (p.msgs.contains_key(&(m.session, m.msg_id)), p.bytes)
            });
            if !already {
                if held > 0 && held + m.data.len() > byte_budget {
                    all_fed = false;
                    break;
                }
                deliver(cx, conn, m, &m.to_msg_data(user), Some(*pos));
            }
            if let Some(d) = cx.shared.drains.get_mut(&user) {
                d.after = *pos;
            }
        }
        release_deferred(cx.shared, user, false);
        let mut recheck = false;
        if let Some(d) = cx.shared.drains.get_mut(&user) {
            d.fetching = false;
            recheck = std::mem::take(&mut d.recheck);
        }
        if complete && all_fed && !recheck {
            end_drain(cx.shared, user);
        } else {
            pump(cx, user);
        }
    });
    if !fed {
        end_drain(&mut s.shared, user);
    }
}

/// Answers `pdu` from a query's outcome on connection `h`, if it is open.
pub(super) fn answer(
    s: &mut ImServer<MsgConn>,
    ctx: &mut Context,
    h: Handle,
    f: impl FnOnce(&mut ConnCtx<'_, MsgConn>),
) {
    with_any(s, ctx, [h], f);
}

/// For queries: `reply` with a sequence number saved from the request.
pub(super) fn reply_seq<M: pdu::Message>(
    cx: &mut ConnCtx<'_, MsgConn>,
    h: Handle,
    seq: u16,
    sid: u16,
    cid: u16,
    msg: &M,
) {
    let header = Header::new(sid, cid).with_seq_num(seq);
    let _ = cx.send_pdu_to(h, &header, msg);
}
