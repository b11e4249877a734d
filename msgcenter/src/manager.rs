//! [`ConnectionManager`]: xx_connection's manager - connection types
//! registered up front, connections created by type through their
//! factory, `listen` / `connect` / `send` / `close` by connection id, and
//! [`update`](ConnectionManager::update), which runs one turn of the event
//! loop from the caller's own loop instead of a thread.
//!
//! Where [`NetQueue`](crate::NetQueue) addresses peers and hides
//! connections, this is the connection-oriented side of the seeds: each
//! connection is an object of a registered type ([`Conn`]) told when it
//! connects, receives a value, or disconnects. It runs on the workspace's
//! connection layer (an `imconn::Server` with the length-prefixed codec:
//! a 4-byte big-endian length, then a `postcard`-encoded value - xx's
//! "DataPack") on a netlib loop the manager owns. Everything happens on the
//! caller's thread, inside `update`; nothing runs in between.
//!
//! Rules (xx_connection's boundaries): a connection is created idle; only a
//! connection of a listenable type may listen, and only while idle;
//! listening twice on one address is an error; connect only while idle;
//! send only while connected. A connection that is closed, or whose
//! connect failed, is idle again and may connect or listen anew. A
//! listening connection's accepted peers become new connections of its
//! type, made by its factory.

use imconn::{Accepted, ConnConfig, ConnCtx, Connection, LengthCodec, Server};
use netlib::{CloseReason, ConnectOptions, EventDispatch, Handle, HandlerRef, ListenOptions};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

/// A connection's id, unique in its manager.
pub type ConnId = u64;

/// A connection type's behaviour (xx_connection's `XxConnection`). Every
/// callback runs inside [`ConnectionManager::update`].
pub trait Conn: 'static {
    /// Connected: an outgoing connect completed, or this connection was
    /// just accepted by a listening one.
    fn on_connect(&mut self, cx: &mut ConnCx<'_, '_>) {
        let _ = cx;
    }

    /// A value arrived; decode it with [`decode`].
    fn on_value(&mut self, cx: &mut ConnCx<'_, '_>, body: &[u8]);

    /// Disconnected (closed by either side, or the connect failed); the
    /// connection is idle again.
    fn on_disconnect(&mut self, cx: &mut ConnCx<'_, '_>, reason: CloseReason) {
        let _ = (cx, reason);
    }
}

/// Decodes a value received by [`Conn::on_value`].
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(body)
}

/// Why a manager operation failed.
#[derive(Debug)]
pub enum ManagerError {
    /// No connection type registered under that name.
    UnknownType(String),
    /// No connection with that id.
    UnknownConn(ConnId),
    /// The connection's type may not listen.
    NotListenable(ConnId),
    /// The operation does not fit the connection's state.
    InvalidState {
        /// The connection.
        id: ConnId,
        /// Its state.
        state: State,
    },
    /// Another connection of this manager listens on that address.
    AlreadyListening(SocketAddr),
    /// The system refused (address in use, ...), or the connection closed.
    Io(String),
    /// The value could not be encoded.
    Encode(postcard::Error),
}

impl std::fmt::Display for ManagerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ManagerError::UnknownType(t) => write!(f, "no connection type {t:?}"),
            ManagerError::UnknownConn(id) => write!(f, "no connection {id}"),
            ManagerError::NotListenable(id) => write!(f, "connection {id}'s type cannot listen"),
            ManagerError::InvalidState { id, state } => {
                write!(f, "connection {id} is {state:?}")
            }
            ManagerError::AlreadyListening(a) => write!(f, "already listening on {a}"),
            ManagerError::Io(e) => write!(f, "{e}"),
            ManagerError::Encode(e) => write!(f, "cannot encode: {e}"),
        }
    }
}

impl std::error::Error for ManagerError {}

/// Where a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Created, or closed: may listen or connect.
    Idle,
    /// Listening on an address.
    Listening(SocketAddr),
    /// Connecting.
    Connecting,
    /// Connected.
    Connected,
}

type Factory = Box<dyn FnMut() -> Box<dyn Conn>>;

struct Kind {
    name: String,
    listenable: bool,
    factory: Factory,
}

struct Entry {
    kind: usize,
    state: State,
    handle: Option<Handle>,
    /// Taken out while one of its callbacks runs.
    obj: Option<Box<dyn Conn>>,
}

