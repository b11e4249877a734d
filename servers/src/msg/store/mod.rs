//! The message store: what msg_server keeps about messages - the messages
//! of every session with their per-session ids, each user's undelivered
//! messages (the mailbox), per-user session state (unread count, read
//! position, removed), and group membership.
//!
//! [`MessageStore`] is asynchronous by message: the loop submits an [`Op`]
//! with a continuation ([`Done`]) and never waits; the store answers with an
//! [`Outcome`] posted back to the loop through [`Completions`], in the order
//! the operations were submitted. That is the whole contract, so a store on a
//! database server shared by several msg_servers can implement it later.
//!
//! Three implementations, chosen with `Store=` in msgserver.conf:
//!
//! - [`sqlite::SqliteStore`] (default): SQLite in WAL mode on a thread of its
//!   own, with group commit - the thread takes every queued operation, runs
//!   them in one transaction, commits, then posts all outcomes back. A
//!   message's [`Outcome::Stored`] (and so the sender's ack) exists only
//!   after the commit.
//! - [`postgres::PostgresStore`]: the same writer-thread model on a
//!   PostgreSQL database shared by several msg_servers (per-session id
//!   counters locked in the transaction keep ids unique and increasing).
//! - [`memory::MemoryStore`]: the same model in memory on the loop thread,
//!   lost at exit; the comparator for benchmarks and a store for tests.
//!
//! All enforce the mailbox bounds ([`Bounds`], shared code in [`Usage`]):
//! a message whose receiver's mailbox is full is refused, not stored. The
//! two database stores share their thread, their group commit and what
//! happens when the database fails ([`WriterThread`], [`Backend`],
//! [`Health`]).
//!
//! Files, one job each: this one the contract (operations, outcomes, the
//! trait); `model` the values stored; `usage` the mailbox bounds;
//! `completions` the way back to the loop; `writer` the writer thread;
//! `memory`, `sqlite`, `postgres` the stores.

mod completions;
pub mod memory;
mod model;
pub mod postgres;
pub mod sqlite;
mod usage;
mod writer;

pub use completions::Completions;
pub use model::{
    sort_recent_first, GroupRecord, NewMessage, SessionKey, StoredMessage, UserSession,
};
pub use usage::{Bounds, Usage};
pub use writer::{
    Backend, GroupCommit, Health, Job, Opener, WriterThread, CLOSE_WAIT, RETRY_MAX, RETRY_MIN,
};

use super::MsgConn;
use imconn::ImServer;
use netlib::Context;
use std::sync::Arc;

/// A request to the store.
#[derive(Debug, Clone)]
pub enum Op {
    /// Store a message for its receivers -> [`Outcome::Stored`] or
    /// [`Outcome::Refused`].
    Append(NewMessage),
    /// A connection of `user` acknowledged a delivery: it leaves the mailbox.
    Delivered {
        /// The receiver.
        user: u32,
        /// Its position in the mailbox ([`Outcome::Stored`], [`Outcome::Backlog`]).
        pos: u64,
    },
    /// Up to `limit` undelivered messages of `user` after mailbox position
    /// `after`, oldest first -> [`Outcome::Backlog`].
    Undelivered {
        /// The receiver.
        user: u32,
        /// Mailbox position to start after (0: from the start).
        after: u64,
        /// Most messages returned.
        limit: usize,
    },
    /// Up to `count` messages with ids up to `until`, newest first ->
    /// [`Outcome::Messages`].
    History {
        /// The session.
        session: SessionKey,
        /// Highest id returned (`u32::MAX`: from the newest).
        until: u32,
        /// Most messages returned.
        count: u32,
    },
    /// The messages with these ids -> [`Outcome::Messages`].
    ById {
        /// The session.
        session: SessionKey,
        /// Their ids.
        ids: Vec<u32>,
    },
    /// The newest id of a session -> [`Outcome::LatestId`] (0: empty).
    Latest {
        /// The session.
        session: SessionKey,
    },
    /// `user` read `session` up to `msg_id` -> [`Outcome::Done`].
    ReadAck {
        /// The reader.
        user: u32,
        /// The session.
        session: SessionKey,
        /// Read up to this id.
        msg_id: u32,
    },
    /// `user`'s sessions changed after `since` (or only those with unread
    /// messages) -> [`Outcome::Sessions`].
    Sessions {
        /// The user.
        user: u32,
        /// Only sessions updated after this time.
        since: u32,
        /// Only sessions with unread messages.
        unread_only: bool,
    },
    /// `user` removes `session` from its list -> [`Outcome::Done`].
    RemoveSession {
        /// The user.
        user: u32,
        /// The session.
        session: SessionKey,
    },
    /// Creates a group (`group.id` 0: the store picks a new id) ->
    /// [`Outcome::GroupCreated`]; an existing id is left as it is.
    CreateGroup(GroupRecord),
    /// Sets a group's members and version -> [`Outcome::Done`], if the
    /// stored version is `version - 1` (else [`Outcome::Failed`], nothing
    /// changed: another msg_server changed the group first). Shields of
    /// users no longer members are dropped.
    SetMembers {
        /// The group.
        group: u32,
        /// Its members now.
        members: Vec<u32>,
        /// Its version now.
        version: u32,
    },
    /// Member `user` shields `group` (`on`) or not -> [`Outcome::Done`]
    /// (nothing is stored for a user who is not a member).
    SetShield {
        /// The group.
        group: u32,
        /// The member.
        user: u32,
        /// Shielded.
        on: bool,
    },
    /// The stored groups (`only`: just that one, if it exists) ->
    /// [`Outcome::Groups`]: what other msg_servers changed.
    LoadGroups {
        /// One group, or all.
        only: Option<u32>,
    },
}

