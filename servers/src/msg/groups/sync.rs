//! Keeping the loop's copy of the groups in step: with this server's
//! changes in flight (a read from the store does not overwrite a newer
//! local change) and with the other msg_servers' changes, announced over
//! NATS or, when an announcement may have been lost, found by reading
//! every group back.

use super::{notify, Note};
use crate::msg::store::{Done, GroupRecord, Op, Outcome};
use crate::msg::{MsgConn, MsgState};
use imconn::ImServer;
use netlib::Context;
use pdu::proto::GroupModifyType;
use std::collections::{HashMap, HashSet};

/// What the loop tracks to apply other servers' changes safely.
#[derive(Debug, Default)]
pub(in crate::msg) struct GroupSync {
    /// Changes of this server submitted to the store and not answered, by
    /// group.
    in_flight: HashMap<u32, u32>,
    /// Groups to read again once their changes in flight are answered.
    reload: HashSet<u32>,
}

/// Submits a change of `group` made here. While it is in flight, reads of
/// the group from the store are not applied (they may predate it); a failed
/// change reads the group back (the store holds what is true).
pub(super) fn submit_change(state: &mut MsgState, group: u32, op: Op, done: Done) {
    *state.group_sync.in_flight.entry(group).or_default() += 1;
    let done: Done = Box::new(move |s, ctx, outcome| {
        let failed = !matches!(outcome, Outcome::Done);
        let sync = &mut s.shared.group_sync;
        if let Some(n) = sync.in_flight.get_mut(&group) {
            *n -= 1;
            if *n == 0 {
                sync.in_flight.remove(&group);
            }
        }
        let idle = !sync.in_flight.contains_key(&group);
        let again = failed || (idle && sync.reload.contains(&group));
        done(s, ctx, outcome);
        if again {
            reload(&mut s.shared, group, None);
        }
    });
    state.submit(op, Some(done));
}

/// Reads `group` back from the store and applies it; `note`: the change
/// another server announced, told to the members here.
pub(in crate::msg) fn reload(state: &mut MsgState, group: u32, note: Option<Note>) {
    state.group_sync.reload.remove(&group);
    let done: Done = Box::new(move |s, ctx, outcome| match outcome {
        Outcome::Groups(groups) => {
            for g in groups {
                let note = note.as_ref().filter(|_| g.id == group);
                apply(s, ctx, g, note);
            }
        }
        other => log::warn!("group {group} not read back from the store: {other:?}"),
    });
    state.submit(Op::LoadGroups { only: Some(group) }, Some(done));
}

/// Reads every group back from the store after NATS may have dropped
/// announcements (a link was down), applies them and tells the members
/// here what changed meanwhile ([`missed_notes`]).
pub(in crate::msg) fn reload_all(state: &mut MsgState) {
    let done: Done = Box::new(move |s, ctx, outcome| match outcome {
        Outcome::Groups(groups) => {
            for g in groups {
                let st = &s.shared;
                let kept =
                    st.groups.contains_key(&g.id) || st.groups.len() < st.settings.groups_max;
                let missed = if !kept || st.group_sync.in_flight.contains_key(&g.id) {
                    Vec::new()
                } else {
                    missed_notes(st.groups.get(&g.id), &g)
                };
                for note in &missed {
                    notify(s, ctx, None, g.id, &g.members, note);
                }
                apply(s, ctx, g, None);
            }
        }
        other => log::warn!("groups not read back from the store: {other:?}"),
    });
    state.submit(Op::LoadGroups { only: None }, Some(done));
}

