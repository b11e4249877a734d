//! `IM.Server.proto` (service [`sid::OTHER`](crate::sid::OTHER)): what message
//! servers tell the login server.
//!
//! A message server registers with [`ImMsgServInfo`] when its link to the login
//! server comes up, then reports every user arriving or leaving with
//! [`ImUserCntUpdate`]; the login server uses the counts to pick the least loaded
//! message server for each [`ImMsgServReq`](super::ImMsgServReq).

/// `IM.Server.IMMsgServInfo`, command [`cid::other::MSG_SERV_INFO`](crate::cid::other::MSG_SERV_INFO):
/// a message server's addresses and load.
#[doc(alias = "IMMsgServInfo")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImMsgServInfo {
    /// Field 1, `required string ip1`: first address for clients.
    #[prost(string, required, tag = "1")]
    pub ip1: String,
    /// Field 2, `required string ip2`: second address for clients.
    #[prost(string, required, tag = "2")]
    pub ip2: String,
    /// Field 3, `required uint32 port`.
    #[prost(uint32, required, tag = "3")]
    pub port: u32,
    /// Field 4, `required uint32 max_conn_cnt`: capacity.
    #[prost(uint32, required, tag = "4")]
    pub max_conn_cnt: u32,
    /// Field 5, `required uint32 cur_conn_cnt`: users connected now.
    #[prost(uint32, required, tag = "5")]
    pub cur_conn_cnt: u32,
    /// Field 6, `required string host_name`.
    #[prost(string, required, tag = "6")]
    pub host_name: String,
}

/// `IM.Server.IMUserCntUpdate`, command [`cid::other::USER_CNT_UPDATE`](crate::cid::other::USER_CNT_UPDATE):
/// one user arrived at or left a message server.
#[doc(alias = "IMUserCntUpdate")]
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct ImUserCntUpdate {
    /// Field 1, `required uint32 user_action`: [`USER_CNT_INC`] or [`USER_CNT_DEC`].
    #[prost(uint32, required, tag = "1")]
    pub user_action: u32,
    /// Field 2, `required uint32 user_id`.
    #[prost(uint32, required, tag = "2")]
    pub user_id: u32,
}

/// [`ImUserCntUpdate::user_action`] for a user arriving (TeamTalk's
/// `USER_CNT_INC`).
pub const USER_CNT_INC: u32 = 1;
/// [`ImUserCntUpdate::user_action`] for a user leaving (TeamTalk's
/// `USER_CNT_DEC`).
pub const USER_CNT_DEC: u32 = 2;

/// Not TeamTalk's: command [`cid::internal::LINK_CHALLENGE`](crate::cid::internal::LINK_CHALLENGE),
/// the login server's challenge on a message server's link (see
/// `servers::login::link_auth`).
///
/// ```text
/// message IMLinkChallenge { required bytes nonce = 1; }
/// ```
#[doc(alias = "IMLinkChallenge")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImLinkChallenge {
    /// Field 1, `required bytes nonce`: fresh random bytes.
    #[prost(bytes = "vec", required, tag = "1")]
    pub nonce: Vec<u8>,
}

/// Not TeamTalk's: command [`cid::internal::LINK_PROOF`](crate::cid::internal::LINK_PROOF),
/// the message server's answer to [`ImLinkChallenge`].
///
/// ```text
/// message IMLinkProof { required bytes mac = 1; }
/// ```
#[doc(alias = "IMLinkProof")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImLinkProof {
    /// Field 1, `required bytes mac`: HMAC-SHA256 of the nonce under the
    /// shared key.
    #[prost(bytes = "vec", required, tag = "1")]
    pub mac: Vec<u8>,
}
