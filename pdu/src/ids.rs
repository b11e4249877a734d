//! Service and command ids as plain `u16` constants, for `match` arms on a header.
//!
//! The header carries ids as bare numbers, and handlers dispatch on them:
//!
//! ```
//! use pdu::{cid, sid, Header};
//!
//! fn route(h: &Header) -> &'static str {
//!     match (h.service_id, h.command_id) {
//!         (sid::OTHER, cid::other::HEARTBEAT) => "heartbeat",
//!         (sid::LOGIN, cid::login::REQ_USERLOGIN) => "login",
//!         (sid::MSG, cid::msg::DATA) => "message",
//!         _ => "unknown",
//!     }
//! }
//! assert_eq!(route(&Header::new(sid::MSG, cid::msg::DATA)), "message");
//! ```
//!
//! The values are TeamTalk's, from `IM.BaseDefine.proto` (`ServiceID`,
//! `LoginCmdID`, `MessageCmdID`, `OtherCmdID`); the same values also exist as
//! protobuf enums in [`crate::proto`], and a unit test keeps the two in step.
//! A command id's high byte is its service id.

/// Service ids (`IM.BaseDefine.ServiceID`): the header's `service_id` field.
pub mod sid {
    /// `SID_LOGIN`: login server and user login on the message server.
    pub const LOGIN: u16 = 0x0001;
    /// `SID_BUDDY_LIST`: friend lists and user info.
    pub const BUDDY_LIST: u16 = 0x0002;
    /// `SID_MSG`: messages between users.
    pub const MSG: u16 = 0x0003;
    /// `SID_GROUP`: group messages.
    pub const GROUP: u16 = 0x0004;
    /// `SID_FILE`: file transfer.
    pub const FILE: u16 = 0x0005;
    /// `SID_SWITCH_SERVICE`: peer-to-peer command relay.
    pub const SWITCH_SERVICE: u16 = 0x0006;
    /// `SID_OTHER`: heartbeats and server-to-server traffic.
    pub const OTHER: u16 = 0x0007;
    /// `SID_INTERNAL`: reserved for servers.
    pub const INTERNAL: u16 = 0x0008;
}

/// Command ids, grouped by service: the header's `command_id` field.
pub mod cid {
    /// Commands of [`sid::LOGIN`](super::sid::LOGIN) (`IM.BaseDefine.LoginCmdID`).
    pub mod login {
        /// `CID_LOGIN_REQ_MSGSERVER`: client asks the login server for a message
        /// server ([`ImMsgServReq`](crate::proto::ImMsgServReq)).
        pub const MSG_SERV_REQ: u16 = 0x0101;
        /// `CID_LOGIN_RES_MSGSERVER`: the login server's answer
        /// ([`ImMsgServRsp`](crate::proto::ImMsgServRsp)).
        pub const MSG_SERV_RSP: u16 = 0x0102;
        /// `CID_LOGIN_REQ_USERLOGIN`: user login on the message server
        /// ([`ImLoginReq`](crate::proto::ImLoginReq)).
        pub const REQ_USERLOGIN: u16 = 0x0103;
        /// `CID_LOGIN_RES_USERLOGIN`: login result
        /// ([`ImLoginRes`](crate::proto::ImLoginRes)).
        pub const RES_USERLOGIN: u16 = 0x0104;
        /// `CID_LOGIN_REQ_LOGINOUT`: logout request
        /// ([`ImLogoutReq`](crate::proto::ImLogoutReq)).
        pub const REQ_LOGINOUT: u16 = 0x0105;
        /// `CID_LOGIN_RES_LOGINOUT`: logout result
        /// ([`ImLogoutRsp`](crate::proto::ImLogoutRsp)).
        pub const RES_LOGINOUT: u16 = 0x0106;
        /// `CID_LOGIN_KICK_USER`: the server kicks a session
        /// ([`ImKickUser`](crate::proto::ImKickUser)).
        pub const KICK_USER: u16 = 0x0107;
    }

