//! xx_connection's manager: connection types registered up front
//! ([`Factory`]), connections created by type ([`Manager::create`]),
//! [`listen`](Manager::listen) / [`connect`](Manager::connect) /
//! [`send`](Manager::send) / [`close`](Manager::close) by id, and
//! [`update`](Manager::update), which runs one turn of the event loop from
//! the caller's own main loop - no thread of its own.
//!
//! Unlike the message center (addressed by `ip:port`, pooled, retried), the
//! manager is connection-oriented like the seed's `XxConnectionMgr`: the
//! application holds connection ids and is told when each one connects and
//! disconnects ([`Endpoint`]). Values are MessagePack ([`crate::value`]) in
//! frames with a 4-byte big-endian length (imconn's `LengthCodec`: the
//! seed's `XxDataPack`, header then data), bounded by `max_body`; a frame
//! that is too long or does not decode closes its connection with a logged
//! reason.
//!
//! Who owns what: the [`Manager`] owns a netlib loop and one imconn server
//! on it; the server's state (`conn::ManagerState`) owns every id, and
//! each endpoint object is owned by its id (see `conn`). All callbacks run
//! inside `update`, on the caller's thread. Dropping the manager (the
//! seed's `Destroy`) closes every socket and drops every endpoint, without
//! further callbacks.

mod conn;
mod factory;

pub use conn::{ConnId, Cx, State};
pub use factory::{Endpoint, Factory, FactoryError};

use crate::value::CodecError;
use conn::{encode_body, Managed, ManagerState, Role};
use imconn::Server;
use netlib::{ConnectOptions, Context, EventDispatch, HandlerRef, ListenOptions};
use serde::Serialize;
use std::net::SocketAddr;
use std::time::Duration;

/// A manager's limits.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// Largest value (encoded) sent or accepted. Default 1 MiB.
    pub max_body: usize,
    /// Output queued for one connection past which it is closed (a peer
    /// that does not read). Default 8 MiB.
    pub max_output: usize,
    /// Connect timeout. Default 3 s.
    pub connect_timeout: Duration,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            max_body: 1 << 20,
            max_output: 8 << 20,
            connect_timeout: Duration::from_secs(3),
        }
    }
}

/// Why a manager call failed (nothing happened).
#[derive(Debug)]
pub enum ManagerError {
    /// No connection type of that name is registered.
    UnknownType(String),
    /// No connection with that id (never created, removed, or an accepted
    /// connection that closed).
    NoSuchConnection(ConnId),
    /// `listen` on a type that is not a listener, or `connect`/`send` on
    /// one that is.
    WrongType {
        /// The connection.
        id: ConnId,
        /// Its type.
        type_name: String,
        /// What was attempted.
        op: &'static str,
    },
    /// The connection is not in a state that allows the operation.
    WrongState {
        /// The connection.
        id: ConnId,
        /// Its state.
        state: State,
        /// What was attempted.
        op: &'static str,
    },
    /// The manager already listens on that address.
    AlreadyListening(SocketAddr),
    /// The value cannot be encoded.
    Encode(CodecError),
    /// The encoded value is over `max_body`.
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Sending failed (the connection closed, or its output overflowed and
    /// it was closed).
    Send(ConnId, String),
    /// The loop or the system refused (address in use, no sockets...).
    Net(netlib::Error),
}

impl std::fmt::Display for ManagerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ManagerError::UnknownType(t) => write!(f, "no connection type {t:?}"),
            ManagerError::NoSuchConnection(id) => write!(f, "no connection {id}"),
            ManagerError::WrongType { id, type_name, op } => {
                write!(
                    f,
                    "cannot {op} connection {id}: its type {type_name:?} does not"
                )
            }
            ManagerError::WrongState { id, state, op } => {
                write!(f, "cannot {op} connection {id}: it is {state:?}")
            }
            ManagerError::AlreadyListening(a) => write!(f, "already listening on {a}"),
            ManagerError::Encode(e) => write!(f, "{e}"),
            ManagerError::TooLarge { len, max } => {
                write!(f, "value of {len} bytes over the {max} byte limit")
            }
            ManagerError::Send(id, e) => write!(f, "cannot send on connection {id}: {e}"),
            ManagerError::Net(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ManagerError {}

/// See the module docs.
///
/// ```
/// use msgcenter::manager::{Cx, Endpoint, Factory, Manager, ManagerConfig, State};
/// use msgcenter::value::Value;
/// use std::sync::{Arc, Mutex};
/// use std::time::{Duration, Instant};
///
/// /// Server side: answers every value with its double.
/// struct Doubler;
/// impl Endpoint for Doubler {
///     fn on_message(&mut self, cx: &mut Cx<'_, '_>, v: Value) {
///         let _ = cx.send(&(v.as_int().unwrap_or(0) * 2));
///     }
/// }
/// /// Client side: remembers the answers.
/// struct Client(Arc<Mutex<Vec<i64>>>);
/// impl Endpoint for Client {
///     fn on_connect(&mut self, cx: &mut Cx<'_, '_>) {
///         let _ = cx.send(&21);
///     }
///     fn on_message(&mut self, _: &mut Cx<'_, '_>, v: Value) {
///         self.0.lock().unwrap().extend(v.as_int());
///     }
/// }
///
/// let answers = Arc::new(Mutex::new(Vec::new()));
/// let seen = answers.clone();
/// let mut types = Factory::new();
/// types.register("doubler", || Doubler)?;
/// types.register_listener("server", "doubler")?;
/// types.register("client", move || Client(seen.clone()))?;
/// let mut mgr = Manager::new(types, ManagerConfig::default())?;
///
/// let server = mgr.create("server")?;
/// let addr = mgr.listen(server, "127.0.0.1:0".parse()?)?;
/// let client = mgr.create("client")?;
/// mgr.connect(client, addr)?;
/// // The caller's own main loop:
/// let start = Instant::now();
/// while answers.lock().unwrap().is_empty() && start.elapsed() < Duration::from_secs(10) {
///     mgr.update(Duration::from_millis(10))?;
/// }
/// assert_eq!(*answers.lock().unwrap(), vec![42]);
/// assert_eq!(mgr.state(client), Some(State::Connected));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Manager {
    dispatch: EventDispatch,
    server: HandlerRef,
}

impl Manager {
    /// A manager with these connection types. Creates the loop (no
    /// thread; nothing runs until [`update`](Self::update)).
    pub fn new(factory: Factory, cfg: ManagerConfig) -> Result<Manager, ManagerError> {
        let mut dispatch =
            EventDispatch::new().map_err(|e| ManagerError::Net(netlib::Error::Io(e)))?;
        let state = ManagerState::new(factory, cfg);
        let server = Server::<Managed>::register(dispatch.context(), state, |st, a| st.accept(a));
        Ok(Manager { dispatch, server })
    }

