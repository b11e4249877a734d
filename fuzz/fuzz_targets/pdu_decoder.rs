//! Fuzz target: arbitrary bytes, cut into arbitrary reads, through `SimpleBuffer`
//! and `FrameDecoder` exactly as a connection uses them.
//!
//! Input layout: byte 0 picks the maximum frame length (so small limits get
//! exercised too), byte 1 seeds the read sizes, the rest is the stream. The seed
//! corpus in `corpus/pdu_decoder/` holds valid frames in this layout.
//!
//! Checked: no panic; every frame handed out has 16 <= length <= max, version 1,
//! and a length field equal to its size; after an error nothing more is decoded;
//! every body decodes (or fails cleanly) as the protobuf type its ids name.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pdu::{cid, proto, sid, FrameDecoder, Message, PduRef, SimpleBuffer, HEADER_LEN};

fn decode_body(frame: &PduRef<'_>) {
    // Only "does not panic" matters here; the results are discarded.
    match (frame.service_id(), frame.command_id()) {
        (sid::LOGIN, cid::login::MSG_SERV_RSP) => drop(frame.decode_body::<proto::ImMsgServRsp>()),
        (sid::LOGIN, cid::login::REQ_USERLOGIN) => drop(frame.decode_body::<proto::ImLoginReq>()),
        (sid::LOGIN, cid::login::RES_USERLOGIN) => drop(frame.decode_body::<proto::ImLoginRes>()),
        (sid::LOGIN, cid::login::KICK_USER) => drop(frame.decode_body::<proto::ImKickUser>()),
        (sid::MSG, cid::msg::DATA) => drop(frame.decode_body::<proto::ImMsgData>()),
        (sid::MSG, cid::msg::DATA_ACK) => drop(frame.decode_body::<proto::ImMsgDataAck>()),
        (sid::OTHER, cid::other::MSG_SERV_INFO) => {
            drop(frame.decode_body::<proto::ImMsgServInfo>())
        }
        (sid::OTHER, cid::other::USER_CNT_UPDATE) => {
            drop(frame.decode_body::<proto::ImUserCntUpdate>())
        }
        _ => drop(proto::ImLogoutRsp::decode(frame.body())),
    }
}

fuzz_target!(|data: &[u8]| {
    let (max, seed, stream) = match data {
        [a, b, rest @ ..] => (*a, *b, rest),
        _ => return,
    };
    // 0 means the default 4 MiB; otherwise limits from 16 bytes to ~64 KiB.
    let decoder = if max == 0 {
        FrameDecoder::new()
    } else {
        FrameDecoder::with_max_frame_len(u32::from(max) * 256)
    };

    let mut input = SimpleBuffer::new();
    let mut rest = stream;
    let mut step = u32::from(seed) | 1;
    while !rest.is_empty() {
        // A cheap deterministic sequence of read sizes from 1 to 64 bytes.
        step = step.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let n = ((step >> 16) as usize % 64 + 1).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;

        let space = input.write_space(chunk.len());
        space[..chunk.len()].copy_from_slice(chunk);
        input.commit(chunk.len());

        let mut frames = decoder.frames(input.as_slice());
        let mut failed = false;
        for frame in &mut frames {
            match frame {
                Ok(frame) => {
                    assert!(frame.frame_len() >= HEADER_LEN);
                    assert!(frame.frame_len() <= decoder.max_frame_len() as usize);
                    assert_eq!(frame.header().length as usize, frame.frame_len());
                    assert_eq!(frame.version(), pdu::PROTOCOL_VERSION);
                    decode_body(&frame);
                }
                Err(_) => failed = true,
            }
        }
        assert!(
            frames.next().is_none(),
            "fused after an error or incomplete frame"
        );
        let used = frames.consumed();
        input.consume(used);
        if failed {
            // A connection would be closed here.
            return;
        }
    }
});