    /// Commands of [`sid::BUDDY_LIST`](super::sid::BUDDY_LIST)
    /// (`IM.BaseDefine.BuddyListCmdID`).
    pub mod buddy {
        /// `CID_BUDDY_LIST_RECENT_CONTACT_SESSION_REQUEST`.
        pub const RECENT_CONTACT_SESSION_REQUEST: u16 = 0x0201;
        /// `CID_BUDDY_LIST_RECENT_CONTACT_SESSION_RESPONSE`.
        pub const RECENT_CONTACT_SESSION_RESPONSE: u16 = 0x0202;
        /// `CID_BUDDY_LIST_STATUS_NOTIFY`: a user went on or off line
        /// ([`ImUserStatNotify`](crate::proto::ImUserStatNotify)).
        pub const STATUS_NOTIFY: u16 = 0x0203;
        /// `CID_BUDDY_LIST_USER_INFO_REQUEST` ([`ImUsersInfoReq`](crate::proto::ImUsersInfoReq)).
        pub const USER_INFO_REQUEST: u16 = 0x0204;
        /// `CID_BUDDY_LIST_USER_INFO_RESPONSE` ([`ImUsersInfoRsp`](crate::proto::ImUsersInfoRsp)).
        pub const USER_INFO_RESPONSE: u16 = 0x0205;
        /// `CID_BUDDY_LIST_REMOVE_SESSION_REQ`.
        pub const REMOVE_SESSION_REQ: u16 = 0x0206;
        /// `CID_BUDDY_LIST_REMOVE_SESSION_RES`.
        pub const REMOVE_SESSION_RES: u16 = 0x0207;
        /// `CID_BUDDY_LIST_ALL_USER_REQUEST` ([`ImAllUserReq`](crate::proto::ImAllUserReq)).
        pub const ALL_USER_REQUEST: u16 = 0x0208;
        /// `CID_BUDDY_LIST_ALL_USER_RESPONSE` ([`ImAllUserRsp`](crate::proto::ImAllUserRsp)).
        pub const ALL_USER_RESPONSE: u16 = 0x0209;
        /// `CID_BUDDY_LIST_USERS_STATUS_REQUEST` ([`ImUsersStatReq`](crate::proto::ImUsersStatReq)).
        pub const USERS_STATUS_REQUEST: u16 = 0x020a;
        /// `CID_BUDDY_LIST_USERS_STATUS_RESPONSE` ([`ImUsersStatRsp`](crate::proto::ImUsersStatRsp)).
        pub const USERS_STATUS_RESPONSE: u16 = 0x020b;
        /// `CID_BUDDY_LIST_CHANGE_AVATAR_REQUEST`.
        pub const CHANGE_AVATAR_REQUEST: u16 = 0x020c;
        /// `CID_BUDDY_LIST_CHANGE_AVATAR_RESPONSE`.
        pub const CHANGE_AVATAR_RESPONSE: u16 = 0x020d;
        /// `CID_BUDDY_LIST_PC_LOGIN_STATUS_NOTIFY`.
        pub const PC_LOGIN_STATUS_NOTIFY: u16 = 0x020e;
        /// `CID_BUDDY_LIST_REMOVE_SESSION_NOTIFY`.
        pub const REMOVE_SESSION_NOTIFY: u16 = 0x020f;
        /// `CID_BUDDY_LIST_DEPARTMENT_REQUEST` ([`ImDepartmentReq`](crate::proto::ImDepartmentReq)).
        pub const DEPARTMENT_REQUEST: u16 = 0x0210;
        /// `CID_BUDDY_LIST_DEPARTMENT_RESPONSE` ([`ImDepartmentRsp`](crate::proto::ImDepartmentRsp)).
        pub const DEPARTMENT_RESPONSE: u16 = 0x0211;
        /// `CID_BUDDY_LIST_AVATAR_CHANGED_NOTIFY`.
        pub const AVATAR_CHANGED_NOTIFY: u16 = 0x0212;
        /// `CID_BUDDY_LIST_CHANGE_SIGN_INFO_REQUEST`.
        pub const CHANGE_SIGN_INFO_REQUEST: u16 = 0x0213;
        /// `CID_BUDDY_LIST_CHANGE_SIGN_INFO_RESPONSE`.
        pub const CHANGE_SIGN_INFO_RESPONSE: u16 = 0x0214;
        /// `CID_BUDDY_LIST_SIGN_INFO_CHANGED_NOTIFY`.
        pub const SIGN_INFO_CHANGED_NOTIFY: u16 = 0x0215;
    }

