//! [`EchoServer`]: send back whatever arrives - the server of the `echo` and
//! `pingpong` examples.
//!
//! It is written to be benchmarked (muduo's pingpong test compares it with
//! other libraries), so the data path does no per-event allocation: one
//! read buffer serves every connection, bytes go from `recv` straight to
//! [`BufferedConn::send`], which writes through to the kernel and queues only
//! what the kernel did not take. A connection with queued output stops being
//! read until the queue drains, so a peer that sends without reading holds at
//! most one read chunk of server memory, not everything it ever sent.

use crate::conns::ConnTable;
use imconn::{BufferedConn, Limits};
use netlib::{Context, Event, Handle, Handler};

/// Bytes asked of the kernel per `recv`. Large reads mean few system calls
/// when a peer streams.
pub const READ_CHUNK: usize = 64 * 1024;

/// The echo handler; attach it to a listener. One instance serves every
/// accepted connection.
pub struct EchoServer {
    conns: ConnTable<BufferedConn>,
    buf: Box<[u8]>,
    /// Total bytes echoed, for logs and tests.
    pub bytes: u64,
}

impl Default for EchoServer {
    fn default() -> Self {
        EchoServer::new()
    }
}

impl EchoServer {
    /// A server with no connections.
    pub fn new() -> EchoServer {
        EchoServer {
            conns: ConnTable::new(),
            buf: vec![0; READ_CHUNK].into_boxed_slice(),
            bytes: 0,
        }
    }

    /// Number of open connections.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    fn on_read(&mut self, ctx: &mut Context, h: Handle) {
        if let Some(conn) = self.conns.get_mut(h) {
            self.bytes += echo_readable(ctx, conn, &mut self.buf);
        }
    }
}

/// Sends back what socket `conn` has to read, through `buf`; returns the
/// bytes echoed. Stops reading the socket when the kernel does not take the
/// echo; [`echo_writable`] resumes it once the queue drained.
pub fn echo_readable(ctx: &mut Context, conn: &mut BufferedConn, buf: &mut [u8]) -> u64 {
    let h = conn.handle();
    let mut total = 0;
    // Until WouldBlock, end-of-stream (Close follows) or the read budget.
    while let Ok(n @ 1..) = ctx.recv(h, buf) {
        total += n as u64;
        match conn.send(ctx, &buf[..n]) {
            Ok(status) if status.queued > 0 => {
                // The peer is not keeping up: stop reading it until the queue
                // drains, so its echo stays bounded by one read chunk.
                let _ = ctx.pause_read(h);
                break;
            }
            Ok(_) => {}
            Err(_) => break, // closed; its Close event follows
        }
    }
    total
}

/// On [`Event::Write`]: sends queued output and resumes reading once it is
/// all gone.
pub fn echo_writable(ctx: &mut Context, conn: &mut BufferedConn) {
    if let Ok(status) = conn.flush(ctx) {
        if status.queued == 0 {
            let _ = ctx.resume_read(conn.handle());
        }
    }
}

/// [`Limits`] for echoing connections: the default caps, big read chunks.
pub fn echo_limits() -> Limits {
    Limits {
        read_chunk: READ_CHUNK,
        ..Limits::default()
    }
}

impl Handler for EchoServer {
    fn on_event(&mut self, ctx: &mut Context, h: Handle, event: Event) {
        match event {
            Event::Connect { .. } => {
                self.conns
                    .insert(h, BufferedConn::new(ctx, h, echo_limits()));
            }
            Event::Read => self.on_read(ctx, h),
            Event::Write => {
                if let Some(conn) = self.conns.get_mut(h) {
                    echo_writable(ctx, conn);
                }
            }
            Event::Close(reason) => {
                if let Some(conn) = self.conns.remove(h) {
                    imconn::buffered::log_close(h, conn.peer(), reason);
                }
            }
            _ => {}
        }
    }
}
