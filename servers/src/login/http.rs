//! The HTTP side of the login server: `GET /msg_server` answers with
//! TeamTalk's JSON, so mobile and web clients can find a message server
//! without speaking PDUs.
//!
//! [`HttpServer`] is a plain netlib [`Handler`] (PDU framing does not apply)
//! that keeps one [`BufferedConn`] per socket. A connection carries one
//! request: it must arrive complete within `HttpTimeoutMs` (a socket timer,
//! so a slowloris peer is closed, not kept), its head may not exceed
//! `HttpMaxRequestBytes`, and after the response the server half-closes and
//! waits for the peer's end-of-stream (or the same deadline) - TeamTalk's
//! `Connection: close` behaviour without resetting a peer whose request body
//! is still unread.
//!
//! | request | response |
//! |---|---|
//! | `GET`/`POST /msg_server[?...]` | 200, `{"code":0,"msg":"","priorIP":..}` or code 1/2 |
//! | another path | 404 |
//! | another method on `/msg_server` | 405 |
//! | not HTTP/1.x, or head over the limit | 400 |
//!
//! The registry lives in the PDU server ([`LoginState`]); this handler reads
//! it through [`Context::with_handler`], which is safe because the two
//! handlers never run at the same time.

use super::conn::{LoginConn, LoginState};
use super::registry::{MsgServerEntry, Refusal};
use super::settings::LoginSettings;
use imconn::{BufferedConn, ImServer, Limits};
use netlib::{Context, Event, Handle, Handler, HandlerRef, TimerId};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Most headers accepted in one request.
const MAX_HEADERS: usize = 32;

/// A request the server understood well enough to route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The target without its query string.
    pub path: String,
}

/// Why a request is refused with 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadRequest {
    /// The head grew past the limit before it was complete.
    TooLarge(usize),
    /// Not parseable as HTTP/1.x.
    Malformed(String),
}

/// Parses the request head at the start of `buf`: `Ok(None)` while it is
/// incomplete and within `max_head` bytes.
///
/// ```
/// use servers::login::http::parse_request;
/// let r = parse_request(b"GET /msg_server?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", 8192).unwrap().unwrap();
/// assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/msg_server"));
/// assert_eq!(parse_request(b"GET /msg", 8192), Ok(None));
/// assert!(parse_request(b"\x00\x01junk\r\n\r\n", 8192).is_err());
/// ```
pub fn parse_request(buf: &[u8], max_head: usize) -> Result<Option<Request>, BadRequest> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(head_len)) if head_len > max_head => {
            Err(BadRequest::TooLarge(head_len))
        }
        Ok(httparse::Status::Complete(_)) => {
            let target = req.path.unwrap_or("/");
            let path = target.split(['?', '#']).next().unwrap_or("/");
            Ok(Some(Request {
                method: req.method.unwrap_or("").to_string(),
                path: path.to_string(),
            }))
        }
        Ok(httparse::Status::Partial) if buf.len() > max_head => {
            Err(BadRequest::TooLarge(buf.len()))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(BadRequest::Malformed(e.to_string())),
    }
}

