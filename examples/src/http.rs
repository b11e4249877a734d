//! [`HttpServer`]: a small HTTP/1.1 server on netlib, for examples that serve
//! pages (muduo's `net/http`, which its procmon uses).
//!
//! A [`Service`] answers requests; the server does the rest: it parses
//! request heads with `httparse`, keeps one [`BufferedConn`] per connection,
//! writes each response (status line, `Content-Length`, `Connection`) in one
//! send, and enforces limits that make it safe on a public port:
//!
//! - a head over [`HttpConfig::max_head`] bytes, or one that is not HTTP/1.x,
//!   is answered `400 Bad Request` and the connection closed;
//! - each request must arrive complete within [`HttpConfig::timeout`] of the
//!   previous response (or of connecting), and an idle keep-alive connection
//!   is closed after the same time - a slowloris peer is dropped, not kept;
//! - at most [`HttpConfig::max_conns`] connections; more are closed at once;
//! - pipelined requests are answered in order, but only while less than
//!   [`HttpConfig::out_limit`] bytes of responses wait unsent: past that the
//!   socket stops being read until the peer reads, so a client that sends
//!   requests without reading answers cannot grow the server's memory.
//!
//! Connections are kept alive (HTTP/1.1 unless `Connection: close`; 1.0
//! with `Connection: keep-alive`). Requests are heads only - this is for
//! `GET`-style services: a request that announces a body is answered and the
//! connection closed, since its body is never read. `HEAD` gets the `GET`
//! headers without the body. A closing connection is half-closed once the
//! response drained, and closed when the peer closes its side (or at the
//! deadline), so a peer is never reset before it read the answer.
//!
//! One deadline timer per connection, re-armed lazily: it is not touched
//! per request, only when it fires early. Owned by the loop thread.
//!
//! ```
//! use examples::http::{HttpConfig, HttpServer, Request, Response, Service};
//! use netlib::{EventDispatch, ListenOptions};
//!
//! struct Hello;
//! impl Service for Hello {
//!     fn respond(&mut self, req: &Request<'_>) -> Response<'_> {
//!         match req.path {
//!             "/" => Response::new(200, "text/plain", b"hello\n".to_vec()),
//!             _ => Response::new(404, "text/plain", &b"not found\n"[..]),
//!         }
//!     }
//! }
//!
//! let mut dispatch = EventDispatch::new().unwrap();
//! let server = HttpServer::new(Hello, HttpConfig::default());
//! let listener = dispatch
//!     .context()
//!     .listen("127.0.0.1:0".parse().unwrap(), &ListenOptions::default(), server)
//!     .unwrap();
//! # let _ = listener;
//! ```

use crate::conns::ConnTable;
use imconn::{BufferedConn, Limits};
use netlib::{Context, Event, Handle, Handler, TimerId};
use std::borrow::Cow;
use std::fmt;
use std::io::Write as _;
use std::time::{Duration, Instant};

/// Most headers accepted in one request.
pub const MAX_HEADERS: usize = 32;

/// Output queued beyond the pause threshold at which a connection is closed
/// (a safety net; pausing keeps the queue near [`HttpConfig::out_limit`]).
const HARD_CAP: usize = 8 * 1024 * 1024;

/// A parsed request head, borrowing from the connection's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// `GET`, `HEAD`, ...
    pub method: &'a str,
    /// The target up to `?` or `#`.
    pub path: &'a str,
    /// What followed `?`, if anything.
    pub query: Option<&'a str>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Whether the client wants the connection kept open afterwards.
    pub keep_alive: bool,
    /// The request announces a body (`Content-Length` other than 0, or
    /// `Transfer-Encoding`).
    pub has_body: bool,
    /// Bytes of the head, final blank line included.
    pub head_len: usize,
}

/// Why a request is answered with 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadRequest {
    /// The head is (or grew) larger than the limit.
    TooLarge(usize),
    /// Not an HTTP/1.x request head.
    Malformed(httparse::Error),
}

impl fmt::Display for BadRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadRequest::TooLarge(n) => write!(f, "request head of {n}+ bytes is too large"),
            BadRequest::Malformed(e) => write!(f, "malformed request: {e}"),
        }
    }
}

impl std::error::Error for BadRequest {}

/// Parses the request head at the start of `buf`: `Ok(None)` while it is
/// incomplete and within `max_head` bytes.
///
/// ```
/// use examples::http::parse_request;
/// let r = parse_request(b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /next", 8192).unwrap().unwrap();
/// assert_eq!((r.method, r.path, r.query, r.keep_alive), ("GET", "/a", Some("b=1"), true));
/// assert_eq!(r.head_len, 32); // the pipelined next request stays unparsed
/// assert_eq!(parse_request(b"GET /a HTT", 8192), Ok(None));
/// assert!(parse_request(b"\x16\x03\x01 garbage\r\n\r\n", 8192).is_err());
/// ```
pub fn parse_request(buf: &[u8], max_head: usize) -> Result<Option<Request<'_>>, BadRequest> {
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
    let mut has_body = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            for token in String::from_utf8_lossy(h.value).split(',') {
                let token = token.trim();
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            // Anything but a plain 0 (including nonsense) counts as a body.
            has_body |= std::str::from_utf8(h.value).map(str::trim) != Ok("0");
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            has_body = true;
        }
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
        has_body,
        head_len,
    }))
}

