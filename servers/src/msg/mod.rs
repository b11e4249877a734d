//! msg_server: logins, message routing with acknowledgements, the store
//! behind it, and the registration with login_servers.
//!
//! One [`ImServer`] serves every socket: client connections accepted on
//! `ListenPort`, and a reconnecting link to each configured login_server.
//! Shared state ([`MsgState`]) holds the accounts, who is online where, the
//! deliveries each connection has not acknowledged yet, and the handle of
//! the message store.
//!
//! Who does what:
//!
//! - this file: the state, the connection type and the one `match` that
//!   dispatches a client's commands; startup;
//! - `session`: login, duplicate-login kick, logout;
//! - `route`: a message from its sender through the store to
//!   its receivers' connections, acknowledgements, and feeding a user the
//!   messages that waited in its mailbox;
//! - `queries`: the commands answered from the store
//!   (unread counts, history, latest id, messages by id, read acks, recent
//!   sessions);
//! - `groups`: normal and temporary groups, membership;
//! - `buddy`: users, departments, status notifications;
//! - `cluster`: several msg_servers as one service -
//!   deliveries, logins and status changes routed over NATS;
//! - [`store`]: where messages live (SQLite or PostgreSQL on a thread of
//!   their own, or memory), behind [`store::MessageStore`];
//! - `limits`: what one connection may ask per unit of
//!   time - the message rate, and the rate and store operations in flight of
//!   its requests (past them the server stops reading it);
//! - `settings`: the config keys.
//!
//! Fixes over TeamTalk's msg_server: before a successful login only login
//! and heartbeat are accepted (anything else closes the connection); no
//! login within the deadline closes it; a message is acknowledged to its
//! sender only once the store committed it, and stays in the receiver's
//! mailbox until a connection of the receiver acknowledges the delivery - a
//! restart, a closed connection or a kick loses nothing; a message to a user
//! that does not exist is refused, and what a mailbox or a connection may
//! hold is bounded in the config.

mod buddy;
mod cluster;
mod groups;
mod limits;
mod link;
mod queries;
mod route;
mod session;
mod settings;
pub mod store;

pub use settings::{Settings, StoreKind, KEYS};

use imconn::{Backoff, ConnConfig, ConnCtx, Connection, ImServer, Limits, PduCodec, UserMap};
use netlib::{CloseReason, Context, Handle, HandlerRef, ListenOptions, TimerId};
use pdu::proto::{self as proto, ImHeartBeat, ImLogoutRsp, ImMsgServInfo};
use pdu::{cid, sid, Header, Message, PduRef};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;
use store::{Completions, GroupRecord, MessageStore, Op, SessionKey};

/// A logged-in session.
#[derive(Debug, Clone, Copy)]
struct Session {
    user_id: u32,
    mobile: bool,
}

/// Deliveries a connection has not acknowledged: (session, msg id) ->
/// (content bytes, mailbox position).
#[derive(Debug, Default)]
struct Pending {
    msgs: HashMap<(SessionKey, u32), (usize, u64)>,
    bytes: usize,
}

/// A user's mailbox being fed to one of its connections (`conn`); the
/// user's other connections get new messages directly meanwhile.
#[derive(Debug, Clone)]
struct Drain {
    conn: Handle,
    /// Mailbox position of the last message fetched.
    after: u64,
    /// A fetch is in flight.
    fetching: bool,
    /// A message for the user came from another msg_server during the
    /// feed: fetch once more before ending it (the message is committed, so
    /// a fetch from now on sees it).
    recheck: bool,
    /// Tells a stale fetch's answer (the drain moved on) from the current.
    generation: u64,
    /// Mailbox positions past `after` that another connection of the user
    /// acknowledged: they leave the mailbox only once the feed has passed
    /// them, so that `conn` gets them too (`route::delivery_ack`).
    deferred: Vec<u64>,
}

