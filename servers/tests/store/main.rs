//! The message store end to end, over the real msg_server binary, one
//! test executable in three files:
//!
//! - `crash`: nothing acknowledged is lost across `kill -9` (SQLite and
//!   PostgreSQL), and the rows SQLite defers (`StoreDeferMs`) are written
//!   on time and at a graceful stop;
//! - `commands`: the commands answered from the store (unread counts,
//!   history, latest id, messages by id, read acks with read notify, recent
//!   sessions, removing one, client time) on every store, ids of two
//!   servers sharing PostgreSQL, and `msg_server migrate`;
//! - `failures`: a database that fails under a running server (locked by
//!   another writer, its file removed; PostgreSQL stopped) refuses messages
//!   and comes back without a restart.

#[path = "../common/mod.rs"]
mod common;

mod commands;
mod crash;
mod failures;