    /// Runs `f` on the server and the loop's context.
    fn with<R>(
        &mut self,
        f: impl FnOnce(&mut Server<Managed>, &mut Context) -> Result<R, ManagerError>,
    ) -> Result<R, ManagerError> {
        let server = self.server;
        self.dispatch
            .context()
            .with_handler(server, f)
            .unwrap_or(Err(ManagerError::Net(netlib::Error::InvalidHandle)))
    }

    /// Creates a connection of type `type_name` (the factory makes its
    /// object) and returns its id; it is [`State::Idle`].
    pub fn create(&mut self, type_name: &str) -> Result<ConnId, ManagerError> {
        self.with(|s, _| {
            s.shared
                .create(type_name, None)
                .ok_or_else(|| ManagerError::UnknownType(type_name.to_string()))
        })
    }

    /// Makes listener `id` listen on `addr` (port 0: a free port); returns
    /// the bound address. Listening on an address this manager already
    /// listens on is [`ManagerError::AlreadyListening`].
    pub fn listen(&mut self, id: ConnId, addr: SocketAddr) -> Result<SocketAddr, ManagerError> {
        let server = self.server;
        self.with(|s, ctx| {
            let st = &mut s.shared;
            let e = st
                .entries
                .get(&id)
                .ok_or(ManagerError::NoSuchConnection(id))?;
            if !matches!(e.role, Role::Listener { .. }) {
                return Err(wrong_type(id, &e.type_name, "listen"));
            }
            if e.state != State::Idle {
                return Err(wrong_state(id, e.state, "listen"));
            }
            if addr.port() != 0 && st.addresses.contains(&addr) {
                return Err(ManagerError::AlreadyListening(addr));
            }
            let h = ctx
                .listen_with(addr, &ListenOptions::default(), server)
                .map_err(ManagerError::Net)?;
            let bound = ctx.local_addr(h).map_err(ManagerError::Net)?;
            st.addresses.insert(addr);
            st.addresses.insert(bound);
            st.listeners.insert(h, id);
            if let Some(e) = st.entries.get_mut(&id) {
                e.state = State::Listening;
                e.handle = Some(h);
                e.peer = Some(bound);
            }
            Ok(bound)
        })
    }

