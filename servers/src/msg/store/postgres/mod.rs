//! [`PostgresStore`]: messages in a PostgreSQL database shared by several
//! msg_servers, written by a thread of its own with group commit.
//!
//! Same model as [`super::sqlite`]: the loop sends operations over a
//! channel; the writer thread takes every queued operation (up to
//! `StoreBatchMax`), runs them in one transaction, commits, and only then
//! posts the outcomes back through [`Completions`]. It uses the synchronous
//! `postgres` crate: the thread blocks on the database, which is what a
//! writer thread is for, and the loop never sees a future or a second
//! runtime.
//!
//! What changes with several writers:
//!
//! - **Message ids.** Each session has a counter row
//!   (`session_counters`) bumped with `INSERT .. ON CONFLICT DO UPDATE ..
//!   RETURNING` inside the batch's transaction. The row stays locked until
//!   the commit, so two msg_servers writing one session at once get distinct
//!   ids, and ids commit in increasing order (the second waits for the
//!   first). Nothing is cached between batches: another server may have
//!   moved the counter.
//! - **Mailbox positions** are per user (`mailboxes.last_pos`, bumped the
//!   same way), so a feed reading "after pos" never skips a row committed
//!   late by another server. The same row keeps the user's undelivered count
//!   and bytes, which the per-user bounds are checked against.
//! - **Conflicts.** Batches of two servers can lock counters in opposite
//!   orders; PostgreSQL then aborts one (deadlock, or a serialization
//!   failure). The writer retries the whole batch (up to [`RETRIES`]
//!   times): nobody was answered yet, so a retry is invisible.
//! - **Losing the database.** A batch that cannot commit is refused (no
//!   sender is acked); the writer is dropped and a retry connects afresh
//!   ([`WriterThread`] handles that, and the store's health, for SQLite and
//!   PostgreSQL alike).
//! - **Bounds.** Per-user bounds read the user's row; the total bound reads
//!   the sum over all mailboxes once per batch, so several servers together
//!   may overshoot it by about one batch each.
//!
//! This file holds the connection, the schema and the writer thread's
//! batches; `ops.rs` the SQL of each operation.
//!
//! Schema: see [`MIGRATIONS`]; `schema_version` holds the version applied
//! (`msg_server migrate` applies what is missing; a server also does it at
//! start, under an advisory lock so two starting at once do not race).

mod groups;
mod ops;

use super::{Backend, Bounds, Completions, GroupCommit, Op, Outcome, WriterThread};
use ops::{exec, lock_in_order};
use postgres::types::ToSql;
use postgres::{Client, NoTls, Row, Statement, Transaction};
use std::collections::{HashMap, HashSet};

/// Schema versions in order: version n is `MIGRATIONS[n - 1]`.
pub const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE messages (
    sess     BIGINT  NOT NULL,
    msg_id   BIGINT  NOT NULL,
    sender   BIGINT  NOT NULL,
    receiver BIGINT  NOT NULL,
    msg_type INTEGER NOT NULL,
    data     BYTEA   NOT NULL,
    created  BIGINT  NOT NULL,
    PRIMARY KEY (sess, msg_id)
);
CREATE TABLE session_counters (
    sess    BIGINT PRIMARY KEY,
    last_id BIGINT NOT NULL
);
CREATE TABLE mailboxes (
    uid      BIGINT PRIMARY KEY,
    last_pos BIGINT NOT NULL,
    msgs     BIGINT NOT NULL,
    bytes    BIGINT NOT NULL
);
CREATE TABLE inbox (
    uid    BIGINT NOT NULL,
    pos    BIGINT NOT NULL,
    sess   BIGINT NOT NULL,
    msg_id BIGINT NOT NULL,
    bytes  BIGINT NOT NULL,
    PRIMARY KEY (uid, pos)
);
CREATE TABLE user_sessions (
    uid          BIGINT NOT NULL,
    sess         BIGINT NOT NULL,
    peer         BIGINT NOT NULL,
    kind         INTEGER NOT NULL,
    created      BIGINT NOT NULL,
    read_id      BIGINT NOT NULL DEFAULT 0,
    removed_at   BIGINT NOT NULL DEFAULT -1,
    removed_time BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (uid, sess)
);
CREATE TABLE groups (
    group_id BIGINT PRIMARY KEY,
    name     TEXT    NOT NULL,
    avatar   TEXT    NOT NULL,
    creator  BIGINT  NOT NULL,
    kind     INTEGER NOT NULL,
    version  BIGINT  NOT NULL
);
CREATE TABLE group_members (
    group_id BIGINT NOT NULL,
    uid      BIGINT NOT NULL,
    PRIMARY KEY (group_id, uid)
);
",
    "
