//! The recent-contact-session part of `IM.Buddy.proto` (service
//! [`sid::BUDDY_LIST`](crate::sid::BUDDY_LIST)): the sessions a user talked in,
//! with their latest message, and removing one.
//!
//! Kept apart from the rest of `IM.Buddy.proto` because msg_server answers these
//! from its message store, not from the user directory. Command ids:
//! [`RECENT_CONTACT_SESSION_REQUEST`] and neighbours below (TeamTalk's
//! `BuddyListCmdID` values).

use super::base_define::{MsgType, SessionType};

/// `CID_BUDDY_LIST_RECENT_CONTACT_SESSION_REQUEST` ([`ImRecentContactSessionReq`]).
pub const RECENT_CONTACT_SESSION_REQUEST: u16 = 0x0201;
/// `CID_BUDDY_LIST_RECENT_CONTACT_SESSION_RESPONSE` ([`ImRecentContactSessionRsp`]).
pub const RECENT_CONTACT_SESSION_RESPONSE: u16 = 0x0202;
/// `CID_BUDDY_LIST_REMOVE_SESSION_REQ` ([`ImRemoveSessionReq`]).
pub const REMOVE_SESSION_REQ: u16 = 0x0206;
/// `CID_BUDDY_LIST_REMOVE_SESSION_RES` ([`ImRemoveSessionRsp`]).
pub const REMOVE_SESSION_RES: u16 = 0x0207;

/// `IM.BaseDefine.SessionStatusType`: whether the user removed a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SessionStatusType {
    /// `SESSION_STATUS_OK`.
    SessionStatusOk = 0,
    /// `SESSION_STATUS_DELETE`: removed from the user's list.
    SessionStatusDelete = 1,
}

/// `IM.BaseDefine.ContactSessionInfo`: one recent session.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContactSessionInfo {
    /// Field 1, `required uint32 session_id`: the peer user or the group.
    #[prost(uint32, required, tag = "1")]
    pub session_id: u32,
    /// Field 2, `required SessionType session_type`.
    #[prost(enumeration = "SessionType", required, tag = "2")]
    pub session_type: i32,
    /// Field 3, `required SessionStatusType session_status`.
    #[prost(enumeration = "SessionStatusType", required, tag = "3")]
    pub session_status: i32,
    /// Field 4, `required uint32 updated_time`.
    #[prost(uint32, required, tag = "4")]
    pub updated_time: u32,
    /// Field 5, `required uint32 latest_msg_id`.
    #[prost(uint32, required, tag = "5")]
    pub latest_msg_id: u32,
    /// Field 6, `required bytes latest_msg_data`.
    #[prost(bytes = "vec", required, tag = "6")]
    pub latest_msg_data: Vec<u8>,
    /// Field 7, `required MsgType latest_msg_type`.
    #[prost(enumeration = "MsgType", required, tag = "7")]
    pub latest_msg_type: i32,
    /// Field 8, `required uint32 latest_msg_from_user_id`.
    #[prost(uint32, required, tag = "8")]
    pub latest_msg_from_user_id: u32,
}

/// `IM.Buddy.IMRecentContactSessionReq` (0x0201): sessions updated after
/// `latest_update_time`.
#[doc(alias = "IMRecentContactSessionReq")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImRecentContactSessionReq {
    /// Field 1, `required uint32 user_id`.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 2, `required uint32 latest_update_time`.
    #[prost(uint32, required, tag = "2")]
    pub latest_update_time: u32,
    /// Field 20, `optional bytes attach_data`.
    #[prost(bytes = "vec", optional, tag = "20")]
    pub attach_data: Option<Vec<u8>>,
}

/// `IM.Buddy.IMRecentContactSessionRsp` (0x0202).
#[doc(alias = "IMRecentContactSessionRsp")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImRecentContactSessionRsp {
    /// Field 1, `required uint32 user_id`.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 2, `repeated ContactSessionInfo contact_session_list`.
    #[prost(message, repeated, tag = "2")]
    pub contact_session_list: Vec<ContactSessionInfo>,
    /// Field 20, `optional bytes attach_data`.
    #[prost(bytes = "vec", optional, tag = "20")]
    pub attach_data: Option<Vec<u8>>,
}

/// `IM.Buddy.IMRemoveSessionReq` (0x0206).
#[doc(alias = "IMRemoveSessionReq")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImRemoveSessionReq {
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

/// `IM.Buddy.IMRemoveSessionRsp` (0x0207).
#[doc(alias = "IMRemoveSessionRsp")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImRemoveSessionRsp {
    /// Field 1, `required uint32 user_id`.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 2, `required uint32 result_code`: 0 on success.
    #[prost(uint32, required, tag = "2")]
    pub result_code: u32,
    /// Field 3, `required SessionType session_type`.
    #[prost(enumeration = "SessionType", required, tag = "3")]
    pub session_type: i32,
    /// Field 4, `required uint32 session_id`.
    #[prost(uint32, required, tag = "4")]
    pub session_id: u32,
    /// Field 20, `optional bytes attach_data`.
    #[prost(bytes = "vec", optional, tag = "20")]
    pub attach_data: Option<Vec<u8>>,
}