/// Server-wide state.
pub struct MsgState {
    settings: Settings,
    /// Ids of the accounts: messages to anyone else are refused.
    user_ids: HashSet<u32>,
    online: UserMap,
    sessions: HashMap<Handle, Session>,
    pending: HashMap<Handle, Pending>,
    drains: HashMap<u32, Drain>,
    next_generation: u64,
    /// Every group by id (members ascending).
    groups: HashMap<u32, GroupRecord>,
    /// Group changes in flight, for applying other servers' changes.
    group_sync: groups::GroupSync,
    /// Set right after registration (the store needs the server's handler).
    store: Option<Box<dyn MessageStore>>,
    /// Operations submitted and not answered yet.
    in_flight: usize,
    /// The connection whose request is being dispatched: what is submitted
    /// meanwhile counts against its `ConnQueryInFlightMax` ([`limits`]).
    requester: Option<Handle>,
    /// Operations submitted for `requester` so far.
    requested: usize,
    /// Times a connection was held back by its request limits (stats).
    held_back: u64,
    /// Connections held back until the store is below `StoreInFlightMax`.
    store_waiters: Vec<Handle>,
    client_conns: u32,
    messages: u64,
    buddy: buddy::BuddyState,
    /// Routing to other msg_servers over NATS (`NatsAddr`), if configured.
    cluster: Option<cluster::Cluster>,
    refused: u64,
}

