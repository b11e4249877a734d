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
//! Two implementations, chosen with `Store=` in msgserver.conf:
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
//! Both enforce the mailbox bounds ([`Bounds`], shared code in [`Usage`]):
//! a message whose receiver's mailbox is full is refused, not stored.

pub mod memory;
pub mod postgres;
pub mod sqlite;

use super::MsgConn;
use imconn::ImServer;
use netlib::{Context, HandlerRef, Poster};
use pdu::proto::{ImMsgData, MsgInfo, SessionType};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A conversation: two users (either order) or a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SessionKey {
    /// Users `lo <= hi`.
    Pair(u32, u32),
    /// A group.
    Group(u32),
}

impl SessionKey {
    /// The session between users `a` and `b`.
    pub fn single(a: u32, b: u32) -> SessionKey {
        SessionKey::Pair(a.min(b), a.max(b))
    }

    /// The session `session_id` of type `session_type` as `user` names it
    /// (the peer's id for a single chat, the group's id for a group).
    pub fn of(user: u32, session_type: i32, session_id: u32) -> SessionKey {
        if session_type == SessionType::Group as i32 {
            SessionKey::Group(session_id)
        } else {
            SessionKey::single(user, session_id)
        }
    }

    /// One integer for the database: `lo << 32 | hi`, a group as `0 << 32 |
    /// id` (user id 0 does not exist).
    pub fn to_i64(self) -> i64 {
        let (lo, hi) = match self {
            SessionKey::Pair(lo, hi) => (lo, hi),
            SessionKey::Group(g) => (0, g),
        };
        ((u64::from(lo) << 32) | u64::from(hi)) as i64
    }

    /// The inverse of [`to_i64`](Self::to_i64).
    pub fn from_i64(v: i64) -> SessionKey {
        let v = v as u64;
        let (lo, hi) = ((v >> 32) as u32, v as u32);
        if lo == 0 {
            SessionKey::Group(hi)
        } else {
            SessionKey::Pair(lo, hi)
        }
    }

    /// The session id `user` knows this session by.
    pub fn id_for(self, user: u32) -> u32 {
        match self {
            SessionKey::Pair(lo, hi) => {
                if lo == user {
                    hi
                } else {
                    lo
                }
            }
            SessionKey::Group(g) => g,
        }
    }

    /// TeamTalk's session type.
    pub fn session_type(self) -> SessionType {
        match self {
            SessionKey::Pair(..) => SessionType::Single,
            SessionKey::Group(_) => SessionType::Group,
        }
    }
}

/// A message to store; the store assigns its id in its session.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Its session.
    pub session: SessionKey,
    /// The sender.
    pub from: u32,
    /// Who it is delivered to: the peer, or every group member but the
    /// sender (shared with the code that delivers it once stored).
    pub receivers: std::sync::Arc<[u32]>,
    /// `MsgType` as sent.
    pub msg_type: i32,
    /// The content.
    pub data: Vec<u8>,
    /// Seconds since the epoch, set by the server.
    pub create_time: u32,
}

impl NewMessage {
    /// The message as stored under `msg_id` (its content moves out; the
    /// receivers stay for the mailboxes).
    pub fn take_stored(&mut self, msg_id: u32) -> StoredMessage {
        StoredMessage {
            session: self.session,
            msg_id,
            from: self.from,
            create_time: self.create_time,
            msg_type: self.msg_type,
            data: std::mem::take(&mut self.data),
        }
    }
}

/// A stored message.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMessage {
    /// Its session.
    pub session: SessionKey,
    /// Its id in the session: 1, 2, 3...
    pub msg_id: u32,
    /// The sender.
    pub from: u32,
    /// Seconds since the epoch.
    pub create_time: u32,
    /// `MsgType`.
    pub msg_type: i32,
    /// The content.
    pub data: Vec<u8>,
}

impl StoredMessage {
    /// Bytes it counts against a mailbox.
    pub fn size(&self) -> usize {
        self.data.len() + 32
    }

