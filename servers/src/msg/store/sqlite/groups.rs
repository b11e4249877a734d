//! Groups in SQLite: creation, membership (with the version check that
//! keeps concurrent changes from overwriting each other), shields, and
//! loading them back (at startup, and when asked to reload).

use crate::msg::store::{group_conflict, GroupRecord, Outcome};
use rusqlite::{params, Connection, Transaction};
use std::collections::HashMap;

/// The stored groups (`only`: just that one), with members and shields.
pub(super) fn load(conn: &Connection, only: Option<u32>) -> rusqlite::Result<Vec<GroupRecord>> {
    let mut groups: Vec<GroupRecord> = conn
        .prepare_cached(
            "SELECT group_id, name, avatar, creator, kind, version FROM groups
             WHERE ?1 IS NULL OR group_id = ?1 ORDER BY group_id",
        )?
        .query_map([only], |r| {
            Ok(GroupRecord {
                id: r.get(0)?,
                name: r.get(1)?,
                avatar: r.get(2)?,
                creator: r.get(3)?,
                kind: r.get(4)?,
                version: r.get(5)?,
                members: Vec::new(),
                shielded: Vec::new(),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let at: HashMap<u32, usize> = groups.iter().enumerate().map(|(i, g)| (g.id, i)).collect();
    for (table, shields) in [("group_members", false), ("group_shields", true)] {
        let sql = format!(
            "SELECT group_id, user FROM {table} WHERE ?1 IS NULL OR group_id = ?1
             ORDER BY group_id, user"
        );
        let mut st = conn.prepare_cached(&sql)?;
        let rows = st.query_map([only], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, u32>(1)?)))?;
        for row in rows {
            let (group, user) = row?;
            if let Some(g) = at.get(&group).map(|i| &mut groups[*i]) {
                if shields {
                    g.shielded.push(user);
                } else {
                    g.members.push(user);
                }
            }
        }
    }
    Ok(groups)
}

/// Creates `g` (id 0: a new one) -> its id; an existing id is left alone.
pub(super) fn create(tx: &Transaction<'_>, g: GroupRecord) -> rusqlite::Result<u32> {
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
        replace_members(tx, id, &g.members)?;
    }
    Ok(id)
}

/// Sets `group`'s members at `version` if the stored one is `version - 1`.
pub(super) fn set_members(
    tx: &Transaction<'_>,
    group: u32,
    members: &[u32],
    version: u32,
) -> rusqlite::Result<Outcome> {
    let updated = tx
        .prepare_cached("UPDATE groups SET version = ?2 WHERE group_id = ?1 AND version = ?2 - 1")?
        .execute([group, version])?;
    if updated == 0 {
        return Ok(group_conflict(group, version));
    }
    replace_members(tx, group, members)?;
    Ok(Outcome::Done)
}

fn replace_members(tx: &Transaction<'_>, group: u32, members: &[u32]) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM group_members WHERE group_id = ?1")?
        .execute([group])?;
    let mut add =
        tx.prepare_cached("INSERT INTO group_members (group_id, user) VALUES (?1, ?2)")?;
    for m in members {
        add.execute([group, *m])?;
    }
    tx.prepare_cached(
        "DELETE FROM group_shields WHERE group_id = ?1
         AND user NOT IN (SELECT user FROM group_members WHERE group_id = ?1)",
    )?
    .execute([group])?;
    Ok(())
}

/// Member `user` shields `group` or not (a non-member's shield is not kept).
pub(super) fn set_shield(
    tx: &Transaction<'_>,
    group: u32,
    user: u32,
    on: bool,
) -> rusqlite::Result<()> {
    let sql = if on {
        "INSERT OR IGNORE INTO group_shields (group_id, user) SELECT ?1, ?2
         WHERE EXISTS (SELECT 1 FROM group_members WHERE group_id = ?1 AND user = ?2)"
    } else {
        "DELETE FROM group_shields WHERE group_id = ?1 AND user = ?2"
    };
    tx.prepare_cached(sql)?.execute([group, user])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(members: Vec<u32>) -> GroupRecord {
        GroupRecord {
            id: 0,
            name: "g".into(),
            avatar: String::new(),
            creator: members[0],
            kind: 2,
            version: 1,
            members,
            shielded: Vec::new(),
        }
    }

    #[test]
    fn membership_changes_check_the_version_and_shields_follow_members() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(super::super::SCHEMA).unwrap();
        let tx = conn.transaction().unwrap();
        let id = create(&tx, group(vec![1, 2, 3])).unwrap();
        let other = create(&tx, group(vec![4])).unwrap();
        assert_ne!(id, other);
        set_shield(&tx, id, 2, true).unwrap();
        set_shield(&tx, id, 3, true).unwrap();
        set_shield(&tx, id, 9, true).unwrap(); // not a member: not kept
        set_shield(&tx, id, 3, false).unwrap();
        let g = &load(&tx, Some(id)).unwrap()[0];
        assert_eq!(
            (g.members.clone(), g.shielded.clone()),
            (vec![1, 2, 3], vec![2])
        );

        // Built on version 1: taken; 2 left, so its shield went too.
        let done = set_members(&tx, id, &[1, 3], 2).unwrap();
        assert!(matches!(done, Outcome::Done));
        // Built on version 1 again (another server's copy): refused.
        let stale = set_members(&tx, id, &[1, 2, 3, 5], 2).unwrap();
        assert!(matches!(stale, Outcome::Failed(_)));
        let all = load(&tx, None).unwrap();
        assert_eq!(all.len(), 2);
        let g = all.iter().find(|g| g.id == id).unwrap();
        assert_eq!((g.version, g.members.clone()), (2, vec![1, 3]));
        assert!(g.shielded.is_empty());
        assert_eq!(all.iter().find(|g| g.id == other).unwrap().members, [4]);
        // An existing id is left alone.
        let mut again = group(vec![7]);
        again.id = id;
        assert_eq!(create(&tx, again).unwrap(), id);
        assert_eq!(load(&tx, Some(id)).unwrap()[0].members, [1, 3]);
    }
}
