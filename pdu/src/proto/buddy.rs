//! `IM.Buddy.proto` (service [`sid::BUDDY_LIST`](crate::sid::BUDDY_LIST)): users,
//! their status and departments, with the two `IM.BaseDefine.proto` messages
//! only these use ([`UserStat`], [`DepartInfo`]). Recent contact sessions
//! (0x0201, 0x0206) are in [`recent_session`](super::recent_session).
//!
//! Field numbers, types and labels are TeamTalk's; `attach_data` (field 20) is
//! the opaque bytes TeamTalk's servers pass through and echo.

use super::base_define::{UserInfo, UserStatType};

/// `IM.BaseDefine.UserStat`: one user's online status.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct UserStat {
    /// Field 1, `required uint32 user_id`.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 2, `required UserStatType status`.
    #[prost(enumeration = "UserStatType", required, tag = "2")]
    pub status: i32,
}

/// `IM.BaseDefine.DepartInfo`: one department.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DepartInfo {
    /// Field 1, `required uint32 dept_id`.
    #[prost(uint32, required, tag = "1")]
    pub dept_id: u32,
    /// Field 2, `required uint32 priority`: display order.
    #[prost(uint32, required, tag = "2")]
    pub priority: u32,
    /// Field 3, `required string dept_name`.
    #[prost(string, required, tag = "3")]
    pub dept_name: String,
    /// Field 4, `required uint32 parent_dept_id` (0: top level).
    #[prost(uint32, required, tag = "4")]
    pub parent_dept_id: u32,
    /// Field 5, `required DepartmentStatusType dept_status`: 0 ok, 1 deleted.
    #[prost(uint32, required, tag = "5")]
    pub dept_status: u32,
}

/// `IM.Buddy.IMUserStatNotify`, command [`cid::buddy::STATUS_NOTIFY`](crate::cid::buddy::STATUS_NOTIFY):
/// a user went on or off line.
#[doc(alias = "IMUserStatNotify")]
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct ImUserStatNotify {
    /// Field 1, `required UserStat user_stat`.
    #[prost(message, required, tag = "1")]
    pub user_stat: UserStat,
}

/// `IM.Buddy.IMUsersInfoReq`, command [`cid::buddy::USER_INFO_REQUEST`](crate::cid::buddy::USER_INFO_REQUEST).
#[doc(alias = "IMUsersInfoReq")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImUsersInfoReq {
    /// Field 1, `required uint32 user_id`: who asks.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 2, `repeated uint32 user_id_list`: whose profiles.
    #[prost(uint32, repeated, packed = "false", tag = "2")]
    pub user_id_list: Vec<u32>,
    /// Field 20, `optional bytes attach_data`.
    #[prost(bytes = "vec", optional, tag = "20")]
    pub attach_data: Option<Vec<u8>>,
}

/// `IM.Buddy.IMUsersInfoRsp`, command [`cid::buddy::USER_INFO_RESPONSE`](crate::cid::buddy::USER_INFO_RESPONSE).
#[doc(alias = "IMUsersInfoRsp")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImUsersInfoRsp {
    /// Field 1, `required uint32 user_id`.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 2, `repeated UserInfo user_info_list`: the known ones of those asked.
    #[prost(message, repeated, tag = "2")]
    pub user_info_list: Vec<UserInfo>,
    /// Field 20, `optional bytes attach_data`.
    #[prost(bytes = "vec", optional, tag = "20")]
    pub attach_data: Option<Vec<u8>>,
}

/// `IM.Buddy.IMAllUserReq`, command [`cid::buddy::ALL_USER_REQUEST`](crate::cid::buddy::ALL_USER_REQUEST).
#[doc(alias = "IMAllUserReq")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImAllUserReq {
    /// Field 1, `required uint32 user_id`.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 2, `required uint32 latest_update_time`: 0, or the time of the
    /// list the client has (then only newer changes are sent).
    #[prost(uint32, required, tag = "2")]
    pub latest_update_time: u32,
    /// Field 20, `optional bytes attach_data`.
    #[prost(bytes = "vec", optional, tag = "20")]
    pub attach_data: Option<Vec<u8>>,
}

