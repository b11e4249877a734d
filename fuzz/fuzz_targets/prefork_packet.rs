//! Fuzz target: async_server's packet framing (`prefork::ProtoCodec`).
//!
//! The first two bytes choose the connection's `max_frame`, the rest is the
//! input. Checked: no panic; a decoded packet uses exactly the length its
//! header declares, at least the header and at most `max_frame`, its body
//! is the bytes after the header, and encoding it again gives back the
//! bytes it was decoded from; "incomplete" only while the input is shorter
//! than the header or than a valid declared length; a declared length
//! below the header or over `max_frame` is refused.

#![no_main]

use imconn::{Codec, Encoder};
use libfuzzer_sys::fuzz_target;
use prefork::{PacketHeader, ProtoCodec, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let Some((limit, input)) = data.split_first_chunk::<2>() else {
        return;
    };
    let max_frame = usize::from(u16::from_le_bytes(*limit)).max(HEADER_LEN);
    let declared = PacketHeader::parse(input).map(|h| h.len as usize);
    match ProtoCodec.decode(input, max_frame) {
        Ok(Some((packet, used))) => {
            assert_eq!(Some(used), declared);
            assert!((HEADER_LEN..=max_frame).contains(&used) && used <= input.len());
            assert_eq!(packet.body, &input[HEADER_LEN..used]);
            let mut again = Vec::new();
            ProtoCodec.encode(packet, &mut again).unwrap();
            assert_eq!(again, &input[..used]);
        }
        Ok(None) => match declared {
            None => assert!(input.len() < HEADER_LEN),
            Some(len) => assert!((HEADER_LEN..=max_frame).contains(&len) && input.len() < len),
        },
        Err(_) => {
            let len = declared.expect("refused before a whole header");
            assert!(!(HEADER_LEN..=max_frame).contains(&len));
        }
    }
});
