//! The SQL of each [`Op`] on PostgreSQL, inside the batch's transaction
//! (`Tx`); the connection, the schema and the writer thread's batches are
//! in `mod.rs`.

use super::super::{
    Bounds, NewMessage, Op, Outcome, SessionKey, StoredMessage, Usage, UserSession,
};
use super::{groups, Tx, KNOWN_MAX};
use postgres::Row;
use std::collections::HashSet;

/// Column `i` (a BIGINT holding a u32 id or time) as u32.
pub(super) fn u32_of(r: &Row, i: usize) -> u32 {
    r.get::<_, i64>(i) as u32
}

/// Locks every counter row the batch will update - sessions, then
/// mailboxes, each in ascending order - before touching any: two servers'
/// batches then wait for each other instead of deadlocking (PostgreSQL
/// would find the cycle only after `deadlock_timeout`, a second).
pub(super) fn lock_in_order(t: &mut Tx<'_, '_>, ops: &[Op]) -> Result<(), postgres::Error> {
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
pub(super) fn exec(
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
                    &i64::from(crate::msg::unix_now()),
                ],
            )?;
            Outcome::Done
        }
        Op::CreateGroup(g) => Outcome::GroupCreated(groups::create(tx, g)?),
        Op::SetMembers {
            group,
            members,
            version,
        } => groups::set_members(tx, group, &members, version)?,
        Op::SetShield { group, user, on } => {
            groups::set_shield(tx, group, user, on)?;
            Outcome::Done
        }
        Op::LoadGroups { only } => {
            Outcome::Groups(groups::load(&mut |sql, p| tx.query(sql, p), only)?)
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
    Ok(Outcome::Stored(std::sync::Arc::new(stored), mailbox))
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
            UserSession::from_stored(
                session,
                u32_of(r, 1),
                r.get(2),
                u32_of(r, 3),
                r.get::<_, i64>(4) as u32,
                latest,
            )
        })
        .filter(|s| s.listed(since, unread_only))
        .collect();
    crate::msg::store::sort_recent_first(&mut list);
    Ok(list)
}
