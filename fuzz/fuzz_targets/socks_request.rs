//! Fuzz target: the SOCKS4/4a request parser (`examples::socks::parse`).
//!
//! Checked: no panic; a request that parses claims no more than it was given
//! and no more than `MAX_REQUEST`; the answer for a complete request is the
//! same when more bytes follow it (pipelined data), and every shorter
//! prefix of a parsed request is either incomplete or refused the same way,
//! never a different target.

#![no_main]

use examples::socks::{parse, MAX_REQUEST};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok(Some((len, target))) => {
            assert!(len <= data.len() && len <= MAX_REQUEST);
            assert_eq!(parse(&data[..len]), Ok(Some((len, target.clone()))));
            for cut in 0..len {
                assert_eq!(parse(&data[..cut]), Ok(None), "prefix {cut} of {len}");
            }
        }
        Ok(None) => assert!(data.len() < MAX_REQUEST),
        Err(_) => {}
    }
});
