//! Groups on PostgreSQL: creation, membership (with the version check that
//! keeps two msg_servers' concurrent changes from overwriting each other),
//! shields, and loading them back (at startup, and when another msg_server
//! announced a change).

use super::super::{group_conflict, GroupRecord, Outcome};
use super::ops::u32_of;
use super::Tx;
use postgres::types::ToSql;
use postgres::{Error, Row};
use std::collections::HashMap;

/// Runs a query: a plain client at startup, the batch's transaction later.
pub(super) type Query<'a> =
    dyn FnMut(&'static str, &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, Error> + 'a;

/// The stored groups (`only`: just that one), with members and shields.
pub(super) fn load(q: &mut Query<'_>, only: Option<u32>) -> Result<Vec<GroupRecord>, Error> {
    let only = only.map(i64::from);
    let mut groups: Vec<GroupRecord> = q(
        "SELECT group_id, name, avatar, creator, kind, version FROM groups
         WHERE $1::BIGINT IS NULL OR group_id = $1 ORDER BY group_id",
        &[&only],
    )?
    .iter()
    .map(|r| GroupRecord {
        id: u32_of(r, 0),
        name: r.get(1),
        avatar: r.get(2),
        creator: u32_of(r, 3),
        kind: r.get(4),
        version: u32_of(r, 5),
        members: Vec::new(),
        shielded: Vec::new(),
    })
    .collect();
    let at: HashMap<u32, usize> = groups.iter().enumerate().map(|(i, g)| (g.id, i)).collect();
    let members = q(
        "SELECT group_id, uid FROM group_members
         WHERE $1::BIGINT IS NULL OR group_id = $1 ORDER BY group_id, uid",
        &[&only],
    )?;
    let shields = q(
        "SELECT group_id, uid FROM group_shields
         WHERE $1::BIGINT IS NULL OR group_id = $1 ORDER BY group_id, uid",
        &[&only],
    )?;
    for (rows, shield) in [(members, false), (shields, true)] {
        for r in rows {
            if let Some(g) = at.get(&u32_of(&r, 0)).map(|i| &mut groups[*i]) {
                let list = if shield {
                    &mut g.shielded
                } else {
                    &mut g.members
                };
                list.push(u32_of(&r, 1));
            }
        }
    }
    Ok(groups)
}

/// Creates `g` (id 0: a new one) -> its id; an existing id is left alone.
pub(super) fn create(tx: &mut Tx<'_, '_>, g: GroupRecord) -> Result<u32, Error> {
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
        replace_members(tx, id, &g.members)?;
    }
    Ok(id as u32)
}

/// Sets `group`'s members at `version` if the stored one is `version - 1`.
/// The update locks the group's row: a second server's change of the same
/// version waits for this commit, then finds the version moved on.
pub(super) fn set_members(
    tx: &mut Tx<'_, '_>,
    group: u32,
    members: &[u32],
    version: u32,
) -> Result<Outcome, Error> {
    let gid = i64::from(group);
    let updated = tx.execute(
        "UPDATE groups SET version = $2::BIGINT WHERE group_id = $1 AND version = $2::BIGINT - 1",
        &[&gid, &i64::from(version)],
    )?;
    if updated == 0 {
        return Ok(group_conflict(group, version));
    }
    replace_members(tx, gid, members)?;
    Ok(Outcome::Done)
}

fn replace_members(tx: &mut Tx<'_, '_>, gid: i64, members: &[u32]) -> Result<(), Error> {
    tx.execute("DELETE FROM group_members WHERE group_id = $1", &[&gid])?;
    let members: Vec<i64> = members.iter().map(|&m| i64::from(m)).collect();
    tx.execute(
        "INSERT INTO group_members (group_id, uid) SELECT $1, unnest($2::BIGINT[])",
        &[&gid, &members],
    )?;
    tx.execute(
        "DELETE FROM group_shields WHERE group_id = $1 AND NOT (uid = ANY($2))",
        &[&gid, &members],
    )?;
    Ok(())
}

/// Member `user` shields `group` or not (a non-member's shield is not kept).
pub(super) fn set_shield(
    tx: &mut Tx<'_, '_>,
    group: u32,
    user: u32,
    on: bool,
) -> Result<(), Error> {
    let (gid, uid) = (i64::from(group), i64::from(user));
    if on {
        tx.execute(
            "INSERT INTO group_shields (group_id, uid) SELECT $1, $2
             WHERE EXISTS (SELECT 1 FROM group_members WHERE group_id = $1 AND uid = $2)
             ON CONFLICT DO NOTHING",
            &[&gid, &uid],
        )?;
    } else {
        tx.execute(
            "DELETE FROM group_shields WHERE group_id = $1 AND uid = $2",
            &[&gid, &uid],
        )?;
    }
    Ok(())
}
