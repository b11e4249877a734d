//! [`BufferedConn`]: a connection's buffers and the policy that drains them.
//!
//! netlib's `send` moves what the kernel takes now; everything above it needs
//! somewhere to keep the rest. This is that place - TeamTalk's `CImConn`
//! in/out `CSimpleBuffer`s, muduo's `TcpConnection` output buffer - with the
//! original's gaps closed:
//!
//! - `send` writes directly while nothing is queued and queues only the
//!   remainder; the queue drains on [`Event::Write`](netlib::Event::Write).
//! - a hard send error closes the connection with its reason (TeamTalk kept
//!   buffering into a dead socket forever);
//! - a high-water mark reports (once per crossing) that the queue is long, so
//!   a relay can stop reading the other side; a hard cap closes a peer that
//!   will not read instead of growing memory without bound;
//! - `shutdown` half-closes after the queue drains; `force_close` drops it.
//!
//! It is plain state plus functions that take the netlib [`Context`]: it owns
//! no socket and registers no callback. The connection
//! [`Server`](crate::Server) keeps one per connection and adds framing,
//! batching and deadlines on top.

use netlib::{CloseReason, Context, Error, Handle};
use pdu::SimpleBuffer;
use std::net::SocketAddr;
use std::time::Instant;

/// Output limits of one connection. The defaults suit a public port: a
/// peer that stops reading costs at most 4 MiB before it is closed.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Queued output at which [`SendStatus::high_water`] is reported once.
    /// Default 1 MiB.
    pub high_water: usize,
    /// Queued output beyond which the connection is closed. Default 4 MiB.
    pub hard_cap: usize,
    /// Bytes asked of the input buffer per read system call. Default 64 KiB.
    pub read_chunk: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            high_water: 1024 * 1024,
            hard_cap: 4 * 1024 * 1024,
            read_chunk: 64 * 1024,
        }
    }
}

/// Outcome of [`BufferedConn::fill`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadStatus {
    /// Bytes appended to the input buffer.
    pub bytes: usize,
    /// The peer finished sending (or the socket closed); no more input.
    pub finished: bool,
}

/// Outcome of a send or flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SendStatus {
    /// Bytes now waiting in the output queue.
    pub queued: usize,
    /// The queue just crossed the high-water mark (reported once per crossing).
    pub high_water: bool,
    /// The queue just became empty after holding data: TeamTalk's and muduo's
    /// write-complete.
    pub drained: bool,
}

/// Why a send failed. The connection is closed in every case but
/// [`SendError::Encode`].
#[derive(Debug)]
pub enum SendError {
    /// The codec could not encode the item; nothing was sent and the
    /// connection stays open.
    Encode(crate::codec::EncodeError),
    /// The connection is closed or closing.
    Closed,
    /// The output queue would exceed [`Limits::hard_cap`]; the connection
    /// was closed.
    Overflow {
        /// Bytes that were queued.
        queued: usize,
    },
    /// The kernel reported a hard error; the connection was closed.
    Io(Error),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Encode(e) => write!(f, "cannot encode: {e}"),
            SendError::Closed => f.write_str("connection closed"),
            SendError::Overflow { queued } => {
                write!(f, "output queue over its hard cap ({queued} bytes queued)")
            }
            SendError::Io(e) => write!(f, "send failed: {e}"),
        }
    }
}

impl std::error::Error for SendError {}

/// Buffers, counters and timestamps of one connection.
#[derive(Debug)]
pub struct BufferedConn {
    handle: Handle,
    peer: Option<SocketAddr>,
    /// Received bytes not yet consumed by the codec.
    pub in_buf: SimpleBuffer,
    out_buf: SimpleBuffer,
    limits: Limits,
    /// When data last arrived (the loop turn's time, `Context::now`: no
    /// clock read per system call).
    pub last_recv: Instant,
    /// When data was last handed to the kernel (the loop turn's time).
    pub last_send: Instant,
    /// Bytes received so far.
    pub bytes_in: u64,
    /// Bytes handed to the kernel so far.
    pub bytes_out: u64,
    /// Frames decoded so far (kept by the codec layer).
    pub frames_in: u64,
    /// Frames sent so far (kept by the codec layer).
    pub frames_out: u64,
    above_high_water: bool,
    shutdown_pending: bool,
    /// Sends are being collected elsewhere (imconn's reply batch); a
    /// shutdown waits for [`send_corked_batch`](Self::send_corked_batch).
    corked: bool,
    closed: bool,
}

