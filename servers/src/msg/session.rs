//! Logins and logouts: credentials, one session per user and client class
//! (the older one is kicked), the user count reports to login_servers, and
//! starting the feed of a user's mailbox at login.

use super::{reply, route, unix_now, MsgConn, Session};
use imconn::{ConnCtx, Timeouts};
use netlib::{CloseReason, Handle};
use pdu::proto::{
    ClientType, ImKickUser, ImLoginReq, ImLoginRes, ImUserCntUpdate, KickReasonType, ResultType,
    UserStatType, USER_CNT_DEC, USER_CNT_INC,
};
use pdu::{cid, sid, Header, PduRef};

/// A login request on a connection that is not logged in.
pub(super) fn login(cx: &mut ConnCtx<'_, MsgConn>, pdu: &PduRef<'_>) {
    let Some(req) = super::decode::<ImLoginReq>(cx, pdu) else {
        return;
    };
    let Some(user) = cx
        .shared
        .settings
        .users
        .authenticate(&req.user_name, &req.password)
    else {
        log::info!(
            "{} login of {:?} refused: wrong credentials",
            cx.handle(),
            req.user_name
        );
        let res = ImLoginRes {
            server_time: unix_now(),
            result_code: ResultType::RefuseReasonDbValidateFailed as i32,
            result_string: Some("wrong user name or password".into()),
            ..Default::default()
        };
        reply(cx, pdu, sid::LOGIN, cid::login::RES_USERLOGIN, &res);
        cx.close_after_flush();
        return;
    };
    let (user_id, name, info) = (user.id, user.name.clone(), super::buddy::user_info(user));
    let mobile = ClientType::try_from(req.client_type).is_ok_and(|t| t.is_mobile());
    kick_same_class(cx, user_id, mobile);
    super::cluster::logged_in(cx.shared, user_id, mobile);
    let h = cx.handle();
    cx.set_logged_in();
    if mobile {
        cx.set_timeouts(Timeouts {
            idle: Timeouts::MOBILE_CLIENT.idle,
            ..cx.shared.settings.client_timeouts
        });
    }
    cx.shared.sessions.insert(h, Session { user_id, mobile });
    cx.shared.online.add(user_id, h);
    log::info!(
        "{h} {} logged in as {name} ({user_id})",
        crate::runtime::addr_or_unknown(cx.peer())
    );
    let res = ImLoginRes {
        server_time: unix_now(),
        result_code: ResultType::RefuseReasonNone as i32,
        result_string: None,
        online_status: Some(UserStatType::UserStatusOnline as i32),
        user_info: Some(info),
    };
    reply(cx, pdu, sid::LOGIN, cid::login::RES_USERLOGIN, &res);
    super::buddy::presence_changed(cx, user_id);
    let update = ImUserCntUpdate {
        user_action: USER_CNT_INC,
        user_id,
    };
    cx.send_pdu_to_links(
        &Header::new(sid::OTHER, cid::other::USER_CNT_UPDATE),
        &update,
    );
    // Messages that waited in the mailbox, from the store, paced by acks.
    route::start_drain(cx, user_id, h);
}

/// A client connection closed.
pub(super) fn logout(cx: &mut ConnCtx<'_, MsgConn>, reason: CloseReason) {
    let h = cx.handle();
    let unacked = cx
        .shared
        .pending
        .remove(&h)
        .is_some_and(|p| !p.msgs.is_empty());
    let Some(session) = cx.shared.sessions.remove(&h) else {
        return;
    };
    let user = session.user_id;
    log::info!("{h} user {user} logged out: {reason}");
    cx.shared.online.remove(user, h);
    if !cx.shared.online.is_online(user) {
        super::cluster::offline(cx.shared, user);
    }
    super::buddy::presence_changed(cx, user);
    let was_draining = route::stop_drain_on(cx.shared, user, h);
    // What this connection left unacknowledged (and the rest of the
    // mailbox) goes to another connection of the user, if there is one.
    if unacked || was_draining {
        if let Some(&next) = cx.shared.online.get(user).first() {
            route::start_drain(cx, user, next);
        }
    }
    let update = ImUserCntUpdate {
        user_action: USER_CNT_DEC,
        user_id: user,
    };
    cx.send_pdu_to_links(
        &Header::new(sid::OTHER, cid::other::USER_CNT_UPDATE),
        &update,
    );
}

/// One session per user and client class: kicks this server's sessions of
/// `user_id` of the class (`mobile` or not) - a new login here, or one on
/// another msg_server ([`super::cluster`]).
pub(super) fn kick_same_class(cx: &mut ConnCtx<'_, MsgConn>, user_id: u32, mobile: bool) {
    let same_class: Vec<Handle> = cx
        .shared
        .online
        .get(user_id)
        .iter()
        .copied()
        .filter(|h| {
            cx.shared
                .sessions
                .get(h)
                .is_some_and(|s| s.mobile == mobile)
        })
        .collect();
    for old in same_class {
        log::info!("user {user_id} logged in again: kicking {old}");
        let kick = ImKickUser {
            user_id,
            kick_reason: KickReasonType::KickReasonDuplicateUser as i32,
        };
        let _ = cx.send_pdu_to(old, &Header::new(sid::LOGIN, cid::login::KICK_USER), &kick);
        cx.close_conn_after_flush(old);
        // The old session stops receiving at once; what it left
        // unacknowledged is still in the mailbox.
        cx.shared.online.remove(user_id, old);
        cx.shared.sessions.remove(&old);
        cx.shared.pending.remove(&old);
        route::stop_drain_on(cx.shared, user_id, old);
    }
}
