//! Write-behind of the rows a message implies besides itself: its entry in
//! the session index (`message_index`), its mailbox rows (`inbox`) and the
//! session rows of users who did not have its session yet
//! (`user_sessions`).
//!
//! **Why.** Committing a message used to write five rows: the message, its
//! index entry (on a random page: sessions are random), a mailbox row (deleted again when the receiver acks, a
//! few milliseconds later) and two session rows, which for a new pair of
//! users land on two random pages of `user_sessions`. Each random page is a
//! 4 KiB frame in the WAL at every commit; the mailbox row costs an insert
//! and a delete for a message that, online, is gone before anyone could
//! read the row. Only the message row is needed to keep what was
//! acknowledged: the other rows follow from it.
//!
//! **How.** A message commits with its row alone, and the sender is acked
//! after that commit as before. What else it implies waits here, in the
//! writer's memory. Once the oldest message waiting is `StoreDeferMs` old,
//! the rows of every message older than half of that are taken off the
//! queue as one [`Pass`] and written over the next commits, a slice of it
//! per commit ([`flush`]; a waiting message is taken between half of
//! `StoreDeferMs` and all of it after its commit):
//!
//! - index rows and session rows still owed are written sorted (by session
//!   and id, by user and session), and there are seconds' worth of them
//!   by default, so many messages share each page written: each page
//!   of the index is written once per pass, not once per message
//!   ([`due_before`] has the measurements); a commit carries a slice of
//!   them, so no batch of acks waits for the whole pass;
//! - with the last slice, the mailbox rows of deliveries still not acked
//!   (a mailbox position acked meanwhile never gets a row), and
//!   `meta.written_upto` moves to the pass's last message, in the same
//!   transaction.
//!
//! Index and session rows are written at once before any operation that
//! reads or updates them (history, messages by id, a read ack, a session
//! list, a removal), so nobody sees a session without its newest messages.
//! The newest id of each session, which the next message needs, is in the
//! writer's cache for every session with an index row owed.
//!
//! **After a crash** (`kill -9`, power cut), every message after
//! `written_upto` is taken as undelivered to all its receivers (the peer,
//! or the group's members but the sender) and its index and session rows
//! are written with `INSERT OR IGNORE` ([`recover`], when the file is
//! opened).
//! Nothing acknowledged to a sender is lost; a delivery a receiver acked
//! within the last `StoreDeferMs` before the crash is delivered again,
//! with the same session and msg_id (TeamTalk's delivery is at least once
//! anyway: an ack in flight at a crash has the same effect). A graceful
//! stop writes everything ([`flush`] with no deadline) and delivers
//! nothing twice.

use super::{Cache, Entry};
use crate::msg::store::{SessionKey, StoredMessage};
use rusqlite::{params, Connection, Transaction};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Most messages waiting for their rows, whatever their age: past it the
/// oldest are written at the next commit (~100 bytes each).
const DEFERRED_MAX: usize = 1 << 17;

/// The `meta` key of the watermark: every message with `id <=` it has its
/// mailbox and session rows written.
pub(super) const WRITTEN_UPTO: &str = "written_upto";

/// The rows one committed message still owes.
pub(super) struct Deferred {
    /// The message's row id.
    pub row: i64,
    /// When it was committed (its batch).
    pub at: Instant,
    /// Its session.
    pub session: SessionKey,
    /// Its id in the session.
    pub msg_id: u32,
    /// Its creation time (a new session row's `created`).
    pub created: u32,
    /// Bytes it counts in each mailbox.
    pub bytes: u32,
    /// Its mailbox positions: (receiver, position).
    pub mailbox: Vec<(u32, u64)>,
    /// Users whose session row it owes (emptied once written).
    pub joins: Vec<u32>,
    /// Its sender (its `message_index` row's).
    pub sender: u32,
    /// Its `message_index` row is still owed.
    pub unindexed: bool,
}

/// The messages whose rows are not written yet, oldest first.
#[derive(Default)]
pub(super) struct Queue {
    items: VecDeque<Deferred>,
    /// The rows of the messages taken off `items` by the last flush, while
    /// they are being written.
    pass: Option<Pass>,
}

impl Queue {
    /// A committed message's rows, to be written later.
    pub fn push(&mut self, d: Deferred) {
        self.items.push_back(d);
    }

