//! `IM.Message.proto` (service [`sid::MSG`](crate::sid::MSG)): a message and its
//! acknowledgements.
//!
//! The sender's client sends [`ImMsgData`]; the message server stores and relays
//! it and answers the sender with [`ImMsgDataAck`]. The recipient later reports
//! what it has read with [`ImMsgDataReadAck`].

use super::base_define::{MsgType, SessionType};

/// `IM.Message.IMMsgData`, command [`cid::msg::DATA`](crate::cid::msg::DATA): one
/// message.
#[doc(alias = "IMMsgData")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImMsgData {
    /// Field 1, `required uint32 from_user_id`: the sender.
    #[prost(uint32, required, tag = "1")]
    pub from_user_id: u32,
    /// Field 2, `required uint32 to_session_id`: the recipient user or group.
    #[prost(uint32, required, tag = "2")]
    pub to_session_id: u32,
    /// Field 3, `required uint32 msg_id`.
    #[prost(uint32, required, tag = "3")]
    pub msg_id: u32,
    /// Field 4, `required uint32 create_time`: seconds since the Unix epoch.
    #[prost(uint32, required, tag = "4")]
    pub create_time: u32,
    /// Field 5, `required MsgType msg_type`.
    #[prost(enumeration = "MsgType", required, tag = "5")]
    pub msg_type: i32,
    /// Field 6, `required bytes msg_data`: the (client-encrypted) content.
    #[prost(bytes = "vec", required, tag = "6")]
    pub msg_data: Vec<u8>,
    /// Field 20, `optional bytes attach_data`: opaque server-side context.
    #[prost(bytes = "vec", optional, tag = "20")]
    pub attach_data: Option<Vec<u8>>,
}

/// `IM.Message.IMMsgDataAck`, command [`cid::msg::DATA_ACK`](crate::cid::msg::DATA_ACK):
/// the server has taken a message.
#[doc(alias = "IMMsgDataAck")]
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct ImMsgDataAck {
    /// Field 1, `required uint32 user_id`: who sends this ack.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 2, `required uint32 session_id`.
    #[prost(uint32, required, tag = "2")]
    pub session_id: u32,
    /// Field 3, `required uint32 msg_id`.
    #[prost(uint32, required, tag = "3")]
    pub msg_id: u32,
    /// Field 4, `required SessionType session_type`.
    #[prost(enumeration = "SessionType", required, tag = "4")]
    pub session_type: i32,
}

/// `IM.Message.IMMsgDataReadAck`, command [`cid::msg::READ_ACK`](crate::cid::msg::READ_ACK):
/// the user has read a session up to `msg_id`.
#[doc(alias = "IMMsgDataReadAck")]
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct ImMsgDataReadAck {
    /// Field 1, `required uint32 user_id`: who sends this ack.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 2, `required uint32 session_id`.
    #[prost(uint32, required, tag = "2")]
    pub session_id: u32,
    /// Field 3, `required uint32 msg_id`.
    #[prost(uint32, required, tag = "3")]
    pub msg_id: u32,
    /// Field 4, `required SessionType session_type`.
    #[prost(enumeration = "SessionType", required, tag = "4")]
    pub session_type: i32,
}

/// `IM.Message.IMMsgDataReadNotify`, command
/// [`cid::msg::READ_NOTIFY`](crate::cid::msg::READ_NOTIFY): tells the reader's
/// other sessions that a session was read up to `msg_id`.
#[doc(alias = "IMMsgDataReadNotify")]
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct ImMsgDataReadNotify {
    /// Field 1, `required uint32 user_id`: the reader.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 2, `required uint32 session_id`.
    #[prost(uint32, required, tag = "2")]
    pub session_id: u32,
    /// Field 3, `required uint32 msg_id`.
    #[prost(uint32, required, tag = "3")]
    pub msg_id: u32,
    /// Field 4, `required SessionType session_type`.
    #[prost(enumeration = "SessionType", required, tag = "4")]
    pub session_type: i32,
}

/// `IM.Message.IMClientTimeReq`, command
/// [`cid::msg::TIME_REQUEST`](crate::cid::msg::TIME_REQUEST): no fields.
#[doc(alias = "IMClientTimeReq")]
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct ImClientTimeReq {}

/// `IM.Message.IMClientTimeRsp`, command
/// [`cid::msg::TIME_RESPONSE`](crate::cid::msg::TIME_RESPONSE).
#[doc(alias = "IMClientTimeRsp")]
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct ImClientTimeRsp {
    /// Field 1, `required uint32 server_time`: seconds since the Unix epoch.
    #[prost(uint32, required, tag = "1")]
    pub server_time: u32,
}

