//! [`ConnTable`]: the one connection table of the workspace.
//!
//! Every connection of a [`Server`](crate::Server) - accepted or outgoing -
//! lives here with its buffers ([`BufferedConn`]), its codec instance and
//! the framework's bookkeeping (deadlines, link index). It is a slab indexed
//! by the netlib handle's slot number: lookups are O(1), nothing is hashed,
//! and the full generation-tagged handle is compared, so a stale handle
//! misses instead of reaching the connection that reused its slot.
//!
//! The table also holds the scratch buffers that the connections of one
//! loop share (one hook runs at a time), and the high-water crossings that
//! sends made, waiting to be reported to their connections' hooks.
//!
//! Owned by its server; only the loop thread touches it.

use crate::buffered::{BufferedConn, SendError, SendStatus};
use crate::codec::{Codec, Encoder};
use crate::server::{ConnConfig, Connection};
use netlib::{Context, Handle, TimerId};
use std::time::Instant;

/// Framework bookkeeping of one connection.
#[derive(Debug)]
pub(crate) struct Meta {
    pub(crate) config: ConnConfig,
    pub(crate) connected_at: Instant,
    pub(crate) connected: bool,
    pub(crate) logged_in: bool,
    pub(crate) policy_timer: Option<TimerId>,
    /// Index into the server's links when this is an outgoing link.
    pub(crate) link: Option<usize>,
    /// [`ConnCtx::pause_read`](crate::ConnCtx::pause_read) is in force:
    /// no frame is dispatched and nothing is read.
    pub(crate) read_paused: bool,
    /// Reading resumes when the output queue drains
    /// ([`ConnCtx::pause_until_drained`](crate::ConnCtx::pause_until_drained)).
    pub(crate) resume_on_drain: bool,
}

/// Everything of a connection but its object: what a hook reaches through
/// [`ConnCtx`](crate::ConnCtx) while the object itself is `&mut self`.
pub(crate) struct ConnState<K> {
    pub(crate) handle: Handle,
    pub(crate) io: BufferedConn,
    pub(crate) meta: Meta,
    pub(crate) codec: K,
}

impl<K: Codec> ConnState<K> {
    /// The state of a new connection on socket `handle`: accepted
    /// (`connected`), or an outgoing connection still connecting, which
    /// may be link number `link`. A connection has a login deadline only
    /// if its config sets one and it is not a link.
    pub(crate) fn new(
        ctx: &Context,
        handle: Handle,
        config: ConnConfig,
        codec: K,
        connected: bool,
        link: Option<usize>,
    ) -> ConnState<K> {
        ConnState {
            handle,
            io: BufferedConn::new(ctx, handle, config.limits),
            meta: Meta {
                config,
                connected_at: Instant::now(),
                connected,
                logged_in: link.is_some() || config.timeouts.login.is_none(),
                policy_timer: None,
                link,
                read_paused: false,
                resume_on_drain: false,
            },
            codec,
        }
    }

    /// Encodes `item` into `scratch` and sends it write-through.
    pub(crate) fn send_item<I>(
        &mut self,
        ctx: &mut Context,
        scratch: &mut Vec<u8>,
        item: I,
    ) -> Result<SendStatus, SendError>
    where
        K: Encoder<I>,
    {
        if self.io.is_closed() {
            return Err(SendError::Closed);
        }
        scratch.clear();
        self.codec
            .encode(item, scratch)
            .map_err(SendError::Encode)?;
        let status = self.io.send(ctx, scratch);
        if scratch.capacity() > SCRATCH_KEEP {
            // One huge frame should not pin a huge scratch buffer.
            *scratch = Vec::new();
        }
        let status = status?;
        self.io.frames_out += 1;
        Ok(status)
    }
}

/// Scratch buffers larger than this are released after use.
pub(crate) const SCRATCH_KEEP: usize = 1024 * 1024;

pub(crate) struct Slot<C: Connection> {
    pub(crate) conn: C,
    pub(crate) state: ConnState<C::Codec>,
}

/// The connections of one server, keyed by handle. See the module docs.
pub struct ConnTable<C: Connection> {
    slots: Vec<Option<Slot<C>>>,
    len: usize,
    /// What reads land in (shared by the loop's connections).
    pub(crate) read_buf: Vec<u8>,
    /// What frames for other connections are encoded into.
    pub(crate) encode_buf: Vec<u8>,
    /// Replies of the connection whose input is being dispatched, sent in
    /// one system call when the batch ends.
    pub(crate) reply_buf: Vec<u8>,
    /// High-water crossings to report: (connection, bytes queued).
    pub(crate) notices: Vec<(Handle, usize)>,
}