    /// Whether no message owes a row.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.pass.is_none()
    }

    /// When the oldest message waiting was committed.
    pub fn oldest(&self) -> Option<Instant> {
        self.items.front().map(|d| d.at)
    }

    /// When a batch is wanted to write rows, even if no operation comes:
    /// now while a pass is under way, else when the oldest message waiting
    /// is `defer` old.
    pub fn wake_at(&self, defer: Duration) -> Option<Instant> {
        if self.pass.is_some() {
            return Some(Instant::now());
        }
        self.oldest().map(|at| at + defer)
    }
}

/// The messages a [`flush`] takes into a [`Pass`] (see [`due_before`]).
struct Due {
    /// Those committed at or before this instant, if any...
    before: Option<Instant>,
    /// ...and the oldest others while more than this many wait.
    keep: usize,
}

impl Due {
    /// Whether `d`, the oldest of `waiting` messages, is written.
    fn covers(&self, d: &Deferred, waiting: usize) -> bool {
        self.before.is_some_and(|b| d.at <= b) || waiting > self.keep
    }
}

/// Which messages [`flush`] takes into a [`Pass`]: none until the oldest is
/// `defer` old (or more than [`DEFERRED_MAX`] wait); then every message
/// committed before `now - defer / 2`, and the oldest until at most half of
/// [`DEFERRED_MAX`] wait. `None`: all of them.
///
/// Writing half a `defer`'s messages in one pass, rather than at each
/// commit the few that just came due, is what makes the sorting pay: a
/// commit's worth of random sessions and users touches one page per row,
/// half a second's worth touches each page of the tables once
/// (`bench im_store` at 1000 users, `StoreDeferMs`=1000: 4 KiB written
/// and 18 µs of CPU per message before, 1 KiB and 9 µs after).
fn due_before(queue: &Queue, now: Instant, defer: Option<Duration>) -> Option<Due> {
    let Some(defer) = defer else {
        return Some(Due {
            before: Some(now),
            keep: 0,
        });
    };
    let oldest = queue.oldest()?;
    let len = queue.items.len();
    if len <= DEFERRED_MAX && now.saturating_duration_since(oldest) < defer {
        return None;
    }
    Some(Due {
        before: now.checked_sub(defer / 2),
        keep: DEFERRED_MAX / 2,
    })
}

/// A message's `message_index` row: (session, msg_id, message row, sender).
type IndexRow = (i64, u32, i64, u32);

/// A `user_sessions` row owed: (user, session, created).
type JoinRow = (u32, SessionKey, u32);

/// An `inbox` row owed: (user, position, session, msg_id, message row,
/// bytes).
type MailboxRow = (u32, u64, i64, u32, i64, u32);

/// Fewest index and session rows a [`Pass`] writes per commit.
const PASS_STEP_MIN: usize = 1024;

/// Most commits a [`Pass`] is spread over.
const PASS_STEPS_MAX: usize = 32;

/// The rows of the messages one flush took off the queue, sorted, written
/// a step per commit.
///
/// Seconds of messages' rows written in one commit would hold every ack of
/// that commit's batch for as long (at 10,000 users and 10,000 msg/s, 100
/// to 180 ms every 2.5 s: the p99 latency). Sorted once and written in
/// slices of the key order, each slice still touches its pages once, and a
/// commit carries at most [`PASS_STEP_MIN`] rows or 1/[`PASS_STEPS_MAX`] of
/// the pass. Mailbox rows (appends, few: most deliveries are acked by
/// then) and the watermark come with the last step, so the watermark
/// still says "every row of every message up to here is written", and no
/// message after it has a mailbox row (what [`recover`] counts on).
pub(super) struct Pass {
    /// Index rows not written yet, sorted.
    index: std::vec::IntoIter<IndexRow>,
    /// Session rows not written yet, sorted by user and session.
    joins: std::vec::IntoIter<JoinRow>,
    /// Mailbox rows to write at the end, unless acked meanwhile.
    mailbox: Vec<MailboxRow>,
    /// The last message of the pass: the watermark once it is written.
    upto: i64,
    /// Index and session rows per commit.
    step: usize,
}