/// The answer to an [`Op::SetMembers`] built on a stale version of `group`
/// (another msg_server changed it first): nothing was changed.
pub fn group_conflict(group: u32, version: u32) -> Outcome {
    log::info!(
        "store: group {group} is not at version {}: changed elsewhere",
        version.wrapping_sub(1)
    );
    Outcome::Failed(format!("group {group} changed meanwhile"))
}

/// Why a message was not stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// The receiver's mailbox holds its most messages or bytes.
    MailboxFull(u32),
    /// All mailboxes together hold the most bytes allowed.
    StoreFull,
    /// The store failed while storing it (disk full, I/O error...): the
    /// transaction rolled back.
    Failed(String),
    /// The store is unavailable after a failure ([`Health::Unavailable`]):
    /// not even tried until its next retry.
    Unavailable(String),
}

impl Refusal {
    /// Whether the store, not the message or a mailbox, is the reason: the
    /// store logs that once, so the loop need not log it per message.
    pub fn is_store_failure(&self) -> bool {
        matches!(self, Refusal::Failed(_) | Refusal::Unavailable(_))
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::MailboxFull(u) => write!(f, "mailbox of user {u} full"),
            Refusal::StoreFull => write!(f, "all mailboxes together full"),
            Refusal::Failed(e) => write!(f, "store failed: {e}"),
            Refusal::Unavailable(e) => write!(f, "{e}"),
        }
    }
}

/// The store's answer to an [`Op`].
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The message is stored (committed) under its id, in the mailboxes of
    /// these receivers at these positions (a group member whose mailbox is
    /// full is not among them). Shared, not copied, with whatever the store
    /// keeps in memory.
    Stored(Arc<StoredMessage>, Vec<(u32, u64)>),
    /// The message is not stored.
    Refused(Refusal),
    /// Undelivered messages with their mailbox positions; `complete` when
    /// there are no more after them.
    Backlog {
        /// (position, message), oldest first.
        items: Vec<(u64, StoredMessage)>,
        /// Nothing more after the last one.
        complete: bool,
    },
    /// Messages.
    Messages(Vec<StoredMessage>),
    /// A session's newest id.
    LatestId(u32),
    /// A user's sessions.
    Sessions(Vec<UserSession>),
    /// Done.
    Done,
    /// A group was created under this id.
    GroupCreated(u32),
    /// Groups as stored ([`Op::LoadGroups`]).
    Groups(Vec<GroupRecord>),
    /// A query or update failed.
    Failed(String),
}

/// The loop-side continuation of an operation: runs on the loop with the
/// server, after the store answered.
pub type Done = Box<dyn FnOnce(&mut ImServer<MsgConn>, &mut Context, Outcome) + Send>;

/// A message store. See the module docs.
pub trait MessageStore {
    /// Queues `op`; `done` (if any) runs on the loop with the outcome, in
    /// submission order. Never blocks.
    fn submit(&mut self, op: Op, done: Option<Done>);

    /// A short name for logs ("sqlite /path", "memory").
    fn describe(&self) -> String;

    /// The groups stored when the store was opened (once, at startup).
    fn take_groups(&mut self) -> Vec<GroupRecord>;

    /// Whether operations commit now, or since when and why not.
    fn health(&self) -> Health {
        Health::Available
    }
}