impl<C: Connection> Default for ConnTable<C> {
    fn default() -> Self {
        ConnTable {
            slots: Vec::new(),
            len: 0,
            read_buf: Vec::new(),
            encode_buf: Vec::new(),
            reply_buf: Vec::new(),
            notices: Vec::new(),
        }
    }
}

impl<C: Connection> ConnTable<C> {
    /// Number of connections (the one whose hook runs is not counted).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn insert(&mut self, slot: Slot<C>) {
        let i = slot.state.handle.index() as usize;
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        if self.slots[i].replace(slot).is_none() {
            self.len += 1;
        }
    }

    pub(crate) fn take(&mut self, h: Handle) -> Option<Slot<C>> {
        let cell = self.slots.get_mut(h.index() as usize)?;
        if cell.as_ref()?.state.handle != h {
            return None;
        }
        self.len -= 1;
        cell.take()
    }

    fn slot(&self, h: Handle) -> Option<&Slot<C>> {
        self.slots
            .get(h.index() as usize)?
            .as_ref()
            .filter(|s| s.state.handle == h)
    }

    pub(crate) fn slot_mut(&mut self, h: Handle) -> Option<&mut Slot<C>> {
        self.slots
            .get_mut(h.index() as usize)?
            .as_mut()
            .filter(|s| s.state.handle == h)
    }

    /// The connection object of `h`.
    pub fn get(&self, h: Handle) -> Option<&C> {
        self.slot(h).map(|s| &s.conn)
    }

    /// The connection object of `h`, mutably.
    pub fn get_mut(&mut self, h: Handle) -> Option<&mut C> {
        self.slot_mut(h).map(|s| &mut s.conn)
    }

    /// The buffers and counters of `h`.
    pub fn io(&self, h: Handle) -> Option<&BufferedConn> {
        self.slot(h).map(|s| &s.state.io)
    }

    /// Every connection.
    pub fn iter(&self) -> impl Iterator<Item = (Handle, &C)> {
        self.slots
            .iter()
            .flatten()
            .map(|s| (s.state.handle, &s.conn))
    }

    /// The handles of every connection, collected so the caller may act on
    /// the table while walking them.
    pub fn handles(&self) -> Vec<Handle> {
        self.iter().map(|(h, _)| h).collect()
    }

    /// Encodes `item` with `h`'s codec and sends it on `h`. A high-water
    /// crossing is queued for [`Connection::on_high_water`].
    pub(crate) fn send_to<I>(
        &mut self,
        ctx: &mut Context,
        h: Handle,
        item: I,
    ) -> Result<SendStatus, SendError>
    where
        C::Codec: Encoder<I>,
    {
        let i = h.index() as usize;
        let slot = self
            .slots
            .get_mut(i)
            .and_then(Option::as_mut)
            .filter(|s| s.state.handle == h)
            .ok_or(SendError::Closed)?;
        let status = slot.state.send_item(ctx, &mut self.encode_buf, item)?;
        if status.high_water {
            self.notices.push((h, status.queued));
        }
        Ok(status)
    }

    /// Sends already encoded bytes on `h`.
    pub(crate) fn send_bytes_to(
        &mut self,
        ctx: &mut Context,
        h: Handle,
        bytes: &[u8],
    ) -> Result<SendStatus, SendError> {
        let slot = self.slot_mut(h).ok_or(SendError::Closed)?;
        let status = slot.state.io.send(ctx, bytes)?;
        slot.state.io.frames_out += 1;
        if status.high_water {
            self.notices.push((h, status.queued));
        }
        Ok(status)
    }

    /// Closes `h` once its queued output is sent; false if there is no such
    /// connection.
    pub(crate) fn close_after_flush(&mut self, ctx: &mut Context, h: Handle) -> bool {
        match self.slot_mut(h) {
            Some(slot) => {
                slot.state.io.close_after_flush(ctx);
                true
            }
            None => false,
        }
    }

    /// Closes `h` now; false if there is no such connection.
    pub(crate) fn close(&mut self, ctx: &mut Context, h: Handle) -> bool {
        match self.slot_mut(h) {
            Some(slot) => {
                slot.state.io.force_close(ctx);
                true
            }
            None => false,
        }
    }
}
