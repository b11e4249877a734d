//! msg_server: logins, message routing with acknowledgements, and the
//! registration with login_servers.
//!
//! One [`ImServer`] serves every socket: client connections accepted on
//! `ListenPort`, and a reconnecting link to each configured login_server.
//! Shared state ([`MsgState`]) holds the accounts, who is online where, the
//! deliveries each connection has not acknowledged yet, and the messages kept
//! for users who are offline.
//!
//! Fixes over TeamTalk's msg_server: before a successful login only login
//! and heartbeat are accepted (anything else closes the connection); no
//! login within the deadline closes it; a message acknowledged to its sender
//! is never silently lost while the process runs - deliveries stay pending
//! until the receiving connection acks them and go back to the receiver's
//! offline queue if that connection closes first.

mod buddy;
mod link;
mod settings;

pub use settings::{Settings, KEYS};

use imconn::{
    Backoff, ConnConfig, ConnCtx, Connection, ImServer, Limits, PduCodec, Timeouts, UserMap,
};
use netlib::{CloseReason, Context, Handle, HandlerRef, ListenOptions};
use pdu::proto::{
    ClientType, ImHeartBeat, ImKickUser, ImLoginReq, ImLoginRes, ImLogoutRsp, ImMsgData,
    ImMsgDataAck, ImMsgServInfo, ImUserCntUpdate, KickReasonType, ResultType, SessionType,
    UserStatType, USER_CNT_DEC, USER_CNT_INC,
};
use pdu::{cid, sid, Header, Message, PduRef};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A logged-in session.
#[derive(Debug, Clone, Copy)]
struct Session {
    user_id: u32,
    mobile: bool,
}

/// Server-wide state.
pub struct MsgState {
    settings: Settings,
    online: UserMap,
    sessions: HashMap<Handle, Session>,
    /// Deliveries not yet acknowledged, per connection, by message id.
    pending: HashMap<Handle, BTreeMap<u32, ImMsgData>>,
    /// Messages for users with no connection, oldest first.
    offline: HashMap<u32, VecDeque<ImMsgData>>,
    /// The connection that is being fed a user's backlog (at most one per
    /// user). While a backlog exists, new messages for that user join it, so
    /// order is kept.
    draining: HashMap<u32, Handle>,
    client_conns: u32,
    next_msg_id: u32,
    messages: u64,
    buddy: buddy::BuddyState,
}

impl MsgState {
    fn new(settings: Settings) -> MsgState {
        MsgState {
            settings,
            online: UserMap::default(),
            sessions: HashMap::new(),
            pending: HashMap::new(),
            offline: HashMap::new(),
            draining: HashMap::new(),
            client_conns: 0,
            next_msg_id: 1,
            messages: 0,
            buddy: buddy::BuddyState::default(),
        }
    }

    fn serv_info(&self) -> ImMsgServInfo {
        ImMsgServInfo {
            ip1: self.settings.ip1.clone(),
            ip2: self.settings.ip2.clone(),
            port: self.settings.listen.first().map_or(0, |a| a.port() as u32),
            max_conn_cnt: self.settings.max_conns,
            cur_conn_cnt: self.online.conn_count() as u32,
            host_name: hostname(),
        }
    }