impl Pass {
    /// Takes the messages `due` covers off `cache`'s queue.
    fn take(cache: &mut Cache, due: &Due) -> Pass {
        let (mut index, mut joins, mut mailbox) = (Vec::new(), Vec::new(), Vec::new());
        let mut upto = 0;
        while let Some(d) = cache.deferred.items.front() {
            if !due.covers(d, cache.deferred.items.len()) {
                break;
            }
            let d = cache.deferred.items.pop_front().expect("front exists");
            let sess = d.session.to_i64();
            for &(user, pos) in &d.mailbox {
                let entry = cache.mailboxes.get(&user).and_then(|m| m.get(&pos));
                if entry.is_some_and(|e| !e.written) {
                    mailbox.push((user, pos, sess, d.msg_id, d.row, d.bytes));
                }
            }
            joins.extend(d.joins.iter().map(|&u| (u, d.session, d.created)));
            if d.unindexed {
                index.push((sess, d.msg_id, d.row, d.sender));
            }
            upto = d.row;
        }
        let (index, joins) = (sorted_index(index), sorted_joins(joins));
        let rows = index.len() + joins.len();
        Pass {
            index: index.into_iter(),
            joins: joins.into_iter(),
            mailbox,
            upto,
            step: PASS_STEP_MIN.max(rows.div_ceil(PASS_STEPS_MAX)),
        }
    }

    /// Writes the next step (`all`: every row left); true when the pass is
    /// done: its mailbox rows and the watermark are written too.
    fn write_step(
        &mut self,
        tx: &Transaction<'_>,
        cache: &mut Cache,
        all: bool,
    ) -> rusqlite::Result<bool> {
        let n = if all { usize::MAX } else { self.step };
        let from_index = n.min(self.index.len());
        insert_index_rows(tx, self.index.by_ref().take(from_index))?;
        insert_session_rows(tx, self.joins.by_ref().take(n - from_index))?;
        if self.index.len() + self.joins.len() > 0 {
            return Ok(false);
        }
        let mut inbox = tx.prepare_cached(
            "INSERT INTO inbox (pos, user, sess, msg_id, msg, bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for (user, pos, sess, msg_id, row, bytes) in self.mailbox.drain(..) {
            // Acked while the pass ran: no row.
            let entry = cache.mailboxes.get_mut(&user).and_then(|m| m.get_mut(&pos));
            if let Some(entry) = entry.filter(|e| !e.written) {
                entry.written = true;
                inbox.execute(params![pos as i64, user, sess, msg_id, row, bytes])?;
            }
        }
        tx.prepare_cached("UPDATE meta SET value = ?2 WHERE key = ?1")?
            .execute(params![WRITTEN_UPTO, self.upto])?;
        Ok(true)
    }
}

/// Writes the next step of the rows owed, in the batch's transaction: of
/// the pass under way, or of a new one once [`due_before`] names messages.
/// `defer` `None` (a graceful stop, recovery): every row owed, now.
pub(super) fn flush(
    tx: &Transaction<'_>,
    cache: &mut Cache,
    now: Instant,
    defer: Option<Duration>,
) -> rusqlite::Result<()> {
    loop {
        let mut pass = match cache.deferred.pass.take() {
            Some(pass) => pass,
            None if cache.deferred.items.is_empty() => return Ok(()),
            None => match due_before(&cache.deferred, now, defer) {
                Some(due) => Pass::take(cache, &due),
                None => return Ok(()),
            },
        };
        let all = defer.is_none();
        if !pass.write_step(tx, cache, all)? {
            cache.deferred.pass = Some(pass);
            return Ok(());
        }
        if !all {
            return Ok(());
        }
    }
}

/// Writes every session row still owed, so that the operation after it
/// reads or updates a complete `user_sessions`.
pub(super) fn write_joins(tx: &Transaction<'_>, cache: &mut Cache) -> rusqlite::Result<()> {
    let mut joins: Vec<JoinRow> = match &mut cache.deferred.pass {
        Some(pass) => pass.joins.by_ref().collect(),
        None => Vec::new(),
    };
    for d in &mut cache.deferred.items {
        joins.extend(d.joins.drain(..).map(|u| (u, d.session, d.created)));
    }
    poison_on_error(cache, insert_session_rows(tx, sorted_joins(joins)))
}

