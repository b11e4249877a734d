//! Groups: normal groups from the groups file, temporary groups created by
//! clients (0x0405), membership changes (0x0407) with a notify (0x040b) to
//! every member, the user's group list (0x0401), group info (0x0403) and
//! shields (0x0409).
//!
//! **Creation notify.** A new temporary group is announced to its members
//! (all their connections but the creating one) with the notify of a
//! membership change (0x040b, `GROUP_MODIFY_TYPE_ADD`, every member but the
//! creator as added), so their clients ask for its info (0x0403) without
//! polling. TeamTalk's own msg_server answered only the creator; its clients
//! already handle 0x040b for groups they do not know yet.
//!
//! **Shield (0x0409).** A member mutes a group for itself. The setting is
//! stored per (user, group) and reported in that user's `GroupInfo`
//! (`shield_status`); a member who leaves loses it. As in TeamTalk, it
//! changes nothing in routing: a shielded group's messages are stored,
//! counted as unread and delivered as any other (TeamTalk used the flag only
//! to skip the push server's notifications to phones, which this service
//! has no equivalent of; muting is the client's job, from `shield_status`).
//! It does not bump the group's version (it is one member's setting, not the
//! group's), as in TeamTalk.
//!
//! **Several msg_servers** ([`cluster`](super::cluster)). Every committed
//! change (creation, membership, shield) is announced on NATS; the other
//! servers read the group back from the shared store and replace their copy,
//! then send the notify to their own members' connections. The store only
//! takes a membership change built on the version it holds (`version - 1`):
//! two servers changing one group at once cannot overwrite each other; the
//! later one is refused (result 1) and reads the group back. A group with a
//! change of this server in flight is read again once that change is
//! answered, so an older read never overwrites a newer local change. When
//! the NATS link comes (back) up, every group is read again, and the
//! members here are told what changed while it was down.
//!
//! The loop keeps every group in memory ([`MsgState`]'s `groups`, bounded by
//! `GroupsMax` and `GroupMembersMax`) to fan group messages out without
//! asking the store; the store keeps them across restarts. A change is
//! applied to the loop's copy at once (so the next change builds on it) and
//! answered once the store has committed it.
//!
//! Who may change what: any member may add users to a temporary group; only
//! its creator may remove others, and anyone may leave; a normal group is
//! changed only by its creator.
//!
//! The parts: this module answers the requests and sends the notifies;
//! `file` reads the groups file; `sync` keeps the loop's copy in step with
//! the store and with the other msg_servers.

mod file;
mod sync;

pub use file::load;
use sync::submit_change;
pub(super) use sync::{apply_read, reload, reload_all, GroupSync};

use super::route::{answer, reply_seq, with_any};
use super::store::{Done, GroupRecord, Op, Outcome};
use super::{MsgConn, MsgState};
use imconn::{ConnCtx, ImServer};
use netlib::{Context, Handle};
use pdu::proto::{
    GroupInfo, GroupModifyType, GroupType, GroupVersionInfo, ImGroupChangeMemberNotify,
    ImGroupChangeMemberReq, ImGroupChangeMemberRsp, ImGroupCreateReq, ImGroupCreateRsp,
    ImGroupInfoListReq, ImGroupInfoListRsp, ImGroupShieldReq, ImGroupShieldRsp,
    ImNormalGroupListReq, ImNormalGroupListRsp,
};
use pdu::{cid, sid, Header, PduRef};

/// A membership change as the notify (0x040b) tells it: who, what, whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Note {
    /// Who changed it.
    pub by: u32,
    /// `GroupModifyType`.
    pub change_type: i32,
    /// Users added or removed.
    pub changed: Vec<u32>,
}

/// Whether `user` is a member of `group`.
pub(super) fn is_member(state: &MsgState, group: u32, user: u32) -> bool {
    state
        .groups
        .get(&group)
        .is_some_and(|g| g.members.binary_search(&user).is_ok())
}

