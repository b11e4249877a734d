//! Data on open sockets: send, receive, close, half-close, read pausing.
//!
//! The edge-triggered bookkeeping lives here: `recv` clears a socket's
//! `readable` flag on `WouldBlock` (or a short read) and enforces the
//! per-event read budget; `send` arms `want_write` when the kernel takes
//! less than asked, so a [`Event::Write`](crate::Event::Write) follows.
//! Hard errors close the socket at once and are returned, never reported as
//! would-block.
//!
//! Thread: the loop's own; reached through `&mut Context`.

use crate::context::Context;
use crate::error::{Error, Result};
use crate::event::{CloseReason, Event};
use crate::handle::Handle;
use crate::socket::{Io, SocketState};
use std::io::{self, Read, Write};

impl Context {
    /// Sends as much of `buf` as the kernel takes now (`netlib_send`).
    ///
    /// Returns the number of bytes taken; fewer than `buf.len()` means the
    /// kernel buffer filled, and an [`Event::Write`] follows when it drains.
    /// [`Error::WouldBlock`] if nothing was taken. A hard error (reset, broken
    /// pipe, ...) closes the socket - its Close event carries the reason -
    /// and is returned as [`Error::Io`]; it is never reported as would-block.
    pub fn send(&mut self, h: Handle, buf: &[u8]) -> Result<usize> {
        let entry = self.open_entry(h)?;
        if entry.state != SocketState::Connected {
            return Err(Error::InvalidState {
                op: "send",
                state: entry.state,
            });
        }
        let Io::Stream(stream) = &entry.io else {
            return Err(Error::InvalidHandle);
        };
        let mut stream = stream;
        let mut sent = 0;
        while sent < buf.len() {
            match stream.write(&buf[sent..]) {
                Ok(0) => {
                    entry.want_write = true;
                    break;
                }
                Ok(n) => {
                    sent += n;
                    if sent < buf.len() {
                        // A short write filled the kernel buffer; retrying
                        // would only return EAGAIN. Edge-triggered epoll
                        // reports the space when it frees up.
                        entry.want_write = true;
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    entry.want_write = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close_with(h, CloseReason::from_io(&e));
                    return Err(Error::Io(e));
                }
            }
        }
        if sent == 0 && !buf.is_empty() {
            Err(Error::WouldBlock)
        } else {
            Ok(sent)
        }
    }

    /// Reads into `buf` (`netlib_recv`).
    ///
    /// `Ok(n > 0)`: data. `Ok(0)`: end-of-stream (or an empty `buf`); the
    /// socket then closes with [`CloseReason::PeerClosed`] when the current
    /// callback returns - until then it may still send, so a request that
    /// arrived with the peer's FIN can be answered - or for half-close
    /// sockets an [`Event::ReadClosed`] follows and the socket stays open.
    /// [`Error::WouldBlock`]: nothing more now - the kernel buffer is empty,
    /// or this Read event's byte budget is spent (the socket is offered again
    /// next turn). A hard error closes the socket and is returned.
    pub fn recv(&mut self, h: Handle, buf: &mut [u8]) -> Result<usize> {
        let budget = match self.read_budget {
            Some((bh, left)) if bh == h => Some(left),
            _ => None,
        };
        let entry = self.open_entry(h)?;
        entry.recv_called = true;
        if entry.state != SocketState::Connected {
            return Err(Error::InvalidState {
                op: "recv",
                state: entry.state,
            });
        }
        if entry.read_closed {
            return Ok(0);
        }
        let limit = match budget {
            Some(0) => return Err(Error::WouldBlock),
            Some(left) => left.min(buf.len()),
            None => buf.len(),
        };
        if limit == 0 {
            return Ok(0);
        }
        if !entry.readable {
            // Drained since the last edge: the kernel would say EAGAIN, and
            // edge-triggered epoll reports new data with a new edge.
            return Err(Error::WouldBlock);
        }
        let Io::Stream(stream) = &entry.io else {
            return Err(Error::InvalidHandle);
        };
        let mut stream = stream;
        loop {
            match stream.read(&mut buf[..limit]) {
                Ok(0) => {
                    entry.readable = false;
                    if entry.half_close {
                        entry.read_closed = true;
                        self.pending.push_back((h, Event::ReadClosed));
                    } else {
                        // Closed after the current callback returns: a
                        // request that came with the FIN can still be
                        // answered (the kernel sends the reply, then FIN).
                        entry.read_closed = true;
                        self.pending
                            .push_back((h, Event::Close(CloseReason::PeerClosed)));
                    }
                    return Ok(0);
                }
                Ok(n) => {
                    // A short read of a stream socket emptied the kernel
                    // buffer (as tokio assumes on Linux): skip the read that
                    // would only return EAGAIN. Not once the peer's FIN was
                    // reported - no new edge would announce end-of-stream.
                    if n < limit && !entry.hangup_seen {
                        entry.readable = false;
                    }
                    let more = entry.readable;
                    if let Some((_, left)) = &mut self.read_budget {
                        if budget.is_some() {
                            *left -= n;
                        }
                    }
                    if budget.is_none() && more {
                        // Read outside its Read event (say, from a deferred
                        // closure) and not drained: offer the rest, as a Read
                        // that stopped early would be.
                        self.queue_read_again(h);
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    entry.readable = false;
                    return Err(Error::WouldBlock);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close_with(h, CloseReason::from_io(&e));
                    return Err(Error::Io(e));
                }
            }
        }
    }

    /// Closes the socket now (`netlib_close`). Its [`Event::Close`] with
    /// [`CloseReason::Local`] is delivered after the current callback; no
    /// other event follows.
    ///
    /// What the peer sees depends on the receive side: if all input was
    /// read, the kernel still sends what it holds of our output, then FIN.
    /// If unread input is still in the kernel's receive buffer, closing
    /// makes the kernel send RST at once and discard unsent output - the
    /// peer may get `ECONNRESET` instead of our last reply. To answer and
    /// then close, read to end-of-stream (or [`Error::WouldBlock`]) first,
    /// or use [`shutdown_write`](Self::shutdown_write) and close once the
    /// peer has closed too.
    pub fn close(&mut self, h: Handle) -> Result<()> {
        self.open_entry(h)?;
        self.close_with(h, CloseReason::Local);
        Ok(())
    }

    /// Shuts down the sending side (half-close); the peer reads end-of-stream
    /// once the kernel has sent what it holds. Receiving continues.
    pub fn shutdown_write(&mut self, h: Handle) -> Result<()> {
        let entry = self.open_entry(h)?;
        match (&entry.state, entry.stream()) {
            (SocketState::Connected, Some(s)) => Ok(s.shutdown(std::net::Shutdown::Write)?),
            (state, _) => Err(Error::InvalidState {
                op: "shut down",
                state: *state,
            }),
        }
    }

    /// Stops delivering [`Event::Read`] for `h` (backpressure: a relay stops
    /// reading one side while the other drains). Data waits in the kernel.
    pub fn pause_read(&mut self, h: Handle) -> Result<()> {
        self.open_entry(h)?.read_paused = true;
        Ok(())
    }

    /// Resumes [`Event::Read`] delivery; data that arrived meanwhile is
    /// announced in the next turn.
    pub fn resume_read(&mut self, h: Handle) -> Result<()> {
        let entry = self.open_entry(h)?;
        if entry.read_paused {
            entry.read_paused = false;
            // Data may have arrived while paused without a new edge to come.
            entry.readable = true;
            self.queue_read_again(h);
        }
        Ok(())
    }
}
