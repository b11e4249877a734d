//! `IM.Group.proto` (service [`sid::GROUP`](crate::sid::GROUP)): group lists,
//! group info, temporary groups and membership changes; with the group parts of
//! `IM.BaseDefine.proto` ([`GroupType`], [`GroupModifyType`],
//! [`GroupVersionInfo`], [`GroupInfo`]).
//!
//! Group messages themselves are [`ImMsgData`](super::ImMsgData) with a group
//! `MsgType` and the group's id as `to_session_id`.

/// `IM.BaseDefine.GroupType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum GroupType {
    /// `GROUP_TYPE_NORMAL`: configured by the operator.
    Normal = 0x01,
    /// `GROUP_TYPE_TMP`: created by a client.
    Tmp = 0x02,
}

/// `IM.BaseDefine.GroupModifyType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum GroupModifyType {
    /// `GROUP_MODIFY_TYPE_ADD`.
    Add = 0x01,
    /// `GROUP_MODIFY_TYPE_DEL`.
    Del = 0x02,
}

/// `IM.BaseDefine.GroupVersionInfo`: a group id with the version a client has.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct GroupVersionInfo {
    /// Field 1, `required uint32 group_id`.
    #[prost(uint32, required, tag = "1")]
    pub group_id: u32,
    /// Field 2, `required uint32 version`.
    #[prost(uint32, required, tag = "2")]
    pub version: u32,
}

/// `IM.BaseDefine.GroupInfo`: a group with its members.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GroupInfo {
    /// Field 1, `required uint32 group_id`.
    #[prost(uint32, required, tag = "1")]
    pub group_id: u32,
    /// Field 2, `required uint32 version`.
    #[prost(uint32, required, tag = "2")]
    pub version: u32,
    /// Field 3, `required string group_name`.
    #[prost(string, required, tag = "3")]
    pub group_name: String,
    /// Field 4, `required string group_avatar`.
    #[prost(string, required, tag = "4")]
    pub group_avatar: String,
    /// Field 5, `required uint32 group_creator_id`.
    #[prost(uint32, required, tag = "5")]
    pub group_creator_id: u32,
    /// Field 6, `required GroupType group_type`.
    #[prost(enumeration = "GroupType", required, tag = "6")]
    pub group_type: i32,
    /// Field 7, `required uint32 shield_status`: 1 shielded, 0 not.
    #[prost(uint32, required, tag = "7")]
    pub shield_status: u32,
    /// Field 8, `repeated uint32 group_member_list`.
    #[prost(uint32, repeated, packed = "false", tag = "8")]
    pub group_member_list: Vec<u32>,
}

/// `IM.Group.IMNormalGroupListReq`, command
/// [`cid::group::NORMAL_LIST_REQUEST`](crate::cid::group::NORMAL_LIST_REQUEST).
#[doc(alias = "IMNormalGroupListReq")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImNormalGroupListReq {
    /// Field 1, `required uint32 user_id`.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 20, `optional bytes attach_data`.
    #[prost(bytes = "vec", optional, tag = "20")]
    pub attach_data: Option<Vec<u8>>,
}

/// `IM.Group.IMNormalGroupListRsp`, command
/// [`cid::group::NORMAL_LIST_RESPONSE`](crate::cid::group::NORMAL_LIST_RESPONSE).
#[doc(alias = "IMNormalGroupListRsp")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImNormalGroupListRsp {
    /// Field 1, `required uint32 user_id`.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 2, `repeated GroupVersionInfo group_version_list`.
    #[prost(message, repeated, tag = "2")]
    pub group_version_list: Vec<GroupVersionInfo>,
    /// Field 20, `optional bytes attach_data`.
    #[prost(bytes = "vec", optional, tag = "20")]
    pub attach_data: Option<Vec<u8>>,
}