/// `IM.BaseDefine.UnreadInfo`: one session with unread messages.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UnreadInfo {
    /// Field 1, `required uint32 session_id`: the peer user or the group.
    #[prost(uint32, required, tag = "1")]
    pub session_id: u32,
    /// Field 2, `required SessionType session_type`.
    #[prost(enumeration = "SessionType", required, tag = "2")]
    pub session_type: i32,
    /// Field 3, `required uint32 unread_cnt`.
    #[prost(uint32, required, tag = "3")]
    pub unread_cnt: u32,
    /// Field 4, `required uint32 latest_msg_id`.
    #[prost(uint32, required, tag = "4")]
    pub latest_msg_id: u32,
    /// Field 5, `required bytes latest_msg_data`.
    #[prost(bytes = "vec", required, tag = "5")]
    pub latest_msg_data: Vec<u8>,
    /// Field 6, `required MsgType latest_msg_type`.
    #[prost(enumeration = "MsgType", required, tag = "6")]
    pub latest_msg_type: i32,
    /// Field 7, `required uint32 latest_msg_from_user_id`.
    #[prost(uint32, required, tag = "7")]
    pub latest_msg_from_user_id: u32,
}

/// `IM.BaseDefine.MsgInfo`: one stored message in a history answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MsgInfo {
    /// Field 1, `required uint32 msg_id`: its id in its session.
    #[prost(uint32, required, tag = "1")]
    pub msg_id: u32,
    /// Field 2, `required uint32 from_session_id`: the sending user.
    #[prost(uint32, required, tag = "2")]
    pub from_session_id: u32,
    /// Field 3, `required uint32 create_time`.
    #[prost(uint32, required, tag = "3")]
    pub create_time: u32,
    /// Field 4, `required MsgType msg_type`.
    #[prost(enumeration = "MsgType", required, tag = "4")]
    pub msg_type: i32,
    /// Field 5, `required bytes msg_data`.
    #[prost(bytes = "vec", required, tag = "5")]
    pub msg_data: Vec<u8>,
}

/// `IM.Message.IMUnreadMsgCntReq`, command
/// [`cid::msg::UNREAD_CNT_REQUEST`](crate::cid::msg::UNREAD_CNT_REQUEST).
#[doc(alias = "IMUnreadMsgCntReq")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImUnreadMsgCntReq {
    /// Field 1, `required uint32 user_id`.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 20, `optional bytes attach_data`.
    #[prost(bytes = "vec", optional, tag = "20")]
    pub attach_data: Option<Vec<u8>>,
}

/// `IM.Message.IMUnreadMsgCntRsp`, command
/// [`cid::msg::UNREAD_CNT_RESPONSE`](crate::cid::msg::UNREAD_CNT_RESPONSE).
#[doc(alias = "IMUnreadMsgCntRsp")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImUnreadMsgCntRsp {
    /// Field 1, `required uint32 user_id`.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 2, `required uint32 total_cnt`: unread messages over all sessions.
    #[prost(uint32, required, tag = "2")]
    pub total_cnt: u32,
    /// Field 3, `repeated UnreadInfo unreadinfo_list`.
    #[prost(message, repeated, tag = "3")]
    pub unreadinfo_list: Vec<UnreadInfo>,
    /// Field 20, `optional bytes attach_data`.
    #[prost(bytes = "vec", optional, tag = "20")]
    pub attach_data: Option<Vec<u8>>,
}

/// `IM.Message.IMGetMsgListReq`, command
/// [`cid::msg::LIST_REQUEST`](crate::cid::msg::LIST_REQUEST): up to `msg_cnt`
/// messages of a session, newest first, from `msg_id_begin` down (0: the newest).
#[doc(alias = "IMGetMsgListReq")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImGetMsgListReq {
    /// Field 1, `required uint32 user_id`.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 2, `required SessionType session_type`.
    #[prost(enumeration = "SessionType", required, tag = "2")]
    pub session_type: i32,
    /// Field 3, `required uint32 session_id`.
    #[prost(uint32, required, tag = "3")]
    pub session_id: u32,
    /// Field 4, `required uint32 msg_id_begin`.
    #[prost(uint32, required, tag = "4")]
    pub msg_id_begin: u32,
    /// Field 5, `required uint32 msg_cnt`.
    #[prost(uint32, required, tag = "5")]
    pub msg_cnt: u32,
    /// Field 20, `optional bytes attach_data`.
    #[prost(bytes = "vec", optional, tag = "20")]
    pub attach_data: Option<Vec<u8>>,
}

