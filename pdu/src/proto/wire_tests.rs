//! Byte-exact checks against protobuf encodings computed by hand from TeamTalk's
//! `.proto` definitions: the proof that these hand-written structs interoperate
//! with the C++ servers and clients.
//!
//! Reminder of the encoding: each field is a key `(field_number << 3) | wire_type`
//! as a varint (wire type 0 = varint, 2 = length-delimited), then the value.

use super::*;
use prost::Message;

fn roundtrip<M: Message + Default + PartialEq>(msg: &M, expected: &[u8]) {
    let bytes = msg.encode_to_vec();
    assert_eq!(bytes, expected, "{msg:?}");
    assert_eq!(msg.encoded_len(), expected.len());
    let back = M::decode(expected).expect("hand-computed bytes decode");
    assert_eq!(&back, msg);
}

#[test]
fn msg_serv_rsp_matches_hand_encoding() {
    let msg = ImMsgServRsp {
        result_code: ResultType::RefuseReasonNone as i32,
        prior_ip: Some("1.2.3.4".into()),
        backip_ip: None,
        port: Some(8000),
    };
    roundtrip(
        &msg,
        &[
            0x08, 0x00, // 1: result_code = 0; required, so sent even though zero
            0x12, 0x07, b'1', b'.', b'2', b'.', b'3', b'.', b'4', // 2: prior_ip
            // 3: backip_ip absent (optional, None)
            0x20, 0xc0, 0x3e, // 4: port = 8000 = 0x40 | 0x3e << 7
        ],
    );
}

#[test]
fn login_req_matches_hand_encoding() {
    let msg = ImLoginReq {
        user_name: "alice".into(),
        password: "pw".into(),
        online_status: UserStatType::UserStatusOnline as i32,
        client_type: ClientType::Android as i32,
        client_version: Some("1.0".into()),
    };
    roundtrip(
        &msg,
        &[
            0x0a, 0x05, b'a', b'l', b'i', b'c', b'e', // 1: user_name
            0x12, 0x02, b'p', b'w', // 2: password
            0x18, 0x01, // 3: online_status = USER_STATUS_ONLINE
            0x20, 0x12, // 4: client_type = CLIENT_TYPE_ANDROID (0x12)
            0x2a, 0x03, b'1', b'.', b'0', // 5: client_version
        ],
    );
}

#[test]
fn msg_data_matches_hand_encoding_including_field_20() {
    let msg = ImMsgData {
        from_user_id: 1,
        to_session_id: 2,
        msg_id: 300,
        create_time: 0,
        msg_type: MsgType::SingleText as i32,
        msg_data: b"hi".to_vec(),
        attach_data: Some(vec![9]),
    };
    roundtrip(
        &msg,
        &[
            0x08, 0x01, // 1: from_user_id
            0x10, 0x02, // 2: to_session_id
            0x18, 0xac, 0x02, // 3: msg_id = 300
            0x20, 0x00, // 4: create_time = 0 (required)
            0x28, 0x01, // 5: msg_type = MSG_TYPE_SINGLE_TEXT
            0x32, 0x02, b'h', b'i', // 6: msg_data
            0xa2, 0x01, 0x01, 0x09, // 20: attach_data; key (20 << 3) | 2 = 162
        ],
    );
}

#[test]
fn msg_data_ack_and_read_ack_match_hand_encoding() {
    let expected = [0x08, 0x05, 0x10, 0x06, 0x18, 0x07, 0x20, 0x02];
    roundtrip(
        &ImMsgDataAck {
            user_id: 5,
            session_id: 6,
            msg_id: 7,
            session_type: SessionType::Group as i32,
        },
        &expected,
    );
    roundtrip(
        &ImMsgDataReadAck {
            user_id: 5,
            session_id: 6,
            msg_id: 7,
            session_type: SessionType::Group as i32,
        },
        &expected,
    );
}