/// `g` as `user` sees it (its own shield).
fn info(g: &GroupRecord, user: u32) -> GroupInfo {
    GroupInfo {
        group_id: g.id,
        version: g.version,
        group_name: g.name.clone(),
        group_avatar: g.avatar.clone(),
        group_creator_id: g.creator,
        group_type: g.kind,
        shield_status: u32::from(g.shielded.binary_search(&user).is_ok()),
        group_member_list: g.members.clone(),
    }
}

/// 0x0401 -> 0x0402: the groups the user is in, with their versions.
pub(super) fn list(cx: &mut ConnCtx<'_, MsgConn>, pdu: &PduRef<'_>) {
    let Some((user, req)) = super::request::<ImNormalGroupListReq>(cx, pdu) else {
        return;
    };
    let mut list: Vec<GroupVersionInfo> = cx
        .shared
        .groups
        .values()
        .filter(|g| g.members.binary_search(&user).is_ok())
        .map(|g| GroupVersionInfo {
            group_id: g.id,
            version: g.version,
        })
        .collect();
    list.sort_by_key(|g| g.group_id);
    let res = ImNormalGroupListRsp {
        user_id: user,
        group_version_list: list,
        attach_data: req.attach_data,
    };
    let (h, seq) = (cx.handle(), pdu.seq_num());
    reply_seq(
        cx,
        h,
        seq,
        sid::GROUP,
        cid::group::NORMAL_LIST_RESPONSE,
        &res,
    );
}

/// 0x0403 -> 0x0404: the asked groups the user is in whose version is newer
/// than the one the client has.
pub(super) fn infos(cx: &mut ConnCtx<'_, MsgConn>, pdu: &PduRef<'_>) {
    let Some((user, req)) = super::request::<ImGroupInfoListReq>(cx, pdu) else {
        return;
    };
    let max = cx.shared.settings.groups_max;
    let res = ImGroupInfoListRsp {
        user_id: user,
        group_info_list: req
            .group_version_list
            .iter()
            .take(max)
            .filter_map(|v| cx.shared.groups.get(&v.group_id).map(|g| (v, g)))
            .filter(|(v, g)| g.members.binary_search(&user).is_ok() && g.version > v.version)
            .map(|(_, g)| info(g, user))
            .collect(),
        attach_data: req.attach_data,
    };
    let (h, seq) = (cx.handle(), pdu.seq_num());
    reply_seq(cx, h, seq, sid::GROUP, cid::group::INFO_RESPONSE, &res);
}

/// 0x0405 -> 0x0406: a temporary group of the creator and the listed users
/// (ids that are not accounts are left out). Result 1 for a normal group
/// (operator only), too many members, or too many groups.
pub(super) fn create(cx: &mut ConnCtx<'_, MsgConn>, pdu: &PduRef<'_>) {
    let Some((user, req)) = super::request::<ImGroupCreateReq>(cx, pdu) else {
        return;
    };
    let mut members: Vec<u32> = req
        .member_id_list
        .iter()
        .copied()
        .filter(|m| cx.shared.user_ids.contains(m))
        .chain([user])
        .collect();
    members.sort_unstable();
    members.dedup();
    let mut res = ImGroupCreateRsp {
        user_id: user,
        result_code: 1,
        group_id: None,
        group_name: req.group_name.clone(),
        user_id_list: members.clone(),
        attach_data: req.attach_data,
    };
    let why = if req.group_type != GroupType::Tmp as i32 {
        Some("only temporary groups are created by clients")
    } else if members.len() > cx.shared.settings.group_members_max {
        Some("more members than GroupMembersMax")
    } else if cx.shared.groups.len() >= cx.shared.settings.groups_max {
        Some("GroupsMax groups exist")
    } else {
        None
    };
    let (h, seq) = (cx.handle(), pdu.seq_num());
    if let Some(why) = why {
        log::warn!("{h} user {user}: group not created: {why}");
        return reply_seq(cx, h, seq, sid::GROUP, cid::group::CREATE_RESPONSE, &res);
    }
    let group = GroupRecord {
        id: 0,
        name: req.group_name,
        avatar: req.group_avatar,
        creator: user,
        kind: GroupType::Tmp as i32,
        version: 1,
        members,
        shielded: Vec::new(),
    };
    let mut record = group.clone();
    let done: Done = Box::new(move |s, ctx, outcome| {
        if let Outcome::GroupCreated(id) = outcome {
            record.id = id;
            let note = Note {
                by: user,
                change_type: GroupModifyType::Add as i32,
                changed: record
                    .members
                    .iter()
                    .copied()
                    .filter(|m| *m != user)
                    .collect(),
            };
            super::cluster::group_changed(&mut s.shared, id, Some(&note));
            notify(s, ctx, Some(h), id, &record.members, &note);
            s.shared.groups.insert(id, record);
            res.result_code = 0;
            res.group_id = Some(id);
        } else {
            log::error!("{h} user {user}: group not created: {outcome:?}");
        }
        answer(s, ctx, h, |cx| {
            reply_seq(cx, h, seq, sid::GROUP, cid::group::CREATE_RESPONSE, &res)
        });
    });
    cx.shared.submit(Op::CreateGroup(group), Some(done));
}