/// `IM.Group.IMGroupInfoListReq`, command
/// [`cid::group::INFO_REQUEST`](crate::cid::group::INFO_REQUEST).
#[doc(alias = "IMGroupInfoListReq")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImGroupInfoListReq {
    /// Field 1, `required uint32 user_id`.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 2, `repeated GroupVersionInfo group_version_list`.
    #[prost(message, repeated, tag = "2")]
    pub group_version_list: Vec<GroupVersionInfo>,
    /// Field 20, `optional bytes attach_data`.
    #[prost(bytes = "vec", optional, tag = "20")]
    pub attach_data: Option<Vec<u8>>,
}

/// `IM.Group.IMGroupInfoListRsp`, command
/// [`cid::group::INFO_RESPONSE`](crate::cid::group::INFO_RESPONSE).
#[doc(alias = "IMGroupInfoListRsp")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImGroupInfoListRsp {
    /// Field 1, `required uint32 user_id`.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 2, `repeated GroupInfo group_info_list`.
    #[prost(message, repeated, tag = "2")]
    pub group_info_list: Vec<GroupInfo>,
    /// Field 20, `optional bytes attach_data`.
    #[prost(bytes = "vec", optional, tag = "20")]
    pub attach_data: Option<Vec<u8>>,
}

/// `IM.Group.IMGroupCreateReq`, command
/// [`cid::group::CREATE_REQUEST`](crate::cid::group::CREATE_REQUEST).
#[doc(alias = "IMGroupCreateReq")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImGroupCreateReq {
    /// Field 1, `required uint32 user_id`.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 2, `required GroupType group_type [default = GROUP_TYPE_TMP]`.
    #[prost(enumeration = "GroupType", required, tag = "2", default = "Tmp")]
    pub group_type: i32,
    /// Field 3, `required string group_name`.
    #[prost(string, required, tag = "3")]
    pub group_name: String,
    /// Field 4, `required string group_avatar`.
    #[prost(string, required, tag = "4")]
    pub group_avatar: String,
    /// Field 5, `repeated uint32 member_id_list`.
    #[prost(uint32, repeated, packed = "false", tag = "5")]
    pub member_id_list: Vec<u32>,
    /// Field 20, `optional bytes attach_data`.
    #[prost(bytes = "vec", optional, tag = "20")]
    pub attach_data: Option<Vec<u8>>,
}

/// `IM.Group.IMGroupCreateRsp`, command
/// [`cid::group::CREATE_RESPONSE`](crate::cid::group::CREATE_RESPONSE).
#[doc(alias = "IMGroupCreateRsp")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImGroupCreateRsp {
    /// Field 1, `required uint32 user_id`.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 2, `required uint32 result_code`: 0 on success.
    #[prost(uint32, required, tag = "2")]
    pub result_code: u32,
    /// Field 3, `optional uint32 group_id`.
    #[prost(uint32, optional, tag = "3")]
    pub group_id: Option<u32>,
    /// Field 4, `required string group_name`.
    #[prost(string, required, tag = "4")]
    pub group_name: String,
    /// Field 5, `repeated uint32 user_id_list`.
    #[prost(uint32, repeated, packed = "false", tag = "5")]
    pub user_id_list: Vec<u32>,
    /// Field 20, `optional bytes attach_data`.
    #[prost(bytes = "vec", optional, tag = "20")]
    pub attach_data: Option<Vec<u8>>,
}

/// `IM.Group.IMGroupChangeMemberReq`, command
/// [`cid::group::CHANGE_MEMBER_REQUEST`](crate::cid::group::CHANGE_MEMBER_REQUEST).
#[doc(alias = "IMGroupChangeMemberReq")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImGroupChangeMemberReq {
    /// Field 1, `required uint32 user_id`.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 2, `required GroupModifyType change_type`.
    #[prost(enumeration = "GroupModifyType", required, tag = "2")]
    pub change_type: i32,
    /// Field 3, `required uint32 group_id`.
    #[prost(uint32, required, tag = "3")]
    pub group_id: u32,
    /// Field 4, `repeated uint32 member_id_list`.
    #[prost(uint32, repeated, packed = "false", tag = "4")]
    pub member_id_list: Vec<u32>,
    /// Field 20, `optional bytes attach_data`.
    #[prost(bytes = "vec", optional, tag = "20")]
    pub attach_data: Option<Vec<u8>>,
}

