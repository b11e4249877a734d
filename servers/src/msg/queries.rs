//! The commands a client answers its screens with, all from the store:
//! unread counts (0x0307), a session's history (0x0309), its latest id
//! (0x030b), messages by id (0x030d), read acks (0x0303, with a read notify
//! 0x0304 to the reader's other connections), recent sessions (0x0201) and
//! removing one (0x0206).
//!
//! The user is always the connection's, whatever the request's `user_id`
//! says; a user sees only its own sessions (a single session is keyed by
//! the pair that includes the asking user). Answers carry the request's
//! sequence number and `attach_data`. A group's session answers only its
//! members (others get an empty answer).

use super::route::{answer, reply_seq};
use super::store::{Done, Op, Outcome, SessionKey, StoredMessage, UserSession};
use super::{MsgConn, MsgState};
use imconn::ConnCtx;
use pdu::proto::{
    ContactSessionInfo, ImGetLatestMsgIdReq, ImGetLatestMsgIdRsp, ImGetMsgByIdReq, ImGetMsgByIdRsp,
    ImGetMsgListReq, ImGetMsgListRsp, ImMsgDataReadAck, ImMsgDataReadNotify,
    ImRecentContactSessionReq, ImRecentContactSessionRsp, ImRemoveSessionReq, ImRemoveSessionRsp,
    ImUnreadMsgCntReq, ImUnreadMsgCntRsp, MsgType, SessionStatusType, SessionType, UnreadInfo,
    RECENT_CONTACT_SESSION_RESPONSE, REMOVE_SESSION_RES,
};
use pdu::{cid, sid, Header, PduRef};

/// Most messages one history or by-id request returns (TeamTalk clients
/// ask for about 20 at a time).
pub const MAX_MESSAGES_PER_REQUEST: usize = 200;

