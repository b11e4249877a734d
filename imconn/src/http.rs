//! [`HttpCodec`]: HTTP/1.1 requests as a [`Codec`], and [`Response`], the
//! answer it encodes - the one HTTP parser of the workspace (procmon's
//! pages, login_server's `/msg_server`).
//!
//! Decoding, with `httparse`:
//!
//! - a request head of at most [`HttpCodec::max_head`] bytes (and at most
//!   [`MAX_HEADERS`] headers); the body is framed by `Content-Length`, head
//!   and body together at most the connection's
//!   [`ConnConfig::max_frame`](crate::ConnConfig::max_frame), so one frame
//!   is one whole request and pipelined requests are separate frames;
//! - a head that is not HTTP/1.x, too large, or with an unusable
//!   `Content-Length` (or a body over `max_frame`) is not a decode error:
//!   it becomes [`HttpFrame::Bad`], which the server answers `400` (see
//!   [`Response::bad_request`]) before closing. Everything the peer sends
//!   after it comes as [`HttpFrame::Discard`];
//! - a `Transfer-Encoding` body is not framed: the request comes with
//!   [`Request::chunked`] set and `keep_alive` cleared, and what follows it
//!   is discarded, so it is answered and the connection closed.
//!
//! Keep-alive follows the version and the `Connection` header. Pipelining
//! is bounded by the server, as for any codec: a connection that stops
//! reading with [`ConnCtx::pause_read`](crate::ConnCtx::pause_read) while
//! its unread output is long gets no further request until it resumes.
//!
//! Encoding: a [`Reply`] (a [`Response`] with the connection's keep-alive
//! decision) becomes the status line, `Content-Type`, `Content-Length`,
//! `Connection`, the response's extra headers and the body, in one write.
//!
//! ```
//! use imconn::http::{HttpCodec, HttpFrame, Reply, Response};
//! use imconn::{Codec, Encoder};
//! let mut codec = HttpCodec::new(8192);
//! let wire = b"POST /a?b=1 HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET /next";
//! let (frame, used) = codec.decode(wire, 65536).unwrap().unwrap();
//! let HttpFrame::Request(req) = frame else { panic!() };
//! assert_eq!((req.method, req.path, req.query, req.body), ("POST", "/a", Some("b=1"), &b"hi"[..]));
//! assert!(req.keep_alive);
//! assert_eq!(used, wire.len() - 9); // the pipelined next request waits
//! assert!(codec.decode(b"GET /next HT", 65536).unwrap().is_none());
//!
//! let mut out = Vec::new();
//! let resp = Response::new(200, "text/plain", &b"ok"[..]);
//! codec.encode(Reply { response: &resp, keep_alive: false, head_only: false }, &mut out).unwrap();
//! assert_eq!(out, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
//! ```

use crate::codec::{Codec, DecodeError, EncodeError, Encoder};
use std::borrow::Cow;
use std::fmt;
use std::io::Write as _;

/// Most headers accepted in one request.
pub const MAX_HEADERS: usize = 32;

/// Default largest request head: 8 KiB.
pub const DEFAULT_MAX_HEAD: usize = 8 * 1024;

/// A parsed request, borrowing from the connection's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// `GET`, `HEAD`, ...
    pub method: &'a str,
    /// The target up to `?` or `#`.
    pub path: &'a str,
    /// What followed `?` (up to `#`), if anything.
    pub query: Option<&'a str>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Whether the client wants the connection kept open afterwards
    /// (always false with [`chunked`](Self::chunked)).
    pub keep_alive: bool,
    /// The declared `Content-Length` (0 without one).
    pub content_length: usize,
    /// The request has a `Transfer-Encoding` body, which is not read.
    pub chunked: bool,
    /// Bytes of the head, final blank line included.
    pub head_len: usize,
    /// The body (`content_length` bytes; empty from [`parse_head`]).
    pub body: &'a [u8],
}

impl Request<'_> {
    /// The request announces a body.
    pub fn has_body(&self) -> bool {
        self.content_length > 0 || self.chunked
    }
}