/// The manager's state: the imconn server's shared state.
#[derive(Default)]
struct Table {
    kinds: Vec<Kind>,
    conns: HashMap<ConnId, Entry>,
    by_handle: HashMap<Handle, ConnId>,
    next_id: ConnId,
}

impl Table {
    fn add(&mut self, kind: usize) -> ConnId {
        self.next_id += 1;
        let obj = (self.kinds[kind].factory)();
        self.conns.insert(
            self.next_id,
            Entry {
                kind,
                state: State::Idle,
                handle: None,
                obj: Some(obj),
            },
        );
        self.next_id
    }
}

/// The imconn connection of one managed connection: just its id.
struct Link(ConnId);

/// What a [`Conn`] callback may do: send on its own or another
/// connection, close them.
pub struct ConnCx<'a, 'b> {
    cx: &'a mut ConnCtx<'b, Link>,
    id: ConnId,
}

impl ConnCx<'_, '_> {
    /// This connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The peer's address.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.cx.peer()
    }

    /// Sends `value` on this connection.
    pub fn send<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ManagerError> {
        let id = self.id;
        self.send_to(id, value)
    }

    /// Sends `value` on connection `id` (connected).
    pub fn send_to<T: Serialize + ?Sized>(
        &mut self,
        id: ConnId,
        value: &T,
    ) -> Result<(), ManagerError> {
        let bytes = postcard::to_allocvec(value).map_err(ManagerError::Encode)?;
        let h = connected_handle(self.cx.shared, id)?;
        self.cx
            .send_to(h, &bytes[..])
            .map(drop)
            .map_err(|e| ManagerError::Io(e.to_string()))
    }

    /// Closes this connection once what was sent is out.
    pub fn close(&mut self) {
        self.cx.close_after_flush();
    }
}

fn connected_handle(t: &Table, id: ConnId) -> Result<Handle, ManagerError> {
    let e = t.conns.get(&id).ok_or(ManagerError::UnknownConn(id))?;
    match (e.state, e.handle) {
        (State::Connected, Some(h)) => Ok(h),
        (state, _) => Err(ManagerError::InvalidState { id, state }),
    }
}

impl Link {
    /// Runs `f` on this connection's object, taken out of the table.
    fn with_obj(
        &self,
        cx: &mut ConnCtx<'_, Self>,
        f: impl FnOnce(&mut dyn Conn, &mut ConnCx<'_, '_>),
    ) {
        let Some(mut obj) = cx.shared.conns.get_mut(&self.0).and_then(|e| e.obj.take()) else {
            return;
        };
        let mut ccx = ConnCx { cx, id: self.0 };
        f(obj.as_mut(), &mut ccx);
        if let Some(e) = ccx.cx.shared.conns.get_mut(&self.0) {
            e.obj = Some(obj);
        }
    }
}

impl Connection for Link {
    type Codec = LengthCodec;
    type Shared = Table;

    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, body: &[u8]) {
        self.with_obj(cx, |obj, ccx| obj.on_value(ccx, body));
    }

    fn on_connect(&mut self, cx: &mut ConnCtx<'_, Self>) {
        self.with_obj(cx, |obj, ccx| obj.on_connect(ccx));
    }

    fn on_confirm(&mut self, cx: &mut ConnCtx<'_, Self>) {
        if let Some(e) = cx.shared.conns.get_mut(&self.0) {
            e.state = State::Connected;
        }
        self.with_obj(cx, |obj, ccx| obj.on_connect(ccx));
    }

    fn on_close(&mut self, cx: &mut ConnCtx<'_, Self>, reason: CloseReason) {
        let h = cx.handle();
        cx.shared.by_handle.remove(&h);
        match cx.shared.conns.get_mut(&self.0) {
            Some(e) if e.handle == Some(h) => {
                e.state = State::Idle;
                e.handle = None;
            }
            _ => return, // closed by `close`, already idle
        }
        self.with_obj(cx, |obj, ccx| obj.on_disconnect(ccx, reason));
    }
}