/// Submits a query; `respond` runs on the requesting connection with the
/// outcome if it is still open.
fn query(
    cx: &mut ConnCtx<'_, MsgConn>,
    pdu: &PduRef<'_>,
    op: Op,
    respond: impl FnOnce(&mut ConnCtx<'_, MsgConn>, netlib::Handle, u16, Outcome) + Send + 'static,
) {
    let (h, seq) = (cx.handle(), pdu.seq_num());
    let done: Done = Box::new(move |s, ctx, outcome| {
        answer(s, ctx, h, |cx| respond(cx, h, seq, outcome));
    });
    cx.shared.submit(op, Some(done));
}

/// A session the user may read: single ones always (keyed with the user),
/// groups while a member.
fn readable(state: &MsgState, user: u32, session_type: i32, session_id: u32) -> Option<SessionKey> {
    match SessionKey::of(user, session_type, session_id) {
        SessionKey::Group(g) if !super::groups::is_member(state, g, user) => None,
        key => Some(key),
    }
}

fn messages_of(outcome: Outcome) -> Vec<StoredMessage> {
    match outcome {
        Outcome::Messages(m) => m,
        other => {
            log::error!("history query failed: {other:?}");
            Vec::new()
        }
    }
}

/// 0x0307 -> 0x0308.
pub(super) fn unread(cx: &mut ConnCtx<'_, MsgConn>, pdu: &PduRef<'_>) {
    let Some((user, req)) = super::request::<ImUnreadMsgCntReq>(cx, pdu) else {
        return;
    };
    let op = Op::Sessions {
        user,
        since: 0,
        unread_only: true,
    };
    query(cx, pdu, op, move |cx, h, seq, outcome| {
        let list = sessions_of(outcome);
        let res = ImUnreadMsgCntRsp {
            user_id: user,
            total_cnt: list.iter().map(|s| s.unread).sum(),
            unreadinfo_list: list
                .iter()
                .map(|s| {
                    let (id, data, ty, from) = latest_fields(s);
                    UnreadInfo {
                        session_id: s.session.id_for(user),
                        session_type: s.session.session_type() as i32,
                        unread_cnt: s.unread,
                        latest_msg_id: id,
                        latest_msg_data: data,
                        latest_msg_type: ty,
                        latest_msg_from_user_id: from,
                    }
                })
                .collect(),
            attach_data: req.attach_data,
        };
        reply_seq(cx, h, seq, sid::MSG, cid::msg::UNREAD_CNT_RESPONSE, &res);
    });
}

fn sessions_of(outcome: Outcome) -> Vec<UserSession> {
    match outcome {
        Outcome::Sessions(s) => s,
        other => {
            log::error!("sessions query failed: {other:?}");
            Vec::new()
        }
    }
}

/// The latest message's (id, data, type, sender), zeros if none is stored.
fn latest_fields(s: &UserSession) -> (u32, Vec<u8>, i32, u32) {
    match &s.latest {
        Some(m) => (m.msg_id, m.data.clone(), m.msg_type, m.from),
        None => (0, Vec::new(), MsgType::SingleText as i32, 0),
    }
}

/// 0x0309 -> 0x030a: up to `msg_cnt` messages from `msg_id_begin` down,
/// newest first.
pub(super) fn history(cx: &mut ConnCtx<'_, MsgConn>, pdu: &PduRef<'_>) {
    let Some((user, req)) = super::request::<ImGetMsgListReq>(cx, pdu) else {
        return;
    };
    let mut res = ImGetMsgListRsp {
        user_id: user,
        session_type: req.session_type,
        session_id: req.session_id,
        msg_id_begin: req.msg_id_begin,
        msg_list: Vec::new(),
        attach_data: req.attach_data,
    };
    let Some(session) = readable(cx.shared, user, req.session_type, req.session_id) else {
        return reply_seq(
            cx,
            cx.handle(),
            pdu.seq_num(),
            sid::MSG,
            cid::msg::LIST_RESPONSE,
            &res,
        );
    };
    let op = Op::History {
        session,
        // TeamTalk clients ask with 0 for "from the newest".
        until: match req.msg_id_begin {
            0 => u32::MAX,
            id => id,
        },
        count: req.msg_cnt.min(MAX_MESSAGES_PER_REQUEST as u32),
    };
    query(cx, pdu, op, move |cx, h, seq, outcome| {
        res.msg_list = messages_of(outcome)
            .iter()
            .map(|m| m.to_msg_info())
            .collect();
        reply_seq(cx, h, seq, sid::MSG, cid::msg::LIST_RESPONSE, &res);
    });
}

/// 0x030b -> 0x030c.
pub(super) fn latest(cx: &mut ConnCtx<'_, MsgConn>, pdu: &PduRef<'_>) {
    let Some((user, req)) = super::request::<ImGetLatestMsgIdReq>(cx, pdu) else {
        return;
    };
    let mut res = ImGetLatestMsgIdRsp {
        user_id: user,
        session_type: req.session_type,
        session_id: req.session_id,
        latest_msg_id: 0,
        attach_data: req.attach_data,
    };
    let Some(session) = readable(cx.shared, user, req.session_type, req.session_id) else {
        let (h, seq) = (cx.handle(), pdu.seq_num());
        return reply_seq(cx, h, seq, sid::MSG, cid::msg::GET_LATEST_MSG_ID_RSP, &res);
    };
    query(
        cx,
        pdu,
        Op::Latest { session },
        move |cx, h, seq, outcome| {
            match outcome {
                Outcome::LatestId(id) => res.latest_msg_id = id,
                other => log::error!("latest id query failed: {other:?}"),
            }
            reply_seq(cx, h, seq, sid::MSG, cid::msg::GET_LATEST_MSG_ID_RSP, &res);
        },
    );
}

/// 0x030d -> 0x030e.
pub(super) fn by_id(cx: &mut ConnCtx<'_, MsgConn>, pdu: &PduRef<'_>) {
    let Some((user, mut req)) = super::request::<ImGetMsgByIdReq>(cx, pdu) else {
        return;
    };
    req.msg_id_list.truncate(MAX_MESSAGES_PER_REQUEST);
    let mut res = ImGetMsgByIdRsp {
        user_id: user,
        session_type: req.session_type,
        session_id: req.session_id,
        msg_list: Vec::new(),
        attach_data: req.attach_data,
    };
    let Some(session) = readable(cx.shared, user, req.session_type, req.session_id) else {
        let (h, seq) = (cx.handle(), pdu.seq_num());
        return reply_seq(cx, h, seq, sid::MSG, cid::msg::GET_BY_MSG_ID_RES, &res);
    };
    let op = Op::ById {
        session,
        ids: req.msg_id_list,
    };
    query(cx, pdu, op, move |cx, h, seq, outcome| {
        res.msg_list = messages_of(outcome)
            .iter()
            .map(|m| m.to_msg_info())
            .collect();
        reply_seq(cx, h, seq, sid::MSG, cid::msg::GET_BY_MSG_ID_RES, &res);
    });
}

/// 0x0303: the user read a session up to `msg_id`. The store recounts the
/// unread messages; the user's other connections get a read notify (0x0304).
pub(super) fn read_ack(cx: &mut ConnCtx<'_, MsgConn>, pdu: &PduRef<'_>) {
    let Some((user, req)) = super::request::<ImMsgDataReadAck>(cx, pdu) else {
        return;
    };
    let Some(session) = readable(cx.shared, user, req.session_type, req.session_id) else {
        return;
    };
    cx.shared.submit(
        Op::ReadAck {
            user,
            session,
            msg_id: req.msg_id,
        },
        None,
    );
    let notify = ImMsgDataReadNotify {
        user_id: user,
        session_id: req.session_id,
        msg_id: req.msg_id,
        session_type: req.session_type,
    };
    let header = Header::new(sid::MSG, cid::msg::READ_NOTIFY);
    let me = cx.handle();
    for other in cx.shared.online.get(user).to_vec() {
        if other != me {
            let _ = cx.send_pdu_to(other, &header, &notify);
        }
    }
}

/// 0x0201 -> 0x0202: sessions changed after `latest_update_time`, newest
/// first, removed ones with `SESSION_STATUS_DELETE`.
pub(super) fn recent_sessions(cx: &mut ConnCtx<'_, MsgConn>, pdu: &PduRef<'_>) {
    let Some((user, req)) = super::request::<ImRecentContactSessionReq>(cx, pdu) else {
        return;
    };
    let op = Op::Sessions {
        user,
        since: req.latest_update_time,
        unread_only: false,
    };
    query(cx, pdu, op, move |cx, h, seq, outcome| {
        let res = ImRecentContactSessionRsp {
            user_id: user,
            contact_session_list: sessions_of(outcome)
                .iter()
                .map(|s| {
                    let (id, data, ty, from) = latest_fields(s);
                    ContactSessionInfo {
                        session_id: s.session.id_for(user),
                        session_type: s.session.session_type() as i32,
                        session_status: if s.removed {
                            SessionStatusType::SessionStatusDelete
                        } else {
                            SessionStatusType::SessionStatusOk
                        } as i32,
                        updated_time: s.updated,
                        latest_msg_id: id,
                        latest_msg_data: data,
                        latest_msg_type: ty,
                        latest_msg_from_user_id: from,
                    }
                })
                .collect(),
            attach_data: req.attach_data,
        };
        reply_seq(
            cx,
            h,
            seq,
            sid::BUDDY_LIST,
            RECENT_CONTACT_SESSION_RESPONSE,
            &res,
        );
    });
}

/// 0x0206 -> 0x0207: result 0 once the store removed it, 1 if it failed.
pub(super) fn remove_session(cx: &mut ConnCtx<'_, MsgConn>, pdu: &PduRef<'_>) {
    let Some((user, req)) = super::request::<ImRemoveSessionReq>(cx, pdu) else {
        return;
    };
    let mut res = ImRemoveSessionRsp {
        user_id: user,
        result_code: 1,
        session_type: req.session_type,
        session_id: req.session_id,
        attach_data: req.attach_data,
    };
    let session = SessionKey::of(user, req.session_type, req.session_id);
    if req.session_type != SessionType::Single as i32
        && req.session_type != SessionType::Group as i32
    {
        let (h, seq) = (cx.handle(), pdu.seq_num());
        return reply_seq(cx, h, seq, sid::BUDDY_LIST, REMOVE_SESSION_RES, &res);
    }
    query(
        cx,
        pdu,
        Op::RemoveSession { user, session },
        move |cx, h, seq, outcome| {
            if matches!(outcome, Outcome::Done) {
                res.result_code = 0;
            }
            reply_seq(cx, h, seq, sid::BUDDY_LIST, REMOVE_SESSION_RES, &res);
        },
    );
}