/// Why a request is answered with 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadRequest {
    /// The head is (or grew) larger than the limit.
    TooLarge(usize),
    /// Not an HTTP/1.x request head.
    Malformed(httparse::Error),
    /// A `Content-Length` that is not one decimal number.
    BadLength,
    /// Head and body together would exceed the frame limit.
    BodyTooLarge(usize),
}

impl fmt::Display for BadRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadRequest::TooLarge(n) => write!(f, "request head of {n}+ bytes is too large"),
            BadRequest::Malformed(e) => write!(f, "malformed request: {e}"),
            BadRequest::BadLength => f.write_str("invalid Content-Length"),
            BadRequest::BodyTooLarge(n) => write!(f, "request of {n} bytes is too large"),
        }
    }
}

impl std::error::Error for BadRequest {}

/// Parses the request head at the start of `buf`: `Ok(None)` while it is
/// incomplete and within `max_head` bytes. The body is not looked at
/// ([`Request::body`] is empty).
///
/// ```
/// use imconn::http::parse_head;
/// let r = parse_head(b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /next", 8192).unwrap().unwrap();
/// assert_eq!((r.method, r.path, r.query, r.keep_alive), ("GET", "/a", Some("b=1"), true));
/// assert_eq!(r.head_len, 32);
/// assert_eq!(parse_head(b"GET /a HTT", 8192), Ok(None));
/// assert!(parse_head(b"\x16\x03\x01 garbage\r\n\r\n", 8192).is_err());
/// ```
pub fn parse_head(buf: &[u8], max_head: usize) -> Result<Option<Request<'_>>, BadRequest> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n > max_head => return Err(BadRequest::TooLarge(n)),
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > max_head => {
            return Err(BadRequest::TooLarge(buf.len()))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(BadRequest::Malformed(e)),
    };
    let minor_version = req.version.unwrap_or(0);
    let mut keep_alive = minor_version >= 1;
    let mut content_length = None;
    let mut chunked = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let value = h.value.trim_ascii();
            let parsed = (!value.is_empty() && value.iter().all(u8::is_ascii_digit))
                .then(|| std::str::from_utf8(value).ok()?.parse::<usize>().ok())
                .flatten();
            match (parsed, content_length) {
                (Some(n), None) => content_length = Some(n),
                (Some(n), Some(m)) if n == m => {}
                _ => return Err(BadRequest::BadLength),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
        }
    }
    if chunked {
        keep_alive = false;
    }
    let target = req.path.unwrap_or("/");
    let (before_fragment, _) = target.split_once('#').unwrap_or((target, ""));
    let (path, query) = match before_fragment.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (before_fragment, None),
    };
    Ok(Some(Request {
        method: req.method.unwrap_or(""),
        path,
        query,
        minor_version,
        keep_alive,
        content_length: content_length.unwrap_or(0),
        chunked,
        head_len,
        body: &[],
    }))
}

/// A frame of the [`HttpCodec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpFrame<'a> {
    /// A whole request, body included.
    Request(Request<'a>),
    /// Input that is no request; answer 400 and close. What it held is
    /// consumed.
    Bad(BadRequest),
    /// Input after a [`Bad`](HttpFrame::Bad) frame or a chunked request:
    /// ignore it.
    Discard,
}

/// HTTP/1.1 requests; see the module docs. Each connection's copy
/// remembers whether its stream is still framed.
#[derive(Debug, Clone, Copy)]
pub struct HttpCodec {
    /// Largest request head.
    pub max_head: usize,
    /// The stream lost its framing: everything is discarded.
    broken: bool,
}

impl Default for HttpCodec {
    fn default() -> Self {
        HttpCodec::new(DEFAULT_MAX_HEAD)
    }
}

impl HttpCodec {
    /// A codec accepting heads up to `max_head` bytes. The connection's
    /// `max_frame` should be at least as large, or a long head closes the
    /// connection without its 400.
    pub fn new(max_head: usize) -> HttpCodec {
        HttpCodec {
            max_head,
            broken: false,
        }
    }
}