    fn store_offline(&mut self, user: u32, msg: ImMsgData) -> bool {
        let queue = self.offline.entry(user).or_default();
        if queue.len() >= self.settings.offline_max {
            return false;
        }
        queue.push_back(msg);
        true
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

/// A connection of msg_server: a client, or the link to a login_server.
pub enum MsgConn {
    /// A client connection.
    Client(ClientConn),
    /// A link to a login_server.
    LoginLink,
}

/// Per-client state: a token bucket for the message rate limit.
pub struct ClientConn {
    tokens: f64,
    refilled: Instant,
}

impl Connection for MsgConn {
    type Codec = PduCodec;
    type Shared = MsgState;

    fn on_connect(&mut self, cx: &mut ConnCtx<'_, Self>) {
        cx.shared.client_conns += 1;
    }

    fn on_confirm(&mut self, cx: &mut ConnCtx<'_, Self>) {
        // (Re)registering tells a restarted login_server the live counts.
        link::on_link_up(cx);
    }

    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, pdu: PduRef<'_>) {
        match self {
            MsgConn::LoginLink => link::on_link_frame(cx, &pdu),
            MsgConn::Client(client) => client.on_frame(cx, pdu),
        }
    }

    fn on_write_complete(&mut self, cx: &mut ConnCtx<'_, Self>) {
        if let Some(user) = drainer_user(cx.shared, cx.handle()) {
            drain_backlog(cx, user);
        }
    }

    fn on_close(&mut self, cx: &mut ConnCtx<'_, Self>, reason: CloseReason) {
        if let MsgConn::Client(_) = self {
            cx.shared.client_conns = cx.shared.client_conns.saturating_sub(1);
            logout(cx, reason);
        }
    }
}

fn reply<M: Message>(
    cx: &mut ConnCtx<'_, MsgConn>,
    request: &PduRef<'_>,
    sid: u16,
    cid: u16,
    msg: &M,
) {
    let header = Header::new(sid, cid).with_seq_num(request.seq_num());
    let _ = cx.send_pdu(&header, msg);
}

impl ClientConn {
    fn on_frame(&mut self, cx: &mut ConnCtx<'_, MsgConn>, pdu: PduRef<'_>) {
        let logged_in = cx.shared.sessions.contains_key(&cx.handle());
        match (pdu.service_id(), pdu.command_id(), logged_in) {
            (sid::OTHER, cid::other::HEARTBEAT, _) => {
                reply(cx, &pdu, sid::OTHER, cid::other::HEARTBEAT, &ImHeartBeat {});
            }
            (sid::LOGIN, cid::login::REQ_USERLOGIN, false) => self.login(cx, &pdu),
            (sid::LOGIN, cid::login::REQ_LOGINOUT, true) => {
                reply(
                    cx,
                    &pdu,
                    sid::LOGIN,
                    cid::login::RES_LOGINOUT,
                    &ImLogoutRsp { result_code: 0 },
                );
                cx.close_after_flush();
            }
            (sid::MSG, cid::msg::DATA, true) => {
                if self.take_token(cx.shared.settings.rate_limit) {
                    self.message(cx, &pdu);
                } else {
                    log::warn!(
                        "{} {} closed: over the message rate limit",
                        cx.handle(),
                        crate::runtime::addr_or_unknown(cx.peer())
                    );
                    cx.close();
                }
            }
            (sid::MSG, cid::msg::DATA_ACK, true) => {
                if let Ok(ack) = pdu.decode_body::<ImMsgDataAck>() {
                    if let Some(p) = cx.shared.pending.get_mut(&cx.handle()) {
                        p.remove(&ack.msg_id);
                    }
                    // Acks pace the delivery of a backlog.
                    if let Some(user) = drainer_user(cx.shared, cx.handle()) {
                        drain_backlog(cx, user);
                    }
                }
            }
            (sid::BUDDY_LIST, _, true) | (sid::MSG, cid::msg::TIME_REQUEST, true) => {
                buddy::on_request(cx, &pdu)
            }
            // As TeamTalk's msg_server: what it does not know is ignored.
            (s, c, true) => log::info!(
                "{} command {s:#06x}/{c:#06x} ({}) not supported, ignored",
                cx.handle(),
                pdu::ids::command_name(s, c).unwrap_or("unknown")
            ),
            (s, c, false) => {
                log::warn!(
                    "{} {} closed: command {s:#x}/{c:#x} before login",
                    cx.handle(),
                    crate::runtime::addr_or_unknown(cx.peer()),
                );
                cx.close();
            }
        }
    }