/// Appends `s` to `out` as a JSON string literal.
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The JSON body of the `/msg_server` answer, keys in the order TeamTalk's
/// JsonCpp printed them. `port` is a string, as in TeamTalk.
///
/// ```
/// use servers::login::http::msg_server_json;
/// use servers::login::registry::Refusal;
/// assert_eq!(msg_server_json(Err(Refusal::AllFull), "", ""), r#"{"code":2,"msg":"负载过高"}"#);
/// ```
pub fn msg_server_json(
    choice: Result<&MsgServerEntry, Refusal>,
    msfs: &str,
    discovery: &str,
) -> String {
    let mut out = String::with_capacity(256);
    match choice {
        Err(refusal) => {
            let msg = match refusal {
                Refusal::NoMsgServer => "没有msg_server",
                Refusal::AllFull => "负载过高",
            };
            let _ = write!(out, "{{\"code\":{},\"msg\":", refusal as i32);
            json_string(&mut out, msg);
            out.push('}');
        }
        Ok(e) => {
            out.push_str("{\"backupIP\":");
            json_string(&mut out, &e.ip2);
            out.push_str(",\"code\":0,\"discovery\":");
            json_string(&mut out, discovery);
            out.push_str(",\"msfsBackup\":");
            json_string(&mut out, msfs);
            out.push_str(",\"msfsPrior\":");
            json_string(&mut out, msfs);
            out.push_str(",\"msg\":\"\",\"port\":");
            json_string(&mut out, &e.port.to_string());
            out.push_str(",\"priorIP\":");
            json_string(&mut out, &e.ip1);
            out.push('}');
        }
    }
    out
}

/// A complete response with `Connection: close`.
fn response(status: &str, content_type: &str, extra: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\nContent-Type: {content_type}\r\n{extra}\r\n{body}",
        body.len()
    )
}

/// One HTTP connection.
struct HttpConn {
    io: BufferedConn,
    deadline: Option<TimerId>,
    /// The response went out; input is now drained and discarded.
    answered: bool,
}

/// The netlib handler of the HTTP listeners. See the module docs.
pub struct HttpServer {
    login: HandlerRef,
    conns: HashMap<Handle, HttpConn>,
    timeout: Duration,
    max_head: usize,
    max_conns: usize,
    msfs: String,
    discovery: String,
}

impl HttpServer {
    /// A server answering from the registry of the PDU server `login`.
    pub fn new(login: HandlerRef, settings: &LoginSettings) -> HttpServer {
        HttpServer {
            login,
            conns: HashMap::new(),
            timeout: settings.http_timeout,
            max_head: settings.http_max_request,
            max_conns: settings.max_http_conns,
            msfs: settings.msfs.clone(),
            discovery: settings.discovery.clone(),
        }
    }

    /// Connections open now.
    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    fn answer(&self, ctx: &mut Context, req: &Request) -> String {
        if req.path != "/msg_server" {
            log::info!("login: http {} {}: not found", req.method, req.path);
            return response(
                "404 Not Found",
                "text/plain; charset=utf-8",
                "",
                "not found\n",
            );
        }
        if req.method != "GET" && req.method != "POST" {
            return response(
                "405 Method Not Allowed",
                "text/plain; charset=utf-8",
                "Allow: GET, POST\r\n",
                "method not allowed\n",
            );
        }
        let body = ctx
            .with_handler(self.login, |s: &mut ImServer<LoginConn>, _| {
                let state: &mut LoginState = &mut s.shared;
                msg_server_json(state.registry.choose(), &self.msfs, &self.discovery)
            })
            .unwrap_or_else(|| msg_server_json(Err(Refusal::NoMsgServer), "", ""));
        log::debug!("login: http {} {} -> {body}", req.method, req.path);
        // TeamTalk's content type, which its clients expect.
        response("200 OK", "text/html;charset=utf-8", "", &body)
    }

    fn on_read(&mut self, ctx: &mut Context, h: Handle) {
        let Some(conn) = self.conns.get_mut(&h) else {
            return;
        };
        conn.io.fill(ctx);
        if conn.answered {
            conn.io.in_buf.clear();
            conn.io.in_buf.release();
            return;
        }
        let reply = match parse_request(conn.io.in_buf.as_slice(), self.max_head) {
            Ok(None) => return, // wait for more (or the deadline)
            Ok(Some(req)) => self.answer(ctx, &req),
            Err(bad) => {
                log::warn!(
                    "login: http {h} {} bad request: {bad:?}",
                    crate::runtime::addr_or_unknown(conn.io.peer())
                );
                response(
                    "400 Bad Request",
                    "text/plain; charset=utf-8",
                    "",
                    "bad request\n",
                )
            }
        };
        let Some(conn) = self.conns.get_mut(&h) else {
            return;
        };
        conn.answered = true;
        conn.io.in_buf.clear();
        conn.io.in_buf.release();
        if conn.io.send(ctx, reply.as_bytes()).is_ok() {
            conn.io.shutdown(ctx);
        }
    }
}