/// `IM.Buddy.IMAllUserRsp`, command [`cid::buddy::ALL_USER_RESPONSE`](crate::cid::buddy::ALL_USER_RESPONSE).
#[doc(alias = "IMAllUserRsp")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImAllUserRsp {
    /// Field 1, `required uint32 user_id`.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 2, `required uint32 latest_update_time`: the list's time.
    #[prost(uint32, required, tag = "2")]
    pub latest_update_time: u32,
    /// Field 3, `repeated UserInfo user_list`.
    #[prost(message, repeated, tag = "3")]
    pub user_list: Vec<UserInfo>,
    /// Field 20, `optional bytes attach_data`.
    #[prost(bytes = "vec", optional, tag = "20")]
    pub attach_data: Option<Vec<u8>>,
}

/// `IM.Buddy.IMUsersStatReq`, command [`cid::buddy::USERS_STATUS_REQUEST`](crate::cid::buddy::USERS_STATUS_REQUEST).
#[doc(alias = "IMUsersStatReq")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImUsersStatReq {
    /// Field 1, `required uint32 user_id`.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 2, `repeated uint32 user_id_list`.
    #[prost(uint32, repeated, packed = "false", tag = "2")]
    pub user_id_list: Vec<u32>,
    /// Field 20, `optional bytes attach_data`.
    #[prost(bytes = "vec", optional, tag = "20")]
    pub attach_data: Option<Vec<u8>>,
}

/// `IM.Buddy.IMUsersStatRsp`, command [`cid::buddy::USERS_STATUS_RESPONSE`](crate::cid::buddy::USERS_STATUS_RESPONSE).
#[doc(alias = "IMUsersStatRsp")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImUsersStatRsp {
    /// Field 1, `required uint32 user_id`.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 2, `repeated UserStat user_stat_list`.
    #[prost(message, repeated, tag = "2")]
    pub user_stat_list: Vec<UserStat>,
    /// Field 20, `optional bytes attach_data`.
    #[prost(bytes = "vec", optional, tag = "20")]
    pub attach_data: Option<Vec<u8>>,
}

/// `IM.Buddy.IMDepartmentReq`, command [`cid::buddy::DEPARTMENT_REQUEST`](crate::cid::buddy::DEPARTMENT_REQUEST).
#[doc(alias = "IMDepartmentReq")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImDepartmentReq {
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

/// `IM.Buddy.IMDepartmentRsp`, command [`cid::buddy::DEPARTMENT_RESPONSE`](crate::cid::buddy::DEPARTMENT_RESPONSE).
#[doc(alias = "IMDepartmentRsp")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImDepartmentRsp {
    /// Field 1, `required uint32 user_id`.
    #[prost(uint32, required, tag = "1")]
    pub user_id: u32,
    /// Field 2, `required uint32 latest_update_time`.
    #[prost(uint32, required, tag = "2")]
    pub latest_update_time: u32,
    /// Field 3, `repeated DepartInfo dept_list`.
    #[prost(message, repeated, tag = "3")]
    pub dept_list: Vec<DepartInfo>,
    /// Field 20, `optional bytes attach_data`.
    #[prost(bytes = "vec", optional, tag = "20")]
    pub attach_data: Option<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn hand_encodings() {
        // IMUsersStatReq{user_id: 1, user_id_list: [2, 3]}: proto2 repeated
        // scalars are unpacked unless [packed=true], as TeamTalk's file says.
        let req = ImUsersStatReq {
            user_id: 1,
            user_id_list: vec![2, 3],
            attach_data: None,
        };
        assert_eq!(req.encode_to_vec(), [0x08, 1, 0x10, 2, 0x10, 3]);
        // IMUserStatNotify{user_stat{user_id: 5, status: OFFLINE (2)}}.
        let n = ImUserStatNotify {
            user_stat: UserStat {
                user_id: 5,
                status: UserStatType::UserStatusOffline as i32,
            },
        };
        assert_eq!(n.encode_to_vec(), [0x0a, 4, 0x08, 5, 0x10, 2]);
        // DepartInfo: every field required, zeros included.
        let d = DepartInfo {
            dept_id: 1,
            priority: 0,
            dept_name: "R".into(),
            parent_dept_id: 0,
            dept_status: 0,
        };
        assert_eq!(
            d.encode_to_vec(),
            [0x08, 1, 0x10, 0, 0x1a, 1, b'R', 0x20, 0, 0x28, 0]
        );
        let back = DepartInfo::decode(d.encode_to_vec().as_slice()).unwrap();
        assert_eq!(back, d);
        // A packed list from a newer peer decodes too.
        let packed = [0x08, 1, 0x12, 2, 2, 3];
        assert_eq!(
            ImUsersInfoReq::decode(packed.as_slice())
                .unwrap()
                .user_id_list,
            [2, 3]
        );
    }
}
