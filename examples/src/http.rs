//! [`HttpServer`]: a small HTTP/1.1 server on netlib, for examples that serve
//! pages (muduo's `net/http`, which its procmon uses).
//!
//! A [`Service`] answers requests; the server does the rest. It is an
//! [`imconn::Server`] with imconn's [`HttpCodec`] (the workspace's one HTTP
//! parser: heads with `httparse`, bodies by `Content-Length`), writes each
//! response (status line, `Content-Length`, `Connection`) in one send, and
//! enforces limits that make it safe on a public port:
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
//! with `Connection: keep-alive`). A `Content-Length` body is read with its
//! request (up to 64 KiB in all); a `Transfer-Encoding` body is not, so such
//! a request is answered and the connection closed. `HEAD` gets the `GET`
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
//! let ctx = dispatch.context();
//! let server = HttpServer::register(ctx, Hello, HttpConfig::default());
//! let listener = ctx
//!     .listen_with("127.0.0.1:0".parse().unwrap(), &ListenOptions::default(), server)
//!     .unwrap();
//! # let _ = listener;
//! ```

use imconn::http::{HttpCodec, HttpFrame, DEFAULT_MAX_HEAD};
use imconn::{Accepted, ConnConfig, ConnCtx, Connection, Limits, Server, DEFAULT_MAX_FRAME};
use netlib::{CloseReason, Context, HandlerRef, TimerId};
use std::marker::PhantomData;
use std::time::{Duration, Instant};

pub use imconn::http::{
    parse_head, reason, write_response, BadRequest, Request, Response, MAX_HEADERS,
};

/// Output queued beyond the pause threshold at which a connection is closed
/// (a safety net; pausing keeps the queue near [`HttpConfig::out_limit`]).
const HARD_CAP: usize = 8 * 1024 * 1024;

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
            max_head: DEFAULT_MAX_HEAD,
            timeout: Duration::from_secs(10),
            max_conns: 1024,
            out_limit: 64 * 1024,
        }
    }
}

/// The state of an [`HttpServer`], shared by its connections: its
/// `Shared`. Reach it with [`Context::with_handler`] on
/// `imconn::Server<HttpConn<S>>` and its `shared` field.
pub struct HttpShared<S> {
    /// The service.
    pub service: S,
    config: HttpConfig,
    /// Requests answered (400s included).
    pub requests: u64,
    /// Connections open now.
    pub connections: usize,
    /// One response being written; reused.
    scratch: Vec<u8>,
}

/// The connection server of a [`Service`]; see the module docs.
pub struct HttpServer<S>(PhantomData<S>);

impl<S: Service> HttpServer<S> {
    /// Registers a server of `service`; listen with the returned reference
    /// ([`Context::listen_with`]). Timers added for it with
    /// [`Context::add_handler_timer`] go to [`Service::on_timer`].
    pub fn register(ctx: &mut Context, service: S, config: HttpConfig) -> HandlerRef {
        let shared = HttpShared {
            service,
            config,
            requests: 0,
            connections: 0,
            scratch: Vec::new(),
        };
        let codec = HttpCodec::new(config.max_head);
        Server::<HttpConn<S>>::register_with_codec(ctx, shared, codec, accept)
    }
}

fn accept<S: Service>(
    shared: &mut HttpShared<S>,
    a: &Accepted,
) -> Option<(HttpConn<S>, ConnConfig)> {
    let config = shared.config;
    if shared.connections >= config.max_conns {
        log::warn!(
            "http: refusing {:?}: {} connections open",
            a.peer,
            shared.connections
        );
        return None;
    }
    shared.connections += 1;
    let conn = HttpConn {
        deadline: None,
        since: Instant::now(),
        closing: false,
        service: PhantomData,
    };
    let limits = Limits {
        high_water: config.out_limit,
        hard_cap: HARD_CAP.max(config.out_limit * 4),
        read_chunk: 16 * 1024,
    };
    let conn_config = ConnConfig {
        limits,
        max_frame: DEFAULT_MAX_FRAME.max(config.max_head),
        ..ConnConfig::default()
    };
    Some((conn, conn_config))
}

/// One connection of an [`HttpServer`].
pub struct HttpConn<S> {
    deadline: Option<TimerId>,
    /// When the wait for the current request began.
    since: Instant,
    /// The last response is out (or going); input is discarded.
    closing: bool,
    service: PhantomData<S>,
}

impl<S: Service> HttpConn<S> {
    /// Sends the service's response to `req`, or a 400 without one; false
    /// if the connection closed.
    fn answer(&mut self, cx: &mut ConnCtx<'_, Self>, req: Option<&Request<'_>>) -> bool {
        let handle = cx.handle();
        let shared = &mut *cx.shared;
        let mut out = std::mem::take(&mut shared.scratch);
        out.clear();
        let keep_alive = match req {
            Some(req) => {
                let keep_alive = req.keep_alive;
                log::debug!("http: {handle} {} {}", req.method, req.path);
                let resp = shared.service.respond(req);
                write_response(&mut out, &resp, keep_alive, req.method == "HEAD");
                keep_alive
            }
            None => {
                let resp = Response::bad_request();
                write_response(&mut out, &resp, false, false);
                false
            }
        };
        shared.requests += 1;
        let sent = cx.send_bytes(&out).is_ok();
        cx.shared.scratch = out;
        self.since = Instant::now();
        if !keep_alive {
            self.closing = true;
            cx.close_after_flush();
        }
        sent
    }
}

impl<S: Service> Connection for HttpConn<S> {
    type Codec = HttpCodec;
    type Shared = HttpShared<S>;

    fn on_connect(&mut self, cx: &mut ConnCtx<'_, Self>) {
        self.deadline = cx.add_timer(cx.shared.config.timeout, None);
    }

    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, frame: HttpFrame<'_>) {
        if self.closing {
            return;
        }
        let sent = match frame {
            HttpFrame::Request(req) => self.answer(cx, Some(&req)),
            HttpFrame::Bad(bad) => {
                log::info!(
                    "http: {} {} {bad}",
                    cx.handle(),
                    crate::cli::addr_or_unknown(cx.peer())
                );
                self.answer(cx, None)
            }
            HttpFrame::Discard => return,
        };
        if sent && !self.closing && cx.io().queued() >= cx.shared.config.out_limit {
            // The peer is not reading its answers; the drain resumes.
            cx.pause_until_drained();
        }
    }

    fn on_timer(&mut self, cx: &mut ConnCtx<'_, Self>, id: TimerId) {
        if self.deadline != Some(id) {
            return;
        }
        let timeout = cx.shared.config.timeout;
        let waited = self.since.elapsed();
        if waited < timeout {
            // Activity since the timer was set: sleep for what is left.
            self.deadline = cx.add_timer(timeout - waited, None);
            return;
        }
        if cx.io().in_buf.is_empty() {
            log::debug!(
                "http: {} {} idle for {timeout:?}",
                cx.handle(),
                crate::cli::addr_or_unknown(cx.peer())
            );
        } else {
            log::info!(
                "http: {} {:?} closed: request incomplete after {timeout:?}",
                cx.handle(),
                cx.peer()
            );
        }
        cx.close();
    }

    fn on_close(&mut self, cx: &mut ConnCtx<'_, Self>, _reason: CloseReason) {
        cx.shared.connections -= 1;
    }

    fn on_server_timer(shared: &mut HttpShared<S>, ctx: &mut Context, id: TimerId) {
        shared.service.on_timer(ctx, id);
    }
}
