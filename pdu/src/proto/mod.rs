//! The protobuf bodies of the frames the servers exchange, wire-compatible with
//! TeamTalk's proto2 files.
//!
//! Written by hand with `#[derive(prost::Message)]` instead of generated, so the
//! build needs no `protoc` and no build script. Each struct carries exactly the field
//! numbers, types and labels of its TeamTalk definition; the submodules mirror
//! TeamTalk's files so a definition is easy to check against its source:
//!
//! | module | TeamTalk file | contents |
//! | --- | --- | --- |
//! | [`base_define`] | `IM.BaseDefine.proto` | id and status enums, [`UserInfo`] |
//! | [`buddy`] | `IM.Buddy.proto` | user info, all users, status, departments |
//! | [`group`] | `IM.Group.proto` | group lists and info, temporary groups, membership |
//! | [`login`] | `IM.Login.proto` | message-server lookup, login, logout, kick |
//! | [`message`] | `IM.Message.proto` | [`ImMsgData`], its acknowledgements, history and unread queries |
//! | [`other`] | `IM.Other.proto` | [`ImHeartBeat`] |
//! | [`recent_session`] | `IM.Buddy.proto` (0x0201, 0x0206) | recent contact sessions |
//! | [`server`] | `IM.Server.proto` | message server to login server reports |
//!
//! Names follow what `prost-build` would generate from those files (`IMLoginReq`
//! becomes [`ImLoginReq`], `SID_LOGIN` becomes [`ServiceId::SidLogin`]), so code
//! written against these types keeps working if they are ever generated instead.
//! Each type also has the TeamTalk name as a rustdoc alias.
//!
//! proto2 mapping:
//!
//! - `required` fields are plain values, always encoded (TeamTalk's C++ parser
//!   rejects a message with a required field missing, so even zero is sent).
//! - `optional` fields are `Option`s, encoded only when `Some`.
//! - enum fields are stored as `i32`, as prost does, so an unknown value from a
//!   newer peer survives a decode/encode round trip. prost derives a typed getter
//!   and setter for each (`msg.result_code()`, `msg.set_result_code(..)`).
//!
//! ```
//! use pdu::proto::{ClientType, ImLoginReq, UserStatType};
//! use pdu::Message;
//!
//! let mut req = ImLoginReq {
//!     user_name: "alice".into(),
//!     password: "secret".into(),
//!     ..Default::default()
//! };
//! req.set_online_status(UserStatType::UserStatusOnline);
//! req.set_client_type(ClientType::Android);
//!
//! let bytes = req.encode_to_vec();
//! let back = ImLoginReq::decode(bytes.as_slice())?;
//! assert_eq!(back.client_type(), ClientType::Android);
//! # Ok::<(), pdu::prost::DecodeError>(())
//! ```

pub mod base_define;
pub mod buddy;
pub mod group;
pub mod login;
pub mod message;
pub mod other;
pub mod recent_session;
pub mod server;

pub use base_define::*;
pub use buddy::*;
pub use group::*;
pub use login::*;
pub use message::*;
pub use other::*;
pub use recent_session::*;
pub use server::*;

#[cfg(test)]
mod wire_tests;
