//! A memcached-compatible server on netlib.
//!
//! It proves that `netlib` can carry a real, widely used text protocol:
//! stock clients, libmemcached's `memcapable -a` conformance test and the
//! `memaslap` load generator all talk to it. The protocol and the cache know
//! nothing of sockets; the network layer owns the sockets and drives them
//! with bytes:
//!
//! - [`server`] runs `-t N` event loops, one per thread, as netlib's loop
//!   group through [`imconn::ServerGroup`]: every loop has its own
//!   `SO_REUSEPORT` listener on the one port and its own
//!   [`imconn::Server`], with per-loop state (its connections, its
//!   [`LoopStats`](server::LoopStats)) plus `Arc`s of the state shared on
//!   purpose: the sharded [`Store`] with its `stats` counters, and the `-c`
//!   connection limit. One loop per thread means a connection's callbacks
//!   never race and need no locks; the only cross-thread traffic is the
//!   store's per-shard locks and a few atomics. `connection` says what one
//!   client's frames do.
//! - [`codec`] frames the protocol for the connection server: a command
//!   line, with its data block for storage commands.
//! - [`cli`] turns memcached's command-line flags into a
//!   [`ServerConfig`](server::ServerConfig); `src/bin/memcached.rs` (the
//!   `netlib-memcached` binary) is just `cli` + `server`.
//!
//! The socket-free core:
//!
//! - [`Store`] is the cache: sharded, each shard a hash table with its own
//!   LRU list and memory budget behind its own lock. One `Arc<Store>` is
//!   shared by every loop (`-t N`).
//! - [`Session`] is one connection's protocol state machine: feed it input,
//!   it appends replies to an output buffer and reports how much input it
//!   consumed. It is single-threaded and owned by the connection.
//! - [`Clock`] gives the store wall-clock seconds, injectable so expiry is
//!   tested without sleeping.
//! - [`Config`] holds every limit (memory, item size, line length, output
//!   high-water mark), with memcached's defaults.
//!
//! The wire protocol is memcached 1.6's ASCII protocol (`doc/protocol.txt`,
//! `proto_text.c`), reply strings included, so stock clients and
//! libmemcached's `memcapable -a` can talk to it, and the meta commands
//! (`mg ms md ma mn me`, in `meta`) newer clients use by default. The
//! binary protocol is not implemented: a request starting with its magic byte closes the
//! connection, as does a line that looks like HTTP (memcached's
//! cross-protocol guard). Expired items are removed in the background by a
//! reclaimer thread ([`server`]), a bounded slice of every shard per tick.
//!
//! # Driving a session from a network layer
//!
//! ```
//! use std::sync::Arc;
//! use examples::memcached::{Config, Progress, Session, Store, SystemClock};
//!
//! let store = Arc::new(Store::new(&Config::default(), Arc::new(SystemClock)));
//!
//! // On accept:
//! store.counters().connection_opened();
//! let mut session = Session::new();
//! let mut inbuf: Vec<u8> = Vec::new();
//! let mut outbuf: Vec<u8> = Vec::new();
//!
//! // On readable: append what was read, let the session eat what it can.
//! inbuf.extend_from_slice(b"set a 0 0 1\r\n1\r\nincr a 41\r\n");
//! let (used, progress) = session.process(&store, &inbuf, &mut outbuf);
//! inbuf.drain(..used);
//! assert_eq!(outbuf, b"STORED\r\n42\r\n");
//! match progress {
//!     Progress::Continue => {}   // wait for more input
//!     Progress::OutputFull => {} // write outbuf, then call process again
//!     Progress::Close(_) => {}   // write outbuf, then close
//! }
//!
//! // On close:
//! store.counters().connection_closed();
//! ```

pub mod cli;
mod clock;
pub mod codec;
mod config;
mod connection;
mod meta;
pub mod process;
mod protocol;
pub mod server;
mod shard;
mod sizes;
mod stats;
mod store;
mod text;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    Config, DEFAULT_ITEM_SIZE_MAX, DEFAULT_MAX_LINE, DEFAULT_MEMORY_LIMIT, DEFAULT_UNIX_MASK,
};
pub use protocol::{CloseReason, Progress, Session, VERSION};
pub use stats::{ConnTicket, Counter, Counters, DetailOp, Endpoint, LocalCounters, COUNTERS};
pub use store::{
    expiry_deadline, is_valid_key, item_size, DeltaError, ItemStats, ItemView, Lease, LeaseGet,
    MarkStale, NewItem, Store, StoreMode, StoreOutcome, KEY_MAX_LENGTH, MAX_RELATIVE_EXPTIME,
};
