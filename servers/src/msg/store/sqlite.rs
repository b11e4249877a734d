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
//! Schema (`PRAGMA user_version = 1`), readable with the `sqlite3` command:
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
//!   each delivery so an ack deletes by primary key.
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

use super::{
    Bounds, Completions, Done, GroupRecord, Job, NewMessage, Op, Outcome, Refusal, SessionKey,
    StoredMessage, Usage, UserSession, WriterThread,
};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use std::collections::{HashMap, HashSet};
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
CREATE INDEX IF NOT EXISTS inbox_by_user ON inbox (user, pos);
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
PRAGMA user_version = 1;
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
        let groups = load_groups(&conn).map_err(|e| format!("{}: {e}", path.display()))?;
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

/// Every stored group with its members (at startup, before the thread).
fn load_groups(conn: &Connection) -> rusqlite::Result<Vec<GroupRecord>> {
    let mut groups: Vec<GroupRecord> = conn
        .prepare("SELECT group_id, name, avatar, creator, kind, version FROM groups")?
        .query_map([], |r| {
            Ok(GroupRecord {
                id: r.get(0)?,
                name: r.get(1)?,
                avatar: r.get(2)?,
                creator: r.get(3)?,
                kind: r.get(4)?,
                version: r.get(5)?,
                members: Vec::new(),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut st =
        conn.prepare("SELECT user FROM group_members WHERE group_id = ?1 ORDER BY user")?;
    for g in &mut groups {
        g.members = st
            .query_map([g.id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
    }
    Ok(groups)
}

fn create_group(tx: &Transaction<'_>, g: GroupRecord) -> rusqlite::Result<u32> {
    let id: Option<u32> = (g.id != 0).then_some(g.id);
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO groups (group_id, name, avatar, creator, kind, version)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![id, g.name, g.avatar, g.creator, g.kind, g.version])?;
    let id = match id {
        Some(id) => id,
        None => tx.last_insert_rowid() as u32,
    };
    if inserted == 1 {
        set_members(tx, id, &g.members, g.version)?;
    }
    Ok(id)
}

fn set_members(
    tx: &Transaction<'_>,
    group: u32,
    members: &[u32],
    version: u32,
) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM group_members WHERE group_id = ?1")?
        .execute([group])?;
    let mut add =
        tx.prepare_cached("INSERT INTO group_members (group_id, user) VALUES (?1, ?2)")?;
    for m in members {
        add.execute([group, *m])?;
    }
    tx.prepare_cached("UPDATE groups SET version = ?2 WHERE group_id = ?1")?
        .execute([group, version])?;
    Ok(())
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
    if version > 1 {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "schema version {version} is newer than this msg_server (1)"
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
                    outcomes.push(exec(&tx, op, &mut self.cache, &self.config.bounds));
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

fn failed(e: rusqlite::Error) -> Outcome {
    log::error!("store: {e}");
    Outcome::Failed(e.to_string())
}

/// Runs one operation inside the batch's transaction.
fn exec(tx: &Transaction<'_>, op: Op, cache: &mut Cache, bounds: &Bounds) -> Outcome {
    match op {
        Op::Append(m) => match append(tx, m, cache, bounds) {
            Ok(o) => o,
            Err(e) => {
                log::error!("store: append failed: {e}; the batch is rolled back");
                cache.poisoned = true;
                Outcome::Refused(Refusal::Failed(e.to_string()))
            }
        },
        Op::Delivered { user, pos } => {
            let r = tx
                .prepare_cached("DELETE FROM inbox WHERE pos = ?1 AND user = ?2 RETURNING bytes")
                .and_then(|mut st| {
                    st.query_row(params![pos as i64, user], |r| r.get::<_, i64>(0))
                        .optional()
                });
            match r {
                Ok(Some(bytes)) => {
                    cache.usage.remove(user, bytes as usize);
                    Outcome::Done
                }
                Ok(None) => Outcome::Done,
                Err(e) => failed(e),
            }
        }
        Op::Undelivered { user, after, limit } => {
            undelivered(tx, user, after, limit).unwrap_or_else(failed)
        }
        Op::History {
            session,
            until,
            count,
        } => {
            let until = if until == 0 { u32::MAX } else { until };
            messages(
                tx,
                "SELECT sess, msg_id, sender, created, msg_type, data FROM messages
                 WHERE sess = ?1 AND msg_id <= ?2 ORDER BY msg_id DESC LIMIT ?3",
                params![session.to_i64(), until, count],
            )
            .map(Outcome::Messages)
            .unwrap_or_else(failed)
        }
        Op::ById { session, ids } => {
            let mut out = Vec::new();
            for id in ids {
                match messages(
                    tx,
                    "SELECT sess, msg_id, sender, created, msg_type, data FROM messages
                     WHERE sess = ?1 AND msg_id = ?2",
                    params![session.to_i64(), id],
                ) {
                    Ok(found) => out.extend(found),
                    Err(e) => return failed(e),
                }
            }
            Outcome::Messages(out)
        }
        Op::Latest { session } => latest_id(tx, session, cache)
            .map(Outcome::LatestId)
            .unwrap_or_else(failed),
        Op::ReadAck {
            user,
            session,
            msg_id,
        } => tx
            .prepare_cached(
                "UPDATE user_sessions SET read_id = max(read_id, ?3) WHERE user = ?1 AND sess = ?2",
            )
            .and_then(|mut st| st.execute(params![user, session.to_i64(), msg_id]))
            .map(|_| Outcome::Done)
            .unwrap_or_else(failed),
        Op::Sessions {
            user,
            since,
            unread_only,
        } => sessions(tx, user, since, unread_only)
            .map(Outcome::Sessions)
            .unwrap_or_else(failed),
        Op::RemoveSession { user, session } => tx
            .prepare_cached(
                "UPDATE user_sessions SET removed_time = ?3,
                     removed_at = (SELECT coalesce(max(msg_id), 0) FROM messages WHERE sess = ?2)
                 WHERE user = ?1 AND sess = ?2",
            )
            .and_then(|mut st| {
                st.execute(params![user, session.to_i64(), super::super::unix_now()])
            })
            .map(|_| Outcome::Done)
            .unwrap_or_else(failed),
        Op::CreateGroup(g) => create_group(tx, g)
            .map(Outcome::GroupCreated)
            .unwrap_or_else(failed),
        Op::SetMembers {
            group,
            members,
            version,
        } => set_members(tx, group, &members, version)
            .map(|_| Outcome::Done)
            .unwrap_or_else(failed),
    }
}

fn latest_id(tx: &Transaction<'_>, session: SessionKey, cache: &Cache) -> rusqlite::Result<u32> {
    if let Some(id) = cache
        .staged
        .get(&session)
        .or_else(|| cache.last_id.get(&session))
    {
        return Ok(*id);
    }
    tx.prepare_cached("SELECT coalesce(max(msg_id), 0) FROM messages WHERE sess = ?1")?
        .query_row(params![session.to_i64()], |r| r.get(0))
}

fn append(
    tx: &Transaction<'_>,
    mut m: NewMessage,
    cache: &mut Cache,
    bounds: &Bounds,
) -> rusqlite::Result<Outcome> {
    let id = latest_id(tx, m.session, cache)? + 1;
    let stored = m.take_stored(id);
    let size = stored.size();
    let receivers = match cache
        .usage
        .admit_message(bounds, m.session, &m.receivers, size)
    {
        Ok(r) => r,
        Err(r) => return Ok(Outcome::Refused(r)),
    };
    let sess = m.session.to_i64();
    let kind = m.session.session_type() as i32;
    // A failure half way poisons the batch (rolled back, nobody acked), so
    // no savepoint per message is needed.
    tx.prepare_cached(
        "INSERT INTO messages (sess, msg_id, sender, receiver, msg_type, data, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        sess,
        id,
        stored.from,
        m.session.id_for(stored.from),
        stored.msg_type,
        stored.data,
        stored.create_time
    ])?;
    let row = tx.last_insert_rowid();
    let mut inbox = tx.prepare_cached(
        "INSERT INTO inbox (pos, user, sess, msg_id, msg, bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut mailbox = Vec::with_capacity(receivers.len());
    for &r in &receivers {
        let pos = cache.last_pos + 1;
        inbox.execute(params![pos as i64, r, sess, id, row, size as i64])?;
        cache.last_pos = pos;
        cache.usage.add(r, size);
        mailbox.push((r, pos));
    }
    // The session joins the lists of users who did not have it yet.
    let mut join = tx.prepare_cached(
        "INSERT OR IGNORE INTO user_sessions (user, sess, peer, kind, created)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for &u in m.receivers.iter().chain([&stored.from]) {
        if !cache.known.contains(&(u, sess)) {
            join.execute(params![
                u,
                sess,
                m.session.id_for(u),
                kind,
                stored.create_time
            ])?;
            if cache.known.len() >= KNOWN_MAX {
                cache.known.clear();
            }
            cache.known.insert((u, sess));
        }
    }
    cache.staged.insert(m.session, id);
    Ok(Outcome::Stored(stored, mailbox))
}

fn row_message(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredMessage> {
    Ok(StoredMessage {
        session: SessionKey::from_i64(r.get(0)?),
        msg_id: r.get(1)?,
        from: r.get(2)?,
        create_time: r.get(3)?,
        msg_type: r.get(4)?,
        data: r.get(5)?,
    })
}

fn messages(
    tx: &Transaction<'_>,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Vec<StoredMessage>> {
    let mut st = tx.prepare_cached(sql)?;
    let rows = st.query_map(params, row_message)?;
    rows.collect()
}

fn undelivered(
    tx: &Transaction<'_>,
    user: u32,
    after: u64,
    limit: usize,
) -> rusqlite::Result<Outcome> {
    let mut st = tx.prepare_cached(
        "SELECT m.sess, m.msg_id, m.sender, m.created, m.msg_type, m.data, i.pos
         FROM inbox i JOIN messages m ON m.id = i.msg
         WHERE i.user = ?1 AND i.pos > ?2 ORDER BY i.pos LIMIT ?3",
    )?;
    let rows = st.query_map(params![user, after as i64, limit as i64 + 1], |r| {
        Ok((r.get::<_, i64>(6)? as u64, row_message(r)?))
    })?;
    let mut items: Vec<(u64, StoredMessage)> = rows.collect::<rusqlite::Result<_>>()?;
    let complete = items.len() <= limit;
    items.truncate(limit);
    Ok(Outcome::Backlog { items, complete })
}

fn sessions(
    tx: &Transaction<'_>,
    user: u32,
    since: u32,
    unread_only: bool,
) -> rusqlite::Result<Vec<UserSession>> {
    let mut st = tx.prepare_cached(
        "SELECT s.sess, s.created, s.removed_at, s.removed_time,
                (SELECT count(*) FROM messages u
                 WHERE u.sess = s.sess AND u.msg_id > s.read_id AND u.sender != s.user),
                m.msg_id, m.sender, m.created, m.msg_type, m.data
         FROM user_sessions s
         LEFT JOIN messages m ON m.sess = s.sess
             AND m.msg_id = (SELECT max(msg_id) FROM messages WHERE sess = s.sess)
         WHERE s.user = ?1",
    )?;
    let rows = st.query_map(params![user], |r| {
        let session = SessionKey::from_i64(r.get(0)?);
        let latest = match r.get::<_, Option<u32>>(5)? {
            Some(msg_id) => Some(StoredMessage {
                session,
                msg_id,
                from: r.get(6)?,
                create_time: r.get(7)?,
                msg_type: r.get(8)?,
                data: r.get(9)?,
            }),
            None => None,
        };
        let (created, removed_at, removed_time): (u32, i64, u32) =
            (r.get(1)?, r.get(2)?, r.get(3)?);
        let latest_id = latest.as_ref().map_or(0, |m| i64::from(m.msg_id));
        let latest_time = latest.as_ref().map_or(created, |m| m.create_time);
        let removed = removed_at >= 0 && latest_id <= removed_at;
        Ok(UserSession {
            session,
            removed,
            updated: if removed {
                removed_time.max(latest_time)
            } else {
                latest_time
            },
            unread: r.get(4)?,
            latest,
        })
    })?;
    let mut list: Vec<UserSession> = rows
        .filter(|s| {
            s.as_ref().map_or(true, |s| {
                s.updated > since && (!unread_only || s.unread > 0)
            })
        })
        .collect::<rusqlite::Result<_>>()?;
    list.sort_by(|a, b| b.updated.cmp(&a.updated).then(a.session.cmp(&b.session)));
    Ok(list)
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