/// `IM.Group.IMGroupChangeMemberRsp`, command
/// [`cid::group::CHANGE_MEMBER_RESPONSE`](crate::cid::group::CHANGE_MEMBER_RESPONSE).
#[doc(alias = "IMGroupChangeMemberRsp")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImGroupChangeMemberRsp {
    /// Field 1, `required uint32 user_id`.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 2, `required GroupModifyType change_type`.
    #[prost(enumeration = "GroupModifyType", required, tag = "2")]
    pub change_type: i32,
    /// Field 3, `required uint32 result_code`: 0 on success.
    #[prost(uint32, required, tag = "3")]
    pub result_code: u32,
    /// Field 4, `required uint32 group_id`.
    #[prost(uint32, required, tag = "4")]
    pub group_id: u32,
    /// Field 5, `repeated uint32 cur_user_id_list`: the members now.
    #[prost(uint32, repeated, packed = "false", tag = "5")]
    pub cur_user_id_list: Vec<u32>,
    /// Field 6, `repeated uint32 chg_user_id_list`: those added or removed.
    #[prost(uint32, repeated, packed = "false", tag = "6")]
    pub chg_user_id_list: Vec<u32>,
    /// Field 20, `optional bytes attach_data`.
    #[prost(bytes = "vec", optional, tag = "20")]
    pub attach_data: Option<Vec<u8>>,
}

/// `IM.Group.IMGroupChangeMemberNotify`, command
/// [`cid::group::CHANGE_MEMBER_NOTIFY`](crate::cid::group::CHANGE_MEMBER_NOTIFY).
#[doc(alias = "IMGroupChangeMemberNotify")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImGroupChangeMemberNotify {
    /// Field 1, `required uint32 user_id`: who changed it.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 2, `required GroupModifyType change_type`.
    #[prost(enumeration = "GroupModifyType", required, tag = "2")]
    pub change_type: i32,
    /// Field 3, `required uint32 group_id`.
    #[prost(uint32, required, tag = "3")]
    pub group_id: u32,
    /// Field 4, `repeated uint32 cur_user_id_list`: the members now.
    #[prost(uint32, repeated, packed = "false", tag = "4")]
    pub cur_user_id_list: Vec<u32>,
    /// Field 5, `repeated uint32 chg_user_id_list`: those added or removed.
    #[prost(uint32, repeated, packed = "false", tag = "5")]
    pub chg_user_id_list: Vec<u32>,
}

/// `IM.Group.IMGroupShieldReq`, command
/// [`cid::group::SHIELD_GROUP_REQUEST`](crate::cid::group::SHIELD_GROUP_REQUEST):
/// a member mutes (or unmutes) a group.
#[doc(alias = "IMGroupShieldReq")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImGroupShieldReq {
    /// Field 1, `required uint32 user_id`.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 2, `required uint32 group_id`.
    #[prost(uint32, required, tag = "2")]
    pub group_id: u32,
    /// Field 3, `required uint32 shield_status`: 1 shielded, 0 not.
    #[prost(uint32, required, tag = "3")]
    pub shield_status: u32,
    /// Field 20, `optional bytes attach_data`.
    #[prost(bytes = "vec", optional, tag = "20")]
    pub attach_data: Option<Vec<u8>>,
}

/// `IM.Group.IMGroupShieldRsp`, command
/// [`cid::group::SHIELD_GROUP_RESPONSE`](crate::cid::group::SHIELD_GROUP_RESPONSE).
#[doc(alias = "IMGroupShieldRsp")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImGroupShieldRsp {
    /// Field 1, `required uint32 user_id`.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 2, `required uint32 group_id`.
    #[prost(uint32, required, tag = "2")]
    pub group_id: u32,
    /// Field 3, `required uint32 result_code`: 0 done, 1 refused.
    #[prost(uint32, required, tag = "3")]
    pub result_code: u32,
    /// Field 20, `optional bytes attach_data`.
    #[prost(bytes = "vec", optional, tag = "20")]
    pub attach_data: Option<Vec<u8>>,
}