impl MsgState {
    fn new(settings: Settings) -> MsgState {
        MsgState {
            user_ids: settings.users.iter().map(|u| u.id).collect(),
            settings,
            online: UserMap::default(),
            sessions: HashMap::new(),
            pending: HashMap::new(),
            drains: HashMap::new(),
            next_generation: 1,
            groups: HashMap::new(),
            group_sync: groups::GroupSync::default(),
            store: None,
            in_flight: 0,
            requester: None,
            requested: 0,
            held_back: 0,
            store_waiters: Vec::new(),
            client_conns: 0,
            messages: 0,
            buddy: buddy::BuddyState::default(),
            cluster: None,
            refused: 0,
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

    /// The logged-in user of connection `h`.
    fn user_of(&self, h: Handle) -> Option<u32> {
        self.sessions.get(&h).map(|s| s.user_id)
    }

    /// Submits `op` to the store; `done` runs on the loop with the outcome.
    /// Every operation counts in `in_flight` until it is answered, and one
    /// submitted for a client's request also in that connection's budget
    /// ([`limits`]).
    fn submit(&mut self, op: Op, done: Option<store::Done>) {
        self.in_flight += 1;
        let requester = self.requester;
        if requester.is_some() {
            self.requested += 1;
        }
        let done: store::Done = Box::new(move |s, ctx, outcome| {
            s.shared.in_flight = s.shared.in_flight.saturating_sub(1);
            if let Some(done) = done {
                done(s, ctx, outcome);
            }
            if let Some(h) = requester {
                limits::answered(s, ctx, h);
            }
            limits::store_answered(s, ctx);
        });
        match self.store.as_mut() {
            Some(store) => store.submit(op, Some(done)),
            None => log::error!("store not open: operation dropped"),
        }
    }

    /// Whether the store has `StoreInFlightMax` operations to answer: new
    /// messages are refused and connections with requests held back
    /// ([`limits`]) until it catches up.
    fn store_busy(&self) -> bool {
        self.in_flight >= self.settings.store_in_flight_max
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

pub(crate) fn unix_now() -> u32 {
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

/// Per-client state: the limits of `limits`.
pub struct ClientConn {
    /// Tokens for messages (`MsgRateLimit`).
    msgs: limits::TokenBucket,
    /// Tokens and store operations in flight of requests.
    requests: limits::RequestBudget,
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
        route::pump_if_draining(cx);
    }

    fn on_timer(&mut self, cx: &mut ConnCtx<'_, Self>, id: TimerId) {
        if let MsgConn::Client(client) = self {
            client.requests.on_timer(cx, id);
        }
    }

    fn on_close(&mut self, cx: &mut ConnCtx<'_, Self>, reason: CloseReason) {
        if let MsgConn::Client(_) = self {
            cx.shared.client_conns = cx.shared.client_conns.saturating_sub(1);
            session::logout(cx, reason);
        }
    }
}

/// Answers `request` with `msg` (same sequence number).
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

/// Decodes a request body; an undecodable one closes the connection.
fn decode<M: Message + Default>(cx: &mut ConnCtx<'_, MsgConn>, pdu: &PduRef<'_>) -> Option<M> {
    match pdu.decode_body::<M>() {
        Ok(m) => Some(m),
        Err(e) => {
            log::warn!(
                "{} {} closed: undecodable {:#06x}: {e}",
                cx.handle(),
                crate::runtime::addr_or_unknown(cx.peer()),
                pdu.command_id()
            );
            cx.close();
            None
        }
    }
}

/// A request from a logged-in connection: its user and the decoded body.
/// `None` when the connection is not logged in or the body is undecodable
/// (the connection is closed). A busy store does not refuse it: the
/// connection is held back after it ([`limits`]).
fn request<M: Message + Default>(
    cx: &mut ConnCtx<'_, MsgConn>,
    pdu: &PduRef<'_>,
) -> Option<(u32, M)> {
    let user = cx.shared.user_of(cx.handle())?;
    let body = decode::<M>(cx, pdu)?;
    Some((user, body))
}

impl ClientConn {
    fn on_frame(&mut self, cx: &mut ConnCtx<'_, MsgConn>, pdu: PduRef<'_>) {
        let logged_in = cx.shared.sessions.contains_key(&cx.handle());
        match (pdu.service_id(), pdu.command_id(), logged_in) {
            (sid::OTHER, cid::other::HEARTBEAT, _) => {
                reply(cx, &pdu, sid::OTHER, cid::other::HEARTBEAT, &ImHeartBeat {});
            }
            (sid::LOGIN, cid::login::REQ_USERLOGIN, false) => session::login(cx, &pdu),
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
                if self.msgs.take(cx.shared.settings.rate_limit) {
                    route::message(cx, &pdu);
                } else {
                    log::warn!(
                        "{} {} closed: over the message rate limit (MsgRateLimit)",
                        cx.handle(),
                        crate::runtime::addr_or_unknown(cx.peer())
                    );
                    cx.close();
                }
            }
            (sid::MSG, cid::msg::DATA_ACK, true) => route::delivery_ack(cx, &pdu),
            (s, c, false) => {
                log::warn!(
                    "{} {} closed: command {s:#x}/{c:#x} before login",
                    cx.handle(),
                    crate::runtime::addr_or_unknown(cx.peer()),
                );
                cx.close();
            }
            (_, _, true) => {
                cx.shared.begin_request(cx.handle());
                on_request(cx, &pdu);
                self.requests.after_request(cx);
            }
        }
    }
}

/// A logged-in client's request: everything but heartbeats, login, logout,
/// messages and delivery acks. Its rate and the store operations it causes
/// count against the connection's limits ([`limits`]).
fn on_request(cx: &mut ConnCtx<'_, MsgConn>, pdu: &PduRef<'_>) {
    match (pdu.service_id(), pdu.command_id()) {
        (sid::MSG, cid::msg::TIME_REQUEST) => {
            let res = proto::ImClientTimeRsp {
                server_time: unix_now(),
            };
            reply(cx, pdu, sid::MSG, cid::msg::TIME_RESPONSE, &res);
        }
        (sid::MSG, cid::msg::READ_ACK) => queries::read_ack(cx, pdu),
        (sid::MSG, cid::msg::UNREAD_CNT_REQUEST) => queries::unread(cx, pdu),
        (sid::MSG, cid::msg::LIST_REQUEST) => queries::history(cx, pdu),
        (sid::MSG, cid::msg::GET_LATEST_MSG_ID_REQ) => queries::latest(cx, pdu),
        (sid::MSG, cid::msg::GET_BY_MSG_ID_REQ) => queries::by_id(cx, pdu),
        (sid::BUDDY_LIST, proto::RECENT_CONTACT_SESSION_REQUEST) => {
            queries::recent_sessions(cx, pdu)
        }
        (sid::BUDDY_LIST, proto::REMOVE_SESSION_REQ) => queries::remove_session(cx, pdu),
        (sid::BUDDY_LIST, _) => buddy::on_request(cx, pdu),
        (sid::GROUP, cid::group::NORMAL_LIST_REQUEST) => groups::list(cx, pdu),
        (sid::GROUP, cid::group::INFO_REQUEST) => groups::infos(cx, pdu),
        (sid::GROUP, cid::group::CREATE_REQUEST) => groups::create(cx, pdu),
        (sid::GROUP, cid::group::CHANGE_MEMBER_REQUEST) => groups::change_members(cx, pdu),
        (sid::GROUP, cid::group::SHIELD_GROUP_REQUEST) => groups::shield(cx, pdu),
        // As TeamTalk's msg_server: what it does not know is ignored.
        (s, c) => log::info!(
            "{} command {s:#06x}/{c:#06x} ({}) not supported, ignored",
            cx.handle(),
            pdu::ids::command_name(s, c).unwrap_or("unknown")
        ),
    }
}

/// Opens the configured store, answering to `server` on `ctx`'s loop.
fn open_store(
    ctx: &Context,
    server: HandlerRef,
    settings: &Settings,
) -> Result<Box<dyn MessageStore>, String> {
    let completions = Completions::new(ctx.poster(), server);
    Ok(match &settings.store {
        StoreKind::Sqlite {
            path,
            sync_full,
            busy_timeout,
            commit,
            defer,
        } => Box::new(
            store::sqlite::SqliteStore::open(
                store::sqlite::SqliteConfig {
                    path: path.clone(),
                    sync_full: *sync_full,
                    busy_timeout: *busy_timeout,
                    commit: *commit,
                    defer: *defer,
                    bounds: settings.bounds,
                },
                completions,
            )
            .map_err(|e| format!("DbPath {e}"))?,
        ),
        StoreKind::Postgres { url, commit } => Box::new(store::postgres::PostgresStore::open(
            store::postgres::PostgresConfig {
                url: url.clone(),
                commit: *commit,
                bounds: settings.bounds,
            },
            completions,
        )?),
        StoreKind::Memory { history_max } => Box::new(store::memory::MemoryStore::new(
            completions,
            settings.bounds,
            *history_max,
        )),
    })
}

/// Creates or upgrades the configured store's schema (`msg_server
/// migrate`): what changed, for people.
pub fn migrate(settings: &Settings) -> Result<String, String> {
    match &settings.store {
        StoreKind::Sqlite { path, .. } => {
            let (before, after) = store::sqlite::migrate(path)?;
            Ok(format!(
                "sqlite {}: schema version {before} -> {after}",
                path.display()
            ))
        }
        StoreKind::Postgres { url, .. } => {
            let mut client = postgres::Client::connect(url, postgres::NoTls)
                .map_err(|e| format!("PostgresUrl: {e}"))?;
            let (before, after) =
                store::postgres::migrate(&mut client).map_err(|e| format!("migration: {e}"))?;
            if before > after {
                return Err(format!(
                    "schema version {before} is newer than this msg_server ({after})"
                ));
            }
            Ok(format!("postgres: schema version {before} -> {after}"))
        }
        StoreKind::Memory { .. } => Ok("memory store: nothing to migrate".into()),
    }
}

/// Starts msg_server on `ctx`: the store, listeners, login_server links,
/// stats timer. Returns the server handle and the bound client addresses.
pub fn start(
    ctx: &mut Context,
    settings: Settings,
) -> Result<(HandlerRef, Vec<SocketAddr>), Box<dyn std::error::Error>> {
    let nats = settings.nats;
    let client_config = ConnConfig {
        timeouts: settings.client_timeouts,
        limits: Limits {
            high_water: settings.client_output_max / 2,
            hard_cap: settings.client_output_max,
            ..Limits::default()
        },
        max_frame: settings.client_max_frame,
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
                msgs: limits::TokenBucket::full(state.settings.rate_limit),
                requests: limits::RequestBudget::new(state.settings.query_rate_limit),
            }),
            client_config,
        ))
    });
    let opened = ctx.with_handler(server, |s: &mut ImServer<MsgConn>, ctx| {
        let mut store = open_store(ctx, server, &s.shared.settings)?;
        log::info!("message store: {}", store.describe());
        let st = &mut s.shared;
        st.groups = store.take_groups().into_iter().map(|g| (g.id, g)).collect();
        // The groups file seeds the store; later changes live in the store.
        for g in std::mem::take(&mut st.settings.groups) {
            if let std::collections::hash_map::Entry::Vacant(e) = st.groups.entry(g.id) {
                store.submit(Op::CreateGroup(g.clone()), None);
                e.insert(g);
            }
        }
        log::info!("{} groups", st.groups.len());
        st.store = Some(store);
        Ok::<(), String>(())
    });
    match opened {
        Some(Ok(())) => {}
        Some(Err(e)) => return Err(format!("message store: {e}").into()),
        None => return Err("msg_server handler vanished".into()),
    }
    if let Some(addr) = nats {
        let c = cluster::start(ctx, server, addr, retry_min);
        ctx.with_handler(server, |s: &mut ImServer<MsgConn>, _| {
            s.shared.cluster = Some(c)
        });
    }
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
                "stats: {} users on {} connections, {} messages stored, {} refused, \
                 {} deliveries unacknowledged, {} store operations in flight, \
                 connections held back by their request limits {} times; store {}",
                st.online.user_count(),
                st.online.conn_count(),
                st.messages,
                st.refused,
                st.pending.values().map(|p| p.msgs.len()).sum::<usize>(),
                st.in_flight,
                st.held_back,
                st.store.as_ref().map_or_else(String::new, |s| s.describe()),
            );
        });
    });
    Ok((server, bound))
}
