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
//! If a commit fails, every write of the batch is refused (nobody is acked)
//! and the in-memory caches are rebuilt from the file.
//!
//! Schema (`PRAGMA user_version = 2`), readable with the `sqlite3` command:
//!
//! - `messages(id, sess, msg_id, sender, receiver, msg_type, data,
//!   created)`: every message, in arrival order (`id`, so a batch appends to
//!   the last pages instead of writing pages all over the table), found by
//!   session through the index `(sess, msg_id)`; `sess` is
//!   [`SessionKey::to_i64`], `msg_id` counts 1, 2, 3... per session as
//!   TeamTalk assigns them; `receiver` is the peer user or the group.
//! - `inbox(pos, user, sess, msg_id, msg, bytes)`: undelivered messages per
//!   user (`msg` is the message's `id`)
//!   (the mailbox); a row goes when a connection of `user` acks the delivery.
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
//!   to a user, at a read ack and at a removal - not per message: unread
//!   counts (messages from others after the read position) and update times
//!   (the newest message's) are computed when asked, so a message costs three
//!   row writes (message, mailbox row in, mailbox row out at the ack).
//! - `groups(group_id, name, avatar, creator, kind, version)` and
//!   `group_members(group_id, user)`: groups and who is in them.
//! - `group_shields(group_id, user)` (version 2): members who shielded a
//!   group (0x0409).

mod groups;
mod ops;

use super::{Bounds, Completions, Done, Job, Outcome, Refusal, SessionKey, Usage, WriterThread};
use rusqlite::Connection;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

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
CREATE UNIQUE INDEX IF NOT EXISTS messages_by_session ON messages (sess, msg_id);
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
PRAGMA user_version = 2;
";

/// SQLite-backed store settings.
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// The database file (`DbPath`).
    pub path: PathBuf,
    /// `PRAGMA synchronous=FULL` (`DbSynchronous=full`) or `NORMAL`.
    pub sync_full: bool,
    /// Most operations per transaction (`StoreBatchMax`).
    pub batch_max: usize,
    /// Mailbox bounds.
    pub bounds: Bounds,
}

/// The SQLite store: a [`WriterThread`] running a [`Writer`].
pub struct SqliteStore;

impl SqliteStore {
    /// Opens (creating if needed) the database and starts the writer thread.
    /// Errors (a file that cannot be opened, a foreign schema) come back
    /// here, at startup.
    pub fn open(config: SqliteConfig, completions: Completions) -> Result<WriterThread, String> {
        let path = config.path.clone();
        let conn = open(&config).map_err(|e| format!("{}: {e}", path.display()))?;
        let groups = groups::load(&conn, None).map_err(|e| format!("{}: {e}", path.display()))?;
        let batch_max = config.batch_max;
        let mut writer =
            Writer::new(conn, config).map_err(|e| format!("{}: {e}", path.display()))?;
        WriterThread::spawn(
            "msg-store",
            format!("sqlite {}", path.display()),
            groups,
            batch_max,
            completions,
            move |batch| writer.run_batch(batch),
        )
    }
}

fn open(config: &SqliteConfig) -> rusqlite::Result<Connection> {
    let conn = Connection::open(&config.path)?;
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
    if version > 2 {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "schema version {version} is newer than this msg_server (2)"
        )));
    }
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// The writer thread's state.
struct Writer {
    conn: Connection,
    config: SqliteConfig,
    cache: Cache,
}

/// What the writer keeps in memory about the file, rebuilt after a failed
/// commit.
#[derive(Default)]
struct Cache {
    /// Newest id per session, as committed.
    last_id: HashMap<SessionKey, u32>,
    /// Ids given in the running batch.
    staged: HashMap<SessionKey, u32>,
    usage: Usage,
    /// (user, session) pairs known to be in `user_sessions` (cleared at
    /// `KNOWN_MAX` entries).
    known: HashSet<(u32, i64)>,
    /// The last mailbox position given.
    last_pos: u64,
    /// Each user's mailbox positions.
    mailboxes: HashMap<u32, BTreeSet<u64>>,
    /// An append failed half way: the batch is rolled back.
    poisoned: bool,
}

/// Most entries of the writer's cache of known user sessions (~32 MiB).
const KNOWN_MAX: usize = 1 << 20;

impl Writer {
    fn new(conn: Connection, config: SqliteConfig) -> rusqlite::Result<Writer> {
        let mut w = Writer {
            conn,
            config,
            cache: Cache::default(),
        };
        w.reload()?;
        Ok(w)
    }

    /// Rebuilds the mailbox usage from the file (at start, after a failed
    /// commit) and forgets cached ids.
    fn reload(&mut self) -> rusqlite::Result<()> {
        self.cache = Cache::default();
        let mut st = self.conn.prepare("SELECT user, bytes, pos FROM inbox")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (user, bytes, pos) = row?;
            self.cache.usage.add(user, bytes as usize);
            self.cache.last_pos = self.cache.last_pos.max(pos as u64);
            self.cache
                .mailboxes
                .entry(user)
                .or_default()
                .insert(pos as u64);
        }
        Ok(())
    }

    /// Runs a batch in one transaction; outcomes for the jobs with a
    /// continuation.
    fn run_batch(&mut self, batch: &mut Vec<Job>) -> Vec<(Done, Outcome)> {
        let mut dones = Vec::with_capacity(batch.len());
        let mut outcomes = Vec::with_capacity(batch.len());
        let committed = match self.conn.transaction() {
            Ok(tx) => {
                for (op, done) in batch.drain(..) {
                    outcomes.push(ops::exec(&tx, op, &mut self.cache, &self.config.bounds));
                    dones.push(done);
                }
                if self.cache.poisoned {
                    // Dropping the transaction rolls it back.
                    drop(tx);
                    Err(rusqlite::Error::InvalidQuery)
                } else {
                    tx.commit()
                }
            }
            Err(e) => {
                dones.extend(batch.drain(..).map(|(_, done)| done));
                Err(e)
            }
        };
        match committed {
            Ok(()) => {
                let staged = std::mem::take(&mut self.cache.staged);
                self.cache.last_id.extend(staged);
            }
            Err(e) => {
                log::error!(
                    "store: commit of {} operations failed: {e}; writes refused",
                    dones.len()
                );
                if let Err(e) = self.reload() {
                    log::error!("store: cannot reload after a failed commit: {e}");
                }
                for o in outcomes.iter_mut() {
                    if matches!(o, Outcome::Stored(..) | Outcome::Done) {
                        *o = Outcome::Refused(Refusal::Failed(e.to_string()));
                    }
                }
                // Operations that never ran (the transaction did not begin).
                outcomes.resize(dones.len(), Outcome::Failed(e.to_string()));
            }
        }
        dones
            .into_iter()
            .zip(outcomes)
            .filter_map(|(done, outcome)| done.map(|d| (d, outcome)))
            .collect()
    }
}

/// The database file's mailbox usage, for tests and tools: (undelivered
/// messages, bytes).
pub fn mailbox_totals(path: &Path) -> rusqlite::Result<(u64, u64)> {
    let conn = Connection::open(path)?;
    conn.query_row(
        "SELECT count(*), coalesce(sum(bytes), 0) FROM inbox",
        [],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )
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
        batch_max: 1,
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