    /// The frame body delivered to `receiver`.
    pub fn to_msg_data(&self, receiver: u32) -> ImMsgData {
        ImMsgData {
            from_user_id: self.from,
            to_session_id: self.session_id_for(receiver),
            msg_id: self.msg_id,
            create_time: self.create_time,
            msg_type: self.msg_type,
            msg_data: self.data.clone(),
            attach_data: None,
        }
    }

    /// `to_session_id` of the frame body delivered to `receiver`: the
    /// receiver in a pair session, the group in a group session.
    pub fn session_id_for(&self, receiver: u32) -> u32 {
        match self.session {
            SessionKey::Pair(..) => receiver,
            SessionKey::Group(g) => g,
        }
    }

    /// The history entry.
    pub fn to_msg_info(&self) -> MsgInfo {
        MsgInfo {
            msg_id: self.msg_id,
            from_session_id: self.from,
            create_time: self.create_time,
            msg_type: self.msg_type,
            msg_data: self.data.clone(),
        }
    }
}

/// One session as one user sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct UserSession {
    /// The session.
    pub session: SessionKey,
    /// Removed by the user (0x0206); comes back with the next message.
    pub removed: bool,
    /// Last change, seconds since the epoch.
    pub updated: u32,
    /// Messages from others after the read position.
    pub unread: u32,
    /// The newest message, if any is still stored.
    pub latest: Option<StoredMessage>,
}

impl UserSession {
    /// A session as a store keeps it for a user: created at `created`,
    /// removed (-1: never) when its newest id was `removed_at`, at
    /// `removed_time`; removed still unless a newer message came, and
    /// updated at its newest message (or its removal, if later).
    pub fn from_stored(
        session: SessionKey,
        created: u32,
        removed_at: i64,
        removed_time: u32,
        unread: u32,
        latest: Option<StoredMessage>,
    ) -> UserSession {
        let latest_id = latest.as_ref().map_or(0, |m| i64::from(m.msg_id));
        let latest_time = latest.as_ref().map_or(created, |m| m.create_time);
        let removed = removed_at >= 0 && latest_id <= removed_at;
        UserSession {
            session,
            removed,
            updated: if removed {
                removed_time.max(latest_time)
            } else {
                latest_time
            },
            unread,
            latest,
        }
    }

    /// Whether [`Op::Sessions`] with `since` and `unread_only` lists it.
    pub fn listed(&self, since: u32, unread_only: bool) -> bool {
        self.updated > since && (!unread_only || self.unread > 0)
    }
}

/// Orders [`Op::Sessions`]' answer: the most recently updated first, ties by
/// session.
pub fn sort_recent_first(list: &mut [UserSession]) {
    list.sort_by(|a, b| b.updated.cmp(&a.updated).then(a.session.cmp(&b.session)));
}

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

/// A group as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    /// Its id (0 in a [`Op::CreateGroup`]: the store picks one).
    pub id: u32,
    /// Name.
    pub name: String,
    /// Avatar URL.
    pub avatar: String,
    /// Who created it.
    pub creator: u32,
    /// `GroupType`: 1 normal (from the groups file), 2 temporary.
    pub kind: i32,
    /// Bumped at every membership change.
    pub version: u32,
    /// Member user ids, ascending.
    pub members: Vec<u32>,
    /// Members who shielded the group (0x0409), ascending.
    pub shielded: Vec<u32>,
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
    /// The store failed (disk full, I/O error...).
    Failed(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::MailboxFull(u) => write!(f, "mailbox of user {u} full"),
            Refusal::StoreFull => write!(f, "all mailboxes together full"),
            Refusal::Failed(e) => write!(f, "store failed: {e}"),
        }
    }
}

/// The store's answer to an [`Op`].
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The message is stored (committed) under its id, in the mailboxes of
    /// these receivers at these positions (a group member whose mailbox is
    /// full is not among them).
    Stored(StoredMessage, Vec<(u32, u64)>),
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
}

/// An operation queued for a writer thread, with its continuation.
pub type Job = (Op, Option<Done>);

/// The loop side of a store served by a thread of its own (SQLite,
/// PostgreSQL): a channel to the thread. Dropping it lets the thread finish
/// what is queued and exit.
pub struct WriterThread {
    tx: std::sync::mpsc::Sender<Job>,
    describe: String,
    groups: Vec<GroupRecord>,
}