/// 0x0407 -> 0x0408, and 0x040b to every member's (and removed user's)
/// other connections.
pub(super) fn change_members(cx: &mut ConnCtx<'_, MsgConn>, pdu: &PduRef<'_>) {
    let Some((user, req)) = super::request::<ImGroupChangeMemberReq>(cx, pdu) else {
        return;
    };
    let (h, seq) = (cx.handle(), pdu.seq_num());
    let mut res = ImGroupChangeMemberRsp {
        user_id: user,
        change_type: req.change_type,
        result_code: 1,
        group_id: req.group_id,
        cur_user_id_list: Vec::new(),
        chg_user_id_list: Vec::new(),
        attach_data: req.attach_data,
    };
    let add = req.change_type == GroupModifyType::Add as i32;
    let max = cx.shared.settings.group_members_max;
    let user_ids = &cx.shared.user_ids;
    let refused = match cx.shared.groups.get_mut(&req.group_id) {
        None => Some("no such group"),
        Some(g) if g.members.binary_search(&user).is_err() => Some("not a member"),
        Some(g) if g.kind == GroupType::Normal as i32 && g.creator != user => {
            Some("a normal group is changed by its creator only")
        }
        Some(g) => {
            let changed: Vec<u32> = req
                .member_id_list
                .iter()
                .copied()
                .filter(|m| {
                    if add {
                        user_ids.contains(m) && g.members.binary_search(m).is_err()
                    } else {
                        g.members.binary_search(m).is_ok() && (g.creator == user || *m == user)
                    }
                })
                .collect::<std::collections::BTreeSet<u32>>()
                .into_iter()
                .collect();
            if add && g.members.len() + changed.len() > max {
                Some("more members than GroupMembersMax")
            } else if changed.is_empty() {
                Some("nothing to change (or not allowed to)")
            } else {
                if add {
                    g.members.extend(&changed);
                    g.members.sort_unstable();
                } else {
                    g.members.retain(|m| changed.binary_search(m).is_err());
                    // A member who leaves loses its shield (as the store).
                    g.shielded.retain(|m| changed.binary_search(m).is_err());
                }
                g.version += 1;
                res.cur_user_id_list = g.members.clone();
                res.chg_user_id_list = changed;
                None
            }
        }
    };
    if let Some(why) = refused {
        log::info!("{h} user {user}: group {} not changed: {why}", req.group_id);
        res.cur_user_id_list = cx
            .shared
            .groups
            .get(&req.group_id)
            .filter(|g| g.members.binary_search(&user).is_ok())
            .map(|g| g.members.clone())
            .unwrap_or_default();
        return reply_seq(
            cx,
            h,
            seq,
            sid::GROUP,
            cid::group::CHANGE_MEMBER_RESPONSE,
            &res,
        );
    }
    let group = req.group_id;
    let version = cx.shared.groups[&group].version;
    let op = Op::SetMembers {
        group,
        members: res.cur_user_id_list.clone(),
        version,
    };
    let done: Done = Box::new(move |s, ctx, outcome| {
        if matches!(outcome, Outcome::Done) {
            res.result_code = 0;
            let note = Note {
                by: user,
                change_type: res.change_type,
                changed: res.chg_user_id_list.clone(),
            };
            super::cluster::group_changed(&mut s.shared, group, Some(&note));
            notify(s, ctx, Some(h), group, &res.cur_user_id_list, &note);
        } else {
            log::warn!("group {group}: change not stored: {outcome:?}");
        }
        let command = cid::group::CHANGE_MEMBER_RESPONSE;
        answer(s, ctx, h, |cx| {
            reply_seq(cx, h, seq, sid::GROUP, command, &res)
        });
    });
    submit_change(cx.shared, group, op, done);
}