/// xx_connection's manager. See the module docs.
///
/// ```
/// use msgcenter::manager::{decode, Conn, ConnCx, ConnectionManager, State};
///
/// /// Answers every number with its double.
/// struct Doubler;
/// impl Conn for Doubler {
///     fn on_value(&mut self, cx: &mut ConnCx<'_, '_>, body: &[u8]) {
///         let n: u32 = decode(body).unwrap();
///         cx.send(&(n * 2)).unwrap();
///     }
/// }
/// /// Keeps the last answer.
/// struct Client(std::rc::Rc<std::cell::Cell<u32>>);
/// impl Conn for Client {
///     fn on_value(&mut self, _cx: &mut ConnCx<'_, '_>, body: &[u8]) {
///         self.0.set(decode(body).unwrap());
///     }
/// }
///
/// let answer = std::rc::Rc::new(std::cell::Cell::new(0));
/// let a = answer.clone();
/// let mut mgr = ConnectionManager::new()?;
/// mgr.register("doubler", true, || Box::new(Doubler));
/// mgr.register("client", false, move || Box::new(Client(a.clone())));
/// let server = mgr.create("doubler")?;
/// let addr = mgr.listen(server, "127.0.0.1:0".parse()?)?;
/// let client = mgr.create("client")?;
/// mgr.connect(client, addr)?;
/// while mgr.state(client)? != State::Connected {
///     mgr.update(std::time::Duration::from_millis(10))?; // from the program's own loop
/// }
/// mgr.send(client, &21u32)?;
/// while answer.get() == 0 {
///     mgr.update(std::time::Duration::from_millis(10))?;
/// }
/// assert_eq!(answer.get(), 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ConnectionManager {
    dispatch: EventDispatch,
    server: HandlerRef,
    config: ConnConfig,
}

impl ConnectionManager {
    /// A manager with imconn's default connection limits (64 KiB values,
    /// 4 MiB of unsent output per connection).
    pub fn new() -> std::io::Result<ConnectionManager> {
        ConnectionManager::with_config(ConnConfig::default())
    }

    /// A manager whose connections use `config` (limits, deadlines).
    pub fn with_config(config: ConnConfig) -> std::io::Result<ConnectionManager> {
        let mut dispatch = EventDispatch::new()?;
        let server = Server::<Link>::register(dispatch.context(), Table::default(), accept(config));
        Ok(ConnectionManager {
            dispatch,
            server,
            config,
        })
    }

    fn with_server<R>(
        &mut self,
        f: impl FnOnce(&mut Server<Link>, &mut netlib::Context) -> R,
    ) -> R {
        self.dispatch
            .context()
            .with_handler(self.server, f)
            .expect("the manager's server is registered for its lifetime")
    }

    /// Registers connection type `name`: `factory` makes its objects;
    /// `listenable` says whether its connections may listen.
    pub fn register(
        &mut self,
        name: &str,
        listenable: bool,
        factory: impl FnMut() -> Box<dyn Conn> + 'static,
    ) {
        self.with_server(|s, _| {
            s.shared.kinds.retain(|k| k.name != name);
            s.shared.kinds.push(Kind {
                name: name.to_string(),
                listenable,
                factory: Box::new(factory),
            });
        });
    }

    /// Creates an idle connection of type `name`.
    pub fn create(&mut self, name: &str) -> Result<ConnId, ManagerError> {
        self.with_server(|s, _| {
            let kind = s
                .shared
                .kinds
                .iter()
                .position(|k| k.name == name)
                .ok_or_else(|| ManagerError::UnknownType(name.to_string()))?;
            Ok(s.shared.add(kind))
        })
    }

    /// Where connection `id` is.
    pub fn state(&mut self, id: ConnId) -> Result<State, ManagerError> {
        self.with_server(|s, _| {
            s.shared
                .conns
                .get(&id)
                .map(|e| e.state)
                .ok_or(ManagerError::UnknownConn(id))
        })
    }

    /// Makes idle connection `id` (of a listenable type) listen on `addr`;
    /// returns the bound address.
    pub fn listen(&mut self, id: ConnId, addr: SocketAddr) -> Result<SocketAddr, ManagerError> {
        let server = self.server;
        self.with_server(|s, _| {
            let t = &mut s.shared;
            let e = t.conns.get(&id).ok_or(ManagerError::UnknownConn(id))?;
            if !t.kinds[e.kind].listenable {
                return Err(ManagerError::NotListenable(id));
            }
            if e.state != State::Idle {
                return Err(ManagerError::InvalidState { id, state: e.state });
            }
            let taken = t.conns.values().any(|o| {
                matches!(o.state, State::Listening(a)
                    if addr.port() != 0 && a.port() == addr.port() && a.ip() == addr.ip())
            });
            if taken {
                return Err(ManagerError::AlreadyListening(addr));
            }
            Ok(())
        })?;
        let l = self
            .dispatch
            .context()
            .listen_with(addr, &ListenOptions::default(), server)
            .map_err(|e| ManagerError::Io(format!("cannot listen on {addr}: {e}")))?;
        let bound = self
            .dispatch
            .context()
            .local_addr(l)
            .map_err(|e| ManagerError::Io(e.to_string()))?;
        self.with_server(|s, _| {
            s.shared.by_handle.insert(l, id);
            if let Some(e) = s.shared.conns.get_mut(&id) {
                e.state = State::Listening(bound);
                e.handle = Some(l);
            }
        });
        Ok(bound)
    }