    /// Commands of [`sid::MSG`](super::sid::MSG) (`IM.BaseDefine.MessageCmdID`).
    pub mod msg {
        /// `CID_MSG_DATA`: a message ([`ImMsgData`](crate::proto::ImMsgData)).
        pub const DATA: u16 = 0x0301;
        /// `CID_MSG_DATA_ACK`: the server stored a message
        /// ([`ImMsgDataAck`](crate::proto::ImMsgDataAck)).
        pub const DATA_ACK: u16 = 0x0302;
        /// `CID_MSG_READ_ACK`: the recipient read messages
        /// ([`ImMsgDataReadAck`](crate::proto::ImMsgDataReadAck)).
        pub const READ_ACK: u16 = 0x0303;
        /// `CID_MSG_READ_NOTIFY`: tells the sender's other sessions about a read.
        pub const READ_NOTIFY: u16 = 0x0304;
        /// `CID_MSG_TIME_REQUEST`: client asks for the server time.
        pub const TIME_REQUEST: u16 = 0x0305;
        /// `CID_MSG_TIME_RESPONSE`: the server time.
        pub const TIME_RESPONSE: u16 = 0x0306;
        /// `CID_MSG_UNREAD_CNT_REQUEST`: unread counts per session
        /// ([`ImUnreadMsgCntReq`](crate::proto::ImUnreadMsgCntReq)).
        pub const UNREAD_CNT_REQUEST: u16 = 0x0307;
        /// `CID_MSG_UNREAD_CNT_RESPONSE`
        /// ([`ImUnreadMsgCntRsp`](crate::proto::ImUnreadMsgCntRsp)).
        pub const UNREAD_CNT_RESPONSE: u16 = 0x0308;
        /// `CID_MSG_LIST_REQUEST`: a session's history
        /// ([`ImGetMsgListReq`](crate::proto::ImGetMsgListReq)).
        pub const LIST_REQUEST: u16 = 0x0309;
        /// `CID_MSG_LIST_RESPONSE`
        /// ([`ImGetMsgListRsp`](crate::proto::ImGetMsgListRsp)).
        pub const LIST_RESPONSE: u16 = 0x030a;
        /// `CID_MSG_GET_LATEST_MSG_ID_REQ`
        /// ([`ImGetLatestMsgIdReq`](crate::proto::ImGetLatestMsgIdReq)).
        pub const GET_LATEST_MSG_ID_REQ: u16 = 0x030b;
        /// `CID_MSG_GET_LATEST_MSG_ID_RSP`
        /// ([`ImGetLatestMsgIdRsp`](crate::proto::ImGetLatestMsgIdRsp)).
        pub const GET_LATEST_MSG_ID_RSP: u16 = 0x030c;
        /// `CID_MSG_GET_BY_MSG_ID_REQ`
        /// ([`ImGetMsgByIdReq`](crate::proto::ImGetMsgByIdReq)).
        pub const GET_BY_MSG_ID_REQ: u16 = 0x030d;
        /// `CID_MSG_GET_BY_MSG_ID_RES`
        /// ([`ImGetMsgByIdRsp`](crate::proto::ImGetMsgByIdRsp)).
        pub const GET_BY_MSG_ID_RES: u16 = 0x030e;
    }

    /// Commands of [`sid::INTERNAL`](super::sid::INTERNAL): this project's own
    /// server-to-server commands (TeamTalk defines none for this service).
    pub mod internal {
        /// The login server challenges a message server's link
        /// ([`ImLinkChallenge`](crate::proto::ImLinkChallenge)).
        pub const LINK_CHALLENGE: u16 = 0x0801;
        /// The message server proves the shared key
        /// ([`ImLinkProof`](crate::proto::ImLinkProof)).
        pub const LINK_PROOF: u16 = 0x0802;
    }

