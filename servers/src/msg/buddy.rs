//! What msg_server answers on `SID_BUDDY_LIST` after login: the requests a
//! TeamTalk client sends right after logging in, answered from the users
//! file and the online map. (The client time, 0x0305 `IMClientTimeReq`, is
//! answered by the dispatch in `mod.rs`.)
//!
//! | request | answer |
//! |---|---|
//! | 0x0204 `IMUsersInfoReq` | 0x0205 profiles of the known ids asked for (unknown ids are left out) |
//! | 0x0208 `IMAllUserReq` | 0x0209 every account, or none if the client's `latest_update_time` is the users file's version already |
//! | 0x0210 `IMDepartmentReq` | 0x0211 the file's departments, same versioning |
//! | 0x020a `IMUsersStatReq` | 0x020b online/offline of the known ids asked for, on any msg_server (see [`cluster`](super::cluster)'s presence) |
//!
//! Profiles carry what the users file has: id, name (as nick, real name and
//! domain) and department; the other `UserInfo` fields are empty.
//!
//! **Status notifications (0x0203).** TeamTalk told a user's buddies when it
//! went on or off line. There are no buddy lists here, so a user's
//! "buddies" are the other online users of its department (users file,
//! fifth column). When a user's first connection logs in or its last one
//! goes away, each of them gets an `IMUserStatNotify` - at most
//! `StatusNotifyMax` users per change (the lowest ids), so the work per
//! login is bounded whatever the size of the department; clients of larger
//! departments, and users without a department (who get and cause no
//! notifications), learn status by asking (0x020a). An index of online users
//! by department keeps the work independent of the number of users online.
//! With several msg_servers, each tells its own users of changes elsewhere
//! as its presence map sees them ([`remote_changes`]; see
//! [`cluster`](super::cluster)'s department status).
//!
//! Other buddy-list commands (recent sessions, avatars, signatures) are
//! logged and ignored, as TeamTalk's msg_server does with what it does not
//! know; the connection stays.

use super::{reply, MsgConn, MsgState};
use crate::users::{User, Users};
use imconn::ConnCtx;
use pdu::proto::{
    DepartInfo, ImAllUserReq, ImAllUserRsp, ImDepartmentReq, ImDepartmentRsp, ImUserStatNotify,
    ImUsersInfoReq, ImUsersInfoRsp, ImUsersStatReq, ImUsersStatRsp, UserInfo, UserStat,
    UserStatType,
};
use pdu::{cid, sid, Header, Message, PduRef};
use std::collections::{BTreeSet, HashMap};

/// Online users by department, for status notifications.
#[derive(Debug, Default)]
pub(super) struct BuddyState {
    online_by_dept: HashMap<u32, BTreeSet<u32>>,
}

/// A user's profile as TeamTalk's `UserInfo`.
pub(super) fn user_info(u: &User) -> UserInfo {
    UserInfo {
        user_id: u.id,
        user_nick_name: u.name.clone(),
        user_real_name: u.name.clone(),
        user_domain: u.name.clone(),
        department_id: u.department,
        ..Default::default()
    }
}

/// Online here or, as last heard over NATS, on another msg_server.
fn status(state: &MsgState, user: u32) -> i32 {
    if state.online.is_online(user) || super::cluster::online_elsewhere(state, user) {
        UserStatType::UserStatusOnline as i32
    } else {
        UserStatType::UserStatusOffline as i32
    }
}

/// Decodes a request body; an undecodable one is logged and ignored.
fn decode<M: Message + Default>(cx: &ConnCtx<'_, MsgConn>, pdu: &PduRef<'_>) -> Option<M> {
    match pdu.decode_body::<M>() {
        Ok(m) => Some(m),
        Err(e) => {
            log::warn!(
                "{} undecodable command {:#06x} ignored: {e}",
                cx.handle(),
                pdu.command_id()
            );
            None
        }
    }
}

/// Replies on `SID_BUDDY_LIST` to `request`.
fn answer<M: Message>(cx: &mut ConnCtx<'_, MsgConn>, request: &PduRef<'_>, command: u16, msg: &M) {
    reply(cx, request, sid::BUDDY_LIST, command, msg);
}

/// TeamTalk's list versioning: the users file's version, and the whole list
/// unless the client's `latest_update_time` is that version already.
fn newer_than<T>(users: &Users, client_has: u32, all: impl FnOnce() -> Vec<T>) -> (u32, Vec<T>) {
    let version = users.version();
    (
        version,
        if client_has >= version {
            Vec::new()
        } else {
            all()
        },
    )
}

