//! `IM.BaseDefine.proto`: the enums the other messages use, and [`UserInfo`].
//!
//! Only the parts the servers in this workspace use are ported; the id enums are
//! complete so any TeamTalk command id can be named.

/// `IM.BaseDefine.ServiceID`: the header's `service_id`. Also available as plain
/// `u16` constants in [`crate::sid`].
#[doc(alias = "ServiceID")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ServiceId {
    /// `SID_LOGIN`: login.
    SidLogin = 0x0001,
    /// `SID_BUDDY_LIST`: friend list.
    SidBuddyList = 0x0002,
    /// `SID_MSG`: messages.
    SidMsg = 0x0003,
    /// `SID_GROUP`: group messages.
    SidGroup = 0x0004,
    /// `SID_FILE`: file transfer.
    SidFile = 0x0005,
    /// `SID_SWITCH_SERVICE`: peer-to-peer relay.
    SidSwitchService = 0x0006,
    /// `SID_OTHER`: heartbeat and server-to-server.
    SidOther = 0x0007,
    /// `SID_INTERNAL`.
    SidInternal = 0x0008,
}

/// `IM.BaseDefine.LoginCmdID`: command ids of [`ServiceId::SidLogin`]. Also
/// available as plain `u16` constants in [`crate::cid::login`].
#[doc(alias = "LoginCmdID")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum LoginCmdId {
    /// `CID_LOGIN_REQ_MSGSERVER`.
    CidLoginReqMsgserver = 0x0101,
    /// `CID_LOGIN_RES_MSGSERVER`.
    CidLoginResMsgserver = 0x0102,
    /// `CID_LOGIN_REQ_USERLOGIN`.
    CidLoginReqUserlogin = 0x0103,
    /// `CID_LOGIN_RES_USERLOGIN`.
    CidLoginResUserlogin = 0x0104,
    /// `CID_LOGIN_REQ_LOGINOUT`.
    CidLoginReqLoginout = 0x0105,
    /// `CID_LOGIN_RES_LOGINOUT`.
    CidLoginResLoginout = 0x0106,
    /// `CID_LOGIN_KICK_USER`.
    CidLoginKickUser = 0x0107,
    /// `CID_LOGIN_REQ_DEVICETOKEN`.
    CidLoginReqDevicetoken = 0x0108,
    /// `CID_LOGIN_RES_DEVICETOKEN`.
    CidLoginResDevicetoken = 0x0109,
    /// `CID_LOGIN_REQ_KICKPCCLIENT`.
    CidLoginReqKickpcclient = 0x010a,
    /// `CID_LOGIN_RES_KICKPCCLIENT`.
    CidLoginResKickpcclient = 0x010b,
    /// `CID_LOGIN_REQ_PUSH_SHIELD`.
    CidLoginReqPushShield = 0x010c,
    /// `CID_LOGIN_RES_PUSH_SHIELD`.
    CidLoginResPushShield = 0x010d,
    /// `CID_LOGIN_REQ_QUERY_PUSH_SHIELD`.
    CidLoginReqQueryPushShield = 0x010e,
    /// `CID_LOGIN_RES_QUERY_PUSH_SHIELD`.
    CidLoginResQueryPushShield = 0x010f,
}

/// `IM.BaseDefine.MessageCmdID`: command ids of [`ServiceId::SidMsg`]. The common
/// ones are also plain `u16` constants in [`crate::cid::msg`].
#[doc(alias = "MessageCmdID")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MessageCmdId {
    /// `CID_MSG_DATA`.
    CidMsgData = 0x0301,
    /// `CID_MSG_DATA_ACK`.
    CidMsgDataAck = 0x0302,
    /// `CID_MSG_READ_ACK`.
    CidMsgReadAck = 0x0303,
    /// `CID_MSG_READ_NOTIFY`.
    CidMsgReadNotify = 0x0304,
    /// `CID_MSG_TIME_REQUEST`.
    CidMsgTimeRequest = 0x0305,
    /// `CID_MSG_TIME_RESPONSE`.
    CidMsgTimeResponse = 0x0306,
    /// `CID_MSG_UNREAD_CNT_REQUEST`.
    CidMsgUnreadCntRequest = 0x0307,
    /// `CID_MSG_UNREAD_CNT_RESPONSE`.
    CidMsgUnreadCntResponse = 0x0308,
    /// `CID_MSG_LIST_REQUEST`.
    CidMsgListRequest = 0x0309,
    /// `CID_MSG_LIST_RESPONSE`.
    CidMsgListResponse = 0x030a,
    /// `CID_MSG_GET_LATEST_MSG_ID_REQ`.
    CidMsgGetLatestMsgIdReq = 0x030b,
    /// `CID_MSG_GET_LATEST_MSG_ID_RSP`.
    CidMsgGetLatestMsgIdRsp = 0x030c,
    /// `CID_MSG_GET_BY_MSG_ID_REQ`.
    CidMsgGetByMsgIdReq = 0x030d,
    /// `CID_MSG_GET_BY_MSG_ID_RES`.
    CidMsgGetByMsgIdRes = 0x030e,
}

