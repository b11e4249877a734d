//! [`SqliteStore`]: messages in an SQLite file (WAL mode), written by a
//! thread of its own with group commit.
//!
//! The loop sends operations over a channel and never touches the file. The
//! writer thread blocks for the first queued operation, takes every other one
//! already queued (up to `StoreBatchMax`), runs them all in one transaction,
//! commits, and only then hands all outcomes to [`Completions`]: a message's
//! [`Outcome::Stored`] - and so its sender's ack - exists only once it is on
//! disk (`DbSynchronous=full`, the default, also survives a power cut;
//! `normal` survives a crash of the process). One commit per batch is what
//! keeps durability from costing the message rate: under load, batches grow.
//! If a batch fails, nothing of it is stored and nobody is acked; the
//! writer is dropped with its caches and a retry opens the file afresh
//! ([`WriterThread`] handles that, and the store's health, for SQLite and
//! PostgreSQL alike).
//!
//! A message commits with its own row; the mailbox and session rows it
//! implies are written up to `StoreDeferMs` later, and a mailbox row not
//! at all if the receiver acked meanwhile (module `deferred` says why and what
//! a crash does to them).
//!
//! Schema (`PRAGMA user_version = 3`), readable with the `sqlite3` command:
//!
//! - `messages(id, sess, msg_id, sender, receiver, msg_type, data,
//!   created)`: every message, in arrival order (`id`, so a batch appends to
//!   the last pages instead of writing pages all over the table); `sess` is
//!   [`SessionKey::to_i64`], `msg_id` counts 1, 2, 3... per session as
//!   TeamTalk assigns them; `receiver` is the peer user or the group.
//! - `message_index(sess, msg_id, id, sender)` (version 3; before, an index
//!   on `messages`): each session's messages, by id - history, messages by
//!   id, newest id and unread counts read it. Written up to `StoreDeferMs`
//!   after the message, sorted (module `deferred`).
//! - `inbox(pos, user, sess, msg_id, msg, bytes)`: undelivered messages per
//!   user (`msg` is the message's `id`)
//!   (the mailbox): written only for a delivery not acked within
//!   `StoreDeferMs` of its commit, and deleted when a connection of `user`
//!   acks it (by `pos` alone: the writer knows whose it is and its bytes).
//!   The messages after `meta.written_upto` are in their receivers'
//!   mailboxes too (the writer's memory has which were acked).
//!   `pos` is given by the writer, increasing (never reused, so a mailbox
//!   feed reading "after pos" misses nothing), and the loop keeps it with
//!   each delivery so an ack deletes by primary key. Each user's positions
//!   are also kept in the writer's memory (bounded by the mailbox bounds,
//!   rebuilt from the table at start) instead of in an index on `user`, so
//!   a message writes no index page for its mailbox row.
//! - `user_sessions(user, sess, peer, kind, created, read_id, removed_at,
//!   removed_time)`: each user's sessions (recent contacts) with its read
//!   position, and the newest id when the user removed the session (-1: not
//!   removed; a newer message brings it back). Written when a session is new
//!   to a user (deferred, sorted), at a read ack and at a removal - not per
//!   message: unread counts (messages from others after the read position)
//!   and update times (the newest message's) are computed when asked.
//! - `meta(key, value)` (version 3): `written_upto`, the last message whose
//!   mailbox and session rows are all written.
//! - `groups(group_id, name, avatar, creator, kind, version)` and
//!   `group_members(group_id, user)`: groups and who is in them.
//! - `group_shields(group_id, user)` (version 2): members who shielded a
//!   group (0x0409).

mod deferred;
mod groups;
mod ops;
#[cfg(test)]
mod tests;

