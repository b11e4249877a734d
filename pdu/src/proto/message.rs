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