CREATE TABLE group_shields (
    group_id BIGINT NOT NULL,
    uid      BIGINT NOT NULL,
    PRIMARY KEY (group_id, uid)
);
",
];

/// Times a batch is retried after a deadlock or serialization failure.
pub const RETRIES: usize = 20;

/// Advisory lock key taken while migrating.
const MIGRATE_LOCK: i64 = 0x6d73_675f_7363_6865;

/// PostgreSQL-backed store settings.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// libpq-style connection string or URL (`PostgresUrl`).
    pub url: String,
    /// Operations per transaction and time between commits
    /// (`StoreBatchMax`, `StoreCommitIntervalUs`).
    pub commit: GroupCommit,
    /// Mailbox bounds.
    pub bounds: Bounds,
}

/// Applies the migrations the database lacks; returns (version before,
/// version now). A database newer than this program is left alone and
/// comes back as before > now.
pub fn migrate(client: &mut Client) -> Result<(usize, usize), postgres::Error> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let before: Option<i32> = tx
        .query_opt("SELECT version FROM schema_version", &[])?
        .map(|r| r.get(0));
    let before = before.unwrap_or(0) as usize;
    if before > MIGRATIONS.len() {
        // Leave it alone; the caller reports it (before > now).
        tx.rollback()?;
        return Ok((before, MIGRATIONS.len()));
    }
    for sql in &MIGRATIONS[before..] {
        tx.batch_execute(sql)?;
    }
    let now = MIGRATIONS.len() as i32;
    tx.execute("DELETE FROM schema_version", &[])?;
    tx.execute("INSERT INTO schema_version (version) VALUES ($1)", &[&now])?;
    tx.commit()?;
    Ok((before, MIGRATIONS.len()))
}

/// Connects and migrates: the start of every use of the database.
pub fn connect(url: &str) -> Result<Client, String> {
    let mut client = Client::connect(url, NoTls).map_err(|e| format!("PostgresUrl: {e}"))?;
    match migrate(&mut client) {
        Ok((v, _)) if v > MIGRATIONS.len() => Err(format!(
            "schema version {v} is newer than this msg_server ({})",
            MIGRATIONS.len()
        )),
        Ok(_) => Ok(client),
        Err(e) => Err(format!("migration failed: {e}")),
    }
}

/// The PostgreSQL store: a [`WriterThread`] running this module's `Writer`.
pub struct PostgresStore;

impl PostgresStore {
    /// Connects, migrates the schema, loads the groups and starts the writer
    /// thread. Errors come back here, at startup.
    pub fn open(config: PostgresConfig, completions: Completions) -> Result<WriterThread, String> {
        let mut client = connect(&config.url)?;
        let groups = groups::load(&mut |sql, p| client.query(sql, p), None)
            .map_err(|e| format!("loading groups: {e}"))?;
        let commit = config.commit;
        let describe = describe(&config.url);
        let writer = Writer::new(client, config.clone());
        let reconnect = move || -> Result<Box<dyn Backend>, String> {
            let client = connect(&config.url)?;
            log::info!("store: connected to postgres");
            Ok(Box::new(Writer::new(client, config.clone())))
        };
        WriterThread::spawn(
            "msg-store-pg",
            describe,
            groups,
            commit,
            completions,
            Box::new(writer),
            Box::new(reconnect),
        )
    }
}

/// The connection string without its password, for logs.
fn describe(url: &str) -> String {
    let shown: Vec<&str> = url
        .split_whitespace()
        .filter(|kv| !kv.starts_with("password"))
        .collect();
    if url.contains("://") {
        // URL form: keep the part after the credentials.
        let host = url.rsplit('@').next().unwrap_or(url);
        return format!("postgres {host}");
    }
    format!("postgres {}", shown.join(" "))
}

/// The writer thread's state: one connection.
struct Writer {
    client: Client,
    config: PostgresConfig,
    /// (user, session) pairs known to be in `user_sessions`.
    known: HashSet<(u32, i64)>,
    /// Statements prepared on the connection.
    prepared: Prepared,
}

