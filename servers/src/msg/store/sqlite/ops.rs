//! The SQL of each store operation, run by the writer thread inside the
//! batch's transaction (see the parent module for the schema and the batch).

use super::{groups, Cache, CACHE_MAX};
use crate::msg::store::{
    Bounds, NewMessage, Op, Outcome, Refusal, SessionKey, StoredMessage, UserSession,
};
use rusqlite::{params, OptionalExtension, Transaction};
use std::sync::Arc;

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
            let Some(bytes) = mailbox.remove(&pos) else {
                return Outcome::Done;
            };
            if mailbox.is_empty() {
                cache.mailboxes.remove(&user);
            }
            cache.usage.remove(user, bytes as usize);
            tx.prepare_cached("DELETE FROM inbox WHERE pos = ?1")
                .and_then(|mut st| st.execute([pos as i64]))
                .map(|_| Outcome::Done)
                .unwrap_or_else(failed)
        }
        Op::Undelivered { user, after, limit } => {
            let positions: Vec<u64> = cache
                .mailboxes
                .get(&user)
                .map(|m| {
                    m.range(after + 1..)
                        .take(limit + 1)
                        .map(|(p, _)| *p)
                        .collect()
                })
                .unwrap_or_default();
            undelivered(tx, &positions, limit).unwrap_or_else(failed)
        }
        Op::History {
            session,
            until,
            count,
        } => messages(
            tx,
            "SELECT sess, msg_id, sender, created, msg_type, data FROM messages
                 WHERE sess = ?1 AND msg_id <= ?2 ORDER BY msg_id DESC LIMIT ?3",
            params![session.to_i64(), until, count],
        )
        .map(Outcome::Messages)
        .unwrap_or_else(failed),
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
        cache
            .mailboxes
            .entry(r)
            .or_default()
            .insert(pos, size as u32);
        mailbox.push((r, pos));
    }
    // The session joins the lists of users who did not have it yet: two
    // rows (a single chat's two users) in one statement.
    let joining: Vec<u32> = m
        .receivers
        .iter()
        .chain([&stored.from])
        .copied()
        .filter(|u| !cache.known.contains(&(*u, sess)))
        .collect();
    let row = |u: u32| (u, sess, m.session.id_for(u), kind, stored.create_time);
    for users in joining.chunks(2) {
        match *users {
            [a, b] => {
                let (a, b) = (row(a), row(b));
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO user_sessions (user, sess, peer, kind, created)
                     VALUES (?1, ?2, ?3, ?4, ?5), (?6, ?7, ?8, ?9, ?10)",
                )?
                .execute(params![a.0, a.1, a.2, a.3, a.4, b.0, b.1, b.2, b.3, b.4])?;
            }
            [a] => {
                let a = row(a);
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO user_sessions (user, sess, peer, kind, created)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![a.0, a.1, a.2, a.3, a.4])?;
            }
            _ => {}
        }
    }
    if cache.known.len() + joining.len() > CACHE_MAX {
        cache.known.clear();
    }
    cache.known.extend(joining.iter().map(|u| (*u, sess)));
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

/// The messages at mailbox `positions` (one more than `limit` tells
/// whether there are more).
fn undelivered(tx: &Transaction<'_>, positions: &[u64], limit: usize) -> rusqlite::Result<Outcome> {
    let mut st = tx.prepare_cached(
        "SELECT m.sess, m.msg_id, m.sender, m.created, m.msg_type, m.data
         FROM inbox i JOIN messages m ON m.id = i.msg WHERE i.pos = ?1",
    )?;
    let mut items = Vec::with_capacity(positions.len().min(limit));
    for &pos in positions.iter().take(limit) {
        if let Some(m) = st.query_row([pos as i64], row_message).optional()? {
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