    /// Commands of [`sid::GROUP`](super::sid::GROUP) (`IM.BaseDefine.GroupCmdID`).
    pub mod group {
        /// `CID_GROUP_NORMAL_LIST_REQUEST`: the user's groups
        /// ([`ImNormalGroupListReq`](crate::proto::ImNormalGroupListReq)).
        pub const NORMAL_LIST_REQUEST: u16 = 0x0401;
        /// `CID_GROUP_NORMAL_LIST_RESPONSE`
        /// ([`ImNormalGroupListRsp`](crate::proto::ImNormalGroupListRsp)).
        pub const NORMAL_LIST_RESPONSE: u16 = 0x0402;
        /// `CID_GROUP_INFO_REQUEST`
        /// ([`ImGroupInfoListReq`](crate::proto::ImGroupInfoListReq)).
        pub const INFO_REQUEST: u16 = 0x0403;
        /// `CID_GROUP_INFO_RESPONSE`
        /// ([`ImGroupInfoListRsp`](crate::proto::ImGroupInfoListRsp)).
        pub const INFO_RESPONSE: u16 = 0x0404;
        /// `CID_GROUP_CREATE_REQUEST`: a temporary group
        /// ([`ImGroupCreateReq`](crate::proto::ImGroupCreateReq)).
        pub const CREATE_REQUEST: u16 = 0x0405;
        /// `CID_GROUP_CREATE_RESPONSE`
        /// ([`ImGroupCreateRsp`](crate::proto::ImGroupCreateRsp)).
        pub const CREATE_RESPONSE: u16 = 0x0406;
        /// `CID_GROUP_CHANGE_MEMBER_REQUEST`
        /// ([`ImGroupChangeMemberReq`](crate::proto::ImGroupChangeMemberReq)).
        pub const CHANGE_MEMBER_REQUEST: u16 = 0x0407;
        /// `CID_GROUP_CHANGE_MEMBER_RESPONSE`
        /// ([`ImGroupChangeMemberRsp`](crate::proto::ImGroupChangeMemberRsp)).
        pub const CHANGE_MEMBER_RESPONSE: u16 = 0x0408;
        /// `CID_GROUP_SHIELD_GROUP_REQUEST`.
        pub const SHIELD_GROUP_REQUEST: u16 = 0x0409;
        /// `CID_GROUP_SHIELD_GROUP_RESPONSE`.
        pub const SHIELD_GROUP_RESPONSE: u16 = 0x040a;
        /// `CID_GROUP_CHANGE_MEMBER_NOTIFY`: to every member
        /// ([`ImGroupChangeMemberNotify`](crate::proto::ImGroupChangeMemberNotify)).
        pub const CHANGE_MEMBER_NOTIFY: u16 = 0x040b;
    }

    /// Commands of [`sid::OTHER`](super::sid::OTHER) (`IM.BaseDefine.OtherCmdID`).
    pub mod other {
        /// `CID_OTHER_HEARTBEAT`: keep-alive, echoed by the peer
        /// ([`ImHeartBeat`](crate::proto::ImHeartBeat)).
        pub const HEARTBEAT: u16 = 0x0701;
        /// `CID_OTHER_STOP_RECV_PACKET`.
        pub const STOP_RECV_PACKET: u16 = 0x0702;
        /// `CID_OTHER_VALIDATE_REQ`: message server asks the DB proxy to check a
        /// password.
        pub const VALIDATE_REQ: u16 = 0x0703;
        /// `CID_OTHER_VALIDATE_RSP`.
        pub const VALIDATE_RSP: u16 = 0x0704;
        /// `CID_OTHER_ROLE_SET`.
        pub const ROLE_SET: u16 = 0x0707;
        /// `CID_OTHER_ONLINE_USER_INFO`.
        pub const ONLINE_USER_INFO: u16 = 0x0708;
        /// `CID_OTHER_MSG_SERV_INFO`: a message server registers with the login
        /// server ([`ImMsgServInfo`](crate::proto::ImMsgServInfo)).
        pub const MSG_SERV_INFO: u16 = 0x0709;
        /// `CID_OTHER_USER_STATUS_UPDATE`.
        pub const USER_STATUS_UPDATE: u16 = 0x070a;
        /// `CID_OTHER_USER_CNT_UPDATE`: a message server reports a user arriving
        /// or leaving ([`ImUserCntUpdate`](crate::proto::ImUserCntUpdate)).
        pub const USER_CNT_UPDATE: u16 = 0x070b;
        /// `CID_OTHER_SERVER_KICK_USER`.
        pub const SERVER_KICK_USER: u16 = 0x070d;
    }
}