impl WriterThread {
    /// Starts thread `name`: it blocks for the first queued job, takes every
    /// other one already queued (up to `batch_max`), hands them to
    /// `run_batch` (one transaction) and posts the outcomes back.
    pub fn spawn(
        name: &str,
        describe: String,
        groups: Vec<GroupRecord>,
        batch_max: usize,
        completions: Completions,
        mut run_batch: impl FnMut(&mut Vec<Job>) -> Vec<(Done, Outcome)> + Send + 'static,
    ) -> Result<WriterThread, String> {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let mut batch: Vec<Job> = Vec::new();
                while let Ok(first) = rx.recv() {
                    batch.push(first);
                    while batch.len() < batch_max {
                        match rx.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    let (n, started) = (batch.len(), std::time::Instant::now());
                    let results = run_batch(&mut batch);
                    log::debug!("store: batch of {n} operations in {:?}", started.elapsed());
                    completions.complete(results);
                }
                log::info!("store: writer thread done");
            })
            .map_err(|e| format!("cannot start the store thread: {e}"))?;
        Ok(WriterThread {
            tx,
            describe,
            groups,
        })
    }
}

impl MessageStore for WriterThread {
    fn submit(&mut self, op: Op, done: Option<Done>) {
        if self.tx.send((op, done)).is_err() {
            log::error!("store thread gone: operation dropped");
        }
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn take_groups(&mut self) -> Vec<GroupRecord> {
        std::mem::take(&mut self.groups)
    }
}

/// Carries outcomes from a store (any thread) back to the loop: queued, and
/// one posted closure runs everything queued so far, in order.
#[derive(Clone)]
pub struct Completions {
    poster: Poster,
    server: HandlerRef,
    queue: Arc<Mutex<Vec<(Done, Outcome)>>>,
}

impl Completions {
    /// Completions run on the loop of `poster`, on msg_server `server`.
    pub fn new(poster: Poster, server: HandlerRef) -> Completions {
        Completions {
            poster,
            server,
            queue: Arc::default(),
        }
    }

    /// Queues finished operations; wakes the loop if the queue was empty.
    pub fn complete(&self, items: impl IntoIterator<Item = (Done, Outcome)>) {
        let was_empty = {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            let was_empty = q.is_empty();
            q.extend(items);
            was_empty && !q.is_empty()
        };
        if !was_empty {
            return;
        }
        let queue = Arc::clone(&self.queue);
        let server = self.server;
        let posted = self.poster.post(move |ctx| {
            let items = std::mem::take(&mut *queue.lock().unwrap_or_else(|p| p.into_inner()));
            ctx.with_handler(server, |s: &mut ImServer<MsgConn>, ctx| {
                for (done, outcome) in items {
                    done(s, ctx, outcome);
                }
            });
        });
        if posted.is_err() {
            log::debug!("store: loop stopped, outcomes dropped");
        }
    }
}

/// Mailbox bounds (`MailboxMaxMsgs`, `MailboxMaxBytes`, `MailboxTotalMaxBytes`).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Most undelivered messages per user.
    pub user_msgs: usize,
    /// Most undelivered bytes per user.
    pub user_bytes: usize,
    /// Most undelivered bytes over all users.
    pub total_bytes: usize,
}

/// What the mailboxes hold, checked against [`Bounds`] before a message is
/// stored. Both stores keep one.
#[derive(Debug, Default)]
pub struct Usage {
    per_user: HashMap<u32, (usize, usize)>,
    total_bytes: usize,
}

impl Usage {
    /// Whether one more message of `bytes` fits every receiver's mailbox.
    pub fn admit(&self, bounds: &Bounds, receivers: &[u32], bytes: usize) -> Result<(), Refusal> {
        let added = bytes.saturating_mul(receivers.len());
        if self.total_bytes.saturating_add(added) > bounds.total_bytes {
            return Err(Refusal::StoreFull);
        }
        for &r in receivers {
            let (n, b) = self.per_user.get(&r).copied().unwrap_or((0, 0));
            if n >= bounds.user_msgs || b.saturating_add(bytes) > bounds.user_bytes {
                return Err(Refusal::MailboxFull(r));
            }
        }
        Ok(())
    }

