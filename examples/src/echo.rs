//! [`Echo`]: send back whatever arrives - the server of the `echo` and
//! `pingpong` examples, an [`imconn::Server`] with [`RawCodec`].
//!
//! The connection server does the I/O: it reads into one scratch buffer
//! shared by every connection and hands each read to
//! [`on_frame`](Connection::on_frame) as it arrived; [`echo_frame`] sends it
//! back with [`ConnCtx::send_bytes`], which collects the replies to one read
//! and writes them through to the kernel in one system call, queueing only
//! what the kernel did not take. Nothing on this path allocates per event
//! (muduo's pingpong test compares it with other libraries).
//!
//! Backpressure: when the kernel did not take an echo, the connection stops
//! being read - at once, the rest of the read waits in the kernel - until
//! its queue drains ([`ConnCtx::pause_until_drained`]).
//! A peer that sends without reading holds at most a read chunk or two of
//! server memory, not everything it ever sent.

use imconn::{Accepted, ConnConfig, ConnCtx, Connection, Limits, RawCodec, Server};
use netlib::{Context, HandlerRef};

/// Bytes asked of the kernel per `recv`. Large reads mean few system calls
/// when a peer streams.
pub const READ_CHUNK: usize = 64 * 1024;

/// An echoing connection. The server's shared state counts the bytes echoed.
#[derive(Debug, Default)]
pub struct Echo;

/// The echo server: one netlib handler serving every accepted connection.
pub type EchoServer = Server<Echo>;

impl Connection for Echo {
    type Codec = RawCodec;
    /// Total bytes echoed, for logs and tests.
    type Shared = u64;

    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, data: &[u8]) {
        *cx.shared += echo_frame(cx, data);
    }
}

/// Sends `data` back on the current connection and returns its length.
/// Stops reading the connection while its output backs up in the process
/// (the kernel did not take an earlier echo); reading resumes by itself
/// once the queue drains. For any connection that echoes
/// (`idleconnection`, the pingpong client too).
pub fn echo_frame<C: Connection>(cx: &mut ConnCtx<'_, C>, data: &[u8]) -> u64 {
    if cx.send_bytes(data).is_err() {
        return 0; // closed; its on_close follows
    }
    // `io().queued()` is what the kernel refused; the reply batch of this
    // read is not counted, it goes out when the read ends.
    if cx.io().queued() > 0 {
        // The peer is not keeping up: stop reading it until the queue
        // drains, so its echo stays bounded by a read chunk or two.
        cx.pause_until_drained();
    }
    data.len() as u64
}

/// The [`ConnConfig`] of echoing connections: default caps, no deadlines,
/// reads of up to [`READ_CHUNK`] handed over whole.
pub fn echo_config() -> ConnConfig {
    ConnConfig {
        limits: Limits {
            read_chunk: READ_CHUNK,
            ..Limits::default()
        },
        max_frame: READ_CHUNK,
        ..ConnConfig::default()
    }
}

/// Registers an echo server; listen with [`Context::listen_with`] and the
/// returned reference.
///
/// ```
/// use netlib::{EventDispatch, ListenOptions};
/// let mut dispatch = EventDispatch::new().unwrap();
/// let ctx = dispatch.context();
/// let server = examples::echo::register(ctx);
/// ctx.listen_with("127.0.0.1:0".parse().unwrap(), &ListenOptions::default(), server)
///     .unwrap();
/// ```
pub fn register(ctx: &mut Context) -> HandlerRef {
    EchoServer::register(ctx, 0, |_, _: &Accepted| Some((Echo, echo_config())))
}
