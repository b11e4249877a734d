//! `IM.Login.proto` (service [`sid::LOGIN`](crate::sid::LOGIN)): finding a message
//! server, logging in and out, and being kicked.
//!
//! A client first asks the login server for a message server ([`ImMsgServReq`] →
//! [`ImMsgServRsp`]), then logs in on that message server ([`ImLoginReq`] →
//! [`ImLoginRes`]).

use super::base_define::{ClientType, KickReasonType, ResultType, UserInfo, UserStatType};

/// `IM.Login.IMMsgServReq`, command [`cid::login::MSG_SERV_REQ`](crate::cid::login::MSG_SERV_REQ):
/// client asks the login server which message server to use. No fields.
#[doc(alias = "IMMsgServReq")]
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct ImMsgServReq {}

/// `IM.Login.IMMsgServRsp`, command [`cid::login::MSG_SERV_RSP`](crate::cid::login::MSG_SERV_RSP):
/// the least loaded message server, or why there is none.
#[doc(alias = "IMMsgServRsp")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImMsgServRsp {
    /// Field 1, `required ResultType result_code`.
    #[prost(enumeration = "ResultType", required, tag = "1")]
    pub result_code: i32,
    /// Field 2, `optional string prior_ip`: the server's first address.
    #[prost(string, optional, tag = "2")]
    pub prior_ip: Option<String>,
    /// Field 3, `optional string backip_ip`: its second address.
    #[prost(string, optional, tag = "3")]
    pub backip_ip: Option<String>,
    /// Field 4, `optional uint32 port`.
    #[prost(uint32, optional, tag = "4")]
    pub port: Option<u32>,
}

/// `IM.Login.IMLoginReq`, command [`cid::login::REQ_USERLOGIN`](crate::cid::login::REQ_USERLOGIN):
/// user login on a message server.
#[doc(alias = "IMLoginReq")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImLoginReq {
    /// Field 1, `required string user_name`.
    #[prost(string, required, tag = "1")]
    pub user_name: String,
    /// Field 2, `required string password`.
    #[prost(string, required, tag = "2")]
    pub password: String,
    /// Field 3, `required UserStatType online_status`.
    #[prost(enumeration = "UserStatType", required, tag = "3")]
    pub online_status: i32,
    /// Field 4, `required ClientType client_type`.
    #[prost(enumeration = "ClientType", required, tag = "4")]
    pub client_type: i32,
    /// Field 5, `optional string client_version`.
    #[prost(string, optional, tag = "5")]
    pub client_version: Option<String>,
}

/// `IM.Login.IMLoginRes`, command [`cid::login::RES_USERLOGIN`](crate::cid::login::RES_USERLOGIN):
/// the login result.
#[doc(alias = "IMLoginRes")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImLoginRes {
    /// Field 1, `required uint32 server_time`: seconds since the Unix epoch.
    #[prost(uint32, required, tag = "1")]
    pub server_time: u32,
    /// Field 2, `required ResultType result_code`.
    #[prost(enumeration = "ResultType", required, tag = "2")]
    pub result_code: i32,
    /// Field 3, `optional string result_string`: human-readable reason.
    #[prost(string, optional, tag = "3")]
    pub result_string: Option<String>,
    /// Field 4, `optional UserStatType online_status`.
    #[prost(enumeration = "UserStatType", optional, tag = "4")]
    pub online_status: Option<i32>,
    /// Field 5, `optional UserInfo user_info`: present on success.
    #[prost(message, optional, tag = "5")]
    pub user_info: Option<UserInfo>,
}

/// `IM.Login.IMLogoutReq`, command [`cid::login::REQ_LOGINOUT`](crate::cid::login::REQ_LOGINOUT).
/// No fields.
#[doc(alias = "IMLogoutReq")]
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct ImLogoutReq {}

/// `IM.Login.IMLogoutRsp`, command [`cid::login::RES_LOGINOUT`](crate::cid::login::RES_LOGINOUT).
#[doc(alias = "IMLogoutRsp")]
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct ImLogoutRsp {
    /// Field 1, `required uint32 result_code`: 0 on success.
    #[prost(uint32, required, tag = "1")]
    pub result_code: u32,
}

/// `IM.Login.IMKickUser`, command [`cid::login::KICK_USER`](crate::cid::login::KICK_USER):
/// the server is about to close this session.
#[doc(alias = "IMKickUser")]
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct ImKickUser {
    /// Field 1, `required uint32 user_id`.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 2, `required KickReasonType kick_reason`.
    #[prost(enumeration = "KickReasonType", required, tag = "2")]
    pub kick_reason: i32,
}