/// A response a [`Service`] returns; the server adds the framing headers.
#[derive(Debug, Clone)]
pub struct Response<'a> {
    /// Status code, e.g. 200.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// More header lines, each ending in `\r\n` (e.g. `Allow: GET\r\n`).
    pub headers: &'static str,
    /// The body: borrowed (a cached page) or owned.
    pub body: Cow<'a, [u8]>,
}

impl<'a> Response<'a> {
    /// A response with no extra headers.
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Cow<'a, [u8]>>) -> Self {
        Response {
            status,
            content_type,
            headers: "",
            body: body.into(),
        }
    }

    /// The same with extra header lines.
    pub fn with_headers(self, headers: &'static str) -> Self {
        Response { headers, ..self }
    }
}

/// The reason phrase of the status codes these examples use.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Appends the wire form of `resp` to `out`; without its body if `head_only`.
///
/// ```
/// use examples::http::{write_response, Response};
/// let mut out = Vec::new();
/// write_response(&mut out, &Response::new(200, "text/plain", &b"hi"[..]), true, false);
/// assert_eq!(out, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nhi");
/// ```
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

/// What an [`HttpServer`] serves.
pub trait Service: 'static {
    /// The response to `req`. It may borrow from the service (cached pages).
    fn respond(&mut self, req: &Request<'_>) -> Response<'_>;

    /// A timer added for the server's handler (with
    /// [`Context::add_handler_timer`]) fired: periodic work of the service.
    fn on_timer(&mut self, ctx: &mut Context, id: TimerId) {
        let _ = (ctx, id);
    }
}

/// Limits of an [`HttpServer`]; the defaults suit a public port.
#[derive(Debug, Clone, Copy)]
pub struct HttpConfig {
    /// Largest request head, in bytes. Default 8 KiB.
    pub max_head: usize,
    /// Time a request may take to arrive, and an idle connection may stay
    /// open. Default 10 s.
    pub timeout: Duration,
    /// Open connections at most. Default 1024.
    pub max_conns: usize,
    /// Unsent response bytes at which a connection stops being read and
    /// answered until the peer reads. Default 64 KiB.
    pub out_limit: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_head: 8 * 1024,
            timeout: Duration::from_secs(10),
            max_conns: 1024,
            out_limit: 64 * 1024,
        }
    }
}

/// One connection.
struct HttpConn {
    io: BufferedConn,
    deadline: Option<TimerId>,
    /// When the wait for the current request began.
    since: Instant,
    /// The last response is out (or going); input is discarded.
    closing: bool,
}

/// The netlib handler serving a [`Service`]; see the module docs.
pub struct HttpServer<S> {
    /// The service; reachable through [`Context::with_handler`].
    pub service: S,
    conns: ConnTable<HttpConn>,
    config: HttpConfig,
    /// One response being written; reused.
    scratch: Vec<u8>,
    /// Requests answered (400s included).
    pub requests: u64,
}