impl BufferedConn {
    /// State for socket `handle`; buffers allocate nothing until used.
    pub fn new(ctx: &Context, handle: Handle, limits: Limits) -> BufferedConn {
        let now = Instant::now();
        BufferedConn {
            handle,
            peer: ctx.peer_addr(handle).ok(),
            in_buf: SimpleBuffer::new(),
            out_buf: SimpleBuffer::new(),
            limits,
            last_recv: now,
            last_send: now,
            bytes_in: 0,
            bytes_out: 0,
            frames_in: 0,
            frames_out: 0,
            above_high_water: false,
            shutdown_pending: false,
            corked: false,
            closed: false,
        }
    }

    /// The socket.
    pub fn handle(&self) -> Handle {
        self.handle
    }

    /// The remote address, if known.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The output limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Bytes waiting in the output queue.
    pub fn queued(&self) -> usize {
        self.out_buf.len()
    }

    /// Whether this side closed the connection (or saw it fail).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Marks the connection closed, e.g. when its Close event arrived.
    pub fn mark_closed(&mut self) {
        self.closed = true;
    }

    /// Bytes of heap this connection's buffers hold.
    pub fn memory(&self) -> usize {
        self.in_buf.capacity() + self.out_buf.capacity()
    }

    /// Reads what the socket has (up to the loop's read budget) into
    /// [`in_buf`](Self::in_buf).
    pub fn fill(&mut self, ctx: &mut Context) -> ReadStatus {
        let mut status = ReadStatus::default();
        if self.closed {
            status.finished = true;
            return status;
        }
        loop {
            let space = self.in_buf.write_space(self.limits.read_chunk);
            match ctx.recv(self.handle, space) {
                Ok(0) => {
                    status.finished = true;
                    break;
                }
                Ok(n) => {
                    self.in_buf.commit(n);
                    status.bytes += n;
                }
                Err(Error::WouldBlock) => break,
                Err(_) => {
                    // The dispatcher closed it and will report why.
                    status.finished = true;
                    self.closed = true;
                    break;
                }
            }
        }
        // write_space may have reserved room that stayed unused.
        if self.in_buf.is_empty() {
            self.in_buf.release();
        }
        if status.bytes > 0 {
            self.bytes_in += status.bytes as u64;
            self.last_recv = ctx.now();
        }
        status
    }

    /// Reads one chunk into `buf` (for codecs that decode from a shared
    /// scratch buffer). `None` when nothing more comes now: would-block,
    /// end-of-stream or an error (the Close event says which).
    pub fn recv_chunk(&mut self, ctx: &mut Context, buf: &mut [u8]) -> Option<usize> {
        if self.closed {
            return None;
        }
        match ctx.recv(self.handle, buf) {
            Ok(0) => None,
            Ok(n) => {
                self.bytes_in += n as u64;
                self.last_recv = ctx.now();
                Some(n)
            }
            Err(Error::WouldBlock) => None,
            Err(_) => {
                self.closed = true;
                None
            }
        }
    }

    /// Sends `data`: straight to the kernel when nothing is queued, the rest
    /// into the queue.
    pub fn send(&mut self, ctx: &mut Context, data: &[u8]) -> Result<SendStatus, SendError> {
        if self.closed || self.shutdown_pending {
            return Err(SendError::Closed);
        }
        self.write_through(ctx, data)
    }

    /// Marks sends as collected by the caller until
    /// [`send_corked_batch`](Self::send_corked_batch); a `shutdown` meanwhile
    /// waits for the batch.
    pub fn cork(&mut self) {
        self.corked = true;
    }

    /// Ends a cork: sends the collected `batch` (which logically precedes
    /// any shutdown requested meanwhile), then performs that shutdown once
    /// the queue is empty.
    pub fn send_corked_batch(
        &mut self,
        ctx: &mut Context,
        batch: &[u8],
    ) -> Result<SendStatus, SendError> {
        self.corked = false;
        if self.closed {
            return Err(SendError::Closed);
        }
        let status = if batch.is_empty() {
            self.status(false)
        } else {
            self.write_through(ctx, batch)?
        };
        if status.queued == 0 && self.shutdown_pending {
            self.shutdown_pending = false;
            let _ = ctx.shutdown_write(self.handle);
        }
        Ok(status)
    }

    fn write_through(&mut self, ctx: &mut Context, data: &[u8]) -> Result<SendStatus, SendError> {
        let mut written = 0;
        if self.out_buf.is_empty() {
            match ctx.send(self.handle, data) {
                Ok(n) => written = n,
                Err(Error::WouldBlock) => {}
                Err(e) => return Err(self.failed(e)),
            }
            if written > 0 {
                self.bytes_out += written as u64;
                self.last_send = ctx.now();
            }
        }
        let rest = &data[written..];
        if !rest.is_empty() {
            self.check_cap(ctx, rest.len())?;
            self.out_buf.extend_from_slice(rest);
        }
        Ok(self.status(false))
    }