/// `IM.BaseDefine.OtherCmdID`: command ids of [`ServiceId::SidOther`]. The common
/// ones are also plain `u16` constants in [`crate::cid::other`].
#[doc(alias = "OtherCmdID")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum OtherCmdId {
    /// `CID_OTHER_HEARTBEAT`.
    CidOtherHeartbeat = 0x0701,
    /// `CID_OTHER_STOP_RECV_PACKET`.
    CidOtherStopRecvPacket = 0x0702,
    /// `CID_OTHER_VALIDATE_REQ`.
    CidOtherValidateReq = 0x0703,
    /// `CID_OTHER_VALIDATE_RSP`.
    CidOtherValidateRsp = 0x0704,
    /// `CID_OTHER_GET_DEVICE_TOKEN_REQ`.
    CidOtherGetDeviceTokenReq = 0x0705,
    /// `CID_OTHER_GET_DEVICE_TOKEN_RSP`.
    CidOtherGetDeviceTokenRsp = 0x0706,
    /// `CID_OTHER_ROLE_SET`.
    CidOtherRoleSet = 0x0707,
    /// `CID_OTHER_ONLINE_USER_INFO`.
    CidOtherOnlineUserInfo = 0x0708,
    /// `CID_OTHER_MSG_SERV_INFO`.
    CidOtherMsgServInfo = 0x0709,
    /// `CID_OTHER_USER_STATUS_UPDATE`.
    CidOtherUserStatusUpdate = 0x070a,
    /// `CID_OTHER_USER_CNT_UPDATE`.
    CidOtherUserCntUpdate = 0x070b,
    /// `CID_OTHER_SERVER_KICK_USER`.
    CidOtherServerKickUser = 0x070d,
    /// `CID_OTHER_LOGIN_STATUS_NOTIFY`.
    CidOtherLoginStatusNotify = 0x070e,
    /// `CID_OTHER_PUSH_TO_USER_REQ`.
    CidOtherPushToUserReq = 0x070f,
    /// `CID_OTHER_PUSH_TO_USER_RSP`.
    CidOtherPushToUserRsp = 0x0710,
    /// `CID_OTHER_GET_SHIELD_REQ`.
    CidOtherGetShieldReq = 0x0711,
    /// `CID_OTHER_GET_SHIELD_RSP`.
    CidOtherGetShieldRsp = 0x0712,
    /// `CID_OTHER_FILE_TRANSFER_REQ`.
    CidOtherFileTransferReq = 0x0731,
    /// `CID_OTHER_FILE_TRANSFER_RSP`.
    CidOtherFileTransferRsp = 0x0732,
    /// `CID_OTHER_FILE_SERVER_IP_REQ`.
    CidOtherFileServerIpReq = 0x0733,
    /// `CID_OTHER_FILE_SERVER_IP_RSP`.
    CidOtherFileServerIpRsp = 0x0734,
}

/// `IM.BaseDefine.ResultType`: why a login or message-server request was refused
/// (`RefuseReasonNone` for success).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ResultType {
    /// `REFUSE_REASON_NONE`: success.
    RefuseReasonNone = 0,
    /// `REFUSE_REASON_NO_MSG_SERVER`: no message server is registered.
    RefuseReasonNoMsgServer = 1,
    /// `REFUSE_REASON_MSG_SERVER_FULL`: every message server is at capacity.
    RefuseReasonMsgServerFull = 2,
    /// `REFUSE_REASON_NO_DB_SERVER`.
    RefuseReasonNoDbServer = 3,
    /// `REFUSE_REASON_NO_LOGIN_SERVER`.
    RefuseReasonNoLoginServer = 4,
    /// `REFUSE_REASON_NO_ROUTE_SERVER`.
    RefuseReasonNoRouteServer = 5,
    /// `REFUSE_REASON_DB_VALIDATE_FAILED`: wrong user name or password.
    RefuseReasonDbValidateFailed = 6,
    /// `REFUSE_REASON_VERSION_TOO_OLD`.
    RefuseReasonVersionTooOld = 7,
}

