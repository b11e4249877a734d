//! The SQL of each store operation, run by the writer thread inside the
//! batch's transaction (see the parent module for the schema and the batch).

use super::deferred::{self, Deferred};
use super::{groups, Cache, Entry, CACHE_MAX};
use crate::msg::store::{
    Bounds, NewMessage, Op, Outcome, Refusal, SessionKey, StoredMessage, UserSession,
};
use rusqlite::{params, OptionalExtension, Transaction};
use std::sync::Arc;
use std::time::Instant;

fn failed(e: rusqlite::Error) -> Outcome {
    log::error!("store: {e}");
    Outcome::Failed(e.to_string())
}

/// Runs one operation inside the batch's transaction.
pub(super) fn exec(tx: &Transaction<'_>, op: Op, cache: &mut Cache, bounds: &Bounds) -> Outcome {
    match op {
        Op::Append(m) => match append(tx, m, cache, bounds) {
            Ok(o) => o,
            Err(e) => {
                let e = format!("append failed: {e}");
                cache.poisoned.get_or_insert(e.clone());
                Outcome::Refused(Refusal::Failed(e))
            }
        },
        Op::Delivered { user, pos } => {
            // Only a position of this user's mailbox goes (a stale or
            // forged ack deletes nothing).
            let Some(mailbox) = cache.mailboxes.get_mut(&user) else {
                return Outcome::Done;
            };
            let Some(entry) = mailbox.remove(&pos) else {
                return Outcome::Done;
            };
            if mailbox.is_empty() {
                cache.mailboxes.remove(&user);
            }
            cache.usage.remove(user, entry.bytes as usize);
            if !entry.written {
                return Outcome::Done; // its row was never written
            }
            tx.prepare_cached("DELETE FROM inbox WHERE pos = ?1")
                .and_then(|mut st| st.execute([pos as i64]))
                .map(|_| Outcome::Done)
                .unwrap_or_else(failed)
        }
        Op::Undelivered { user, after, limit } => {
            let positions: Vec<(u64, i64)> = cache
                .mailboxes
                .get(&user)
                .map(|m| {
                    m.range(after + 1..)
                        .take(limit + 1)
                        .map(|(p, e)| (*p, e.row))
                        .collect()
                })
                .unwrap_or_default();
            undelivered(tx, &positions, limit).unwrap_or_else(failed)
        }
        Op::History {
            session,
            until,
            count,
        } => deferred::write_index(tx, cache)
            .and_then(|()| {
                messages(
                    tx,
                    "SELECT m.sess, m.msg_id, m.sender, m.created, m.msg_type, m.data
                     FROM message_index i JOIN messages m ON m.id = i.id
                     WHERE i.sess = ?1 AND i.msg_id <= ?2 ORDER BY i.msg_id DESC LIMIT ?3",
                    params![session.to_i64(), until, count],
                )
            })
            .map(Outcome::Messages)
            .unwrap_or_else(failed),
        Op::ById { session, ids } => {
            if let Err(e) = deferred::write_index(tx, cache) {
                return failed(e);
            }
            let mut out = Vec::new();
            for id in ids {
                match messages(
                    tx,
                    "SELECT m.sess, m.msg_id, m.sender, m.created, m.msg_type, m.data
                     FROM message_index i JOIN messages m ON m.id = i.id
                     WHERE i.sess = ?1 AND i.msg_id = ?2",
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
        } => deferred::write_joins(tx, cache)
            .and_then(|()| {
                tx.prepare_cached(
                    "UPDATE user_sessions SET read_id = max(read_id, ?3) WHERE user = ?1 AND sess = ?2",
                )
            })
            .and_then(|mut st| st.execute(params![user, session.to_i64(), msg_id]))
            .map(|_| Outcome::Done)
            .unwrap_or_else(failed),
        Op::Sessions {
            user,
            since,
            unread_only,
        } => deferred::write_joins(tx, cache)
            .and_then(|()| deferred::write_index(tx, cache))
            .and_then(|()| sessions(tx, user, since, unread_only))
            .map(Outcome::Sessions)
            .unwrap_or_else(failed),
        Op::RemoveSession { user, session } => deferred::write_joins(tx, cache)
            .and_then(|()| deferred::write_index(tx, cache))
            .and_then(|()| {
                tx.prepare_cached(
                    "UPDATE user_sessions SET removed_time = ?3,
                         removed_at = (SELECT coalesce(max(msg_id), 0) FROM message_index WHERE sess = ?2)
                     WHERE user = ?1 AND sess = ?2",
                )
            })
            .and_then(|mut st| st.execute(params![user, session.to_i64(), crate::msg::unix_now()]))
            .map(|_| Outcome::Done)
            .unwrap_or_else(failed),
        Op::CreateGroup(g) => groups::create(tx, g)
            .map(Outcome::GroupCreated)
            .unwrap_or_else(failed),
        Op::SetMembers {
            group,
            members,
            version,
        } => groups::set_members(tx, group, &members, version).unwrap_or_else(failed),
        Op::SetShield { group, user, on } => groups::set_shield(tx, group, user, on)
            .map(|_| Outcome::Done)
            .unwrap_or_else(failed),
        Op::LoadGroups { only } => groups::load(tx, only)
            .map(Outcome::Groups)
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
    if cache.last_id_complete {
        return Ok(0);
    }
    // Every session with an index row owed has its newest id cached (the
    // cache is only cleared once the index is written): the file knows the
    // rest.
    tx.prepare_cached("SELECT coalesce(max(msg_id), 0) FROM message_index WHERE sess = ?1")?
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
    // Its mailbox and session rows wait (see `deferred`): in the writer's
    // memory until written, and rebuilt from the message row after a crash.
    let mut mailbox = Vec::with_capacity(receivers.len());
    for &r in &receivers {
        cache.last_pos += 1;
        let pos = cache.last_pos;
        cache.usage.add(r, size);
        let entry = Entry {
            bytes: size as u32,
            row,
            written: false,
        };
        cache.mailboxes.entry(r).or_default().insert(pos, entry);
        mailbox.push((r, pos));
    }
    let joins: Vec<u32> = m
        .receivers
        .iter()
        .chain([&stored.from])
        .copied()
        .filter(|u| !cache.known.contains(&(*u, sess)))
        .collect();
    if cache.known.len() + joins.len() > CACHE_MAX {
        cache.known.clear();
    }
    cache.known.extend(joins.iter().map(|u| (*u, sess)));
    cache.deferred.push(Deferred {
        row,
        at: Instant::now(),
        session: m.session,
        msg_id: id,
        created: stored.create_time,
        bytes: size as u32,
        mailbox: mailbox.clone(),
        joins,
        sender: stored.from,
        unindexed: true,
    });
    cache.staged.insert(m.session, id);
    Ok(Outcome::Stored(Arc::new(stored), mailbox))
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

/// The messages at mailbox `positions`, given as (position, message row)
/// (one more than `limit` tells whether there are more).
fn undelivered(
    tx: &Transaction<'_>,
    positions: &[(u64, i64)],
    limit: usize,
) -> rusqlite::Result<Outcome> {
    let mut st = tx.prepare_cached(
        "SELECT sess, msg_id, sender, created, msg_type, data FROM messages WHERE id = ?1",
    )?;
    let mut items = Vec::with_capacity(positions.len().min(limit));
    for &(pos, row) in positions.iter().take(limit) {
        if let Some(m) = st.query_row([row], row_message).optional()? {
            items.push((pos, m));
        }
    }
    Ok(Outcome::Backlog {
        items,
        complete: positions.len() <= limit,
    })
}

fn sessions(
    tx: &Transaction<'_>,
    user: u32,
    since: u32,
    unread_only: bool,
) -> rusqlite::Result<Vec<UserSession>> {
    let mut st = tx.prepare_cached(
        "SELECT s.sess, s.created, s.removed_at, s.removed_time,
                (SELECT count(*) FROM message_index u
                 WHERE u.sess = s.sess AND u.msg_id > s.read_id AND u.sender != s.user),
                m.msg_id, m.sender, m.created, m.msg_type, m.data
         FROM user_sessions s
         LEFT JOIN message_index li ON li.sess = s.sess
             AND li.msg_id = (SELECT max(msg_id) FROM message_index WHERE sess = s.sess)
         LEFT JOIN messages m ON m.id = li.id
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
        Ok(UserSession::from_stored(
            session,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            latest,
        ))
    })?;
    let mut list: Vec<UserSession> = rows
        .filter(|s| s.as_ref().map_or(true, |s| s.listed(since, unread_only)))
        .collect::<rusqlite::Result<_>>()?;
    crate::msg::store::sort_recent_first(&mut list);
    Ok(list)
}
