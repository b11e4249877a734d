//! async_server's worker interface as a trait: [`Service`].
//!
//! async_server's work processes were plugins with four entry points:
//! `link_up_cli(fd, ip)` when a client connected, `proc_pkg_cli(fd, buf,
//! len)` for each whole request packet, `link_down_cli(fd)` when it went
//! away, and `net_send_cli(fd, buf, len)` to answer. Here a service is a
//! type with one value per connection (async_server kept per-fd tables
//! for that) and a state shared by the connections of one event loop;
//! [`Link`] is the `fd` plus `net_send_cli`: it answers, sends, closes,
//! sets timers (for an answer that comes later), and reaches the shared
//! state. Packets are framed by [`ProtoCodec`]; [`register`] makes the
//! imconn server that runs a service, ready for `ctx.listen_with` or
//! [`Prefork::run`](crate::Prefork::run).
//!
//! ```
//! use prefork::{Link, Packet, Service};
//!
//! /// Answers every request with its own body; counts requests per loop.
//! struct Echo;
//! impl Service for Echo {
//!     type Shared = u64;
//!     fn request(&mut self, link: &mut Link<'_, '_, Self>, packet: Packet<'_>) {
//!         *link.shared() += 1;
//!         let _ = link.answer(&packet.header, 0, packet.body);
//!     }
//! }
//! let mut dispatch = netlib::EventDispatch::new().unwrap();
//! let server = prefork::service::register(dispatch.context(), 0u64, |_| Echo, Default::default());
//! # let _ = server;
//! ```

use crate::proto::{Packet, PacketHeader, ProtoCodec};
use imconn::{ConnConfig, ConnCtx, Connection, SendError, SendStatus, Server};
use netlib::{CloseReason, Context, Handle, HandlerRef, TimerId};
use std::net::SocketAddr;
use std::time::Duration;

/// An async_server-style service: one value per connection. See the
/// module docs.
pub trait Service: Sized + 'static {
    /// State shared by the connections of one event loop.
    type Shared: 'static;

    /// A whole request packet arrived (`proc_pkg_cli`).
    fn request(&mut self, link: &mut Link<'_, '_, Self>, packet: Packet<'_>);

    /// The client connected (`link_up_cli`); `peer` is its address.
    fn link_up(&mut self, link: &mut Link<'_, '_, Self>, peer: Option<SocketAddr>) {
        let _ = (link, peer);
    }

    /// The connection is gone (`link_down_cli`); the last call it gets.
    fn link_down(&mut self, link: &mut Link<'_, '_, Self>, reason: CloseReason) {
        let _ = (link, reason);
    }

    /// A timer set with [`Link::add_timer`] fired.
    fn timer(&mut self, link: &mut Link<'_, '_, Self>, id: TimerId) {
        let _ = (link, id);
    }
}

/// One connection of a service, while one of its calls runs.
pub struct Link<'l, 'c, S: Service> {
    cx: &'l mut ConnCtx<'c, Adapter<S>>,
}

impl<S: Service> Link<'_, '_, S> {
    /// Answers `request`: same sequence number, command and user, with
    /// `status` and `body` (`net_send_cli`).
    pub fn answer(
        &mut self,
        request: &PacketHeader,
        status: u32,
        body: &[u8],
    ) -> Result<SendStatus, SendError> {
        let header = PacketHeader { status, ..*request };
        self.send(header, body)
    }

    /// Sends a packet on this connection.
    pub fn send(&mut self, header: PacketHeader, body: &[u8]) -> Result<SendStatus, SendError> {
        self.cx.send(Packet { header, body })
    }

    /// Sends a packet on another connection of the same loop.
    pub fn send_to(
        &mut self,
        to: Handle,
        header: PacketHeader,
        body: &[u8],
    ) -> Result<SendStatus, SendError> {
        self.cx.send_to(to, Packet { header, body })
    }

    /// The state shared by this loop's connections.
    pub fn shared(&mut self) -> &mut S::Shared {
        self.cx.shared
    }

    /// This connection (async_server's `fd`, but never reused while stale).
    pub fn id(&self) -> Handle {
        self.cx.handle()
    }

    /// The peer's address.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.cx.peer()
    }

    /// Closes the connection once what was sent has gone out.
    pub fn close(&mut self) {
        self.cx.close_after_flush();
    }

    /// Calls [`Service::timer`] of this connection after `delay`: how a
    /// service answers later without blocking its loop.
    pub fn add_timer(&mut self, delay: Duration) -> Option<TimerId> {
        self.cx.add_timer(delay, None)
    }

    /// The event loop, for anything else.
    pub fn ctx(&mut self) -> &mut Context {
        self.cx.ctx
    }
}

/// The imconn connection that runs a [`Service`].
pub struct Adapter<S>(S);

impl<S: Service> Connection for Adapter<S> {
    type Codec = ProtoCodec;
    type Shared = S::Shared;

    fn on_connect(&mut self, cx: &mut ConnCtx<'_, Self>) {
        let peer = cx.peer();
        self.0.link_up(&mut Link { cx }, peer);
    }

    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, packet: Packet<'_>) {
        self.0.request(&mut Link { cx }, packet);
    }

    fn on_timer(&mut self, cx: &mut ConnCtx<'_, Self>, id: TimerId) {
        self.0.timer(&mut Link { cx }, id);
    }

    fn on_close(&mut self, cx: &mut ConnCtx<'_, Self>, reason: CloseReason) {
        self.0.link_down(&mut Link { cx }, reason);
    }
}

/// Registers an imconn server running service `S` on this loop: `shared`
/// is the loop's state, `new_conn` makes each connection's value, `config`
/// its limits (`max_frame` bounds a packet). Listen with the returned
/// reference.
pub fn register<S: Service>(
    ctx: &mut Context,
    shared: S::Shared,
    mut new_conn: impl FnMut(&mut S::Shared) -> S + 'static,
    config: ConnConfig,
) -> HandlerRef {
    Server::<Adapter<S>>::register(ctx, shared, move |shared, _| {
        Some((Adapter(new_conn(shared)), config))
    })
}