    /// The receivers whose mailboxes take a message of `bytes` in
    /// `session`: all of them, or a refusal, for a single chat; for a group
    /// those with room (a member with a full mailbox reads it in the
    /// history instead of blocking the group). A full store refuses either.
    pub fn admit_message(
        &self,
        bounds: &Bounds,
        session: SessionKey,
        receivers: &[u32],
        bytes: usize,
    ) -> Result<Vec<u32>, Refusal> {
        match self.admit(bounds, receivers, bytes) {
            Ok(()) => Ok(receivers.to_vec()),
            Err(Refusal::MailboxFull(user)) if matches!(session, SessionKey::Group(_)) => {
                log::warn!("group message: mailbox of member {user} (and maybe more) full");
                Ok(receivers
                    .iter()
                    .copied()
                    .filter(|r| self.admit(bounds, &[*r], bytes).is_ok())
                    .collect())
            }
            Err(e) => Err(e),
        }
    }

    /// Usage as counted elsewhere (a shared database): (user, undelivered
    /// messages, bytes) and the total bytes of all mailboxes.
    pub fn from_counts(
        per_user: impl IntoIterator<Item = (u32, usize, usize)>,
        total_bytes: usize,
    ) -> Usage {
        Usage {
            per_user: per_user.into_iter().map(|(u, n, b)| (u, (n, b))).collect(),
            total_bytes,
        }
    }

    /// A message of `bytes` joined `user`'s mailbox.
    pub fn add(&mut self, user: u32, bytes: usize) {
        let e = self.per_user.entry(user).or_default();
        e.0 += 1;
        e.1 += bytes;
        self.total_bytes += bytes;
    }

    /// A message of `bytes` left `user`'s mailbox.
    pub fn remove(&mut self, user: u32, bytes: usize) {
        if let Some(e) = self.per_user.get_mut(&user) {
            e.0 = e.0.saturating_sub(1);
            e.1 = e.1.saturating_sub(bytes);
            if e.0 == 0 {
                self.per_user.remove(&user);
            }
        }
        self.total_bytes = self.total_bytes.saturating_sub(bytes);
    }

    /// Undelivered messages over all mailboxes, and their bytes.
    pub fn totals(&self) -> (usize, usize) {
        (self.per_user.values().map(|e| e.0).sum(), self.total_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_keys_round_trip_and_name_the_peer() {
        let k = SessionKey::single(7, 3);
        assert_eq!(k, SessionKey::Pair(3, 7));
        assert_eq!(SessionKey::from_i64(k.to_i64()), k);
        assert_eq!(k.id_for(3), 7);
        assert_eq!(k.id_for(7), 3);
        let g = SessionKey::Group(u32::MAX);
        assert_eq!(SessionKey::from_i64(g.to_i64()), g);
        let big = SessionKey::single(u32::MAX, u32::MAX - 1);
        assert_eq!(SessionKey::from_i64(big.to_i64()), big);
        assert_ne!(g.to_i64(), big.to_i64());
    }

    #[test]
    fn usage_refuses_past_each_bound() {
        let bounds = Bounds {
            user_msgs: 2,
            user_bytes: 100,
            total_bytes: 150,
        };
        let mut u = Usage::default();
        assert!(u.admit(&bounds, &[1], 40).is_ok());
        u.add(1, 40);
        u.add(1, 40);
        assert_eq!(u.admit(&bounds, &[1], 1), Err(Refusal::MailboxFull(1)));
        assert!(u.admit(&bounds, &[2], 60).is_ok());
        assert_eq!(u.admit(&bounds, &[2, 3], 40), Err(Refusal::StoreFull));
        assert_eq!(u.admit(&bounds, &[2], 101), Err(Refusal::StoreFull));
        u.remove(1, 40);
        assert!(u.admit(&bounds, &[1], 20).is_ok());
        assert_eq!(u.totals(), (1, 40));
    }
}