#[test]
fn server_reports_match_hand_encoding() {
    roundtrip(
        &ImMsgServInfo {
            ip1: "a".into(),
            ip2: "b".into(),
            port: 8000,
            max_conn_cnt: 10,
            cur_conn_cnt: 0,
            host_name: "h".into(),
        },
        &[
            0x0a, 0x01, b'a', // 1: ip1
            0x12, 0x01, b'b', // 2: ip2
            0x18, 0xc0, 0x3e, // 3: port = 8000
            0x20, 0x0a, // 4: max_conn_cnt
            0x28, 0x00, // 5: cur_conn_cnt = 0 (required)
            0x32, 0x01, b'h', // 6: host_name
        ],
    );
    roundtrip(
        &ImUserCntUpdate {
            user_action: USER_CNT_INC,
            user_id: 1234,
        },
        &[0x08, 0x01, 0x10, 0xd2, 0x09],
    );
}

#[test]
fn logout_and_kick_match_hand_encoding() {
    roundtrip(&ImLogoutRsp { result_code: 0 }, &[0x08, 0x00]);
    roundtrip(
        &ImKickUser {
            user_id: 5,
            kick_reason: KickReasonType::KickReasonDuplicateUser as i32,
        },
        &[0x08, 0x05, 0x10, 0x01],
    );
}

#[test]
fn empty_messages_have_empty_bodies() {
    roundtrip(&ImHeartBeat {}, &[]);
    roundtrip(&ImMsgServReq {}, &[]);
    roundtrip(&ImLogoutReq {}, &[]);
}

#[test]
fn login_res_nests_user_info_with_every_required_field() {
    let msg = ImLoginRes {
        server_time: 1,
        result_code: ResultType::RefuseReasonNone as i32,
        result_string: None,
        online_status: Some(UserStatType::UserStatusLeave as i32),
        user_info: Some(UserInfo {
            user_id: 7,
            ..Default::default()
        }),
    };
    roundtrip(
        &msg,
        &[
            0x08, 0x01, // 1: server_time
            0x10, 0x00, // 2: result_code
            0x20, 0x03, // 4: online_status = USER_STATUS_LEAVE
            0x2a, 0x14, // 5: user_info, 20 bytes:
            0x08, 0x07, // 1: user_id
            0x10, 0x00, // 2: user_gender
            0x1a, 0x00, // 3: user_nick_name ""
            0x22, 0x00, // 4: avatar_url ""
            0x28, 0x00, // 5: department_id
            0x32, 0x00, // 6: email ""
            0x3a, 0x00, // 7: user_real_name ""
            0x42, 0x00, // 8: user_tel ""
            0x4a, 0x00, // 9: user_domain ""
            0x50, 0x00, // 10: status
        ],
    );
}

#[test]
fn unknown_fields_from_newer_peers_are_skipped() {
    // ImKickUser plus an unknown field 9 (varint) and 15 (bytes).
    let bytes = [0x08, 0x05, 0x48, 0x01, 0x10, 0x02, 0x7a, 0x01, 0xff];
    let msg = ImKickUser::decode(&bytes[..]).unwrap();
    assert_eq!(msg.user_id, 5);
    assert_eq!(msg.kick_reason(), KickReasonType::KickReasonMobileKick);
}

#[test]
fn truncated_bodies_are_errors_not_panics() {
    let full = ImLoginReq {
        user_name: "bob".into(),
        password: "x".into(),
        online_status: 1,
        client_type: 1,
        client_version: None,
    }
    .encode_to_vec();
    for cut in 0..full.len() {
        // Any prefix either fails or decodes to something; it must not panic.
        let _ = ImLoginReq::decode(&full[..cut]);
    }
    assert!(ImLoginReq::decode(&full[..3]).is_err());
}

#[test]
fn unknown_enum_values_survive_and_getters_fall_back() {
    let bytes = [0x08, 0x05, 0x10, 0x63]; // kick_reason = 99, not in KickReasonType
    let msg = ImKickUser::decode(&bytes[..]).unwrap();
    assert_eq!(msg.kick_reason, 99);
    assert_eq!(msg.encode_to_vec(), bytes);
}

