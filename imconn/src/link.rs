//! Reconnecting links: outgoing connections a server keeps open (TeamTalk's
//! `ServInfo`).
//!
//! A link is an address, a [`ConnConfig`] and a function that makes the
//! connection object for each attempt. It is connected when added; after a
//! failed attempt or a lost connection it is tried again after a
//! [`Backoff`] delay (capped, with jitter, reset on success). A connect that
//! fails synchronously (no descriptor...) is retried the same way -
//! TeamTalk's never was.
//!
//! Owned by the [`Server`](crate::Server); the retry timers are the
//! server's handler timers.

use crate::policy::Backoff;
use crate::server::{ConnConfig, Connection};
use netlib::{Handle, TimerId};
use std::net::SocketAddr;

pub(crate) type MakeFn<C> = Box<dyn FnMut(&mut <C as Connection>::Shared) -> C>;

/// One reconnecting link.
pub(crate) struct Link<C: Connection> {
    pub(crate) addr: SocketAddr,
    pub(crate) config: ConnConfig,
    pub(crate) make: MakeFn<C>,
    /// The socket of the current attempt or connection.
    pub(crate) handle: Option<Handle>,
    pub(crate) connected: bool,
    pub(crate) backoff: Backoff,
    /// The pending retry timer.
    pub(crate) retry: Option<TimerId>,
}

/// The links of one server, by index.
pub(crate) struct Links<C: Connection> {
    pub(crate) list: Vec<Link<C>>,
}

impl<C: Connection> Default for Links<C> {
    fn default() -> Self {
        Links { list: Vec::new() }
    }
}

impl<C: Connection> Links<C> {
    /// Handles of the connected links.
    pub(crate) fn connected(&self) -> impl Iterator<Item = Handle> + '_ {
        self.list
            .iter()
            .filter(|l| l.connected)
            .filter_map(|l| l.handle)
    }

    /// The link whose retry timer is `id`.
    pub(crate) fn by_retry_timer(&self, id: TimerId) -> Option<usize> {
        self.list.iter().position(|l| l.retry == Some(id))
    }
}
