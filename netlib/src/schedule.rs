//! The timer and loop-hook API of [`Context`].
//!
//! The timer queue itself is in `timer.rs` and the hook list in `hooks.rs`;
//! this file is what callbacks call to add and cancel them. Timers use the
//! monotonic clock; their deadlines set the loop's poll timeout.
//!
//! Thread: the loop's own; reached through `&mut Context`.

use crate::context::{Context, TimerTask};
use crate::error::Result;
use crate::handle::Handle;
use crate::handler::HandlerRef;
use crate::hooks::HookId;
use crate::timer::TimerId;
use std::time::{Duration, Instant};

impl Context {
    /// Runs `f` once after `delay` (`netlib_register_timer`, one-shot).
    pub fn add_timer<F>(&mut self, delay: Duration, f: F) -> TimerId
    where
        F: FnMut(&mut Context, TimerId) + 'static,
    {
        self.timers.insert(
            Instant::now() + delay,
            None,
            TimerTask::Callback(Box::new(f)),
        )
    }

    /// Runs `f` every `interval`, first after one interval. A loop that
    /// stalls for several intervals runs it once, then keeps the schedule.
    pub fn add_repeating_timer<F>(&mut self, interval: Duration, f: F) -> TimerId
    where
        F: FnMut(&mut Context, TimerId) + 'static,
    {
        self.timers.insert(
            Instant::now() + interval,
            Some(interval),
            TimerTask::Callback(Box::new(f)),
        )
    }

    /// Delivers [`Event::Timer`](crate::Event::Timer) to the handler of `h` after `delay`, then
    /// every `repeat` if given. Stops by itself when the socket closes.
    pub fn add_socket_timer(
        &mut self,
        h: Handle,
        delay: Duration,
        repeat: Option<Duration>,
    ) -> Result<TimerId> {
        self.open_entry(h)?;
        Ok(self
            .timers
            .insert(Instant::now() + delay, repeat, TimerTask::Socket(h)))
    }

    /// Number of live timers, the dispatcher's own (connect timeouts,
    /// accept pauses) included.
    pub fn timer_count(&self) -> usize {
        self.timers.len()
    }

    /// Calls [`Handler::on_timer`](crate::Handler::on_timer) of registered handler `r` after `delay`,
    /// then every `repeat` if given. Stops when the handler is gone.
    pub fn add_handler_timer(
        &mut self,
        r: HandlerRef,
        delay: Duration,
        repeat: Option<Duration>,
    ) -> Result<TimerId> {
        self.resolve_handler(r)?;
        Ok(self
            .timers
            .insert(Instant::now() + delay, repeat, TimerTask::Handler(r)))
    }

    /// Cancels a timer (`netlib_delete_timer`); true if it was live. A timer
    /// may cancel itself from its own callback.
    pub fn cancel_timer(&mut self, id: TimerId) -> bool {
        self.timers.cancel(id)
    }

    /// Adds a closure run once per loop iteration (`netlib_add_loop`).
    pub fn add_loop_hook<F>(&mut self, f: F) -> HookId
    where
        F: FnMut(&mut Context) + 'static,
    {
        self.hooks.add(Box::new(f))
    }

    /// Removes a loop hook; true if it existed. A hook may remove itself.
    pub fn remove_loop_hook(&mut self, id: HookId) -> bool {
        self.hooks.remove(id)
    }
}
