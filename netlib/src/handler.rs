//! Socket handlers and the table that owns them.
//!
//! A [`Handler`] is TeamTalk's `callback_t` plus `callback_data`: the object
//! that receives a socket's events. Handlers are owned by the dispatcher and
//! taken out of their slot while they run, so a callback can do anything
//! through the [`Context`] - including closing its own socket or replacing its
//! own handler - without `RefCell` borrow panics.
//!
//! One handler may serve many sockets: accepted sockets start with their
//! listener's handler (TeamTalk's behaviour until `NETLIB_OPT_SET_CALLBACK`),
//! so a server can keep all its connections in one object. The table counts
//! how many sockets use each handler and drops it when the last one closes.

use crate::context::Context;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::handle::Handle;
use crate::timer::TimerId;
use std::any::Any;

/// Receives the events of the sockets it is attached to.
///
/// Closures of the right shape are handlers too:
///
/// ```
/// use netlib::{Context, Event, Handle};
/// let handler = |ctx: &mut Context, h: Handle, ev: Event| {
///     if let Event::Read = ev {
///         let mut buf = [0u8; 4096];
///         while let Ok(n) = ctx.recv(h, &mut buf) {
///             if n == 0 { break; }
///             let _ = ctx.send(h, &buf[..n]);
///         }
///     }
/// };
/// # let _: Box<dyn netlib::Handler> = Box::new(handler);
/// ```
pub trait Handler: Any {
    /// Called on the dispatcher's thread for every event of socket `handle`.
    fn on_event(&mut self, ctx: &mut Context, handle: Handle, event: Event);

    /// Called when a timer added with
    /// [`Context::add_handler_timer`](crate::Context::add_handler_timer) fires.
    fn on_timer(&mut self, ctx: &mut Context, id: TimerId) {
        let _ = (ctx, id);
    }
}

impl<F> Handler for F
where
    F: FnMut(&mut Context, Handle, Event) + 'static,
{
    fn on_event(&mut self, ctx: &mut Context, handle: Handle, event: Event) {
        self(ctx, handle, event)
    }
}

/// Index into the handler table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HandlerId(pub(crate) u32);

/// A handler registered with [`Context::add_handler`](crate::Context::add_handler):
/// it stays alive, whether or not sockets use it, until
/// [`Context::remove_handler`](crate::Context::remove_handler). Lets one
/// object serve listeners and outgoing connections made at different times
/// (a server and its reconnecting links), receive its own timers, and be
/// reached by posted closures. Generation-tagged like [`Handle`], and tagged
/// with its loop: used on another loop it is [`Error::WrongLoop`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HandlerRef {
    pub(crate) index: u32,
    pub(crate) generation: u32,
    pub(crate) loop_id: u32,
}

struct HandlerSlot {
    /// `None` while the handler runs, or when the slot is free.
    handler: Option<Box<dyn Handler>>,
    /// Sockets using this handler, plus one while it is registered.
    refs: u32,
    /// Registered with `add_handler` and not yet removed: that registration
    /// holds one of `refs`, which `unregister` gives back exactly once.
    registered: bool,
    running: bool,
    generation: u32,
}

/// Reference-counted storage for handlers.
pub(crate) struct HandlerTable {
    slots: Vec<HandlerSlot>,
    free: Vec<u32>,
    loop_id: u32,
}

impl HandlerTable {
    /// An empty table of loop `loop_id`.
    pub(crate) fn new(loop_id: u32) -> HandlerTable {
        HandlerTable {
            slots: Vec::new(),
            free: Vec::new(),
            loop_id,
        }
    }

    /// Stores a handler with one reference.
    pub(crate) fn insert(&mut self, handler: Box<dyn Handler>) -> HandlerId {
        match self.free.pop() {
            Some(i) => {
                let slot = &mut self.slots[i as usize];
                slot.handler = Some(handler);
                slot.refs = 1;
                slot.registered = false;
                slot.running = false;
                HandlerId(i)
            }
            None => {
                self.slots.push(HandlerSlot {
                    handler: Some(handler),
                    refs: 1,
                    registered: false,
                    running: false,
                    generation: 0,
                });
                HandlerId((self.slots.len() - 1) as u32)
            }
        }
    }

    /// Stores a handler whose one reference is its registration.
    pub(crate) fn register(&mut self, handler: Box<dyn Handler>) -> HandlerId {
        let id = self.insert(handler);
        self.slots[id.0 as usize].registered = true;
        id
    }

    /// Gives back the registration's reference of `r`, once. False for a
    /// stale reference, one already unregistered, or a handler that was never
    /// registered (one a socket owns, say from `handler_of`): releasing
    /// then would take a reference a live socket holds and free the handler
    /// under it.
    pub(crate) fn unregister(&mut self, r: HandlerRef) -> bool {
        let Some(id) = self.resolve(r) else {
            return false;
        };
        let slot = &mut self.slots[id.0 as usize];
        if !slot.registered {
            return false;
        }
        slot.registered = false;
        self.release(id);
        true
    }

    /// The pinned reference of a live handler.
    pub(crate) fn reference(&self, id: HandlerId) -> HandlerRef {
        HandlerRef {
            index: id.0,
            generation: self.slots[id.0 as usize].generation,
            loop_id: self.loop_id,
        }
    }

