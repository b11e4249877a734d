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
//!   sender is acked) and the next batch reconnects.
//! - **Bounds.** Per-user bounds read the user's row; the total bound reads
//!   the sum over all mailboxes once per batch, so several servers together
//!   may overshoot it by about one batch each.
//!
//! Schema: see [`MIGRATIONS`]; `schema_version` holds the version applied
//! (`msg_server migrate` applies what is missing; a server also does it at
//! start, under an advisory lock so two starting at once do not race).

use super::{
    Bounds, Completions, Done, GroupRecord, Job, NewMessage, Op, Outcome, Refusal, SessionKey,
    StoredMessage, Usage, UserSession, WriterThread,
};
use postgres::types::ToSql;
use postgres::{Client, NoTls, Row, Statement, Transaction};
use std::collections::{HashMap, HashSet};

/// Schema versions in order: version n is `MIGRATIONS[n - 1]`.
pub const MIGRATIONS: &[&str] = &["
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
"];

/// Times a batch is retried after a deadlock or serialization failure.
pub const RETRIES: usize = 20;

/// Advisory lock key taken while migrating.
const MIGRATE_LOCK: i64 = 0x6d73_675f_7363_6865;

/// PostgreSQL-backed store settings.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// libpq-style connection string or URL (`PostgresUrl`).
    pub url: String,
    /// Most operations per transaction (`StoreBatchMax`).
    pub batch_max: usize,
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

/// The PostgreSQL store: a [`WriterThread`] running a [`Writer`].
pub struct PostgresStore;

impl PostgresStore {
    /// Connects, migrates the schema, loads the groups and starts the writer
    /// thread. Errors come back here, at startup.
    pub fn open(config: PostgresConfig, completions: Completions) -> Result<WriterThread, String> {
        let mut client = connect(&config.url)?;
        let groups = load_groups(&mut client).map_err(|e| format!("loading groups: {e}"))?;
        let batch_max = config.batch_max;
        let describe = describe(&config.url);
        let mut writer = Writer {
            client: Some(client),
            config,
            known: HashSet::new(),
            prepared: Prepared::new(),
        };
        WriterThread::spawn(
            "msg-store-pg",
            describe,
            groups,
            batch_max,
            completions,
            move |batch| writer.run_batch(batch),
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

fn load_groups(client: &mut Client) -> Result<Vec<GroupRecord>, postgres::Error> {
    let mut groups = Vec::new();
    for r in client.query(
        "SELECT group_id, name, avatar, creator, kind, version FROM groups ORDER BY group_id",
        &[],
    )? {
        groups.push(GroupRecord {
            id: u32_of(&r, 0),
            name: r.get(1),
            avatar: r.get(2),
            creator: u32_of(&r, 3),
            kind: r.get(4),
            version: u32_of(&r, 5),
            members: Vec::new(),
        });
    }
    for g in &mut groups {
        g.members = client
            .query(
                "SELECT uid FROM group_members WHERE group_id = $1 ORDER BY uid",
                &[&i64::from(g.id)],
            )?
            .iter()
            .map(|r| u32_of(r, 0))
            .collect();
    }
    Ok(groups)
}

fn u32_of(r: &Row, i: usize) -> u32 {
    r.get::<_, i64>(i) as u32
}

/// The writer thread's state.
struct Writer {
    /// None after the connection broke: the next batch reconnects.
    client: Option<Client>,
    config: PostgresConfig,
    /// (user, session) pairs known to be in `user_sessions`.
    known: HashSet<(u32, i64)>,
    /// Statements prepared on the current connection.
    prepared: Prepared,
}

/// Statements prepared on a connection, by their text: one round trip per
/// query instead of two.
type Prepared = HashMap<&'static str, Statement>;

/// A transaction with the connection's prepared statements.
struct Tx<'a, 'b> {
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

    fn query(
        &mut self,
        sql: &'static str,
        p: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        let st = self.statement(sql)?;
        self.tx.query(&st, p)
    }

    fn query_opt(
        &mut self,
        sql: &'static str,
        p: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, postgres::Error> {
        let st = self.statement(sql)?;
        self.tx.query_opt(&st, p)
    }

    fn query_one(
        &mut self,
        sql: &'static str,
        p: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, postgres::Error> {
        let st = self.statement(sql)?;
        self.tx.query_one(&st, p)
    }

    fn execute(
        &mut self,
        sql: &'static str,
        p: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, postgres::Error> {
        let st = self.statement(sql)?;
        self.tx.execute(&st, p)
    }

    fn batch_execute(&mut self, sql: &str) -> Result<(), postgres::Error> {
        self.tx.batch_execute(sql)
    }
}

/// Most entries of the cache of known user sessions.
const KNOWN_MAX: usize = 1 << 20;

/// Whether PostgreSQL aborted the transaction for a conflict with another
/// one (a retry may succeed).
fn is_conflict(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    e.code().is_some_and(|c| {
        *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    })
}

impl Writer {
    fn run_batch(&mut self, batch: &mut Vec<Job>) -> Vec<(Done, Outcome)> {
        let ops: Vec<Op> = batch.iter().map(|(op, _)| op.clone()).collect();
        let dones: Vec<Option<Done>> = batch.drain(..).map(|(_, d)| d).collect();
        let outcomes = self.commit_with_retries(&ops).unwrap_or_else(|e| {
            log::error!(
                "store: commit of {} operations failed: {e}; writes refused",
                ops.len()
            );
            ops.iter()
                .map(|op| match op {
                    Op::Append(_) => Outcome::Refused(Refusal::Failed(e.clone())),
                    _ => Outcome::Failed(e.clone()),
                })
                .collect()
        });
        dones
            .into_iter()
            .zip(outcomes)
            .filter_map(|(done, outcome)| done.map(|d| (d, outcome)))
            .collect()
    }

    fn commit_with_retries(&mut self, ops: &[Op]) -> Result<Vec<Outcome>, String> {
        let mut last = String::new();
        for attempt in 0..=RETRIES {
            if self.client.as_ref().is_none_or(Client::is_closed) {
                match connect(&self.config.url) {
                    Ok(c) => {
                        log::info!("store: connected to postgres");
                        self.client = Some(c);
                        self.prepared.clear();
                    }
                    Err(e) => {
                        self.client = None;
                        return Err(e);
                    }
                }
            }
            let client = self.client.as_mut().expect("connected above");
            let bounds = self.config.bounds;
            let known = &mut self.known;
            let mut added = Vec::new();
            match try_batch(client, &mut self.prepared, ops, &bounds, known, &mut added) {
                Ok(outcomes) => return Ok(outcomes),
                Err(e) => {
                    // The transaction rolled back: its sessions may not be
                    // in the table.
                    for k in added {
                        known.remove(&k);
                    }
                    if is_conflict(&e) && attempt < RETRIES {
                        log::debug!("store: batch conflicted with another server, retried: {e}");
                        last = e.to_string();
                        continue;
                    }
                    if client.is_closed() {
                        self.client = None;
                    }
                    return Err(e.to_string());
                }
            }
        }
        Err(last)
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

/// Locks every counter row the batch will update - sessions, then
/// mailboxes, each in ascending order - before touching any: two servers'
/// batches then wait for each other instead of deadlocking (PostgreSQL
/// would find the cycle only after `deadlock_timeout`, a second).
fn lock_in_order(t: &mut Tx<'_, '_>, ops: &[Op]) -> Result<(), postgres::Error> {
    let mut sessions = std::collections::BTreeSet::new();
    let mut users = std::collections::BTreeSet::new();
    for op in ops {
        match op {
            Op::Append(m) => {
                sessions.insert(m.session.to_i64());
                users.extend(m.receivers.iter().map(|&r| i64::from(r)));
            }
            Op::Delivered { user, .. } => {
                users.insert(i64::from(*user));
            }
            _ => {}
        }
    }
    if !sessions.is_empty() {
        let sessions: Vec<i64> = sessions.into_iter().collect();
        t.execute(
            "INSERT INTO session_counters (sess, last_id) SELECT unnest($1::BIGINT[]), 0
             ON CONFLICT DO NOTHING",
            &[&sessions],
        )?;
        t.query(
            "SELECT sess FROM session_counters WHERE sess = ANY($1) ORDER BY sess FOR UPDATE",
            &[&sessions],
        )?;
    }
    if !users.is_empty() {
        let users: Vec<i64> = users.into_iter().collect();
        t.execute(
            "INSERT INTO mailboxes (uid, last_pos, msgs, bytes) SELECT unnest($1::BIGINT[]), 0, 0, 0
             ON CONFLICT DO NOTHING",
            &[&users],
        )?;
        t.query(
            "SELECT uid FROM mailboxes WHERE uid = ANY($1) ORDER BY uid FOR UPDATE",
            &[&users],
        )?;
    }
    Ok(())
}

/// Runs one operation inside the batch's transaction.
fn exec(
    tx: &mut Tx<'_, '_>,
    op: Op,
    bounds: &Bounds,
    total: &mut Option<i64>,
    known: &mut HashSet<(u32, i64)>,
    added: &mut Vec<(u32, i64)>,
) -> Result<Outcome, postgres::Error> {
    Ok(match op {
        Op::Append(m) => append(tx, m, bounds, total, known, added)?,
        Op::Delivered { user, pos } => {
            let uid = i64::from(user);
            if let Some(r) = tx.query_opt(
                "DELETE FROM inbox WHERE uid = $1 AND pos = $2 RETURNING bytes",
                &[&uid, &(pos as i64)],
            )? {
                let bytes: i64 = r.get(0);
                tx.execute(
                    "UPDATE mailboxes SET msgs = msgs - 1, bytes = bytes - $2 WHERE uid = $1",
                    &[&uid, &bytes],
                )?;
                if let Some(t) = total {
                    *t -= bytes;
                }
            }
            Outcome::Done
        }
        Op::Undelivered { user, after, limit } => {
            let rows = tx.query(
                "SELECT m.sess, m.msg_id, m.sender, m.created, m.msg_type, m.data, i.pos
                 FROM inbox i JOIN messages m ON m.sess = i.sess AND m.msg_id = i.msg_id
                 WHERE i.uid = $1 AND i.pos > $2 ORDER BY i.pos LIMIT $3",
                &[&i64::from(user), &(after as i64), &(limit as i64 + 1)],
            )?;
            let mut items: Vec<(u64, StoredMessage)> = rows
                .iter()
                .map(|r| (r.get::<_, i64>(6) as u64, row_message(r)))
                .collect();
            let complete = items.len() <= limit;
            items.truncate(limit);
            Outcome::Backlog { items, complete }
        }
        Op::History {
            session,
            until,
            count,
        } => {
            let rows = tx.query(
                "SELECT sess, msg_id, sender, created, msg_type, data FROM messages
                 WHERE sess = $1 AND msg_id <= $2 ORDER BY msg_id DESC LIMIT $3",
                &[&session.to_i64(), &i64::from(until), &i64::from(count)],
            )?;
            Outcome::Messages(rows.iter().map(row_message).collect())
        }
        Op::ById { session, ids } => {
            let ids: Vec<i64> = ids.into_iter().map(i64::from).collect();
            let rows = tx.query(
                "SELECT sess, msg_id, sender, created, msg_type, data FROM messages
                 WHERE sess = $1 AND msg_id = ANY($2) ORDER BY array_position($2, msg_id)",
                &[&session.to_i64(), &ids],
            )?;
            Outcome::Messages(rows.iter().map(row_message).collect())
        }
        Op::Latest { session } => Outcome::LatestId(latest_id(tx, session)?),
        Op::ReadAck {
            user,
            session,
            msg_id,
        } => {
            tx.execute(
                "UPDATE user_sessions SET read_id = GREATEST(read_id, $3)
                 WHERE uid = $1 AND sess = $2",
                &[&i64::from(user), &session.to_i64(), &i64::from(msg_id)],
            )?;
            Outcome::Done
        }
        Op::Sessions {
            user,
            since,
            unread_only,
        } => Outcome::Sessions(sessions(tx, user, since, unread_only)?),
        Op::RemoveSession { user, session } => {
            tx.execute(
                "UPDATE user_sessions SET removed_time = $3,
                     removed_at = (SELECT coalesce(max(msg_id), 0) FROM messages WHERE sess = $2)
                 WHERE uid = $1 AND sess = $2",
                &[
                    &i64::from(user),
                    &session.to_i64(),
                    &i64::from(super::super::unix_now()),
                ],
            )?;
            Outcome::Done
        }
        Op::CreateGroup(g) => Outcome::GroupCreated(create_group(tx, g)?),
        Op::SetMembers {
            group,
            members,
            version,
        } => {
            set_members(tx, group, &members, version)?;
            Outcome::Done
        }
    })
}

fn latest_id(tx: &mut Tx<'_, '_>, session: SessionKey) -> Result<u32, postgres::Error> {
    Ok(tx
        .query_opt(
            "SELECT last_id FROM session_counters WHERE sess = $1",
            &[&session.to_i64()],
        )?
        .map_or(0, |r| u32_of(&r, 0)))
}

fn append(
    tx: &mut Tx<'_, '_>,
    mut m: NewMessage,
    bounds: &Bounds,
    total: &mut Option<i64>,
    known: &mut HashSet<(u32, i64)>,
    added: &mut Vec<(u32, i64)>,
) -> Result<Outcome, postgres::Error> {
    let sess = m.session.to_i64();
    // Admission first: a refused message must not use an id.
    let size = m.data.len() + 32;
    let receivers: Vec<i64> = m.receivers.iter().map(|&r| i64::from(r)).collect();
    let total_now = match *total {
        Some(t) => t,
        None => {
            let t: i64 = tx
                .query_one("SELECT coalesce(sum(bytes), 0)::BIGINT FROM mailboxes", &[])?
                .get(0);
            *total = Some(t);
            t
        }
    };
    let rows = tx.query(
        "SELECT uid, msgs, bytes FROM mailboxes WHERE uid = ANY($1)",
        &[&receivers],
    )?;
    let usage = Usage::from_counts(
        rows.iter().map(|r| {
            (
                u32_of(r, 0),
                r.get::<_, i64>(1) as usize,
                r.get::<_, i64>(2) as usize,
            )
        }),
        total_now.max(0) as usize,
    );
    let admitted = match usage.admit_message(bounds, m.session, &m.receivers, size) {
        Ok(r) => r,
        Err(r) => return Ok(Outcome::Refused(r)),
    };
    let id: i64 = tx
        .query_one(
            "INSERT INTO session_counters (sess, last_id) VALUES ($1, 1)
             ON CONFLICT (sess) DO UPDATE SET last_id = session_counters.last_id + 1
             RETURNING last_id",
            &[&sess],
        )?
        .get(0);
    let stored = m.take_stored(id as u32);
    tx.execute(
        "INSERT INTO messages (sess, msg_id, sender, receiver, msg_type, data, created)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &sess,
            &id,
            &i64::from(stored.from),
            &i64::from(m.session.id_for(stored.from)),
            &stored.msg_type,
            &stored.data,
            &i64::from(stored.create_time),
        ],
    )?;
    let mut mailbox = Vec::with_capacity(admitted.len());
    for &r in &admitted {
        let uid = i64::from(r);
        let pos: i64 = tx
            .query_one(
                "INSERT INTO mailboxes (uid, last_pos, msgs, bytes) VALUES ($1, 1, 1, $2)
                 ON CONFLICT (uid) DO UPDATE SET last_pos = mailboxes.last_pos + 1,
                     msgs = mailboxes.msgs + 1, bytes = mailboxes.bytes + $2
                 RETURNING last_pos",
                &[&uid, &(size as i64)],
            )?
            .get(0);
        tx.execute(
            "INSERT INTO inbox (uid, pos, sess, msg_id, bytes) VALUES ($1, $2, $3, $4, $5)",
            &[&uid, &pos, &sess, &id, &(size as i64)],
        )?;
        if let Some(t) = total {
            *t += size as i64;
        }
        mailbox.push((r, pos as u64));
    }
    // The session joins the lists of users who did not have it yet.
    let kind = m.session.session_type() as i32;
    for &u in m.receivers.iter().chain([&stored.from]) {
        if known.contains(&(u, sess)) {
            continue;
        }
        tx.execute(
            "INSERT INTO user_sessions (uid, sess, peer, kind, created)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            &[
                &i64::from(u),
                &sess,
                &i64::from(m.session.id_for(u)),
                &kind,
                &i64::from(stored.create_time),
            ],
        )?;
        if known.len() >= KNOWN_MAX {
            known.clear();
        }
        known.insert((u, sess));
        added.push((u, sess));
    }
    Ok(Outcome::Stored(stored, mailbox))
}

fn row_message(r: &Row) -> StoredMessage {
    StoredMessage {
        session: SessionKey::from_i64(r.get(0)),
        msg_id: u32_of(r, 1),
        from: u32_of(r, 2),
        create_time: u32_of(r, 3),
        msg_type: r.get(4),
        data: r.get(5),
    }
}

fn sessions(
    tx: &mut Tx<'_, '_>,
    user: u32,
    since: u32,
    unread_only: bool,
) -> Result<Vec<UserSession>, postgres::Error> {
    let rows = tx.query(
        "SELECT s.sess, s.created, s.removed_at, s.removed_time,
                (SELECT count(*) FROM messages u
                 WHERE u.sess = s.sess AND u.msg_id > s.read_id AND u.sender != s.uid),
                m.msg_id, m.sender, m.created, m.msg_type, m.data
         FROM user_sessions s
         LEFT JOIN session_counters c ON c.sess = s.sess
         LEFT JOIN messages m ON m.sess = s.sess AND m.msg_id = c.last_id
         WHERE s.uid = $1",
        &[&i64::from(user)],
    )?;
    let mut list: Vec<UserSession> = rows
        .iter()
        .map(|r| {
            let session = SessionKey::from_i64(r.get(0));
            let latest = r.get::<_, Option<i64>>(5).map(|msg_id| StoredMessage {
                session,
                msg_id: msg_id as u32,
                from: u32_of(r, 6),
                create_time: u32_of(r, 7),
                msg_type: r.get(8),
                data: r.get(9),
            });
            let (created, removed_at, removed_time) =
                (u32_of(r, 1), r.get::<_, i64>(2), u32_of(r, 3));
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
                unread: r.get::<_, i64>(4) as u32,
                latest,
            }
        })
        .filter(|s| s.updated > since && (!unread_only || s.unread > 0))
        .collect();
    list.sort_by(|a, b| b.updated.cmp(&a.updated).then(a.session.cmp(&b.session)));
    Ok(list)
}

fn create_group(tx: &mut Tx<'_, '_>, g: GroupRecord) -> Result<u32, postgres::Error> {
    // New ids are max + 1: rare, so the table lock serializing creations
    // across servers costs nothing.
    tx.batch_execute("LOCK TABLE groups IN SHARE ROW EXCLUSIVE MODE")?;
    let id: i64 = if g.id != 0 {
        i64::from(g.id)
    } else {
        tx.query_one("SELECT coalesce(max(group_id), 0) + 1 FROM groups", &[])?
            .get(0)
    };
    let inserted = tx.execute(
        "INSERT INTO groups (group_id, name, avatar, creator, kind, version)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        &[
            &id,
            &g.name,
            &g.avatar,
            &i64::from(g.creator),
            &g.kind,
            &i64::from(g.version),
        ],
    )?;
    if inserted == 1 {
        set_members(tx, id as u32, &g.members, g.version)?;
    }
    Ok(id as u32)
}

fn set_members(
    tx: &mut Tx<'_, '_>,
    group: u32,
    members: &[u32],
    version: u32,
) -> Result<(), postgres::Error> {
    let gid = i64::from(group);
    tx.execute("DELETE FROM group_members WHERE group_id = $1", &[&gid])?;
    let members: Vec<i64> = members.iter().map(|&m| i64::from(m)).collect();
    tx.execute(
        "INSERT INTO group_members (group_id, uid) SELECT $1, unnest($2::BIGINT[])",
        &[&gid, &members],
    )?;
    tx.execute(
        "UPDATE groups SET version = $2 WHERE group_id = $1",
        &[&gid, &i64::from(version)],
    )?;
    Ok(())
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