/// What another server changed in group `g` while this one heard nothing
/// (its NATS link was down), as notifies to tell the members here: a group
/// new here is announced as at its creation (by its creator, every other
/// member added); a newer version of a group this server has, as the
/// members added and those removed since its copy. Who made a change is
/// not stored: those notifies name user 0. An announcement of the same
/// change that arrives after the link is up tells it once more.
fn missed_notes(old: Option<&GroupRecord>, g: &GroupRecord) -> Vec<Note> {
    let add = GroupModifyType::Add as i32;
    let notes = match old {
        None => vec![Note {
            by: g.creator,
            change_type: add,
            changed: g
                .members
                .iter()
                .copied()
                .filter(|m| *m != g.creator)
                .collect(),
        }],
        Some(old) if old.version < g.version => {
            let not_in = |a: &[u32], b: &[u32]| -> Vec<u32> {
                a.iter()
                    .copied()
                    .filter(|m| b.binary_search(m).is_err())
                    .collect()
            };
            vec![
                Note {
                    by: 0,
                    change_type: add,
                    changed: not_in(&g.members, &old.members),
                },
                Note {
                    by: 0,
                    change_type: GroupModifyType::Del as i32,
                    changed: not_in(&old.members, &g.members),
                },
            ]
        }
        Some(_) => Vec::new(),
    };
    notes
        .into_iter()
        .filter(|n| !n.changed.is_empty())
        .collect()
}

/// Applies groups read from the store (no change to announce).
pub(in crate::msg) fn apply_read(
    s: &mut ImServer<MsgConn>,
    ctx: &mut Context,
    groups: Vec<GroupRecord>,
) {
    for g in groups {
        apply(s, ctx, g, None);
    }
}

/// A group as stored replaces this server's copy unless a change of this
/// server is in flight (then it is read again after) or the copy is newer.
/// `note`, another server's change, is told to the members here whatever
/// the copy was (a read after the link came up may have brought the change
/// first; each announcement arrives once).
fn apply(s: &mut ImServer<MsgConn>, ctx: &mut Context, g: GroupRecord, note: Option<&Note>) {
    log::debug!(
        "group {} read back from the store at version {}",
        g.id,
        g.version
    );
    let st = &mut s.shared;
    if !st.groups.contains_key(&g.id) && st.groups.len() >= st.settings.groups_max {
        log::warn!(
            "group {} from the store not kept: GroupsMax groups exist",
            g.id
        );
        return;
    }
    if let Some(note) = note {
        notify(s, ctx, None, g.id, &g.members, note);
    }
    let st = &mut s.shared;
    if st.group_sync.in_flight.contains_key(&g.id) {
        st.group_sync.reload.insert(g.id);
    } else if st
        .groups
        .get(&g.id)
        .is_none_or(|old| old.version <= g.version)
    {
        st.groups.insert(g.id, g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(version: u32, members: &[u32]) -> GroupRecord {
        GroupRecord {
            id: 7,
            name: "g".into(),
            avatar: String::new(),
            creator: 1,
            kind: 2,
            version,
            members: members.to_vec(),
            shielded: Vec::new(),
        }
    }

    fn note(by: u32, add: bool, changed: &[u32]) -> Note {
        let how = if add {
            GroupModifyType::Add
        } else {
            GroupModifyType::Del
        };
        Note {
            by,
            change_type: how as i32,
            changed: changed.to_vec(),
        }
    }

    #[test]
    fn what_a_server_missed_is_told_as_the_changes_since_its_copy() {
        let now = group(3, &[1, 3, 4]);
        // New here: as at its creation.
        assert_eq!(missed_notes(None, &now), [note(1, true, &[3, 4])]);
        // Older copy: who came, who left.
        let old = group(1, &[1, 2, 3]);
        assert_eq!(
            missed_notes(Some(&old), &now),
            [note(0, true, &[4]), note(0, false, &[2])]
        );
        let only_added = group(2, &[1, 2, 3, 4]);
        assert_eq!(missed_notes(Some(&old), &only_added), [note(0, true, &[4])]);
        // The same or a newer copy: nothing was missed.
        assert!(missed_notes(Some(&now), &now).is_empty());
        assert!(missed_notes(Some(&now), &old).is_empty());
    }
}