impl Codec for HttpCodec {
    type Frame<'a> = HttpFrame<'a>;

    fn decode<'a>(
        &mut self,
        src: &'a [u8],
        max_frame: usize,
    ) -> Result<Option<(HttpFrame<'a>, usize)>, DecodeError> {
        if src.is_empty() {
            return Ok(None);
        }
        if self.broken {
            return Ok(Some((HttpFrame::Discard, src.len())));
        }
        let bad = |codec: &mut HttpCodec, why| {
            codec.broken = true;
            Ok(Some((HttpFrame::Bad(why), src.len())))
        };
        let mut req = match parse_head(src, self.max_head.min(max_frame)) {
            Ok(None) => return Ok(None),
            Ok(Some(req)) => req,
            Err(why) => return bad(self, why),
        };
        if req.chunked {
            // The body is not framed: nothing after this head is a request.
            self.broken = true;
            return Ok(Some((HttpFrame::Request(req), src.len())));
        }
        let total = req.head_len.saturating_add(req.content_length);
        if total > max_frame {
            return bad(self, BadRequest::BodyTooLarge(total));
        }
        let Some(body) = src.get(req.head_len..total) else {
            return Ok(None);
        };
        req.body = body;
        Ok(Some((HttpFrame::Request(req), total)))
    }
}

/// A response; the codec adds the framing headers.
#[derive(Debug, Clone)]
pub struct Response<'a> {
    /// Status code, e.g. 200.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'a str,
    /// More header lines, each ending in `\r\n` (e.g. `Allow: GET\r\n`).
    pub headers: &'a str,
    /// The body: borrowed (a cached page) or owned.
    pub body: Cow<'a, [u8]>,
}

impl<'a> Response<'a> {
    /// A response with no extra headers.
    pub fn new(status: u16, content_type: &'a str, body: impl Into<Cow<'a, [u8]>>) -> Self {
        Response {
            status,
            content_type,
            headers: "",
            body: body.into(),
        }
    }

    /// The same with extra header lines.
    pub fn with_headers(self, headers: &'a str) -> Self {
        Response { headers, ..self }
    }

    /// `400 Bad Request`, the answer to [`HttpFrame::Bad`].
    pub fn bad_request() -> Response<'static> {
        Response::new(400, "text/plain; charset=utf-8", &b"bad request\n"[..])
    }
}

/// The reason phrase of common status codes.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Appends the wire form of `resp` to `out`; without its body if
/// `head_only` (an answer to `HEAD`).
pub fn write_response(out: &mut Vec<u8>, resp: &Response<'_>, keep_alive: bool, head_only: bool) {
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n{}\r\n",
        resp.status,
        reason(resp.status),
        resp.content_type,
        resp.body.len(),
        if keep_alive { "keep-alive" } else { "close" },
        resp.headers
    );
    if !head_only {
        out.extend_from_slice(&resp.body);
    }
}

/// What [`HttpCodec`] encodes: a response and how the connection goes on.
#[derive(Debug, Clone, Copy)]
pub struct Reply<'r, 'a> {
    /// The response.
    pub response: &'r Response<'a>,
    /// `Connection: keep-alive` rather than `close`.
    pub keep_alive: bool,
    /// Leave the body out (an answer to `HEAD`); `Content-Length` stays.
    pub head_only: bool,
}

impl Encoder<Reply<'_, '_>> for HttpCodec {
    fn encode(&mut self, reply: Reply<'_, '_>, dst: &mut Vec<u8>) -> Result<(), EncodeError> {
        write_response(dst, reply.response, reply.keep_alive, reply.head_only);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Request<'_> {
        parse_head(text.as_bytes(), 8192)
            .expect("valid")
            .expect("complete")
    }

    fn decode(codec: &mut HttpCodec, wire: &[u8], max_frame: usize) -> Option<(String, usize)> {
        codec
            .decode(wire, max_frame)
            .unwrap()
            .map(|(f, n)| (format!("{f:?}"), n))
    }