impl Handler for HttpServer {
    fn on_event(&mut self, ctx: &mut Context, h: Handle, event: Event) {
        match event {
            Event::Connect { .. } => {
                if self.conns.len() >= self.max_conns {
                    log::warn!("login: http connection refused, {} open", self.conns.len());
                    let _ = ctx.close(h);
                    return;
                }
                let limits = Limits {
                    high_water: 64 * 1024,
                    hard_cap: 1024 * 1024,
                    read_chunk: 16 * 1024,
                };
                let io = BufferedConn::new(ctx, h, limits);
                let deadline = ctx.add_socket_timer(h, self.timeout, None).ok();
                self.conns.insert(
                    h,
                    HttpConn {
                        io,
                        deadline,
                        answered: false,
                    },
                );
            }
            Event::Read => self.on_read(ctx, h),
            Event::Write => {
                if let Some(conn) = self.conns.get_mut(&h) {
                    let _ = conn.io.flush(ctx);
                }
            }
            Event::Timer(id) => {
                if let Some(conn) = self.conns.get_mut(&h) {
                    if conn.deadline == Some(id) {
                        log::info!(
                            "login: http {h} {} closed: no complete exchange within {:?}",
                            crate::runtime::addr_or_unknown(conn.io.peer()),
                            self.timeout
                        );
                        conn.io.force_close(ctx);
                    }
                }
            }
            Event::Close(reason) => {
                if let Some(conn) = self.conns.remove(&h) {
                    imconn::buffered::log_close(h, conn.io.peer(), reason);
                    if let Some(t) = conn.deadline {
                        ctx.cancel_timer(t);
                    }
                }
            }
            Event::Confirm | Event::ReadClosed => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_and_malformed_heads_are_refused() {
        let big = format!("GET /msg_server HTTP/1.1\r\nX: {}\r\n", "a".repeat(100));
        assert_eq!(
            parse_request(big.as_bytes(), 64),
            Err(BadRequest::TooLarge(big.len()))
        );
        let complete = format!("{big}\r\n");
        assert!(matches!(
            parse_request(complete.as_bytes(), 64),
            Err(BadRequest::TooLarge(_))
        ));
        assert!(parse_request(complete.as_bytes(), 8192).unwrap().is_some());
        assert!(matches!(
            parse_request(b"GET / HTTP/1.1\r\nbad header\r\n\r\n", 8192),
            Err(BadRequest::Malformed(_))
        ));
        let many: String = (0..40).map(|i| format!("H{i}: v\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert!(parse_request(many.as_bytes(), 8192).is_err());
    }

    #[test]
    fn json_matches_teamtalk() {
        let e = MsgServerEntry {
            ip1: "1.2.3.4".into(),
            ip2: "5.6.7.8".into(),
            port: 8000,
            max_conn_cnt: 10,
            cur_conn_cnt: 0,
            host_name: "h".into(),
        };
        assert_eq!(
            msg_server_json(Ok(&e), "http://m/", "http://d\"/"),
            r#"{"backupIP":"5.6.7.8","code":0,"discovery":"http://d\"/","msfsBackup":"http://m/","msfsPrior":"http://m/","msg":"","port":"8000","priorIP":"1.2.3.4"}"#
        );
        assert_eq!(
            msg_server_json(Err(Refusal::NoMsgServer), "", ""),
            r#"{"code":1,"msg":"没有msg_server"}"#
        );
        let mut s = String::new();
        json_string(&mut s, "a\u{1}\n");
        assert_eq!(s, r#""a\u0001\n""#);
    }
}
