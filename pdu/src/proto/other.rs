//! `IM.Other.proto` (service [`sid::OTHER`](crate::sid::OTHER)): the heartbeat.

/// `IM.Other.IMHeartBeat`, command [`cid::other::HEARTBEAT`](crate::cid::other::HEARTBEAT):
/// keep-alive in both directions; an empty body.
///
/// ```
/// use pdu::Message;
/// assert!(pdu::proto::ImHeartBeat {}.encode_to_vec().is_empty());
/// ```
#[doc(alias = "IMHeartBeat")]
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct ImHeartBeat {}
