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
        let Some(conn) = self.conns.get_mut(h) else {
            return;
        };
        // Until WouldBlock, end-of-stream (Close follows) or the read budget.
        while let Ok(n @ 1..) = ctx.recv(h, &mut self.buf) {
            self.bytes += n as u64;
            match conn.send(ctx, &self.buf[..n]) {
                Ok(status) if status.queued > 0 => {
                    // The peer is not keeping up: stop reading it until the
                    // queue drains (Event::Write), so its echo stays bounded.
                    let _ = ctx.pause_read(h);
                    return;
                }
                Ok(_) => {}
                Err(_) => return, // closed; its Close event follows
            }
        }
    }
}

impl Handler for EchoServer {
    fn on_event(&mut self, ctx: &mut Context, h: Handle, event: Event) {
        match event {
            Event::Connect { .. } => {
                let limits = Limits {
                    read_chunk: READ_CHUNK,
                    ..Limits::default()
                };
                self.conns.insert(h, BufferedConn::new(ctx, h, limits));
            }
            Event::Read => self.on_read(ctx, h),
            Event::Write => {
                if let Some(conn) = self.conns.get_mut(h) {
                    if let Ok(status) = conn.flush(ctx) {
                        if status.queued == 0 {
                            let _ = ctx.resume_read(h);
                        }
                    }
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