/// TeamTalk's name for a (service, command) pair, for log lines; `None` for ids
/// this crate does not name.
///
/// ```
/// use pdu::{cid, sid};
///
/// assert_eq!(pdu::ids::command_name(sid::OTHER, cid::other::HEARTBEAT), Some("CID_OTHER_HEARTBEAT"));
/// assert_eq!(pdu::ids::command_name(sid::MSG, 0x7777), None);
/// ```
pub fn command_name(service_id: u16, command_id: u16) -> Option<&'static str> {
    let name = match (service_id, command_id) {
        (sid::LOGIN, cid::login::MSG_SERV_REQ) => "CID_LOGIN_REQ_MSGSERVER",
        (sid::LOGIN, cid::login::MSG_SERV_RSP) => "CID_LOGIN_RES_MSGSERVER",
        (sid::LOGIN, cid::login::REQ_USERLOGIN) => "CID_LOGIN_REQ_USERLOGIN",
        (sid::LOGIN, cid::login::RES_USERLOGIN) => "CID_LOGIN_RES_USERLOGIN",
        (sid::LOGIN, cid::login::REQ_LOGINOUT) => "CID_LOGIN_REQ_LOGINOUT",
        (sid::LOGIN, cid::login::RES_LOGINOUT) => "CID_LOGIN_RES_LOGINOUT",
        (sid::LOGIN, cid::login::KICK_USER) => "CID_LOGIN_KICK_USER",
        (sid::BUDDY_LIST, c) => return buddy_name(c),
        (sid::MSG, cid::msg::DATA) => "CID_MSG_DATA",
        (sid::MSG, cid::msg::DATA_ACK) => "CID_MSG_DATA_ACK",
        (sid::MSG, cid::msg::READ_ACK) => "CID_MSG_READ_ACK",
        (sid::MSG, cid::msg::READ_NOTIFY) => "CID_MSG_READ_NOTIFY",
        (sid::MSG, cid::msg::TIME_REQUEST) => "CID_MSG_TIME_REQUEST",
        (sid::MSG, cid::msg::TIME_RESPONSE) => "CID_MSG_TIME_RESPONSE",
        (sid::MSG, cid::msg::UNREAD_CNT_REQUEST) => "CID_MSG_UNREAD_CNT_REQUEST",
        (sid::MSG, cid::msg::UNREAD_CNT_RESPONSE) => "CID_MSG_UNREAD_CNT_RESPONSE",
        (sid::MSG, cid::msg::LIST_REQUEST) => "CID_MSG_LIST_REQUEST",
        (sid::MSG, cid::msg::LIST_RESPONSE) => "CID_MSG_LIST_RESPONSE",
        (sid::MSG, cid::msg::GET_LATEST_MSG_ID_REQ) => "CID_MSG_GET_LATEST_MSG_ID_REQ",
        (sid::MSG, cid::msg::GET_LATEST_MSG_ID_RSP) => "CID_MSG_GET_LATEST_MSG_ID_RSP",
        (sid::MSG, cid::msg::GET_BY_MSG_ID_REQ) => "CID_MSG_GET_BY_MSG_ID_REQ",
        (sid::MSG, cid::msg::GET_BY_MSG_ID_RES) => "CID_MSG_GET_BY_MSG_ID_RES",
        (sid::GROUP, cid::group::NORMAL_LIST_REQUEST) => "CID_GROUP_NORMAL_LIST_REQUEST",
        (sid::GROUP, cid::group::NORMAL_LIST_RESPONSE) => "CID_GROUP_NORMAL_LIST_RESPONSE",
        (sid::GROUP, cid::group::INFO_REQUEST) => "CID_GROUP_INFO_REQUEST",
        (sid::GROUP, cid::group::INFO_RESPONSE) => "CID_GROUP_INFO_RESPONSE",
        (sid::GROUP, cid::group::CREATE_REQUEST) => "CID_GROUP_CREATE_REQUEST",
        (sid::GROUP, cid::group::CREATE_RESPONSE) => "CID_GROUP_CREATE_RESPONSE",
        (sid::GROUP, cid::group::CHANGE_MEMBER_REQUEST) => "CID_GROUP_CHANGE_MEMBER_REQUEST",
        (sid::GROUP, cid::group::CHANGE_MEMBER_RESPONSE) => "CID_GROUP_CHANGE_MEMBER_RESPONSE",
        (sid::GROUP, cid::group::SHIELD_GROUP_REQUEST) => "CID_GROUP_SHIELD_GROUP_REQUEST",
        (sid::GROUP, cid::group::SHIELD_GROUP_RESPONSE) => "CID_GROUP_SHIELD_GROUP_RESPONSE",
        (sid::GROUP, cid::group::CHANGE_MEMBER_NOTIFY) => "CID_GROUP_CHANGE_MEMBER_NOTIFY",
        (sid::OTHER, cid::other::HEARTBEAT) => "CID_OTHER_HEARTBEAT",
        (sid::OTHER, cid::other::STOP_RECV_PACKET) => "CID_OTHER_STOP_RECV_PACKET",
        (sid::OTHER, cid::other::VALIDATE_REQ) => "CID_OTHER_VALIDATE_REQ",
        (sid::OTHER, cid::other::VALIDATE_RSP) => "CID_OTHER_VALIDATE_RSP",
        (sid::OTHER, cid::other::ROLE_SET) => "CID_OTHER_ROLE_SET",
        (sid::OTHER, cid::other::ONLINE_USER_INFO) => "CID_OTHER_ONLINE_USER_INFO",
        (sid::OTHER, cid::other::MSG_SERV_INFO) => "CID_OTHER_MSG_SERV_INFO",
        (sid::OTHER, cid::other::USER_STATUS_UPDATE) => "CID_OTHER_USER_STATUS_UPDATE",
        (sid::OTHER, cid::other::USER_CNT_UPDATE) => "CID_OTHER_USER_CNT_UPDATE",
        (sid::OTHER, cid::other::SERVER_KICK_USER) => "CID_OTHER_SERVER_KICK_USER",
        (sid::INTERNAL, cid::internal::LINK_CHALLENGE) => "CID_INTERNAL_LINK_CHALLENGE",
        (sid::INTERNAL, cid::internal::LINK_PROOF) => "CID_INTERNAL_LINK_PROOF",
        _ => return None,
    };
    Some(name)
}