/// `IM.BaseDefine.KickReasonType`: why a session was kicked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum KickReasonType {
    /// `KICK_REASON_DUPLICATE_USER`: the same user logged in elsewhere.
    KickReasonDuplicateUser = 1,
    /// `KICK_REASON_MOBILE_KICK`: the user's phone kicked the PC session.
    KickReasonMobileKick = 2,
}

/// `IM.BaseDefine.UserStatType`: a user's presence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum UserStatType {
    /// `USER_STATUS_ONLINE`.
    UserStatusOnline = 1,
    /// `USER_STATUS_OFFLINE`.
    UserStatusOffline = 2,
    /// `USER_STATUS_LEAVE`: away.
    UserStatusLeave = 3,
}

/// `IM.BaseDefine.SessionType`: one-to-one or group conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SessionType {
    /// `SESSION_TYPE_SINGLE`: a conversation with one user.
    Single = 1,
    /// `SESSION_TYPE_GROUP`: a group conversation.
    Group = 2,
}

/// `IM.BaseDefine.MsgType`: what a message carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MsgType {
    /// `MSG_TYPE_SINGLE_TEXT`.
    SingleText = 0x01,
    /// `MSG_TYPE_SINGLE_AUDIO`.
    SingleAudio = 0x02,
    /// `MSG_TYPE_GROUP_TEXT`.
    GroupText = 0x11,
    /// `MSG_TYPE_GROUP_AUDIO`.
    GroupAudio = 0x12,
}

/// `IM.BaseDefine.ClientType`: the kind of client a session runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ClientType {
    /// `CLIENT_TYPE_WINDOWS`.
    Windows = 0x01,
    /// `CLIENT_TYPE_MAC`.
    Mac = 0x02,
    /// `CLIENT_TYPE_IOS`.
    Ios = 0x11,
    /// `CLIENT_TYPE_ANDROID`.
    Android = 0x12,
}

impl ClientType {
    /// Whether this is a phone client (TeamTalk's `CHECK_CLIENT_TYPE_MOBILE`: the
    /// `0x10` bit). A user may have one PC and one mobile session at once.
    ///
    /// ```
    /// use pdu::proto::ClientType;
    /// assert!(ClientType::Android.is_mobile());
    /// assert!(!ClientType::Mac.is_mobile());
    /// ```
    pub fn is_mobile(self) -> bool {
        (self as i32) & 0x10 != 0
    }
}

/// `IM.BaseDefine.UserInfo`: a user's profile, sent in a successful login result.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UserInfo {
    /// Field 1, `required uint32 user_id`.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 2, `required uint32 user_gender`: 1 male, 2 female, 0 unknown.
    #[prost(uint32, required, tag = "2")]
    pub user_gender: u32,
    /// Field 3, `required string user_nick_name`.
    #[prost(string, required, tag = "3")]
    pub user_nick_name: String,
    /// Field 4, `required string avatar_url`.
    #[prost(string, required, tag = "4")]
    pub avatar_url: String,
    /// Field 5, `required uint32 department_id`.
    #[prost(uint32, required, tag = "5")]
    pub department_id: u32,
    /// Field 6, `required string email`.
    #[prost(string, required, tag = "6")]
    pub email: String,
    /// Field 7, `required string user_real_name`.
    #[prost(string, required, tag = "7")]
    pub user_real_name: String,
    /// Field 8, `required string user_tel`.
    #[prost(string, required, tag = "8")]
    pub user_tel: String,
    /// Field 9, `required string user_domain`: the name's pinyin.
    #[prost(string, required, tag = "9")]
    pub user_domain: String,
    /// Field 10, `required uint32 status`: employment status (3 = left).
    #[prost(uint32, required, tag = "10")]
    pub status: u32,
    /// Field 11, `optional string sign_info`: the user's signature line.
    #[prost(string, optional, tag = "11")]
    pub sign_info: Option<String>,
}
