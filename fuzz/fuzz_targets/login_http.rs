//! Fuzz target: the workspace's HTTP request head parser
//! (`imconn::http::parse_head`, which login_server's and procmon's HTTP
//! sides decode with) over arbitrary bytes.
//!
//! Input layout: byte 0 picks the head limit (0..=255 * 64 bytes, so tiny
//! limits are exercised too), the rest is what the peer sent.
//!
//! Checked: no panic; the parser's answer does not depend on how much of the
//! stream had arrived, the way the server calls it (each prefix is parsed as
//! if it were all that was read so far): once a prefix is complete or
//! refused, a longer one is never "incomplete"; a request that parses has a
//! path without its query string.

#![no_main]

use libfuzzer_sys::fuzz_target;
use imconn::http::parse_head as parse_request;

fuzz_target!(|data: &[u8]| {
    let Some((&limit, stream)) = data.split_first() else {
        return;
    };
    let max_head = usize::from(limit) * 64;
    let whole = parse_request(stream, max_head);
    if let Ok(Some(req)) = &whole {
        assert!(!req.path.contains('?'), "query string kept: {req:?}");
        assert!(!req.method.is_empty());
    }
    // Feed it in growing prefixes, as reads arrive.
    let mut decided = false;
    let step = (stream.len() / 16).max(1);
    let mut end = 0;
    while end < stream.len() {
        end = (end + step).min(stream.len());
        match parse_request(&stream[..end], max_head) {
            Ok(None) => assert!(!decided, "a decided prefix became incomplete"),
            Ok(Some(_)) | Err(_) => decided = true,
        }
    }
});