/// Statements prepared on a connection, by their text: one round trip per
/// query instead of two.
type Prepared = HashMap<&'static str, Statement>;

/// A transaction with the connection's prepared statements.
pub(super) struct Tx<'a, 'b> {
    tx: &'a mut Transaction<'b>,
    prepared: &'a mut Prepared,
}

impl Tx<'_, '_> {
    fn statement(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(st) = self.prepared.get(sql) {
            return Ok(st.clone());
        }
        let st = self.tx.prepare(sql)?;
        self.prepared.insert(sql, st.clone());
        Ok(st)
    }

    pub(super) fn query(
        &mut self,
        sql: &'static str,
        p: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        let st = self.statement(sql)?;
        self.tx.query(&st, p)
    }

    pub(super) fn query_opt(
        &mut self,
        sql: &'static str,
        p: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, postgres::Error> {
        let st = self.statement(sql)?;
        self.tx.query_opt(&st, p)
    }

    pub(super) fn query_one(
        &mut self,
        sql: &'static str,
        p: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, postgres::Error> {
        let st = self.statement(sql)?;
        self.tx.query_one(&st, p)
    }

    pub(super) fn execute(
        &mut self,
        sql: &'static str,
        p: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, postgres::Error> {
        let st = self.statement(sql)?;
        self.tx.execute(&st, p)
    }

    pub(super) fn batch_execute(&mut self, sql: &str) -> Result<(), postgres::Error> {
        self.tx.batch_execute(sql)
    }
}

/// Most entries of the cache of known user sessions.
pub(super) const KNOWN_MAX: usize = 1 << 20;

/// Whether PostgreSQL aborted the transaction for a conflict with another
/// one (a retry may succeed).
fn is_conflict(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    e.code().is_some_and(|c| {
        *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    })
}

impl Writer {
    fn new(client: Client, config: PostgresConfig) -> Writer {
        Writer {
            client,
            config,
            known: HashSet::new(),
            prepared: Prepared::new(),
        }
    }
}

impl Backend for Writer {
    /// Runs the batch in one transaction, again (up to [`RETRIES`] times)
    /// when it conflicted with another server's.
    fn run_batch(&mut self, ops: Vec<Op>) -> Result<Vec<Outcome>, String> {
        let bounds = self.config.bounds;
        let mut attempt = 0;
        loop {
            let mut added = Vec::new();
            let result = try_batch(
                &mut self.client,
                &mut self.prepared,
                &ops,
                &bounds,
                &mut self.known,
                &mut added,
            );
            let e = match result {
                Ok(outcomes) => return Ok(outcomes),
                Err(e) => e,
            };
            // The transaction rolled back: its sessions may not be in the
            // table.
            for k in added {
                self.known.remove(&k);
            }
            if !is_conflict(&e) || attempt == RETRIES {
                return Err(e.to_string());
            }
            attempt += 1;
            log::debug!("store: batch conflicted with another server, retried: {e}");
        }
    }
}

/// One batch in one transaction; any error rolls it all back.
fn try_batch(
    client: &mut Client,
    prepared: &mut Prepared,
    ops: &[Op],
    bounds: &Bounds,
    known: &mut HashSet<(u32, i64)>,
    added: &mut Vec<(u32, i64)>,
) -> Result<Vec<Outcome>, postgres::Error> {
    let mut tx = client.transaction()?;
    let mut t = Tx {
        tx: &mut tx,
        prepared,
    };
    lock_in_order(&mut t, ops)?;
    let mut total: Option<i64> = None;
    let mut outcomes = Vec::with_capacity(ops.len());
    for op in ops {
        outcomes.push(exec(&mut t, op.clone(), bounds, &mut total, known, added)?);
    }
    tx.commit()?;
    Ok(outcomes)
}

/// The database's mailbox usage, for tests and tools: (undelivered
/// messages, bytes).
pub fn mailbox_totals(url: &str) -> Result<(u64, u64), String> {
    let mut c = Client::connect(url, NoTls).map_err(|e| e.to_string())?;
    let r = c
        .query_one(
            "SELECT count(*), coalesce(sum(bytes), 0)::BIGINT FROM inbox",
            &[],
        )
        .map_err(|e| e.to_string())?;
    Ok((r.get::<_, i64>(0) as u64, r.get::<_, i64>(1) as u64))
}
