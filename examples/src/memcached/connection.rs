//! One client connection: its buffers, and the read → process → write cycle
//! that drives a [`Session`] from netlib events.
//!
//! The protocol lives in [`Session`]; this file only moves bytes:
//!
//! - **Read.** The worker hands every connection of its thread the same
//!   scratch buffer to `recv` into. When nothing is left over from the last
//!   read (the common case: one whole request per read) the session parses
//!   straight out of the scratch buffer; only an unfinished command line is
//!   copied into the connection's own `input`. Values are consumed as they
//!   arrive (the session copies them into the item being built), so `input`
//!   never holds more than one command line plus one read.
//! - **Write.** Replies accumulate in `output` while the reads of one event
//!   are processed, then go out in one `send`. What the kernel does not take
//!   stays in `output` and reading pauses until [`Event::Write`] drains it,
//!   like memcached, which does not read a connection while writing to it.
//!   Reply memory is therefore bounded by the session's output high-water
//!   mark plus one reply.
//! - **Backpressure.** When the session stops at its high-water mark
//!   ([`Progress::OutputFull`]) the connection stops reading, sends, and runs
//!   the session again on the buffered input once the output has drained.
//! - **Close.** When the session asks to close (`quit`, an overlong line)
//!   the output is sent first, then the socket is closed.
//!
//! A connection is owned by the worker of one reactor thread and only
//! touched on that thread.
//!
//! [`Event::Write`]: netlib::Event::Write

use netlib::{Context, Handle};
use pdu::SimpleBuffer;

use super::protocol::{CloseReason, Progress, Session};
use super::store::Store;

/// Output capacity a connection keeps between requests; a larger buffer
/// (left by a big value or multi-get) is given back once it has been sent,
/// so a thousand idle connections do not each hold their largest reply.
const OUTPUT_KEEP: usize = 16 * 1024;

/// The state of one client connection. See the module docs.
#[derive(Debug)]
pub(crate) struct Connection {
    handle: Handle,
    session: Session,
    /// Input the session has not consumed: the start of a command line.
    input: SimpleBuffer,
    /// Replies; `output[sent..]` has not been taken by the kernel yet.
    output: Vec<u8>,
    sent: usize,
    /// The session stopped at its output high-water mark and must run again
    /// on `input` once the output drains.
    stalled: bool,
    /// The session asked to close: close once the output is out.
    closing: Option<CloseReason>,
    /// Reads are paused (output waits for the kernel, or the session stalled).
    read_paused: bool,
}

impl Connection {
    /// A connection for the accepted socket `handle`.
    pub(crate) fn new(handle: Handle) -> Connection {
        Connection {
            handle,
            session: Session::new(),
            input: SimpleBuffer::new(),
            output: Vec::new(),
            sent: 0,
            stalled: false,
            closing: None,
            read_paused: false,
        }
    }

    /// The socket this connection owns.
    pub(crate) fn handle(&self) -> Handle {
        self.handle
    }

    /// [`Event::Read`](netlib::Event::Read): reads until the kernel has no
    /// more (or the session cannot take more), processes, then sends.
    pub(crate) fn on_read(&mut self, ctx: &mut Context, store: &Store, scratch: &mut [u8]) {
        if self.closing.is_some() || self.read_paused {
            return;
        }
        loop {
            match ctx.recv(self.handle, scratch) {
                // End-of-stream: netlib closes the socket after this callback.
                Ok(0) => break,
                Ok(n) => {
                    self.feed(store, &scratch[..n]);
                    if self.stalled || self.closing.is_some() {
                        break;
                    }
                }
                Err(e) if e.is_would_block() => break,
                // A hard error closed the socket; its Close event follows.
                Err(_) => return,
            }
        }
        self.flush(ctx, store);
    }

    /// [`Event::Write`](netlib::Event::Write): the kernel has room again.
    pub(crate) fn on_write(&mut self, ctx: &mut Context, store: &Store) {
        self.flush(ctx, store);
    }

    /// Runs the session over newly read bytes.
    fn feed(&mut self, store: &Store, data: &[u8]) {
        let progress = if self.input.is_empty() {
            // Parse in place; keep only what the session left unconsumed.
            let (used, progress) = self.session.process(store, data, &mut self.output);
            if used < data.len() {
                self.input.extend_from_slice(&data[used..]);
            }
            progress
        } else {
            self.input.extend_from_slice(data);
            self.process_buffered(store)
        };
        self.note(progress);
    }

    /// Runs the session over the buffered input.
    fn process_buffered(&mut self, store: &Store) -> Progress {
        let (used, progress) = self
            .session
            .process(store, self.input.as_slice(), &mut self.output);
        self.input.consume(used);
        progress
    }

    fn note(&mut self, progress: Progress) {
        match progress {
            Progress::Continue => self.stalled = false,
            Progress::OutputFull => self.stalled = true,
            Progress::Close(reason) => self.closing = Some(reason),
        }
    }

    /// Sends what the kernel takes; then pauses reading while output is
    /// pending, or closes, or lets a stalled session continue, or resumes
    /// reading.
    fn flush(&mut self, ctx: &mut Context, store: &Store) {
        let h = self.handle;
        loop {
            if self.sent < self.output.len() {
                // `send` writes until the kernel stops taking bytes.
                match ctx.send(h, &self.output[self.sent..]) {
                    Ok(n) => self.sent += n,
                    Err(e) if e.is_would_block() => {}
                    // A hard error closed the socket; its Close event follows.
                    Err(_) => return,
                }
                if self.sent < self.output.len() {
                    self.pause(ctx);
                    return;
                }
            }
            self.sent = 0;
            self.output.clear();
            if self.output.capacity() > OUTPUT_KEEP {
                self.output.shrink_to(OUTPUT_KEEP);
            }
            if let Some(reason) = self.closing {
                log::debug!("memcached: {h} closing: {reason:?}");
                let _ = ctx.close(h);
                return;
            }
            if self.stalled {
                // The output drained: let the session go on with what it
                // has buffered before reading anything new. Each pass
                // starts with empty output, so the session makes progress.
                let progress = self.process_buffered(store);
                self.note(progress);
                continue;
            }
            if self.read_paused {
                self.read_paused = false;
                let _ = ctx.resume_read(h);
            }
            return;
        }
    }

    fn pause(&mut self, ctx: &mut Context) {
        if !self.read_paused {
            self.read_paused = true;
            let _ = ctx.pause_read(self.handle);
        }
    }
}