impl<S: Service> HttpServer<S> {
    /// A server of `service` with no connections.
    pub fn new(service: S, config: HttpConfig) -> HttpServer<S> {
        HttpServer {
            service,
            conns: ConnTable::new(),
            config,
            scratch: Vec::new(),
            requests: 0,
        }
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    fn on_connect(&mut self, ctx: &mut Context, h: Handle) {
        if self.conns.len() >= self.config.max_conns {
            log::warn!(
                "http: refusing {:?}: {} connections open",
                ctx.peer_addr(h).ok(),
                self.conns.len()
            );
            let _ = ctx.close(h);
            return;
        }
        let limits = Limits {
            high_water: self.config.out_limit,
            hard_cap: HARD_CAP.max(self.config.out_limit * 4),
            read_chunk: 16 * 1024,
        };
        let conn = HttpConn {
            io: BufferedConn::new(ctx, h, limits),
            deadline: ctx.add_socket_timer(h, self.config.timeout, None).ok(),
            since: Instant::now(),
            closing: false,
        };
        self.conns.insert(h, conn);
    }

    fn on_read(&mut self, ctx: &mut Context, h: Handle) {
        let Some(conn) = self.conns.get_mut(h) else {
            return;
        };
        conn.io.fill(ctx);
        self.serve(ctx, h);
    }

    /// Answers the complete requests in the input, in order, while the
    /// output queue is short.
    fn serve(&mut self, ctx: &mut Context, h: Handle) {
        loop {
            let Some(conn) = self.conns.get_mut(h) else {
                return;
            };
            if conn.closing || conn.io.is_closed() {
                conn.io.in_buf.clear();
                conn.io.in_buf.release();
                return;
            }
            if conn.io.queued() >= self.config.out_limit {
                // The peer is not reading its answers; Write resumes.
                let _ = ctx.pause_read(h);
                return;
            }
            self.scratch.clear();
            let (head_len, keep_alive) =
                match parse_request(conn.io.in_buf.as_slice(), self.config.max_head) {
                    Ok(None) => return, // wait for the rest (or the deadline)
                    Ok(Some(req)) => {
                        let keep_alive = req.keep_alive && !req.has_body;
                        let head_only = req.method == "HEAD";
                        let head_len = req.head_len;
                        log::debug!("http: {h} {} {}", req.method, req.path);
                        let resp = self.service.respond(&req);
                        write_response(&mut self.scratch, &resp, keep_alive, head_only);
                        (head_len, keep_alive)
                    }
                    Err(bad) => {
                        log::info!("http: {h} {:?} {bad}", conn.io.peer());
                        let resp = Response::new(400, "text/plain", &b"bad request\n"[..]);
                        write_response(&mut self.scratch, &resp, false, false);
                        (conn.io.in_buf.len(), false)
                    }
                };
            self.requests += 1;
            conn.io.in_buf.consume(head_len);
            conn.since = Instant::now();
            if conn.io.send(ctx, &self.scratch).is_err() {
                return; // closed; its Close event follows
            }
            if !keep_alive {
                conn.closing = true;
                conn.io.close_after_flush(ctx);
            }
        }
    }

    fn on_write(&mut self, ctx: &mut Context, h: Handle) {
        let Some(conn) = self.conns.get_mut(h) else {
            return;
        };
        match conn.io.flush(ctx) {
            Ok(status) if status.queued < self.config.out_limit => {
                let _ = ctx.resume_read(h);
                // Answer what was read before the pause.
                self.serve(ctx, h);
            }
            _ => {}
        }
    }

    fn on_deadline(&mut self, ctx: &mut Context, h: Handle, id: TimerId) {
        let timeout = self.config.timeout;
        let Some(conn) = self.conns.get_mut(h) else {
            return;
        };
        if conn.deadline != Some(id) {
            return;
        }
        let waited = conn.since.elapsed();
        if waited < timeout {
            // Activity since the timer was set: sleep for what is left.
            conn.deadline = ctx.add_socket_timer(h, timeout - waited, None).ok();
            return;
        }
        if conn.io.in_buf.is_empty() {
            log::debug!("http: {h} {:?} idle for {timeout:?}", conn.io.peer());
        } else {
            log::info!(
                "http: {h} {:?} closed: request incomplete after {timeout:?}",
                conn.io.peer()
            );
        }
        conn.io.force_close(ctx);
    }
}

impl<S: Service> Handler for HttpServer<S> {
    fn on_event(&mut self, ctx: &mut Context, h: Handle, event: Event) {
        match event {
            Event::Connect { .. } => self.on_connect(ctx, h),
            Event::Read => self.on_read(ctx, h),
            Event::Write => self.on_write(ctx, h),
            Event::Timer(id) => self.on_deadline(ctx, h, id),
            Event::Close(reason) => {
                // Socket timers stop by themselves with their socket.
                if let Some(conn) = self.conns.remove(h) {
                    imconn::buffered::log_close(h, conn.io.peer(), reason);
                }
            }
            Event::Confirm | Event::ReadClosed => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Context, id: TimerId) {
        self.service.on_timer(ctx, id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Request<'_> {
        parse_request(text.as_bytes(), 8192)
            .expect("valid")
            .expect("complete")
    }

    #[test]
    fn keep_alive_follows_version_and_connection_header() {
        assert!(parse("GET / HTTP/1.1\r\n\r\n").keep_alive);
        assert!(!parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!parse("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(parse("GET / HTTP/1.0\r\nconnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(!parse("GET / HTTP/1.1\r\nConnection: upgrade, close\r\n\r\n").keep_alive);
    }

    #[test]
    fn bodies_are_noticed() {
        assert!(!parse("GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").has_body);
        assert!(parse("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello").has_body);
        assert!(parse("POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n").has_body);
        assert!(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").has_body);
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
            parse_request(big.as_bytes(), 64),
            Err(BadRequest::TooLarge(big.len()))
        );
        let complete = format!("{big}\r\n");
        assert!(matches!(
            parse_request(complete.as_bytes(), 64),
            Err(BadRequest::TooLarge(_))
        ));
        assert_eq!(parse_request(big.as_bytes(), 8192), Ok(None));
        assert!(parse_request(b"GET / HTTP/2.0\r\n\r\n", 8192).is_err());
        assert!(parse_request(b"GET / HTTP/1.1\r\nbad header\r\n\r\n", 8192).is_err());
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("H{i}: v\r\n"))
            .collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert!(parse_request(many.as_bytes(), 8192).is_err());
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
