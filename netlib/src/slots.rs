//! The socket table: generation-tagged slots behind every [`Handle`].
//!
//! Owns the mapping from a handle to its [`SocketEntry`]. A slot freed by a
//! Close moves to the next generation, so a stale handle (in a timer, a map,
//! an event still queued in the same poll batch) resolves to nothing rather
//! than to the socket that took the slot over. [`Handle::index`] is the slot
//! number, unique among the open sockets of one loop.
//!
//! Thread: the loop's own; reached only through `&mut Context`.

use crate::context::Context;
use crate::error::{Error, Result};
use crate::handle::Handle;
use crate::handler::HandlerId;
use crate::socket::{Io, SocketEntry, SocketState};

/// One row of the socket table.
pub(crate) struct Slot {
    pub(crate) generation: u32,
    pub(crate) entry: Option<SocketEntry>,
}

impl Context {
    pub(crate) fn entry(&self, h: Handle) -> Option<&SocketEntry> {
        if h.loop_id != self.loop_id {
            return None;
        }
        let slot = self.slots.get(h.index as usize)?;
        if slot.generation != h.generation {
            return None;
        }
        slot.entry.as_ref()
    }

    pub(crate) fn entry_mut(&mut self, h: Handle) -> Option<&mut SocketEntry> {
        if h.loop_id != self.loop_id {
            return None;
        }
        let slot = self.slots.get_mut(h.index as usize)?;
        if slot.generation != h.generation {
            return None;
        }
        slot.entry.as_mut()
    }

    /// The entry of `h`, or why there is none: [`Error::WrongLoop`] for a
    /// handle of another loop, [`Error::InvalidHandle`] for a stale one.
    pub(crate) fn entry_or_err(&self, h: Handle) -> Result<&SocketEntry> {
        self.check_loop(h.loop_id)?;
        self.entry(h).ok_or(Error::InvalidHandle)
    }

    /// [`Error::WrongLoop`] unless `loop_id` is this loop's.
    pub(crate) fn check_loop(&self, loop_id: u32) -> Result<()> {
        if loop_id == self.loop_id {
            Ok(())
        } else {
            Err(Error::WrongLoop)
        }
    }

    /// The entry of an open (not closing) socket.
    pub(crate) fn open_entry(&mut self, h: Handle) -> Result<&mut SocketEntry> {
        self.check_loop(h.loop_id)?;
        match self.entry_mut(h) {
            Some(e) if e.state != SocketState::Closing => Ok(e),
            _ => Err(Error::InvalidHandle),
        }
    }

    pub(crate) fn alloc_slot(&mut self, entry: SocketEntry) -> Handle {
        self.open_sockets += 1;
        if let Some(index) = self.free_slots.pop() {
            let slot = &mut self.slots[index as usize];
            slot.entry = Some(entry);
            return Handle {
                index,
                generation: slot.generation,
                loop_id: self.loop_id,
            };
        }
        self.slots.push(Slot {
            generation: 0,
            entry: Some(entry),
        });
        Handle {
            index: (self.slots.len() - 1) as u32,
            generation: 0,
            loop_id: self.loop_id,
        }
    }

    /// Frees a slot without any event; the generation moves on so the
    /// handle goes stale.
    pub(crate) fn free_slot(&mut self, h: Handle) {
        let Some(slot) = self.slots.get_mut(h.index as usize) else {
            return;
        };
        if slot.generation != h.generation {
            return;
        }
        let Some(entry) = slot.entry.take() else {
            return;
        };
        slot.generation = slot.generation.wrapping_add(1);
        self.free_slots.push(h.index);
        self.open_sockets -= 1;
        let handler = entry.handler;
        if let Some(timer) = entry.internal_timer {
            self.timers.cancel(timer);
        }
        drop(entry);
        self.handlers.release(handler);
    }

    /// Handles of every socket still open (not closing).
    pub(crate) fn open_handles(&self) -> Vec<Handle> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| {
                let e = slot.entry.as_ref()?;
                (e.state != SocketState::Closing).then_some(Handle {
                    index: i as u32,
                    generation: slot.generation,
                    loop_id: self.loop_id,
                })
            })
            .collect()
    }

    pub(crate) fn new_socket_with(&mut self, handler: HandlerId, state: SocketState) -> Handle {
        self.alloc_slot(SocketEntry::new(handler, state, Io::None))
    }

    /// The socket's state, or `None` for a stale handle.
    pub fn state(&self, h: Handle) -> Option<SocketState> {
        self.entry(h).map(|e| e.state)
    }

    /// Number of sockets in the table, closing ones included.
    pub fn socket_count(&self) -> usize {
        self.open_sockets
    }
}