/// `IM.Message.IMGetMsgListRsp`, command
/// [`cid::msg::LIST_RESPONSE`](crate::cid::msg::LIST_RESPONSE).
#[doc(alias = "IMGetMsgListRsp")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImGetMsgListRsp {
    /// Field 1, `required uint32 user_id`.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 2, `required SessionType session_type`.
    #[prost(enumeration = "SessionType", required, tag = "2")]
    pub session_type: i32,
    /// Field 3, `required uint32 session_id`.
    #[prost(uint32, required, tag = "3")]
    pub session_id: u32,
    /// Field 4, `required uint32 msg_id_begin`.
    #[prost(uint32, required, tag = "4")]
    pub msg_id_begin: u32,
    /// Field 5, `repeated MsgInfo msg_list`.
    #[prost(message, repeated, tag = "5")]
    pub msg_list: Vec<MsgInfo>,
    /// Field 20, `optional bytes attach_data`.
    #[prost(bytes = "vec", optional, tag = "20")]
    pub attach_data: Option<Vec<u8>>,
}

/// `IM.Message.IMGetLatestMsgIdReq`, command
/// [`cid::msg::GET_LATEST_MSG_ID_REQ`](crate::cid::msg::GET_LATEST_MSG_ID_REQ).
#[doc(alias = "IMGetLatestMsgIdReq")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImGetLatestMsgIdReq {
    /// Field 1, `required uint32 user_id`.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 2, `required SessionType session_type`.
    #[prost(enumeration = "SessionType", required, tag = "2")]
    pub session_type: i32,
    /// Field 3, `required uint32 session_id`.
    #[prost(uint32, required, tag = "3")]
    pub session_id: u32,
    /// Field 20, `optional bytes attach_data`.
    #[prost(bytes = "vec", optional, tag = "20")]
    pub attach_data: Option<Vec<u8>>,
}

/// `IM.Message.IMGetLatestMsgIdRsp`, command
/// [`cid::msg::GET_LATEST_MSG_ID_RSP`](crate::cid::msg::GET_LATEST_MSG_ID_RSP).
#[doc(alias = "IMGetLatestMsgIdRsp")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImGetLatestMsgIdRsp {
    /// Field 1, `required uint32 user_id`.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 2, `required SessionType session_type`.
    #[prost(enumeration = "SessionType", required, tag = "2")]
    pub session_type: i32,
    /// Field 3, `required uint32 session_id`.
    #[prost(uint32, required, tag = "3")]
    pub session_id: u32,
    /// Field 4, `required uint32 latest_msg_id`: 0 for an empty session.
    #[prost(uint32, required, tag = "4")]
    pub latest_msg_id: u32,
    /// Field 20, `optional bytes attach_data`.
    #[prost(bytes = "vec", optional, tag = "20")]
    pub attach_data: Option<Vec<u8>>,
}

/// `IM.Message.IMGetMsgByIdReq`, command
/// [`cid::msg::GET_BY_MSG_ID_REQ`](crate::cid::msg::GET_BY_MSG_ID_REQ).
#[doc(alias = "IMGetMsgByIdReq")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImGetMsgByIdReq {
    /// Field 1, `required uint32 user_id`.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 2, `required SessionType session_type`.
    #[prost(enumeration = "SessionType", required, tag = "2")]
    pub session_type: i32,
    /// Field 3, `required uint32 session_id`.
    #[prost(uint32, required, tag = "3")]
    pub session_id: u32,
    /// Field 4, `repeated uint32 msg_id_list`.
    #[prost(uint32, repeated, packed = "false", tag = "4")]
    pub msg_id_list: Vec<u32>,
    /// Field 20, `optional bytes attach_data`.
    #[prost(bytes = "vec", optional, tag = "20")]
    pub attach_data: Option<Vec<u8>>,
}

/// `IM.Message.IMGetMsgByIdRsp`, command
/// [`cid::msg::GET_BY_MSG_ID_RES`](crate::cid::msg::GET_BY_MSG_ID_RES).
#[doc(alias = "IMGetMsgByIdRsp")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImGetMsgByIdRsp {
    /// Field 1, `required uint32 user_id`.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 2, `required SessionType session_type`.
    #[prost(enumeration = "SessionType", required, tag = "2")]
    pub session_type: i32,
    /// Field 3, `required uint32 session_id`.
    #[prost(uint32, required, tag = "3")]
    pub session_id: u32,
    /// Field 4, `repeated MsgInfo msg_list`.
    #[prost(message, repeated, tag = "4")]
    pub msg_list: Vec<MsgInfo>,
    /// Field 20, `optional bytes attach_data`.
    #[prost(bytes = "vec", optional, tag = "20")]
    pub attach_data: Option<Vec<u8>>,
}