    /// Resolves a reference if its handler is still alive.
    pub(crate) fn resolve(&self, r: HandlerRef) -> Option<HandlerId> {
        if r.loop_id != self.loop_id {
            return None;
        }
        let slot = self.slots.get(r.index as usize)?;
        (slot.generation == r.generation && slot.refs > 0).then_some(HandlerId(r.index))
    }

    fn free_slot(&mut self, index: u32) -> Option<Box<dyn Handler>> {
        let slot = &mut self.slots[index as usize];
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index);
        slot.handler.take()
    }

    pub(crate) fn add_ref(&mut self, id: HandlerId) {
        self.slots[id.0 as usize].refs += 1;
    }

    /// Drops one reference; the handler is dropped with the last one (after
    /// it returns, if it is running now).
    pub(crate) fn release(&mut self, id: HandlerId) {
        let slot = &mut self.slots[id.0 as usize];
        slot.refs = slot.refs.saturating_sub(1);
        if slot.refs == 0 && !slot.running {
            drop(self.free_slot(id.0));
        }
    }

    /// Takes the handler out to run it. `None` if it is already running
    /// (a handler is never re-entered) or gone.
    pub(crate) fn take(&mut self, id: HandlerId) -> Option<Box<dyn Handler>> {
        let slot = self.slots.get_mut(id.0 as usize)?;
        let handler = slot.handler.take()?;
        slot.running = true;
        Some(handler)
    }

    /// Puts a handler back after it ran, or drops it if its last socket
    /// closed meanwhile.
    pub(crate) fn put_back(&mut self, id: HandlerId, handler: Box<dyn Handler>) {
        let slot = &mut self.slots[id.0 as usize];
        slot.running = false;
        slot.handler = Some(handler);
        if slot.refs == 0 {
            drop(self.free_slot(id.0));
        }
    }
}

// ----- the Context API for handlers ------------------------------------

impl Context {
    /// Registers a handler that lives until [`remove_handler`](Self::remove_handler),
    /// independent of sockets; attach sockets to it with
    /// [`listen_with`](Self::listen_with), [`connect_with`](Self::connect_with)
    /// and [`attach`](Self::attach).
    pub fn add_handler<H: Handler>(&mut self, handler: H) -> HandlerRef {
        let id = self.handlers.register(Box::new(handler));
        self.handlers.reference(id)
    }

    /// The live handler `r` names: [`Error::WrongLoop`] for a reference of
    /// another loop, [`Error::InvalidHandle`] for a stale one.
    pub(crate) fn resolve_handler(&self, r: HandlerRef) -> Result<HandlerId> {
        self.check_loop(r.loop_id)?;
        self.handlers.resolve(r).ok_or(Error::InvalidHandle)
    }

    /// Drops the registration of a handler; it is dropped once no socket
    /// uses it. True only the first time for a live registration: false if
    /// the reference is stale, of another loop, already removed (the
    /// handler may live on for its sockets), or names a handler that was
    /// never registered (such as one from [`handler_of`](Self::handler_of)).
    /// Never frees a handler that sockets still use.
    pub fn remove_handler(&mut self, r: HandlerRef) -> bool {
        self.handlers.unregister(r)
    }

    /// Hands socket `h` to a registered handler.
    pub fn attach(&mut self, h: Handle, r: HandlerRef) -> Result<()> {
        self.open_entry(h)?;
        let id = self.resolve_handler(r)?;
        self.handlers.add_ref(id);
        self.replace_handler(h, id)
    }

    /// A reference to the handler serving `h`, usable with
    /// [`with_handler`](Self::with_handler), timers and `attach`.
    pub fn handler_of(&self, h: Handle) -> Result<HandlerRef> {
        let e = self.entry_or_err(h)?;
        Ok(self.handlers.reference(e.handler))
    }

    /// Calls `f` with the handler `r` as its concrete type `H` - how a
    /// posted closure (say, a result from a worker thread) reaches the
    /// object that owns the connections. `None` if the reference is stale,
    /// the handler is of another type, or it is the one running now (a
    /// handler already has itself).
    pub fn with_handler<H: Handler, R>(
        &mut self,
        r: HandlerRef,
        f: impl FnOnce(&mut H, &mut Context) -> R,
    ) -> Option<R> {
        let id = self.handlers.resolve(r)?;
        let mut handler = self.handlers.take(id)?;
        let out = (handler.as_mut() as &mut dyn std::any::Any)
            .downcast_mut::<H>()
            .map(|typed| f(typed, self));
        self.handlers.put_back(id, handler);
        out
    }

    /// Hands `h` to a new handler (`NETLIB_OPT_SET_CALLBACK`); later events go
    /// there. Typically called for an accepted socket in its
    /// [`Event::Connect`].
    pub fn set_handler<H: Handler>(&mut self, h: Handle, handler: H) -> Result<()> {
        self.open_entry(h)?;
        let id = self.handlers.insert(Box::new(handler));
        self.replace_handler(h, id)
    }

    /// Makes `h` share the handler of `other`, so one object can serve
    /// sockets created separately (say, a server's outgoing links).
    pub fn share_handler(&mut self, h: Handle, other: Handle) -> Result<()> {
        self.open_entry(h)?;
        let id = self.open_entry(other)?.handler;
        self.handlers.add_ref(id);
        self.replace_handler(h, id)
    }

    pub(crate) fn replace_handler(&mut self, h: Handle, id: HandlerId) -> Result<()> {
        let entry = self.open_entry(h)?;
        let old = std::mem::replace(&mut entry.handler, id);
        self.handlers.release(old);
        Ok(())
    }
}