/// 0x0409 -> 0x040a: a member shields a group (`shield_status` 1) or stops
/// shielding it (0). Result 1 for a group the user is not a member of.
pub(super) fn shield(cx: &mut ConnCtx<'_, MsgConn>, pdu: &PduRef<'_>) {
    let Some((user, req)) = super::request::<ImGroupShieldReq>(cx, pdu) else {
        return;
    };
    let (h, seq, group) = (cx.handle(), pdu.seq_num(), req.group_id);
    let on = req.shield_status != 0;
    let mut res = ImGroupShieldRsp {
        user_id: user,
        group_id: group,
        result_code: 1,
        attach_data: req.attach_data,
    };
    let Some(g) = cx
        .shared
        .groups
        .get_mut(&group)
        .filter(|g| g.members.binary_search(&user).is_ok())
    else {
        log::info!("{h} user {user}: group {group} not shielded: not a member");
        return reply_seq(
            cx,
            h,
            seq,
            sid::GROUP,
            cid::group::SHIELD_GROUP_RESPONSE,
            &res,
        );
    };
    match (on, g.shielded.binary_search(&user)) {
        (true, Err(at)) => g.shielded.insert(at, user),
        (false, Ok(at)) => {
            g.shielded.remove(at);
        }
        _ => {}
    }
    let done: Done = Box::new(move |s, ctx, outcome| {
        if matches!(outcome, Outcome::Done) {
            res.result_code = 0;
            super::cluster::group_changed(&mut s.shared, group, None);
        } else {
            log::warn!("group {group}: shield of user {user} not stored: {outcome:?}");
        }
        answer(s, ctx, h, |cx| {
            reply_seq(
                cx,
                h,
                seq,
                sid::GROUP,
                cid::group::SHIELD_GROUP_RESPONSE,
                &res,
            )
        });
    });
    submit_change(cx.shared, group, Op::SetShield { group, user, on }, done);
}

/// Sends the notify (0x040b) of `note` on `group`, whose `members` are
/// those after the change, to the connections here of its members and of
/// the users it changed, but `skip`.
fn notify(
    s: &mut ImServer<MsgConn>,
    ctx: &mut Context,
    skip: Option<Handle>,
    group: u32,
    members: &[u32],
    note: &Note,
) {
    let msg = ImGroupChangeMemberNotify {
        user_id: note.by,
        change_type: note.change_type,
        group_id: group,
        cur_user_id_list: members.to_vec(),
        chg_user_id_list: note.changed.clone(),
    };
    let header = Header::new(sid::GROUP, cid::group::CHANGE_MEMBER_NOTIFY);
    let mut users: Vec<u32> = members.iter().chain(&note.changed).copied().collect();
    users.sort_unstable();
    users.dedup();
    let to: Vec<Handle> = users
        .iter()
        .flat_map(|u| s.shared.online.get(*u).iter().copied())
        .filter(|h| Some(*h) != skip)
        .collect();
    with_any(s, ctx, to.clone(), |cx| {
        for h in to {
            let _ = cx.send_pdu_to(h, &header, &msg);
        }
    });
}