#[test]
fn msg_by_id_req_sends_repeated_ids_unpacked_as_proto2_does() {
    let msg = ImGetMsgByIdReq {
        user_id: 2,
        session_type: SessionType::Single as i32,
        session_id: 1,
        msg_id_list: vec![3, 300],
        attach_data: None,
    };
    roundtrip(
        &msg,
        &[
            0x08, 0x02, // 1: user_id
            0x10, 0x01, // 2: session_type = SESSION_TYPE_SINGLE
            0x18, 0x01, // 3: session_id
            0x20, 0x03, // 4: msg_id_list[0], one key per element (not packed)
            0x20, 0xac, 0x02, // 4: msg_id_list[1] = 300
        ],
    );
    // A packed list (what a proto3 peer would send) decodes too.
    let packed = [
        0x08, 0x02, 0x10, 0x01, 0x18, 0x01, 0x22, 0x03, 0x03, 0xac, 0x02,
    ];
    assert_eq!(ImGetMsgByIdReq::decode(&packed[..]).unwrap(), msg);
}

#[test]
fn group_info_and_contact_session_match_hand_encoding() {
    let info = GroupInfo {
        group_id: 100,
        version: 2,
        group_name: "t".into(),
        group_avatar: String::new(),
        group_creator_id: 1,
        group_type: GroupType::Tmp as i32,
        shield_status: 0,
        group_member_list: vec![1, 4],
    };
    roundtrip(
        &info,
        &[
            0x08, 0x64, // 1: group_id = 100
            0x10, 0x02, // 2: version
            0x1a, 0x01, b't', // 3: group_name
            0x22, 0x00, // 4: group_avatar, required so sent empty
            0x28, 0x01, // 5: group_creator_id
            0x30, 0x02, // 6: group_type = GROUP_TYPE_TMP
            0x38, 0x00, // 7: shield_status
            0x40, 0x01, 0x40, 0x04, // 8: group_member_list, unpacked
        ],
    );
    let session = ContactSessionInfo {
        session_id: 2,
        session_type: SessionType::Single as i32,
        session_status: SessionStatusType::SessionStatusDelete as i32,
        updated_time: 1,
        latest_msg_id: 3,
        latest_msg_data: b"hi".to_vec(),
        latest_msg_type: MsgType::SingleText as i32,
        latest_msg_from_user_id: 1,
    };
    roundtrip(
        &session,
        &[
            0x08, 0x02, // 1: session_id
            0x10, 0x01, // 2: session_type
            0x18, 0x01, // 3: session_status = SESSION_STATUS_DELETE
            0x20, 0x01, // 4: updated_time
            0x28, 0x03, // 5: latest_msg_id
            0x32, 0x02, b'h', b'i', // 6: latest_msg_data
            0x38, 0x01, // 7: latest_msg_type
            0x40, 0x01, // 8: latest_msg_from_user_id
        ],
    );
}

#[test]
fn group_shield_matches_hand_encoding() {
    let req = ImGroupShieldReq {
        user_id: 3,
        group_id: 300,
        shield_status: 1,
        attach_data: Some(b"x".to_vec()),
    };
    roundtrip(
        &req,
        &[
            0x08, 0x03, // 1: user_id = 3
            0x10, 0xac,
            0x02, // 2: group_id = 300 = 0x2c | 0x02 << 7 (0xac: 0x2c + continuation)
            0x18, 0x01, // 3: shield_status = 1
            0xa2, 0x01, 0x01, b'x', // 20: attach_data, key 20 << 3 | 2 = 162 = varint a2 01
        ],
    );
    let rsp = ImGroupShieldRsp {
        user_id: 3,
        group_id: 7,
        result_code: 0,
        attach_data: None,
    };
    // result_code is required: sent even though zero.
    roundtrip(&rsp, &[0x08, 0x03, 0x10, 0x07, 0x18, 0x00]);
}