    #[test]
    fn keep_alive_follows_version_and_connection_header() {
        assert!(parse("GET / HTTP/1.1\r\n\r\n").keep_alive);
        assert!(!parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!parse("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(parse("GET / HTTP/1.0\r\nconnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(!parse("GET / HTTP/1.1\r\nConnection: upgrade, close\r\n\r\n").keep_alive);
        assert!(!parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").keep_alive);
    }

    #[test]
    fn lengths_are_checked() {
        assert!(!parse("GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").has_body());
        assert_eq!(
            parse("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello").content_length,
            5
        );
        for bad in ["x", "-1", "", "1, 2", "99999999999999999999999"] {
            let head = format!("POST / HTTP/1.1\r\nContent-Length: {bad}\r\n\r\n");
            assert_eq!(
                parse_head(head.as_bytes(), 8192),
                Err(BadRequest::BadLength)
            );
        }
        let twice = "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(
            parse_head(twice.as_bytes(), 8192),
            Err(BadRequest::BadLength)
        );
    }

    #[test]
    fn targets_split_into_path_and_query() {
        let r = parse("GET /cpu.svg?w=1#top HTTP/1.1\r\n\r\n");
        assert_eq!((r.path, r.query), ("/cpu.svg", Some("w=1")));
        let r = parse("GET /x#a?b HTTP/1.1\r\n\r\n");
        assert_eq!((r.path, r.query), ("/x", None));
    }

    #[test]
    fn oversized_malformed_and_partial_heads() {
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(100));
        assert_eq!(
            parse_head(big.as_bytes(), 64),
            Err(BadRequest::TooLarge(big.len()))
        );
        let complete = format!("{big}\r\n");
        assert!(matches!(
            parse_head(complete.as_bytes(), 64),
            Err(BadRequest::TooLarge(_))
        ));
        assert_eq!(parse_head(big.as_bytes(), 8192), Ok(None));
        assert!(parse_head(b"GET / HTTP/2.0\r\n\r\n", 8192).is_err());
        assert!(parse_head(b"GET / HTTP/1.1\r\nbad header\r\n\r\n", 8192).is_err());
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("H{i}: v\r\n"))
            .collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert!(parse_head(many.as_bytes(), 8192).is_err());
    }

    #[test]
    fn bodies_are_framed_and_bounded() {
        let mut codec = HttpCodec::new(1024);
        let wire = b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
        assert!(codec
            .decode(&wire[..wire.len() - 1], 4096)
            .unwrap()
            .is_none());
        assert_eq!(decode(&mut codec, wire, 4096).unwrap().1, wire.len());
        // Over max_frame: 400, and the rest of the stream is discarded.
        let (frame, used) = decode(&mut codec, wire, 40).unwrap();
        assert!(frame.starts_with("Bad(BodyTooLarge"), "{frame}");
        assert_eq!(used, wire.len());
        assert_eq!(
            decode(&mut codec, b"GET / HTTP/1.1\r\n\r\n", 40).unwrap().0,
            "Discard"
        );
    }

    #[test]
    fn chunked_requests_end_the_stream() {
        let mut codec = HttpCodec::default();
        let wire = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
        let (frame, used) = codec.decode(wire, 65536).unwrap().unwrap();
        let HttpFrame::Request(req) = frame else {
            panic!("{frame:?}")
        };
        assert!(req.chunked && !req.keep_alive);
        assert_eq!(used, wire.len());
        assert_eq!(
            codec.decode(b"0\r\n\r\n", 65536).unwrap().unwrap().0,
            HttpFrame::Discard
        );
    }

    #[test]
    fn head_responses_keep_the_length_but_not_the_body() {
        let mut out = Vec::new();
        let resp = Response::new(405, "text/plain", &b"no\n"[..]).with_headers("Allow: GET\r\n");
        write_response(&mut out, &resp, false, true);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(text.contains("Content-Length: 3\r\n"));
        assert!(text.contains("Connection: close\r\nAllow: GET\r\n\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }
}
