//! Connection types: what a connection does ([`Endpoint`], the seed's
//! `XxConnection` with `OnConnect`/`OnDisconnect`) and the [`Factory`] that
//! knows every type by name, registered up front, and creates them.

use super::conn::Cx;
use crate::value::Value;
use netlib::CloseReason;
use std::collections::HashMap;
use std::fmt;

/// The behaviour of one connection type. Every callback runs inside
/// [`Manager::update`](super::Manager::update), on the caller's thread.
pub trait Endpoint: 'static {
    /// The connection is established (connected out, or accepted).
    fn on_connect(&mut self, cx: &mut Cx<'_, '_>) {
        let _ = cx;
    }

    /// A value arrived.
    fn on_message(&mut self, cx: &mut Cx<'_, '_>, value: Value);

    /// The connection ended (or a connect failed): closed by the peer, by
    /// [`Manager::close`](super::Manager::close), for bad input, or a
    /// connect refused or timed out. An outgoing connection can be
    /// connected again afterwards; an accepted one is gone.
    fn on_disconnect(&mut self, cx: &mut Cx<'_, '_>, reason: CloseReason) {
        let _ = (cx, reason);
    }
}

/// Makes a new endpoint of one type.
type Make = Box<dyn Fn() -> Box<dyn Endpoint>>;

/// What a registered type is.
pub(crate) enum TypeDef {
    /// Connects out, or is created for an accepted connection.
    Conn(Make),
    /// Listens; each accepted connection gets a new object of `accepts`.
    Listener { accepts: String },
}

/// A registration the factory refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactoryError {
    /// The name is taken.
    Duplicate(String),
    /// A listener names a type that is not registered (or is a listener).
    UnknownAccepted(String),
}

impl fmt::Display for FactoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FactoryError::Duplicate(n) => write!(f, "connection type {n:?} registered twice"),
            FactoryError::UnknownAccepted(n) => write!(
                f,
                "a listener's accepted type {n:?} is not a registered connection type"
            ),
        }
    }
}

impl std::error::Error for FactoryError {}

/// The connection types, by name (the seed's `XxConnectionFactory`).
///
/// ```
/// use msgcenter::manager::{Cx, Endpoint, Factory, FactoryError};
/// use msgcenter::value::Value;
///
/// struct Echo;
/// impl Endpoint for Echo {
///     fn on_message(&mut self, cx: &mut Cx<'_, '_>, value: Value) {
///         let _ = cx.send(&value);
///     }
/// }
/// let mut types = Factory::new();
/// types.register("echo", || Echo)?;
/// types.register_listener("echo_server", "echo")?;
/// assert!(types.register("echo", || Echo).is_err());
/// assert!(types.register_listener("bad", "nope").is_err());
/// # Ok::<(), FactoryError>(())
/// ```
#[derive(Default)]
pub struct Factory {
    pub(crate) types: HashMap<String, TypeDef>,
}

impl Factory {
    /// No types.
    pub fn new() -> Factory {
        Factory::default()
    }

    /// Registers connection type `name`, whose objects `make` creates.
    pub fn register<E: Endpoint>(
        &mut self,
        name: &str,
        make: impl Fn() -> E + 'static,
    ) -> Result<&mut Factory, FactoryError> {
        self.add(
            name,
            TypeDef::Conn(Box::new(move || Box::new(make()) as Box<dyn Endpoint>)),
        )
    }

    /// Registers listener type `name`: its connections listen, and every
    /// connection they accept is a new object of type `accepts`.
    pub fn register_listener(
        &mut self,
        name: &str,
        accepts: &str,
    ) -> Result<&mut Factory, FactoryError> {
        if !matches!(self.types.get(accepts), Some(TypeDef::Conn(_))) {
            return Err(FactoryError::UnknownAccepted(accepts.to_string()));
        }
        self.add(
            name,
            TypeDef::Listener {
                accepts: accepts.to_string(),
            },
        )
    }

    fn add(&mut self, name: &str, def: TypeDef) -> Result<&mut Factory, FactoryError> {
        if self.types.contains_key(name) {
            return Err(FactoryError::Duplicate(name.to_string()));
        }
        self.types.insert(name.to_string(), def);
        Ok(self)
    }

    /// A new endpoint of connection type `name` (`None` for a listener type
    /// or an unknown name).
    pub(crate) fn make(&self, name: &str) -> Option<Box<dyn Endpoint>> {
        match self.types.get(name)? {
            TypeDef::Conn(make) => Some(make()),
            TypeDef::Listener { .. } => None,
        }
    }
}