    /// Connects idle connection `id` to `addr`; its `on_connect` follows
    /// in an `update` (or `on_disconnect` if it fails).
    pub fn connect(&mut self, id: ConnId, addr: SocketAddr) -> Result<(), ManagerError> {
        let state = self.state(id)?;
        if state != State::Idle {
            return Err(ManagerError::InvalidState { id, state });
        }
        let config = self.config;
        let opts = ConnectOptions {
            timeout: Some(Duration::from_secs(10)),
            ..ConnectOptions::default()
        };
        let h = self
            .with_server(|s, ctx| s.connect(ctx, addr, &opts, Link(id), config))
            .map_err(|e| ManagerError::Io(format!("cannot connect to {addr}: {e}")))?;
        self.with_server(|s, _| {
            s.shared.by_handle.insert(h, id);
            if let Some(e) = s.shared.conns.get_mut(&id) {
                e.state = State::Connecting;
                e.handle = Some(h);
            }
        });
        Ok(())
    }

    /// Sends `value` on connected connection `id`.
    pub fn send<T: Serialize + ?Sized>(
        &mut self,
        id: ConnId,
        value: &T,
    ) -> Result<(), ManagerError> {
        let bytes = postcard::to_allocvec(value).map_err(ManagerError::Encode)?;
        self.with_server(|s, ctx| {
            let h = connected_handle(&s.shared, id)?;
            s.send_to(ctx, h, &bytes[..])
                .map(drop)
                .map_err(|e| ManagerError::Io(e.to_string()))
        })
    }

    /// Closes connection `id` (its listener, or its connection once what
    /// was sent is out); it is idle at once. No `on_disconnect` for a close
    /// the caller asked for.
    pub fn close(&mut self, id: ConnId) -> Result<(), ManagerError> {
        self.with_server(|s, ctx| {
            let e = s
                .shared
                .conns
                .get_mut(&id)
                .ok_or(ManagerError::UnknownConn(id))?;
            let h = e.handle.take();
            let state = std::mem::replace(&mut e.state, State::Idle);
            if let Some(h) = h {
                s.shared.by_handle.remove(&h);
                match state {
                    State::Listening(_) => drop(ctx.close(h)),
                    _ => drop(s.close_conn_after_flush(ctx, h)),
                }
            }
            Ok(())
        })
    }

    /// Closes and forgets connection `id` (xx_connection's `Destroy` of
    /// one connection).
    pub fn remove(&mut self, id: ConnId) -> Result<(), ManagerError> {
        self.close(id)?;
        self.with_server(|s, _| s.shared.conns.remove(&id));
        Ok(())
    }

    /// Runs one turn of the loop - I/O, timers, callbacks - waiting at most
    /// `max_wait` for something to happen.
    pub fn update(&mut self, max_wait: Duration) -> Result<(), ManagerError> {
        self.dispatch
            .run_once(Some(max_wait))
            .map_err(|e| ManagerError::Io(e.to_string()))
    }

    /// The ids of all connections.
    pub fn ids(&mut self) -> Vec<ConnId> {
        let mut ids: Vec<ConnId> =
            self.with_server(|s, _| s.shared.conns.keys().copied().collect());
        ids.sort_unstable();
        ids
    }
}

/// The accept callback: an accepted socket becomes a new connection of its
/// listener's type.
fn accept(config: ConnConfig) -> impl FnMut(&mut Table, &Accepted) -> Option<(Link, ConnConfig)> {
    move |t, a| {
        let listener = *t.by_handle.get(&a.listener)?;
        let kind = t.conns.get(&listener)?.kind;
        let id = t.add(kind);
        if let Some(e) = t.conns.get_mut(&id) {
            e.state = State::Connected;
            e.handle = Some(a.handle);
        }
        t.by_handle.insert(a.handle, id);
        Some((Link(id), config))
    }
}
