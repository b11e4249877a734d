//! # msgcenter - CUP's asynchronous message center on netlib
//!
//! An application hands a [`Message`] addressed to `ip:port` to a center;
//! the center finds or opens a long-lived connection to that peer and
//! delivers it, and the receiving center calls the handler registered for
//! the message's type ([`Handlers`]). Built on the workspace's connection
//! layer: the center is an `imconn::Server` with its own codec
//! ([`codec::MsgCodec`]), driven by a netlib loop, its timers and its
//! `Poster`.
//!
//! The rule above all: **every posted message ends in exactly one
//! [`Outcome`]**, given to its callback - `Written` (plain message handed to
//! the kernel), `Acked` (NeedAck message, after the receiver's handler
//! returned), or `Failed` with a [`FailReason`]. Nothing is dropped
//! silently: messages not yet written when a connection dies go to the next
//! one, and whatever is outstanding at shutdown fails with `Shutdown`.
//!
//! - a connection pool keyed by peer address; messages wait in the peer's
//!   queue while connecting; two nodes connecting to each other at once
//!   end up with one connection (the rule is in `PROTOCOL.md`, section 4);
//! - two priorities per peer (urgent before normal, FIFO within each);
//! - NeedAck: automatic ack after the handler, retries on an interval up to
//!   a count and a deadline ([`Retry`]), across reconnects; a receiver-side
//!   dedup window so a handler never runs twice for one id;
//! - backlog high/low water marks per peer: posts past the high mark fail
//!   at once with `Backlog`;
//! - heartbeats, dead-peer detection, idle connections closed;
//! - handlers on the loop or on a worker pool;
//! - the wire format in `PROTOCOL.md`: preamble, handshake, frames with
//!   CRC32C checksums, a configured maximum body;
//! - xx_net's queue API on top ([`queue::Queue`]: `listen`, `send`, `recv`
//!   of MessagePack values ([`value`]), for programs with a main loop of
//!   their own) and xx_connection's manager ([`manager::Manager`]:
//!   connection types and factories, `update()` from the caller's loop).
//!
//! Modules, each one job: [`frame`] (bytes), [`codec`] (imconn codec),
//! `message` (what the application sees), [`config`], `center` (starting,
//! [`CenterHandle`]), `handlers`, [`queue`] (xx_net's API), [`manager`]
//! (xx_connection's), [`value`] (MessagePack values), and the private
//! `state`, `peer` (one peer's queues and backlog), `conn` (one
//! connection's hooks: handshake, data, acks), `driver` (work outside hooks: feeding connections, retries,
//! reconnects), `worker` (handlers on the pool), `inbox` (posts from any
//! thread, drained once per batch), `dedup`, `outbound` (a held message),
//! `stats`.
//!
//! Thread model: the center's state lives on its loop thread; other
//! threads reach it only through [`CenterHandle`] (the center's inbox
//! of posts, drained once per batch, and a netlib `Poster`).
//! Callbacks and loop handlers run on the loop thread and must not block.
#![warn(missing_docs)]

mod center;
pub mod codec;
pub mod config;
mod conn;
mod dedup;
mod driver;
pub mod frame;
mod handlers;
mod inbox;
pub mod manager;
mod message;
mod outbound;
mod peer;
pub mod pool;
pub mod queue;
mod state;
mod stats;
pub mod value;
mod worker;

/// The maps on the per-message paths (peers by address, messages awaiting
/// an acknowledgement by id, the receiver's dedup window by sender and id).
/// aHash with a per-map random key: several times cheaper than the
/// standard SipHash for these small keys, and still keyed, so a peer that
/// picks ids (dedup keys come off the wire) cannot aim at one bucket.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;

pub use center::{Center, CenterHandle, ListenError, PeerInfo, Running, StartError};
pub use config::{Config, ConfigError};
pub use handlers::{HandlerCtx, Handlers, LoopHandler, WorkerHandler};
pub use message::{Callback, FailReason, Flags, Message, MsgId, Outcome, Received, Retry};
pub use stats::Stats;
