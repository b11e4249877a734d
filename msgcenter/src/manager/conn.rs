//! The manager's state on the loop ([`ManagerState`], the imconn server's
//! shared state: every connection id and what it is), the imconn
//! connection that carries an [`Endpoint`] while it has a socket
//! ([`Managed`]), and what an endpoint's callbacks may do ([`Cx`]).
//!
//! An endpoint object lives in its [`Entry`] while it has no socket and
//! moves into the [`Managed`] connection while it has one, so a callback
//! gets the endpoint and the connection's context without aliasing.

use super::factory::{Endpoint, Factory, TypeDef};
use super::{ManagerConfig, ManagerError};
use crate::value::{self, Value};
use imconn::{Accepted, ConnConfig, ConnCtx, Connection, LengthCodec, Limits, Timeouts};
use netlib::{CloseReason, Handle};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

/// A connection's id in its manager (never reused).
pub type ConnId = u64;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Created, or closed: may listen (listener types) or connect.
    Idle,
    /// Listening (listener types).
    Listening,
    /// Connecting out.
    Connecting,
    /// Established.
    Connected,
    /// Closed by the application; `on_disconnect` comes in an `update`.
    Closing,
}

/// How a connection came to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Role {
    Listener {
        accepts: String,
    },
    /// Created by the application; connects out.
    Outgoing,
    /// Created by a listener for an accepted socket; gone once closed.
    Accepted,
}

/// One connection id.
pub(crate) struct Entry {
    pub(crate) type_name: String,
    pub(crate) role: Role,
    pub(crate) state: State,
    /// The listener's or the connection's socket.
    pub(crate) handle: Option<Handle>,
    /// The endpoint while there is no socket (see the module docs).
    pub(crate) ep: Option<Box<dyn Endpoint>>,
    pub(crate) peer: Option<SocketAddr>,
}

/// See the module docs.
pub(crate) struct ManagerState {
    pub(crate) factory: Factory,
    pub(crate) cfg: ManagerConfig,
    pub(crate) entries: HashMap<ConnId, Entry>,
    /// Listener socket -> its connection id.
    pub(crate) listeners: HashMap<Handle, ConnId>,
    /// Addresses listened on, for the listen-twice check.
    pub(crate) addresses: HashSet<SocketAddr>,
    next_id: ConnId,
}

impl ManagerState {
    pub(crate) fn new(factory: Factory, cfg: ManagerConfig) -> ManagerState {
        ManagerState {
            factory,
            cfg,
            entries: HashMap::new(),
            listeners: HashMap::new(),
            addresses: HashSet::new(),
            next_id: 1,
        }
    }

    /// A new id of type `type_name` (the factory creates its endpoint).
    pub(crate) fn create(&mut self, type_name: &str, role: Option<Role>) -> Option<ConnId> {
        let (role, ep) = match self.factory.types.get(type_name)? {
            TypeDef::Listener { accepts } => (
                Role::Listener {
                    accepts: accepts.clone(),
                },
                None,
            ),
            TypeDef::Conn(_) => (
                role.unwrap_or(Role::Outgoing),
                Some(self.factory.make(type_name)?),
            ),
        };
        let id = self.next_id;
        self.next_id += 1;
        self.entries.insert(
            id,
            Entry {
                type_name: type_name.to_string(),
                role,
                state: State::Idle,
                handle: None,
                ep,
                peer: None,
            },
        );
        Some(id)
    }

    /// The socket of connected `id`.
    pub(crate) fn connected(&self, id: ConnId) -> Result<Handle, ManagerError> {
        let e = self
            .entries
            .get(&id)
            .ok_or(ManagerError::NoSuchConnection(id))?;
        match (e.state, e.handle) {
            (State::Connected, Some(h)) => Ok(h),
            (state, _) => Err(ManagerError::WrongState {
                id,
                state,
                op: "send",
            }),
        }
    }

    /// The imconn settings of every managed connection.
    pub(crate) fn conn_config(&self) -> ConnConfig {
        ConnConfig {
            limits: Limits {
                high_water: self.cfg.max_output / 2,
                hard_cap: self.cfg.max_output,
                ..Limits::default()
            },
            timeouts: Timeouts::NONE,
            max_frame: imconn::codec::LENGTH_HEADER_LEN + self.cfg.max_body,
        }
    }

    /// The accept callback: a new object of the listener's accepted type.
    pub(crate) fn accept(&mut self, a: &Accepted) -> Option<(Managed, ConnConfig)> {
        let listener = *self.listeners.get(&a.listener)?;
        let Some(Role::Listener { accepts }) = self.entries.get(&listener).map(|e| e.role.clone())
        else {
            return None;
        };
        let id = self.create(&accepts, Some(Role::Accepted))?;
        let e = self.entries.get_mut(&id)?;
        e.state = State::Connected;
        e.handle = Some(a.handle);
        e.peer = a.peer;
        let ep = e.ep.take();
        Some((Managed { id, ep }, self.conn_config()))
    }
}