/// Answers a logged-in client's buddy-list request.
pub(super) fn on_request(cx: &mut ConnCtx<'_, MsgConn>, pdu: &PduRef<'_>) {
    let Some(me) = cx.shared.sessions.get(&cx.handle()).map(|s| s.user_id) else {
        return;
    };
    let users = &cx.shared.settings.users;
    match (pdu.service_id(), pdu.command_id()) {
        (sid::BUDDY_LIST, cid::buddy::USER_INFO_REQUEST) => {
            let Some(req) = decode::<ImUsersInfoReq>(cx, pdu) else {
                return;
            };
            let rsp = ImUsersInfoRsp {
                user_id: me,
                user_info_list: req
                    .user_id_list
                    .iter()
                    .filter_map(|id| users.by_id(*id))
                    .map(user_info)
                    .collect(),
                attach_data: req.attach_data,
            };
            answer(cx, pdu, cid::buddy::USER_INFO_RESPONSE, &rsp);
        }
        (sid::BUDDY_LIST, cid::buddy::ALL_USER_REQUEST) => {
            let Some(req) = decode::<ImAllUserReq>(cx, pdu) else {
                return;
            };
            let (version, user_list) = newer_than(users, req.latest_update_time, || {
                users.iter().map(user_info).collect()
            });
            let rsp = ImAllUserRsp {
                user_id: me,
                latest_update_time: version,
                user_list,
                attach_data: req.attach_data,
            };
            answer(cx, pdu, cid::buddy::ALL_USER_RESPONSE, &rsp);
        }
        (sid::BUDDY_LIST, cid::buddy::DEPARTMENT_REQUEST) => {
            let Some(req) = decode::<ImDepartmentReq>(cx, pdu) else {
                return;
            };
            let (version, dept_list) = newer_than(users, req.latest_update_time, || {
                users
                    .departments()
                    .map(|d| DepartInfo {
                        dept_id: d.id,
                        priority: 0,
                        dept_name: d.name.clone(),
                        parent_dept_id: d.parent,
                        dept_status: 0,
                    })
                    .collect()
            });
            let rsp = ImDepartmentRsp {
                user_id: me,
                latest_update_time: version,
                dept_list,
                attach_data: req.attach_data,
            };
            answer(cx, pdu, cid::buddy::DEPARTMENT_RESPONSE, &rsp);
        }
        (sid::BUDDY_LIST, cid::buddy::USERS_STATUS_REQUEST) => {
            let Some(req) = decode::<ImUsersStatReq>(cx, pdu) else {
                return;
            };
            let rsp = ImUsersStatRsp {
                user_id: me,
                user_stat_list: req
                    .user_id_list
                    .iter()
                    .filter(|id| users.by_id(**id).is_some())
                    .map(|id| UserStat {
                        user_id: *id,
                        status: status(cx.shared, *id),
                    })
                    .collect(),
                attach_data: req.attach_data,
            };
            answer(cx, pdu, cid::buddy::USERS_STATUS_RESPONSE, &rsp);
        }
        (s, c) => log::info!(
            "{} user {me}: command {s:#06x}/{c:#06x} ({}) not supported, ignored",
            cx.handle(),
            pdu::ids::command_name(s, c).unwrap_or("unknown")
        ),
    }
}

/// Call after `user`'s connections changed: when the user went on line (its
/// first connection) or off line (its last), tells up to `StatusNotifyMax`
/// other online users of its department.
pub(super) fn presence_changed(cx: &mut ConnCtx<'_, MsgConn>, user: u32) {
    let state = &mut *cx.shared;
    let dept = department(state, user);
    if dept == 0 {
        return;
    }
    let online = state.online.is_online(user);
    let members = state.buddy.online_by_dept.entry(dept).or_default();
    let changed = if online {
        members.insert(user)
    } else {
        members.remove(&user)
    };
    if members.is_empty() {
        state.buddy.online_by_dept.remove(&dept);
    }
    if !changed {
        return;
    }
    // Other msg_servers hear it as presence (`cluster`) and tell their
    // members of the department.
    let targets = told(state, dept, user);
    let notify = stat_notify(user, status(state, user));
    for h in targets {
        let _ = cx.send_pdu_to(h, &STAT_NOTIFY, &notify);
    }
}

/// Users whose status as seen from here changed on other msg_servers
/// (cluster presence: a login or logout there, a refresh after an outage, an
/// entry expired): tells up to `StatusNotifyMax` members of each one's
/// department online here.
pub(super) fn remote_changes(
    s: &mut imconn::ImServer<MsgConn>,
    ctx: &mut netlib::Context,
    changes: Vec<super::cluster::Change>,
) {
    for (user, online) in changes {
        let targets = told(&s.shared, department(&s.shared, user), user);
        if targets.is_empty() {
            continue;
        }
        let notify = stat_notify(
            user,
            if online {
                UserStatType::UserStatusOnline as i32
            } else {
                UserStatType::UserStatusOffline as i32
            },
        );
        super::route::with_any(s, ctx, targets.clone(), |cx| {
            for h in targets {
                let _ = cx.send_pdu_to(h, &STAT_NOTIFY, &notify);
            }
        });
    }
}

/// The header of a status notification (0x0203).
const STAT_NOTIFY: Header = Header::new(sid::BUDDY_LIST, cid::buddy::STATUS_NOTIFY);

/// `user`'s department in the users file (0: none, or not a user).
fn department(state: &MsgState, user: u32) -> u32 {
    state.settings.users.by_id(user).map_or(0, |u| u.department)
}

/// The connections to tell of a change of `user`, of department `dept`
/// (none for 0): those of up to `StatusNotifyMax` other members online here,
/// the lowest ids.
fn told(state: &MsgState, dept: u32, user: u32) -> Vec<netlib::Handle> {
    if dept == 0 {
        return Vec::new();
    }
    state
        .buddy
        .online_by_dept
        .get(&dept)
        .into_iter()
        .flatten()
        .filter(|m| **m != user)
        .take(state.settings.status_notify_max)
        .flat_map(|m| state.online.get(*m).iter().copied())
        .collect()
}

/// A status notification: `user` is now `status` (a `UserStatType`).
fn stat_notify(user: u32, status: i32) -> ImUserStatNotify {
    ImUserStatNotify {
        user_stat: UserStat {
            user_id: user,
            status,
        },
    }
}