    /// Connects `id` (an idle connection type, not a listener) to `addr`.
    /// The endpoint's `on_connect` or `on_disconnect` follows in an
    /// `update`.
    pub fn connect(&mut self, id: ConnId, addr: SocketAddr) -> Result<(), ManagerError> {
        self.with(|s, ctx| {
            let e = s
                .shared
                .entries
                .get_mut(&id)
                .ok_or(ManagerError::NoSuchConnection(id))?;
            if e.role != Role::Outgoing {
                return Err(wrong_type(id, &e.type_name, "connect"));
            }
            if e.state != State::Idle {
                return Err(wrong_state(id, e.state, "connect"));
            }
            let Some(ep) = e.ep.take() else {
                return Err(wrong_state(id, e.state, "connect"));
            };
            let opts = ConnectOptions {
                timeout: Some(s.shared.cfg.connect_timeout),
                ..ConnectOptions::default()
            };
            let config = s.shared.conn_config();
            let result = s.connect(ctx, addr, &opts, Managed::new(id, ep), config);
            let e = s.shared.entries.get_mut(&id);
            match (result, e) {
                (Ok(h), Some(e)) => {
                    e.state = State::Connecting;
                    e.handle = Some(h);
                    e.peer = Some(addr);
                    Ok(())
                }
                (Err(err), _) => Err(ManagerError::Net(err)),
                (Ok(_), None) => Err(ManagerError::NoSuchConnection(id)),
            }
        })
    }

    /// Sends `v` on connected `id`.
    pub fn send<S: Serialize + ?Sized>(&mut self, id: ConnId, v: &S) -> Result<(), ManagerError> {
        self.with(|s, ctx| {
            let h = s.shared.connected(id)?;
            let body = encode_body(v, s.shared.cfg.max_body)?;
            s.send_to(ctx, h, &body[..])
                .map(drop)
                .map_err(|e| ManagerError::Send(id, e.to_string()))
        })
    }

    /// Closes `id`: a listener stops listening at once (and is idle); a
    /// connection closes once what was sent is written, and its endpoint's
    /// `on_disconnect` follows in an `update` (then an outgoing one is idle
    /// and may connect again; an accepted one is gone).
    pub fn close(&mut self, id: ConnId) -> Result<(), ManagerError> {
        self.with(|s, ctx| {
            let st = &mut s.shared;
            let e = st
                .entries
                .get_mut(&id)
                .ok_or(ManagerError::NoSuchConnection(id))?;
            let h = match (e.state, e.handle) {
                (State::Idle | State::Closing, _) | (_, None) => {
                    return Err(wrong_state(id, e.state, "close"))
                }
                (_, Some(h)) => h,
            };
            if e.state == State::Listening {
                e.state = State::Idle;
                e.handle = None;
                e.peer = None;
                st.listeners.remove(&h);
                let _ = ctx.close(h);
                // The addresses still listened on are the other listeners'.
                st.addresses = st
                    .listeners
                    .keys()
                    .filter_map(|l| ctx.local_addr(*l).ok())
                    .collect();
                return Ok(());
            }
            e.state = State::Closing;
            s.close_conn_after_flush(ctx, h);
            Ok(())
        })
    }

    /// Runs one turn of the loop, waiting at most `max_wait` for something
    /// to happen (`Duration::ZERO`: only what is ready). Every callback
    /// runs in here.
    pub fn update(&mut self, max_wait: Duration) -> Result<(), ManagerError> {
        self.dispatch
            .run_once(Some(max_wait))
            .map_err(ManagerError::Net)
    }

    /// The state of `id` (`None`: no such connection).
    pub fn state(&mut self, id: ConnId) -> Option<State> {
        self.with(|s, _| Ok(s.shared.entries.get(&id).map(|e| e.state)))
            .ok()
            .flatten()
    }

    /// The type of `id`.
    pub fn type_of(&mut self, id: ConnId) -> Option<String> {
        self.with(|s, _| Ok(s.shared.entries.get(&id).map(|e| e.type_name.clone())))
            .ok()
            .flatten()
    }

    /// Every connection id, with its type and state, in id order.
    pub fn connections(&mut self) -> Vec<(ConnId, String, State)> {
        let mut all = self
            .with(|s, _| {
                Ok(s.shared
                    .entries
                    .iter()
                    .map(|(id, e)| (*id, e.type_name.clone(), e.state))
                    .collect::<Vec<_>>())
            })
            .unwrap_or_default();
        all.sort_by_key(|(id, _, _)| *id);
        all
    }

    /// The peer of a connection, or a listener's bound address.
    pub fn addr(&mut self, id: ConnId) -> Option<SocketAddr> {
        self.with(|s, _| Ok(s.shared.entries.get(&id).and_then(|e| e.peer)))
            .ok()
            .flatten()
    }
}

fn wrong_type(id: ConnId, type_name: &str, op: &'static str) -> ManagerError {
    ManagerError::WrongType {
        id,
        type_name: type_name.to_string(),
        op,
    }
}

fn wrong_state(id: ConnId, state: State, op: &'static str) -> ManagerError {
    ManagerError::WrongState { id, state, op }
}