use super::{
    Backend, Bounds, Completions, GroupCommit, Op, Outcome, SessionKey, Usage, WriterThread,
};
use rusqlite::Connection;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The writer's caches are looked up several times per message: a fast
/// hash (still keyed randomly per process) instead of SipHash.
type FastMap<K, V> = HashMap<K, V, ahash::RandomState>;
type FastSet<K> = HashSet<K, ahash::RandomState>;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages (
    id       INTEGER PRIMARY KEY,
    sess     INTEGER NOT NULL,
    msg_id   INTEGER NOT NULL,
    sender   INTEGER NOT NULL,
    receiver INTEGER NOT NULL,
    msg_type INTEGER NOT NULL,
    data     BLOB    NOT NULL,
    created  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS message_index (
    sess   INTEGER NOT NULL,
    msg_id INTEGER NOT NULL,
    id     INTEGER NOT NULL,
    sender INTEGER NOT NULL,
    PRIMARY KEY (sess, msg_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inbox (
    pos    INTEGER PRIMARY KEY,
    user   INTEGER NOT NULL,
    sess   INTEGER NOT NULL,
    msg_id INTEGER NOT NULL,
    msg    INTEGER NOT NULL,
    bytes  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS user_sessions (
    user         INTEGER NOT NULL,
    sess         INTEGER NOT NULL,
    peer         INTEGER NOT NULL,
    kind         INTEGER NOT NULL,
    created      INTEGER NOT NULL,
    read_id      INTEGER NOT NULL DEFAULT 0,
    removed_at   INTEGER NOT NULL DEFAULT -1,
    removed_time INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user, sess)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS groups (
    group_id INTEGER PRIMARY KEY,
    name     TEXT    NOT NULL,
    avatar   TEXT    NOT NULL,
    creator  INTEGER NOT NULL,
    kind     INTEGER NOT NULL,
    version  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS group_members (
    group_id INTEGER NOT NULL,
    user     INTEGER NOT NULL,
    PRIMARY KEY (group_id, user)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS group_shields (
    group_id INTEGER NOT NULL,
    user     INTEGER NOT NULL,
    PRIMARY KEY (group_id, user)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (key, value)
    SELECT 'written_upto', coalesce(max(id), 0) FROM messages;
PRAGMA user_version = 3;
";

/// `StoreDeferMs`'s default: how long a message's other rows may wait.
///
/// Longer than a delivery and its ack take even under overload: when
/// msg_server is behind, deliveries wait in its queues, and a mailbox row
/// written before its ack arrives costs an insert and a delete per message
/// just when the server has the least time (at 1 s, `im_bench` at 1000
/// users showed that cliff: the store's cost per message rose by half past
/// about 35,000 msg/s and the server fell behind; at 5 s it kept up to the
/// generator's limit). The price is a longer replay after a crash (the
/// deliveries acked within it are delivered again) and the writer's memory
/// of the waiting messages, which `DEFERRED_MAX` bounds whatever the rate.
pub const DEFAULT_DEFER: Duration = Duration::from_secs(5);

/// `DbBusyTimeoutMs`'s default: how long a write waits for another
/// process's lock on the file (an `sqlite3` session in a transaction)
/// before its batch fails and the store is unavailable until a retry.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// SQLite-backed store settings.
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// The database file (`DbPath`).
    pub path: PathBuf,
    /// `PRAGMA synchronous=FULL` (`DbSynchronous=full`) or `NORMAL`.
    pub sync_full: bool,
    /// How long a write waits for another process's lock on the file
    /// before the batch fails (`DbBusyTimeoutMs`).
    pub busy_timeout: Duration,
    /// Operations per transaction and time between commits
    /// (`StoreBatchMax`, `StoreCommitIntervalUs`).
    pub commit: GroupCommit,
    /// How long a message's mailbox and session rows wait before they are
    /// written (`StoreDeferMs`; see the module `deferred`).
    pub defer: Duration,
    /// Mailbox bounds.
    pub bounds: Bounds,
}

/// The SQLite store: a [`WriterThread`] running this module's `Writer`.
pub struct SqliteStore;

impl SqliteStore {
    /// Opens (creating if needed) the database and starts the writer thread.
    /// Errors (a file that cannot be opened, a foreign schema) come back
    /// here, at startup; later failures make the store unavailable until a
    /// retry reopens the file (see [`WriterThread`]).
    pub fn open(config: SqliteConfig, completions: Completions) -> Result<WriterThread, String> {
        let path = config.path.clone();
        let conn = open(&config).map_err(|e| format!("{}: {e}", path.display()))?;
        let groups = groups::load(&conn, None).map_err(|e| format!("{}: {e}", path.display()))?;
        let commit = config.commit;
        let writer = Writer::new(conn, config.clone())?;
        let reopen = move || open_backend(config.clone());
        WriterThread::spawn(
            "msg-store",
            format!("sqlite {}", path.display()),
            groups,
            commit,
            completions,
            Box::new(writer),
            Box::new(reopen),
        )
    }
}

/// Opens (creating if needed) the database as a bare [`Backend`], run on the
/// caller's thread: what the writer thread runs, for benchmarks and tools
/// that measure the store alone (`bench im_store`).
pub fn open_backend(config: SqliteConfig) -> Result<Box<dyn Backend>, String> {
    let conn = open(&config).map_err(|e| format!("{}: {e}", config.path.display()))?;
    Ok(Box::new(Writer::new(conn, config)?))
}

fn open(config: &SqliteConfig) -> rusqlite::Result<Connection> {
    let conn = Connection::open(&config.path)?;
    conn.busy_timeout(config.busy_timeout)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        if config.sync_full { "FULL" } else { "NORMAL" },
    )?;
    // Messages land on pages spread over the tables (sessions, users): a
    // 64 MiB page cache and a checkpoint every ~40 MiB of WAL keep the
    // writer from re-reading and re-copying them at every commit.
    conn.pragma_update(None, "cache_size", -65536)?;
    conn.pragma_update(None, "wal_autocheckpoint", 10_000)?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > 3 {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "schema version {version} is newer than this msg_server (3)"
        )));
    }
    conn.execute_batch(SCHEMA)?;
    // Files of schema 1 and 2 kept the session index on `messages` itself,
    // written at every message: its entries move to `message_index`.
    conn.execute_batch(
        "BEGIN IMMEDIATE;
         INSERT OR IGNORE INTO message_index (sess, msg_id, id, sender)
             SELECT sess, msg_id, id, sender FROM messages
             WHERE EXISTS (SELECT 1 FROM sqlite_master
                           WHERE type = 'index' AND name = 'messages_by_session');
         DROP INDEX IF EXISTS messages_by_session;
         COMMIT;",
    )?;
    Ok(conn)
}

/// The writer thread's state: one open database.
struct Writer {
    conn: Connection,
    config: SqliteConfig,
    /// The file opened (device, inode): a batch does not commit once the
    /// path names another file or none.
    file: (u64, u64),
    cache: Cache,
}

/// What the writer keeps in memory about the file, built when it is opened
/// (a failed batch drops the writer, and the retry opens a new one).
#[derive(Default)]
struct Cache {
    /// Newest id per session, as committed (cleared at `CACHE_MAX`
    /// entries: the file has them).
    last_id: FastMap<SessionKey, u32>,
    /// `last_id` has every session of the file (loaded whole at open, never
    /// cleared since): a session missing from it has no message yet, and
    /// its first message needs no look-up.
    last_id_complete: bool,
    /// Ids given in the running batch.
    staged: FastMap<SessionKey, u32>,
    usage: Usage,
    /// (user, session) pairs known to be in `user_sessions` (cleared at
    /// `CACHE_MAX` entries).
    known: FastSet<(u32, i64)>,
    /// The last mailbox position given.
    last_pos: u64,
    /// Each user's mailbox, by position.
    mailboxes: FastMap<u32, BTreeMap<u64, Entry>>,
    /// Committed messages whose other rows are not written yet.
    deferred: deferred::Queue,
    /// An append failed half way: the batch must roll back.
    poisoned: Option<String>,
}

/// A message in a user's mailbox.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// What it counts against the mailbox bounds.
    bytes: u32,
    /// The message's row (`messages.id`).
    row: i64,
    /// Its `inbox` row is written (else it is deferred).
    written: bool,
}

/// Most entries of each of the writer's caches of the file (~32 MiB each).
const CACHE_MAX: usize = 1 << 20;

/// (device, inode) of the file at `path`.
fn identity(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok((m.dev(), m.ino()))
}

impl Writer {
    fn new(conn: Connection, config: SqliteConfig) -> Result<Writer, String> {
        let path = config.path.display().to_string();
        let fail = |e: &dyn std::fmt::Display| format!("{path}: {e}");
        let file = identity(&config.path).map_err(|e| fail(&e))?;
        let mut w = Writer {
            conn,
            file,
            cache: Cache::default(),
            config,
        };
        w.load().map_err(|e| fail(&e))?;
        Ok(w)
    }

    /// Builds the mailbox usage and positions from the file, then writes
    /// the rows a crash left owed ([`deferred::recover`]).
    fn load(&mut self) -> rusqlite::Result<()> {
        let mut st = self
            .conn
            .prepare("SELECT user, bytes, pos, msg FROM inbox")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        for row in rows {
            let (user, bytes, pos, msg) = row?;
            self.cache.usage.add(user, bytes as usize);
            self.cache.last_pos = self.cache.last_pos.max(pos as u64);
            let entry = Entry {
                bytes,
                row: msg,
                written: true,
            };
            self.cache
                .mailboxes
                .entry(user)
                .or_default()
                .insert(pos as u64, entry);
        }
        drop(st);
        let recovered = deferred::recover(&mut self.conn, &mut self.cache)?;
        if recovered > 0 {
            log::warn!(
                "store: {recovered} messages committed in the last run before their mailbox \
                 and session rows were written: they are undelivered again"
            );
        }
        // A file of up to `CACHE_MAX` messages has at most that many
        // sessions: all of them fit the cache of newest ids.
        let rows: i64 =
            self.conn
                .query_row("SELECT coalesce(max(id), 0) FROM messages", [], |r| {
                    r.get(0)
                })?;
        if rows as usize <= CACHE_MAX {
            let mut st = self
                .conn
                .prepare("SELECT sess, max(msg_id) FROM message_index GROUP BY sess")?;
            let newest = st.query_map([], |r| Ok((SessionKey::from_i64(r.get(0)?), r.get(1)?)))?;
            for row in newest {
                let (session, id) = row?;
                self.cache.last_id.insert(session, id);
            }
            self.cache.last_id_complete = true;
        }
        Ok(())
    }
}

impl Backend for Writer {
    /// Runs a batch in one transaction and commits it.
    fn run_batch(&mut self, ops: Vec<Op>) -> Result<Vec<Outcome>, String> {
        let tx = self.conn.transaction().map_err(|e| e.to_string())?;
        let mut outcomes = Vec::with_capacity(ops.len());
        for op in ops {
            outcomes.push(ops::exec(&tx, op, &mut self.cache, &self.config.bounds));
        }
        if let Some(e) = self.cache.poisoned.take() {
            return Err(e); // dropping `tx` rolls the batch back
        }
        deferred::flush(
            &tx,
            &mut self.cache,
            Instant::now(),
            Some(self.config.defer),
        )
        .map_err(|e| e.to_string())?;
        // The cache of newest ids is about to be cleared: the index must
        // then have every message (`latest_id` falls back on it).
        let clear = self.cache.last_id.len() + self.cache.staged.len() > CACHE_MAX;
        if clear {
            deferred::write_index(&tx, &mut self.cache).map_err(|e| e.to_string())?;
        }
        // SQLite in WAL mode goes on writing to a file removed or renamed
        // under it: what it would commit there is lost at the next start.
        if identity(&self.config.path).ok() != Some(self.file) {
            return Err(format!(
                "{}: the database file was removed or replaced",
                self.config.path.display()
            ));
        }
        tx.commit().map_err(|e| e.to_string())?;
        let staged = std::mem::take(&mut self.cache.staged);
        if clear {
            self.cache.last_id.clear();
            self.cache.last_id_complete = false;
        }
        self.cache.last_id.extend(staged);
        Ok(outcomes)
    }

    fn wake_at(&self) -> Option<Instant> {
        self.cache.deferred.wake_at(self.config.defer)
    }

    /// Writes every deferred row: a graceful stop delivers nothing twice.
    fn close(&mut self) -> Result<(), String> {
        if self.cache.deferred.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction().map_err(|e| e.to_string())?;
        deferred::flush(&tx, &mut self.cache, Instant::now(), None).map_err(|e| e.to_string())?;
        tx.commit().map_err(|e| e.to_string())
    }
}

/// The database file's mailbox usage, for tests and tools: (undelivered
/// messages, bytes) as a restart would find them - `inbox` rows, and the
/// deliveries of messages whose rows are still deferred (some may have
/// been acked since: the running writer knows).
pub fn mailbox_totals(path: &Path) -> rusqlite::Result<(u64, u64)> {
    deferred::mailbox_totals(&Connection::open(path)?)
}

/// Creates or upgrades the schema of the database at `path` (what
/// `msg_server migrate` does; opening the store does it too). Returns the
/// schema version (`PRAGMA user_version`) before and after.
pub fn migrate(path: &Path) -> Result<(i64, i64), String> {
    let fail = |e: rusqlite::Error| format!("{}: {e}", path.display());
    let before: i64 = Connection::open(path)
        .and_then(|c| c.pragma_query_value(None, "user_version", |r| r.get(0)))
        .map_err(fail)?;
    let config = SqliteConfig {
        path: path.to_path_buf(),
        sync_full: true,
        busy_timeout: DEFAULT_BUSY_TIMEOUT,
        commit: GroupCommit::default(),
        defer: Duration::ZERO,
        bounds: Bounds {
            user_msgs: 1,
            user_bytes: 1,
            total_bytes: 1,
        },
    };
    let conn = open(&config).map_err(fail)?;
    let after: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(fail)?;
    Ok((before, after))
}