/// Writes every `message_index` row still owed, so that the operation
/// after it finds every message of a session.
pub(super) fn write_index(tx: &Transaction<'_>, cache: &mut Cache) -> rusqlite::Result<()> {
    let mut rows: Vec<IndexRow> = match &mut cache.deferred.pass {
        Some(pass) => pass.index.by_ref().collect(),
        None => Vec::new(),
    };
    for d in cache.deferred.items.iter_mut().filter(|d| d.unindexed) {
        d.unindexed = false;
        rows.push((d.session.to_i64(), d.msg_id, d.row, d.sender));
    }
    poison_on_error(cache, insert_index_rows(tx, sorted_index(rows)))
}

/// The rows were taken out of the writer's memory: if writing them failed,
/// the batch must not commit (it rolls back, and the writer is reopened
/// from the file, which still owes them), whatever the operation answers.
fn poison_on_error(cache: &mut Cache, r: rusqlite::Result<()>) -> rusqlite::Result<()> {
    if let Err(e) = &r {
        cache
            .poisoned
            .get_or_insert_with(|| format!("writing deferred rows failed: {e}"));
    }
    r
}

/// Index rows in key order: rows of one session land on one page together.
fn sorted_index(mut rows: Vec<IndexRow>) -> Vec<IndexRow> {
    rows.sort_unstable();
    rows
}

/// Session rows in key order (user, session), each pair once.
fn sorted_joins(mut rows: Vec<JoinRow>) -> Vec<JoinRow> {
    rows.sort_unstable_by_key(|&(u, s, _)| (u, s.to_i64()));
    rows.dedup_by_key(|&mut (u, s, _)| (u, s));
    rows
}

/// `INSERT OR IGNORE`s index rows, in the order given.
fn insert_index_rows(
    tx: &Transaction<'_>,
    rows: impl IntoIterator<Item = IndexRow>,
) -> rusqlite::Result<()> {
    let mut rows = rows.into_iter().peekable();
    if rows.peek().is_none() {
        return Ok(());
    }
    let mut st = tx.prepare_cached(
        "INSERT OR IGNORE INTO message_index (sess, msg_id, id, sender) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (sess, msg_id, row, sender) in rows {
        st.execute(params![sess, msg_id, row, sender])?;
    }
    Ok(())
}

/// `INSERT OR IGNORE`s session rows, in the order given.
fn insert_session_rows(
    tx: &Transaction<'_>,
    rows: impl IntoIterator<Item = JoinRow>,
) -> rusqlite::Result<()> {
    let mut rows = rows.into_iter().peekable();
    if rows.peek().is_none() {
        return Ok(());
    }
    let mut st = tx.prepare_cached(
        "INSERT OR IGNORE INTO user_sessions (user, sess, peer, kind, created)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (user, session, created) in rows {
        st.execute(params![
            user,
            session.to_i64(),
            session.id_for(user),
            session.session_type() as i32,
            created
        ])?;
    }
    Ok(())
}

/// A message after the watermark, as the file has it.
struct Unwritten {
    row: i64,
    session: SessionKey,
    msg_id: u32,
    sender: u32,
    created: u32,
    bytes: u32,
}

