//! Fuzz target: arbitrary bytes, cut into arbitrary reads, through
//! msgcenter's `MsgCodec` as an imconn connection drives it (preamble first,
//! then frames), plus the bare `decode_frame`.
//!
//! Input layout: byte 0 picks the maximum frame (64 + 16 * byte0 bytes),
//! byte 1 seeds the read sizes and, with its top bit set, puts a valid
//! preamble in front of the rest so the frame decoder is reached often.
//! Seeds in `corpus/msgcenter_frame/` hold valid streams in this layout.
//!
//! Checked: no panic; nothing decoded after an error; every frame's body
//! fits the limit and re-encodes to exactly the bytes it was decoded from
//! (so the checksums and fields are all accounted for); the bare decoder
//! agrees with the codec.

#![no_main]

use imconn::Codec;
use libfuzzer_sys::fuzz_target;
use msgcenter::codec::{Incoming, MsgCodec};
use msgcenter::frame::{self, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let max_frame = HEADER_LEN + 16 * data[0] as usize;
    let mut seed = data[1] as usize | 1;
    let mut stream = Vec::new();
    if data[1] & 0x80 != 0 {
        frame::encode_preamble(&mut stream);
    }
    stream.extend_from_slice(&data[2..]);

    let mut codec = MsgCodec::default();
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut failed = false;
    while fed < stream.len() && !failed {
        seed = seed.wrapping_mul(1103515245).wrapping_add(12345);
        let n = 1 + (seed >> 8) % 97;
        let end = (fed + n).min(stream.len());
        buf.extend_from_slice(&stream[fed..end]);
        fed = end;
        loop {
            match codec.decode(&buf, max_frame) {
                Ok(Some((item, used))) => {
                    assert!(used > 0 && used <= buf.len());
                    if let Incoming::Frame(f) = item {
                        assert!(f.body.len() <= max_frame - HEADER_LEN);
                        let mut again = Vec::new();
                        frame::encode_frame(&mut again, &f.header, f.body).unwrap();
                        assert_eq!(again, &buf[..used], "re-encoding differs");
                        let bare = frame::decode_frame(&buf, max_frame - HEADER_LEN);
                        assert_eq!(bare.map(|o| o.map(|(_, n)| n)), Ok(Some(used)));
                    } else {
                        assert_eq!(used, frame::PREAMBLE_LEN);
                    }
                    buf.drain(..used);
                }
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
    }
});
