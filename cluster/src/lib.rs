//! # cluster - seed 002's Reg/Exe cluster on msgcenter, running seed 004's jobs
//!
//! A registry node ([`Reg`]) and executor nodes ([`Exe`]), all talking
//! through msgcenter (pooled connections, NeedAck with retries and dedup):
//!
//! - an Exe registers with Reg (address, capacity, the files of its data
//!   directory) and renews a lease with heartbeats; Reg's
//!   [`ExecutorMgr`](exec_mgr::ExecutorMgr) removes an executor whose lease
//!   ran out and gives its tasks to others;
//! - a [`Publisher`] (a job driver, the CLI) publishes tasks to Reg, which
//!   assigns each (least loaded, ties rotating) and tells the publisher
//!   where; the executor fetches the input from the publisher and returns
//!   the result to it; a result is accepted once;
//! - Reg keeps its state in memory and rebuilds it after a restart from
//!   the executors' heartbeats (they list their running tasks) and the
//!   publishers' republishing; running tasks are not disturbed;
//! - file transfer between executors ([`files`]): chunks checked by
//!   SHA-256, an inactivity timeout, resume from the last verified chunk;
//! - the [`jobs`]: N-queens, distributed median, top-k by a shuffle
//!   between executors.
//!
//! Modules: [`wire`] (body encoding), [`proto`] (the messages), [`config`],
//! [`node`] (what the three roles share), [`exec_mgr`], [`reg`], [`exe`], [`files`],
//! [`publisher`], [`jobs`]. Task work runs on msgcenter's
//! [`msgcenter::pool::Pool`].

#![warn(missing_docs)]

pub mod config;
pub mod exe;
pub mod exec_mgr;
pub mod files;
pub mod jobs;
pub mod node;
pub mod proto;
pub mod publisher;
pub mod reg;
pub mod wire;

pub use config::NodeConfig;
pub use exe::{Exe, ExeOptions};
pub use publisher::{Event, Publisher};
pub use reg::Reg;
