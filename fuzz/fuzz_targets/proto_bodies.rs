//! Fuzz target: arbitrary bytes as the protobuf body of every message the
//! servers decode.
//!
//! Input layout: byte 0 picks the message type, the rest is the body.
//!
//! Checked: decoding never panics, and whatever decodes survives a round
//! trip: `decode(encode(m)) == m`, and the encoding is canonical
//! (`encode(decode(encode(m))) == encode(m)`), so a server relaying a body
//! it decoded never changes what it says.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pdu::{proto, Message};

fn round_trip<M: Message + Default + PartialEq + std::fmt::Debug>(body: &[u8]) {
    let Ok(m) = M::decode(body) else { return };
    let bytes = m.encode_to_vec();
    assert_eq!(bytes.len(), m.encoded_len());
    let again = M::decode(bytes.as_slice()).expect("re-encoded message decodes");
    assert_eq!(again, m);
    assert_eq!(again.encode_to_vec(), bytes, "encoding is canonical");
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 26 {
        0 => round_trip::<proto::UserInfo>(body),
        1 => round_trip::<proto::ImMsgServReq>(body),
        2 => round_trip::<proto::ImMsgServRsp>(body),
        3 => round_trip::<proto::ImLoginReq>(body),
        4 => round_trip::<proto::ImLoginRes>(body),
        5 => round_trip::<proto::ImLogoutReq>(body),
        6 => round_trip::<proto::ImLogoutRsp>(body),
        7 => round_trip::<proto::ImKickUser>(body),
        8 => round_trip::<proto::ImMsgData>(body),
        9 => round_trip::<proto::ImMsgDataAck>(body),
        10 => round_trip::<proto::ImMsgDataReadAck>(body),
        11 => round_trip::<proto::ImHeartBeat>(body),
        12 => round_trip::<proto::ImMsgServInfo>(body),
        13 => round_trip::<proto::ImUserCntUpdate>(body),
        14 => round_trip::<proto::ImUnreadMsgCntReq>(body),
        15 => round_trip::<proto::ImGetMsgListReq>(body),
        16 => round_trip::<proto::ImGetLatestMsgIdReq>(body),
        17 => round_trip::<proto::ImGetMsgByIdReq>(body),
        18 => round_trip::<proto::ImRecentContactSessionReq>(body),
        19 => round_trip::<proto::ImRemoveSessionReq>(body),
        20 => round_trip::<proto::ImNormalGroupListReq>(body),
        21 => round_trip::<proto::ImGroupInfoListReq>(body),
        22 => round_trip::<proto::ImGroupCreateReq>(body),
        23 => round_trip::<proto::ImGroupChangeMemberReq>(body),
        24 => round_trip::<proto::ImClientTimeReq>(body),
        _ => round_trip::<proto::ImLoginRes>(body),
    }
});
