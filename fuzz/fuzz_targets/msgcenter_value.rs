//! Fuzz target: arbitrary bytes through `msgcenter::value::decode` into the
//! dynamic `Value`, as the queue API and the connection manager decode
//! every body a peer sends.
//!
//! Checked: no panic, no stack overflow (nesting is bounded by
//! `value::MAX_DEPTH`), no huge allocation from a declared length; and a
//! decoded value re-encodes to bytes that decode to a value with the same
//! encoding (compared as bytes, since a NaN float is not equal to itself).

#![no_main]

use libfuzzer_sys::fuzz_target;
use msgcenter::value::{self, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(v) = value::decode::<Value>(data) else {
        return;
    };
    let once = value::encode(&v).expect("a decoded value encodes");
    let back: Value = value::decode(&once).expect("an encoded value decodes");
    let twice = value::encode(&back).expect("encodes again");
    assert_eq!(once, twice);
});
