//! Fuzz target: memcached's ASCII protocol state machine
//! (`examples::memcached::Session::process`) over arbitrary input cut into
//! arbitrary reads, against a small store.
//!
//! Input layout: byte 0 seeds the read sizes, the rest is the stream.
//!
//! Checked: no panic; `process` never claims more input than it was given;
//! the caller's buffer stays bounded (max line + one read) as the module
//! promises; once closed, a session stays closed and consumes nothing.

#![no_main]

use examples::memcached::{Config, ManualClock, Progress, Session, Store};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let config = Config {
        memory_limit: 64 * 1024,
        item_size_max: 4096,
        max_line: 256,
        max_multiget_line: 1024,
        output_high_water: 8 * 1024,
        max_get_response: 16 * 1024,
        shards: 2,
        ..Config::default()
    };
    let store = Store::new(&config, Arc::new(ManualClock::new(1_000_000)));
    let mut session = Session::new();
    let mut inbuf: Vec<u8> = Vec::new();
    let mut out: Vec<u8> = Vec::new();
    let mut rest = stream;
    let mut step = u32::from(seed) | 1;
    let mut closed = false;
    loop {
        if !rest.is_empty() {
            step = step.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let n = ((step >> 16) as usize % 200 + 1).min(rest.len());
            inbuf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
        } else if inbuf.is_empty() {
            break;
        }
        // Keep calling while the session asks for its output to be drained.
        loop {
            let (used, progress) = session.process(&store, &inbuf, &mut out);
            assert!(used <= inbuf.len());
            if closed {
                assert_eq!(used, 0, "a closed session consumed input");
                assert!(matches!(progress, Progress::Close(_)));
            }
            inbuf.drain(..used);
            match progress {
                Progress::OutputFull => out.clear(),
                Progress::Continue => break,
                Progress::Close(_) => {
                    closed = true;
                    break;
                }
            }
        }
        out.clear();
        if closed {
            return;
        }
        assert!(
            inbuf.len() <= config.max_multiget_line + 1 + 200,
            "buffered {} bytes",
            inbuf.len()
        );
        if rest.is_empty() {
            break;
        }
    }
});