/// Encodes `v` as one frame body, within `max_body`.
pub(crate) fn encode_body<S: Serialize + ?Sized>(
    v: &S,
    max_body: usize,
) -> Result<Vec<u8>, ManagerError> {
    let body = value::encode(v).map_err(ManagerError::Encode)?;
    if body.len() > max_body {
        return Err(ManagerError::TooLarge {
            len: body.len(),
            max: max_body,
        });
    }
    Ok(body)
}

/// A managed connection with a socket: its id and its endpoint.
pub(crate) struct Managed {
    pub(crate) id: ConnId,
    ep: Option<Box<dyn Endpoint>>,
}

impl Managed {
    pub(crate) fn new(id: ConnId, ep: Box<dyn Endpoint>) -> Managed {
        Managed { id, ep: Some(ep) }
    }

    fn call(&mut self, cx: &mut ConnCtx<'_, Self>, f: impl FnOnce(&mut dyn Endpoint, &mut Cx)) {
        if let Some(ep) = self.ep.as_mut() {
            f(ep.as_mut(), &mut Cx { cx, id: self.id });
        }
    }
}

impl Connection for Managed {
    type Codec = LengthCodec;
    type Shared = ManagerState;

    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, frame: &[u8]) {
        match value::decode::<Value>(frame) {
            Ok(v) => self.call(cx, |ep, c| ep.on_message(c, v)),
            Err(e) => {
                log::warn!(
                    "manager: connection {} ({:?}) closed: {e}",
                    self.id,
                    cx.peer()
                );
                cx.close();
            }
        }
    }

    fn on_connect(&mut self, cx: &mut ConnCtx<'_, Self>) {
        self.call(cx, |ep, c| ep.on_connect(c));
    }

    fn on_confirm(&mut self, cx: &mut ConnCtx<'_, Self>) {
        let peer = cx.peer();
        if let Some(e) = cx.shared.entries.get_mut(&self.id) {
            if e.state == State::Connecting {
                e.state = State::Connected;
            }
            e.peer = peer;
        }
        self.call(cx, |ep, c| ep.on_connect(c));
    }

    fn on_close(&mut self, cx: &mut ConnCtx<'_, Self>, reason: CloseReason) {
        self.call(cx, |ep, c| ep.on_disconnect(c, reason));
        let h = cx.handle();
        let Some(e) = cx.shared.entries.get_mut(&self.id) else {
            return; // removed by the application
        };
        if e.handle != Some(h) {
            return;
        }
        match e.role {
            Role::Accepted => {
                cx.shared.entries.remove(&self.id);
            }
            _ => {
                e.state = State::Idle;
                e.handle = None;
                e.ep = self.ep.take();
            }
        }
    }
}

/// What an endpoint's callback may do: send on its own connection or
/// another, close, look around.
pub struct Cx<'a, 'b> {
    cx: &'a mut ConnCtx<'b, Managed>,
    id: ConnId,
}

impl Cx<'_, '_> {
    /// This connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The peer's address.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.cx.peer()
    }

    /// Sends `v` on this connection.
    pub fn send<S: Serialize + ?Sized>(&mut self, v: &S) -> Result<(), ManagerError> {
        let body = encode_body(v, self.cx.shared.cfg.max_body)?;
        self.cx
            .send(&body[..])
            .map(drop)
            .map_err(|e| ManagerError::Send(self.id, e.to_string()))
    }

    /// Sends `v` on connected `id` (another connection of the manager).
    pub fn send_to<S: Serialize + ?Sized>(
        &mut self,
        id: ConnId,
        v: &S,
    ) -> Result<(), ManagerError> {
        if id == self.id {
            return self.send(v);
        }
        let h = self.cx.shared.connected(id)?;
        let body = encode_body(v, self.cx.shared.cfg.max_body)?;
        self.cx
            .send_to(h, &body[..])
            .map(drop)
            .map_err(|e| ManagerError::Send(id, e.to_string()))
    }

    /// Closes this connection once what was sent is written.
    pub fn close(&mut self) {
        if let Some(e) = self.cx.shared.entries.get_mut(&self.id) {
            if e.state == State::Connected {
                e.state = State::Closing;
            }
        }
        self.cx.close_after_flush();
    }

    /// The established connections of type `type_name` (to broadcast).
    pub fn connected_of(&self, type_name: &str) -> Vec<ConnId> {
        let mut ids: Vec<ConnId> = self
            .cx
            .shared
            .entries
            .iter()
            .filter(|(_, e)| e.state == State::Connected && e.type_name == type_name)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }
}
