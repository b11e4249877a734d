//! The same script delivered in pieces of every size gives the same replies.

use super::*;

/// A script touching every command and error path, including a swallowed
/// value and a bad chunk, ending in quit.
fn conformance_script() -> Vec<u8> {
    let mut s = String::new();
    s.push_str("set a 1 0 5\r\nhello\r\n");
    s.push_str("add a 0 0 1\r\nx\r\nadd b 0 0 1 noreply\r\ny\r\n");
    s.push_str("append a 0 0 6\r\n world\r\nprepend a 0 0 1\r\n>\r\n");
    s.push_str("get a b c\r\ngets a\r\ngat 100 a\r\ngats 100 b\r\n");
    s.push_str("replace c 0 0 1\r\nz\r\ncas a 0 0 1 999\r\nq\r\ncas zz 0 0 1 1\r\nq\r\n");
    s.push_str("set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 100\r\nincr a 1\r\nincr n -1\r\n");
    s.push_str("touch a 10\r\ntouch zz 10\r\ndelete b\r\ndelete b\r\ndelete a 5\r\n");
    s.push_str(&format!("set big 0 0 {}\r\n", 2 * 1024 * 1024));
    s.push_str(&"B".repeat(2 * 1024 * 1024));
    s.push_str("\r\nset bad 0 0 2\r\nabc\r\n");
    s.push_str("bogus command\r\n\r\nget\r\nverbosity 1\r\nversion\r\n");
    s.push_str(&format!("get {}\r\n", "k".repeat(300)));
    s.push_str("flush_all\r\nget a\r\nflush_all 0 noreply\r\nstats reset\r\n");
    s.push_str("quit\r\nget a\r\n");
    s.into_bytes()
}

#[test]
fn byte_at_a_time_gives_the_same_output() {
    let config = Config::default();
    let script = conformance_script();
    let (whole, closed) = run_chunked(&config, &script, &[usize::MAX]);
    assert_eq!(closed, Some(CloseReason::Quit));
    let text = String::from_utf8_lossy(&whole);
    assert!(
        text.contains("SERVER_ERROR object too large for cache\r\n"),
        "{text}"
    );
    assert!(text.contains("CLIENT_ERROR bad data chunk\r\n"), "{text}");
    assert!(text.ends_with("RESET\r\n"), "{text}");

    // One byte at a time is slow over a 2 MiB value; use a smaller script
    // for that and cover the big one with odd chunk sizes.
    let (chunked, closed) = run_chunked(&config, &script, &[1, 2, 3, 5, 7, 11, 4093, 65536]);
    assert_eq!(closed, Some(CloseReason::Quit));
    assert_eq!(String::from_utf8_lossy(&chunked), text);

    let small: Vec<u8> = String::from_utf8_lossy(&script)
        .replace(&"B".repeat(2 * 1024 * 1024), &"B".repeat(4000))
        .replace(&format!("{}\r\n", 2 * 1024 * 1024), "4000\r\n")
        .into_bytes();
    let (whole, _) = run_chunked(&config, &small, &[usize::MAX]);
    let (bytes, closed) = run_chunked(&config, &small, &[1]);
    assert_eq!(closed, Some(CloseReason::Quit));
    assert_eq!(
        String::from_utf8_lossy(&bytes),
        String::from_utf8_lossy(&whole)
    );
}

#[test]
fn a_partial_command_is_left_unconsumed() {
    let c = Conn::new();
    let mut session = Session::new();
    let mut out = Vec::new();
    let (used, progress) = session.process(&c.store, b"get k", &mut out);
    assert_eq!((used, progress), (0, Progress::Continue));
    let (used, _) = session.process(&c.store, b"get k\r", &mut out);
    assert_eq!(used, 0);
    let (used, _) = session.process(&c.store, b"get k\r\n", &mut out);
    assert_eq!(used, 7);
    assert_eq!(out, b"END\r\n");
    // A data block is consumed as it comes.
    out.clear();
    let (used, _) = session.process(&c.store, b"set k 0 0 10\r\n01234", &mut out);
    assert_eq!(used, 19);
    let (used, _) = session.process(&c.store, b"56789\r", &mut out);
    assert_eq!((used, out.len()), (6, 0));
    let (used, _) = session.process(&c.store, b"\n", &mut out);
    assert_eq!((used, out.as_slice()), (1, &b"STORED\r\n"[..]));
}