    fn take_token(&mut self, rate: u32) -> bool {
        let now = Instant::now();
        let rate = f64::from(rate.max(1));
        self.tokens =
            (self.tokens + now.duration_since(self.refilled).as_secs_f64() * rate).min(2.0 * rate);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn login(&mut self, cx: &mut ConnCtx<'_, MsgConn>, pdu: &PduRef<'_>) {
        let Ok(req) = pdu.decode_body::<ImLoginReq>() else {
            log::warn!(
                "{} {} closed: undecodable login",
                cx.handle(),
                crate::runtime::addr_or_unknown(cx.peer())
            );
            cx.close();
            return;
        };
        let Some(user) = cx
            .shared
            .settings
            .users
            .authenticate(&req.user_name, &req.password)
        else {
            log::info!(
                "{} login of {:?} refused: wrong credentials",
                cx.handle(),
                req.user_name
            );
            let res = ImLoginRes {
                server_time: unix_now(),
                result_code: ResultType::RefuseReasonDbValidateFailed as i32,
                result_string: Some("wrong user name or password".into()),
                ..Default::default()
            };
            reply(cx, pdu, sid::LOGIN, cid::login::RES_USERLOGIN, &res);
            cx.close_after_flush();
            return;
        };
        let (user_id, name, info) = (user.id, user.name.clone(), buddy::user_info(user));
        let mobile = ClientType::try_from(req.client_type).is_ok_and(|t| t.is_mobile());
        // One session per user and client class: kick the older one.
        let same_class: Vec<Handle> = cx
            .shared
            .online
            .get(user_id)
            .iter()
            .copied()
            .filter(|h| {
                cx.shared
                    .sessions
                    .get(h)
                    .is_some_and(|s| s.mobile == mobile)
            })
            .collect();
        for old in same_class {
            log::info!("user {user_id} logged in again: kicking {old}");
            let kick = ImKickUser {
                user_id,
                kick_reason: KickReasonType::KickReasonDuplicateUser as i32,
            };
            let _ = cx.send_pdu_to(old, &Header::new(sid::LOGIN, cid::login::KICK_USER), &kick);
            cx.close_conn_after_flush(old);
            // The old session stops receiving at once; its unacked
            // deliveries go back to the queue on close.
            cx.shared.online.remove(user_id, old);
            cx.shared.sessions.remove(&old);
            requeue_pending(cx.shared, old, user_id);
            if cx.shared.draining.get(&user_id) == Some(&old) {
                cx.shared.draining.remove(&user_id);
            }
        }
        let h = cx.handle();
        cx.set_logged_in();
        if mobile {
            cx.set_timeouts(Timeouts {
                idle: Timeouts::MOBILE_CLIENT.idle,
                ..cx.shared.settings.client_timeouts
            });
        }
        cx.shared.sessions.insert(h, Session { user_id, mobile });
        cx.shared.online.add(user_id, h);
        log::info!(
            "{h} {} logged in as {name} ({user_id})",
            crate::runtime::addr_or_unknown(cx.peer())
        );
        let res = ImLoginRes {
            server_time: unix_now(),
            result_code: ResultType::RefuseReasonNone as i32,
            result_string: None,
            online_status: Some(UserStatType::UserStatusOnline as i32),
            user_info: Some(info),
        };
        reply(cx, pdu, sid::LOGIN, cid::login::RES_USERLOGIN, &res);
        buddy::presence_changed(cx, user_id);
        let update = ImUserCntUpdate {
            user_action: USER_CNT_INC,
            user_id,
        };
        cx.send_pdu_to_links(
            &Header::new(sid::OTHER, cid::other::USER_CNT_UPDATE),
            &update,
        );
        // Messages that waited while the user was offline: sent in steps
        // bounded by the output cap, more as acks and drained output allow
        // (all at once, a backlog over the cap would close the connection at
        // every login and could never be collected).
        if cx.shared.offline.contains_key(&user_id) {
            cx.shared.draining.entry(user_id).or_insert(h);
            drain_backlog(cx, user_id);
        }
    }

    fn message(&mut self, cx: &mut ConnCtx<'_, MsgConn>, pdu: &PduRef<'_>) {
        let Ok(mut msg) = pdu.decode_body::<ImMsgData>() else {
            log::warn!(
                "{} {} closed: undecodable message",
                cx.handle(),
                crate::runtime::addr_or_unknown(cx.peer())
            );
            cx.close();
            return;
        };
        let h = cx.handle();
        let Some(session) = cx.shared.sessions.get(&h).copied() else {
            return;
        };
        let msg_id = cx.shared.next_msg_id;
        msg.from_user_id = session.user_id;
        msg.msg_id = msg_id;
        msg.create_time = unix_now();
        let to = msg.to_session_id;
        // Straight to the receiver's connections, unless it is offline or
        // still being fed a backlog (then the message joins the backlog, so
        // order is kept); and to the sender's other connections.
        let direct = !cx.shared.online.get(to).is_empty() && !cx.shared.offline.contains_key(&to);
        let mut targets: Vec<Handle> = if direct {
            cx.shared.online.get(to).to_vec()
        } else {
            Vec::new()
        };
        if to != session.user_id {
            targets.extend(
                cx.shared
                    .online
                    .get(session.user_id)
                    .iter()
                    .filter(|t| **t != h),
            );
        }
        if !direct && !cx.shared.store_offline(to, msg.clone()) {
            log::warn!(
                "offline queue of user {to} full: message from {} refused",
                session.user_id
            );
            return; // not acknowledged: the sender may retry
        }
        cx.shared.next_msg_id = cx.shared.next_msg_id.wrapping_add(1).max(1);
        cx.shared.messages += 1;
        let ack = ImMsgDataAck {
            user_id: session.user_id,
            session_id: to,
            msg_id,
            session_type: SessionType::Single as i32,
        };
        reply(cx, pdu, sid::MSG, cid::msg::DATA_ACK, &ack);
        for target in targets {
            deliver(cx, target, msg.clone());
        }
        if !direct {
            drain_backlog(cx, to);
        }
    }
}

/// Deliveries in flight per connection while feeding it a backlog.
const BACKLOG_WINDOW: usize = 256;
/// A connection with this many unacknowledged deliveries is not acking:
/// it is closed (its deliveries go back to the user's queue).
const MAX_UNACKED: usize = 10_000;

/// The user whose backlog connection `h` is draining, if any.
fn drainer_user(state: &MsgState, h: Handle) -> Option<u32> {
    let user = state.sessions.get(&h)?.user_id;
    (state.draining.get(&user) == Some(&h)).then_some(user)
}

/// Feeds `user`'s backlog to its draining connection while fewer than
/// `BACKLOG_WINDOW` deliveries are unacknowledged and its output queue is
/// below a quarter of the output cap.
fn drain_backlog(cx: &mut ConnCtx<'_, MsgConn>, user: u32) {
    let Some(&h) = cx.shared.draining.get(&user) else {
        return;
    };
    let byte_budget = cx.shared.settings.client_output_max / 4;
    loop {
        let in_flight = cx.shared.pending.get(&h).map_or(0, |p| p.len());
        let queued = if h == cx.handle() {
            cx.queued()
        } else {
            match cx.io_of(h) {
                Some(io) => io.queued(),
                None => return,
            }
        };
        if in_flight >= BACKLOG_WINDOW || queued >= byte_budget {
            return;
        }
        let Some(msg) = cx.shared.offline.get_mut(&user).and_then(|q| q.pop_front()) else {
            cx.shared.offline.remove(&user);
            cx.shared.draining.remove(&user);
            return;
        };
        deliver(cx, h, msg);
    }
}

/// Sends `msg` to connection `to` and keeps it pending until acked.
fn deliver(cx: &mut ConnCtx<'_, MsgConn>, to: Handle, msg: ImMsgData) {
    let header = Header::new(sid::MSG, cid::msg::DATA);
    let _ = cx.send_pdu_to(to, &header, &msg);
    let pending = cx.shared.pending.entry(to).or_default();
    pending.insert(msg.msg_id, msg);
    if pending.len() > MAX_UNACKED {
        log::warn!("{to} closed: {MAX_UNACKED} deliveries left unacknowledged");
        if to == cx.handle() {
            cx.close();
        } else {
            cx.close_conn(to);
        }
    }
}

/// Moves a closed connection's unacknowledged deliveries to the user's
/// offline queue, oldest first.
fn requeue_pending(state: &mut MsgState, h: Handle, user_id: u32) {
    let Some(pending) = state.pending.remove(&h) else {
        return;
    };
    if pending.is_empty() {
        return;
    }
    let queue = state.offline.entry(user_id).or_default();
    // Pending ones are older than anything queued since; put them first.
    for (_, msg) in pending.into_iter().rev() {
        queue.push_front(msg);
    }
}

fn logout(cx: &mut ConnCtx<'_, MsgConn>, reason: CloseReason) {
    let h = cx.handle();
    let Some(session) = cx.shared.sessions.remove(&h) else {
        cx.shared.pending.remove(&h);
        return;
    };
    log::info!("{h} user {} logged out: {reason}", session.user_id);
    cx.shared.online.remove(session.user_id, h);
    buddy::presence_changed(cx, session.user_id);
    requeue_pending(cx.shared, h, session.user_id);
    // The backlog (and what this connection left unacked) moves on to
    // another connection of the user, if there is one.
    if cx.shared.draining.get(&session.user_id) == Some(&h) {
        cx.shared.draining.remove(&session.user_id);
    }
    if cx.shared.offline.contains_key(&session.user_id) {
        if let Some(&next) = cx.shared.online.get(session.user_id).first() {
            cx.shared.draining.entry(session.user_id).or_insert(next);
            drain_backlog(cx, session.user_id);
        }
    }
    let update = ImUserCntUpdate {
        user_action: USER_CNT_DEC,
        user_id: session.user_id,
    };
    cx.send_pdu_to_links(
        &Header::new(sid::OTHER, cid::other::USER_CNT_UPDATE),
        &update,
    );
}

/// Starts msg_server on `ctx`: listeners, login_server links, stats timer.
/// Returns the server handle and the bound client addresses.
pub fn start(
    ctx: &mut Context,
    settings: Settings,
) -> netlib::Result<(HandlerRef, Vec<SocketAddr>)> {
    let client_config = ConnConfig {
        timeouts: settings.client_timeouts,
        limits: Limits {
            high_water: settings.client_output_max / 2,
            hard_cap: settings.client_output_max,
            ..Limits::default()
        },
        ..ConnConfig::client()
    };
    let link_config = ConnConfig {
        timeouts: settings.link_timeouts,
        ..ConnConfig::server_link()
    };
    let listen = settings.listen.clone();
    let login_servers = settings.login_servers.clone();
    let retry_min = settings.link_retry_min;
    let stats_interval = settings.stats_interval;
    let server = ImServer::<MsgConn>::register(ctx, MsgState::new(settings), move |state, _| {
        if state.client_conns >= state.settings.max_conns {
            log::warn!(
                "connection refused: MaxConnCnt {} reached",
                state.settings.max_conns
            );
            return None;
        }
        Some((
            MsgConn::Client(ClientConn {
                tokens: 2.0 * f64::from(state.settings.rate_limit),
                refilled: Instant::now(),
            }),
            client_config,
        ))
    });
    let mut bound = Vec::new();
    for addr in listen {
        let l = ctx.listen_with(addr, &ListenOptions::default(), server)?;
        bound.push(ctx.local_addr(l)?);
    }
    // The port login_servers hand out is the one actually bound.
    let port = bound.first().map(|a| a.port());
    ctx.with_handler(server, |s: &mut ImServer<MsgConn>, ctx| {
        if let Some(port) = port {
            s.shared.settings.listen[0].set_port(port);
        }
        for addr in login_servers {
            s.add_link(
                ctx,
                addr,
                link_config,
                Backoff::new(retry_min, Duration::from_secs(64)),
                |_| MsgConn::LoginLink,
            );
        }
    });
    ctx.add_repeating_timer(stats_interval, move |ctx, _| {
        ctx.with_handler(server, |s: &mut ImServer<MsgConn>, _| {
            let st = &s.shared;
            log::info!(
                "stats: {} users on {} connections, {} messages routed, {} pending, {} offline",
                st.online.user_count(),
                st.online.conn_count(),
                st.messages,
                st.pending.values().map(|p| p.len()).sum::<usize>(),
                st.offline.values().map(|q| q.len()).sum::<usize>(),
            );
        });
    });
    Ok((server, bound))
}