/// The messages after the watermark and, for each, who it is delivered to.
fn unwritten(conn: &Connection) -> rusqlite::Result<Vec<(Unwritten, Vec<u32>)>> {
    let upto: i64 = conn.query_row(
        "SELECT value FROM meta WHERE key = ?1",
        [WRITTEN_UPTO],
        |r| r.get(0),
    )?;
    let mut st = conn.prepare(
        "SELECT id, sess, msg_id, sender, created, length(data) FROM messages
         WHERE id > ?1 ORDER BY id",
    )?;
    let rows = st
        .query_map([upto], |r| {
            Ok(Unwritten {
                row: r.get(0)?,
                session: SessionKey::from_i64(r.get(1)?),
                msg_id: r.get(2)?,
                sender: r.get(3)?,
                created: r.get(4)?,
                bytes: StoredMessage::size_of(r.get::<_, i64>(5)? as usize) as u32,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut members = conn.prepare_cached(
        "SELECT user FROM group_members WHERE group_id = ?1 AND user != ?2 ORDER BY user",
    )?;
    rows.into_iter()
        .map(|m| {
            let receivers = match m.session {
                SessionKey::Pair(..) => vec![m.session.id_for(m.sender)],
                SessionKey::Group(g) => members
                    .query_map(params![g, m.sender], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<u32>>>()?,
            };
            Ok((m, receivers))
        })
        .collect()
}

/// When the file is opened: the messages after the watermark (committed,
/// their other rows not yet written when the last run ended) go back into
/// their receivers' mailboxes, and all their rows are written now. Returns
/// how many messages that was.
pub(super) fn recover(conn: &mut Connection, cache: &mut Cache) -> rusqlite::Result<usize> {
    let owed = unwritten(conn)?;
    if owed.is_empty() {
        return Ok(0);
    }
    let tx = conn.transaction()?;
    let now = Instant::now();
    for (m, receivers) in &owed {
        let mut mailbox = Vec::with_capacity(receivers.len());
        for &user in receivers {
            cache.last_pos += 1;
            let pos = cache.last_pos;
            cache.usage.add(user, m.bytes as usize);
            cache.mailboxes.entry(user).or_default().insert(
                pos,
                Entry {
                    bytes: m.bytes,
                    row: m.row,
                    written: false,
                },
            );
            mailbox.push((user, pos));
        }
        let mut joins = receivers.clone();
        joins.push(m.sender);
        cache.deferred.push(Deferred {
            row: m.row,
            at: now,
            session: m.session,
            msg_id: m.msg_id,
            created: m.created,
            bytes: m.bytes,
            mailbox,
            joins,
            sender: m.sender,
            unindexed: true,
        });
    }
    flush(&tx, cache, now, None)?;
    tx.commit()?;
    Ok(owed.len())
}

/// What the file's mailboxes hold: the `inbox` rows, plus each receiver of
/// a message after the watermark (what a restart would deliver).
pub(super) fn mailbox_totals(conn: &Connection) -> rusqlite::Result<(u64, u64)> {
    let (mut count, mut bytes) = conn.query_row(
        "SELECT count(*), coalesce(sum(bytes), 0) FROM inbox",
        [],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )?;
    for (m, receivers) in unwritten(conn)? {
        count += receivers.len() as u64;
        bytes += u64::from(m.bytes) * receivers.len() as u64;
    }
    Ok((count, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(ats: &[Instant]) -> Queue {
        let mut q = Queue::default();
        for (i, &at) in ats.iter().enumerate() {
            q.push(Deferred {
                row: i as i64 + 1,
                at,
                session: SessionKey::single(1, 2),
                msg_id: i as u32 + 1,
                created: 0,
                bytes: 1,
                mailbox: Vec::new(),
                joins: Vec::new(),
                sender: 1,
                unindexed: true,
            });
        }
        q
    }

    /// How many of `q`'s messages a flush at `now` writes, popping the
    /// oldest as [`flush`] does.
    fn written(q: &Queue, now: Instant, defer: Option<Duration>) -> usize {
        let Some(due) = due_before(q, now, defer) else {
            return 0;
        };
        let len = q.items.len();
        q.items
            .iter()
            .enumerate()
            .take_while(|(i, d)| due.covers(d, len - i))
            .count()
    }

    #[test]
    fn nothing_is_due_until_the_oldest_is_defer_old_then_half_a_defer_goes_at_once() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let defer = Some(ms(1000));
        // Committed at 0, 300 and 700 ms.
        let q = queue(&[t0, t0 + ms(300), t0 + ms(700)]);
        assert_eq!(written(&q, t0 + ms(999), defer), 0);
        // At 1000 ms: everything committed by 500 ms (the first two), not
        // only the one message that just came due.
        assert_eq!(written(&q, t0 + ms(1000), defer), 2);
        // A graceful stop, or no defer time: all of them.
        assert_eq!(written(&q, t0 + ms(700), None), 3);
        assert_eq!(written(&queue(&[]), t0 + ms(5000), defer), 0);
    }

    #[test]
    fn past_the_most_waiting_the_oldest_go_down_to_half_of_it() {
        let t0 = Instant::now();
        // None is due by age: the oldest go until half of the most wait.
        let q = queue(&vec![t0; DEFERRED_MAX + 1]);
        let n = written(&q, t0, Some(Duration::from_secs(1)));
        assert_eq!(n, DEFERRED_MAX + 1 - DEFERRED_MAX / 2);
    }
}