fn buddy_name(command_id: u16) -> Option<&'static str> {
    use cid::buddy::*;
    Some(match command_id {
        RECENT_CONTACT_SESSION_REQUEST => "CID_BUDDY_LIST_RECENT_CONTACT_SESSION_REQUEST",
        RECENT_CONTACT_SESSION_RESPONSE => "CID_BUDDY_LIST_RECENT_CONTACT_SESSION_RESPONSE",
        STATUS_NOTIFY => "CID_BUDDY_LIST_STATUS_NOTIFY",
        USER_INFO_REQUEST => "CID_BUDDY_LIST_USER_INFO_REQUEST",
        USER_INFO_RESPONSE => "CID_BUDDY_LIST_USER_INFO_RESPONSE",
        REMOVE_SESSION_REQ => "CID_BUDDY_LIST_REMOVE_SESSION_REQ",
        REMOVE_SESSION_RES => "CID_BUDDY_LIST_REMOVE_SESSION_RES",
        ALL_USER_REQUEST => "CID_BUDDY_LIST_ALL_USER_REQUEST",
        ALL_USER_RESPONSE => "CID_BUDDY_LIST_ALL_USER_RESPONSE",
        USERS_STATUS_REQUEST => "CID_BUDDY_LIST_USERS_STATUS_REQUEST",
        USERS_STATUS_RESPONSE => "CID_BUDDY_LIST_USERS_STATUS_RESPONSE",
        CHANGE_AVATAR_REQUEST => "CID_BUDDY_LIST_CHANGE_AVATAR_REQUEST",
        CHANGE_AVATAR_RESPONSE => "CID_BUDDY_LIST_CHANGE_AVATAR_RESPONSE",
        PC_LOGIN_STATUS_NOTIFY => "CID_BUDDY_LIST_PC_LOGIN_STATUS_NOTIFY",
        REMOVE_SESSION_NOTIFY => "CID_BUDDY_LIST_REMOVE_SESSION_NOTIFY",
        DEPARTMENT_REQUEST => "CID_BUDDY_LIST_DEPARTMENT_REQUEST",
        DEPARTMENT_RESPONSE => "CID_BUDDY_LIST_DEPARTMENT_RESPONSE",
        AVATAR_CHANGED_NOTIFY => "CID_BUDDY_LIST_AVATAR_CHANGED_NOTIFY",
        CHANGE_SIGN_INFO_REQUEST => "CID_BUDDY_LIST_CHANGE_SIGN_INFO_REQUEST",
        CHANGE_SIGN_INFO_RESPONSE => "CID_BUDDY_LIST_CHANGE_SIGN_INFO_RESPONSE",
        SIGN_INFO_CHANGED_NOTIFY => "CID_BUDDY_LIST_SIGN_INFO_CHANGED_NOTIFY",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{LoginCmdId, MessageCmdId, OtherCmdId, ServiceId};

    #[test]
    fn constants_match_the_protobuf_enums() {
        assert_eq!(i32::from(sid::LOGIN), ServiceId::SidLogin as i32);
        assert_eq!(i32::from(sid::BUDDY_LIST), ServiceId::SidBuddyList as i32);
        assert_eq!(i32::from(sid::MSG), ServiceId::SidMsg as i32);
        assert_eq!(i32::from(sid::GROUP), ServiceId::SidGroup as i32);
        assert_eq!(i32::from(sid::FILE), ServiceId::SidFile as i32);
        assert_eq!(
            i32::from(sid::SWITCH_SERVICE),
            ServiceId::SidSwitchService as i32
        );
        assert_eq!(i32::from(sid::OTHER), ServiceId::SidOther as i32);
        assert_eq!(i32::from(sid::INTERNAL), ServiceId::SidInternal as i32);

        let login = [
            (cid::login::MSG_SERV_REQ, LoginCmdId::CidLoginReqMsgserver),
            (cid::login::MSG_SERV_RSP, LoginCmdId::CidLoginResMsgserver),
            (cid::login::REQ_USERLOGIN, LoginCmdId::CidLoginReqUserlogin),
            (cid::login::RES_USERLOGIN, LoginCmdId::CidLoginResUserlogin),
            (cid::login::REQ_LOGINOUT, LoginCmdId::CidLoginReqLoginout),
            (cid::login::RES_LOGINOUT, LoginCmdId::CidLoginResLoginout),
            (cid::login::KICK_USER, LoginCmdId::CidLoginKickUser),
        ];
        for (value, variant) in login {
            assert_eq!(i32::from(value), variant as i32, "{variant:?}");
        }
        let msg = [
            (cid::msg::DATA, MessageCmdId::CidMsgData),
            (cid::msg::DATA_ACK, MessageCmdId::CidMsgDataAck),
            (cid::msg::READ_ACK, MessageCmdId::CidMsgReadAck),
            (cid::msg::READ_NOTIFY, MessageCmdId::CidMsgReadNotify),
            (cid::msg::TIME_REQUEST, MessageCmdId::CidMsgTimeRequest),
            (cid::msg::TIME_RESPONSE, MessageCmdId::CidMsgTimeResponse),
            (
                cid::msg::UNREAD_CNT_REQUEST,
                MessageCmdId::CidMsgUnreadCntRequest,
            ),
            (
                cid::msg::UNREAD_CNT_RESPONSE,
                MessageCmdId::CidMsgUnreadCntResponse,
            ),
            (cid::msg::LIST_REQUEST, MessageCmdId::CidMsgListRequest),
            (cid::msg::LIST_RESPONSE, MessageCmdId::CidMsgListResponse),
            (
                cid::msg::GET_LATEST_MSG_ID_REQ,
                MessageCmdId::CidMsgGetLatestMsgIdReq,
            ),
            (
                cid::msg::GET_LATEST_MSG_ID_RSP,
                MessageCmdId::CidMsgGetLatestMsgIdRsp,
            ),
            (
                cid::msg::GET_BY_MSG_ID_REQ,
                MessageCmdId::CidMsgGetByMsgIdReq,
            ),
            (
                cid::msg::GET_BY_MSG_ID_RES,
                MessageCmdId::CidMsgGetByMsgIdRes,
            ),
        ];
        for (value, variant) in msg {
            assert_eq!(i32::from(value), variant as i32, "{variant:?}");
        }
        let other = [
            (cid::other::HEARTBEAT, OtherCmdId::CidOtherHeartbeat),
            (
                cid::other::STOP_RECV_PACKET,
                OtherCmdId::CidOtherStopRecvPacket,
            ),
            (cid::other::VALIDATE_REQ, OtherCmdId::CidOtherValidateReq),
            (cid::other::VALIDATE_RSP, OtherCmdId::CidOtherValidateRsp),
            (cid::other::ROLE_SET, OtherCmdId::CidOtherRoleSet),
            (
                cid::other::ONLINE_USER_INFO,
                OtherCmdId::CidOtherOnlineUserInfo,
            ),
            (cid::other::MSG_SERV_INFO, OtherCmdId::CidOtherMsgServInfo),
            (
                cid::other::USER_STATUS_UPDATE,
                OtherCmdId::CidOtherUserStatusUpdate,
            ),
            (
                cid::other::USER_CNT_UPDATE,
                OtherCmdId::CidOtherUserCntUpdate,
            ),
            (
                cid::other::SERVER_KICK_USER,
                OtherCmdId::CidOtherServerKickUser,
            ),
        ];
        for (value, variant) in other {
            assert_eq!(i32::from(value), variant as i32, "{variant:?}");
        }
    }

    #[test]
    fn the_values_the_servers_rely_on() {
        assert_eq!((sid::LOGIN, sid::MSG, sid::OTHER), (1, 3, 7));
        assert_eq!(cid::login::MSG_SERV_REQ, 0x0101);
        assert_eq!(cid::login::KICK_USER, 0x0107);
        assert_eq!(cid::msg::DATA, 0x0301);
        assert_eq!(cid::msg::READ_ACK, 0x0303);
        assert_eq!(cid::other::HEARTBEAT, 0x0701);
        assert_eq!(cid::other::MSG_SERV_INFO, 0x0709);
        assert_eq!(cid::other::USER_CNT_UPDATE, 0x070b);
        assert_eq!(cid::buddy::STATUS_NOTIFY, 0x0203);
        assert_eq!(cid::buddy::ALL_USER_REQUEST, 0x0208);
        assert_eq!(cid::buddy::USERS_STATUS_REQUEST, 0x020a);
        assert_eq!(cid::buddy::DEPARTMENT_RESPONSE, 0x0211);
        assert_eq!(cid::buddy::SIGN_INFO_CHANGED_NOTIFY, 0x0215);
        assert_eq!(cid::internal::LINK_PROOF, 0x0802);
    }

    #[test]
    fn every_named_command_belongs_to_its_service() {
        for service in 0..=0x0008u16 {
            for low in 0..=0xffu16 {
                let command = (service << 8) | low;
                if command_name(service, command).is_some() {
                    assert_eq!(command >> 8, service);
                }
            }
        }
    }
}