    /// Appends to the output queue through `encode` (for codecs that write
    /// frames in place, like [`pdu::Pdu::encode_message_into`]), then tries
    /// to send. `encode` returns an error to append nothing.
    pub fn send_encoded<E>(
        &mut self,
        ctx: &mut Context,
        encode: impl FnOnce(&mut SimpleBuffer) -> Result<(), E>,
    ) -> Result<Result<SendStatus, E>, SendError> {
        if self.closed || self.shutdown_pending {
            return Err(SendError::Closed);
        }
        let before = self.out_buf.len();
        if let Err(e) = encode(&mut self.out_buf) {
            self.out_buf.truncate(before);
            return Ok(Err(e));
        }
        let added = self.out_buf.len() - before;
        if before + added > self.limits.hard_cap {
            self.out_buf.truncate(before);
            self.check_cap(ctx, added)?;
        }
        if before == 0 {
            let status = self.flush(ctx)?;
            return Ok(Ok(SendStatus {
                drained: false,
                ..status
            }));
        }
        Ok(Ok(self.status(false)))
    }

    fn check_cap(&mut self, ctx: &mut Context, adding: usize) -> Result<(), SendError> {
        let queued = self.out_buf.len() + adding;
        if queued > self.limits.hard_cap {
            log::warn!(
                "imconn: {} {:?} closed: output queue {} bytes over hard cap {}",
                self.handle,
                self.peer,
                queued,
                self.limits.hard_cap
            );
            self.force_close(ctx);
            return Err(SendError::Overflow { queued });
        }
        Ok(())
    }

    fn failed(&mut self, e: Error) -> SendError {
        // The dispatcher already closed the socket; its Close carries the reason.
        self.closed = true;
        self.out_buf.clear();
        self.out_buf.release();
        SendError::Io(e)
    }

    fn status(&mut self, was_pending: bool) -> SendStatus {
        let queued = self.out_buf.len();
        let mut status = SendStatus {
            queued,
            high_water: false,
            drained: was_pending && queued == 0,
        };
        if queued >= self.limits.high_water {
            if !self.above_high_water {
                self.above_high_water = true;
                status.high_water = true;
            }
        } else if queued < self.limits.high_water / 2 {
            // Hysteresis: report the next crossing only after real draining.
            self.above_high_water = false;
        }
        if queued == 0 {
            self.out_buf.release();
        }
        status
    }

    /// Writes queued output (call on [`Event::Write`](netlib::Event::Write)).
    /// Completes a pending [`shutdown`](Self::shutdown) once drained.
    pub fn flush(&mut self, ctx: &mut Context) -> Result<SendStatus, SendError> {
        if self.closed {
            return Err(SendError::Closed);
        }
        let was_pending = !self.out_buf.is_empty();
        while !self.out_buf.is_empty() {
            match ctx.send(self.handle, self.out_buf.as_slice()) {
                Ok(n) => {
                    self.out_buf.consume(n);
                    self.bytes_out += n as u64;
                    self.last_send = ctx.now();
                }
                Err(Error::WouldBlock) => break,
                Err(e) => return Err(self.failed(e)),
            }
        }
        let status = self.status(was_pending);
        if status.queued == 0 && self.shutdown_pending {
            self.shutdown_pending = false;
            let _ = ctx.shutdown_write(self.handle);
        }
        Ok(status)
    }

    /// Half-closes once everything queued is sent; further sends fail.
    pub fn shutdown(&mut self, ctx: &mut Context) {
        if self.closed {
            return;
        }
        if self.out_buf.is_empty() && !self.corked {
            let _ = ctx.shutdown_write(self.handle);
        } else {
            self.shutdown_pending = true;
        }
    }

    /// Closes now, dropping queued output.
    pub fn force_close(&mut self, ctx: &mut Context) {
        if !self.closed {
            self.closed = true;
            let _ = ctx.close(self.handle);
        }
        self.out_buf.clear();
        self.out_buf.release();
    }

    /// Closes once queued output is sent: half-closes after the drain, and
    /// the peer's end-of-stream completes the close. Never an immediate
    /// `close`, even with nothing queued: closing a socket that still holds
    /// unread input makes the kernel send a reset, and the peer could lose
    /// the reply just sent. A peer that never closes its side is left to the
    /// connection's idle deadline.
    pub fn close_after_flush(&mut self, ctx: &mut Context) {
        self.shutdown(ctx);
    }
}

/// Logs why a connection closed, at a level that fits the reason.
pub fn log_close(handle: Handle, peer: Option<SocketAddr>, reason: CloseReason) {
    match reason {
        CloseReason::Error(_) => log::warn!("imconn: {handle} {peer:?} closed: {reason}"),
        _ => log::debug!("imconn: {handle} {peer:?} closed: {reason}"),
    }
}
