//! Posting work into the loop from other threads (muduo's `queueInLoop`).
//!
//! A [`Poster`] is the only part of a dispatcher that is `Send`: it holds the
//! queue of posted closures and the mio [`Waker`](mio::Waker) that interrupts
//! `epoll_wait`. Closures run on the loop thread, in the order each sender
//! posted them, after the current batch of I/O events, at most
//! [`Config::task_batch`](crate::Config::task_batch) per turn so a flood of
//! posts cannot starve I/O and timers. A closure posted while posted closures
//! are running is never lost: it runs in the same turn or the next, whose
//! poll does not sleep (the seeds describe a relay that deadlocked because
//! such a late callback waited for an event that never came).
//!
//! The queue is a mutex-protected `Vec`; the loop swaps it out in one lock, so
//! posting threads and the loop hold the lock only for a push or a swap. The
//! loop is woken only when the queue goes from empty to non-empty.

use crate::context::Context;
use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// A closure posted from any thread to run on the loop.
pub(crate) type Task = Box<dyn FnOnce(&mut Context) + Send>;

pub(crate) struct Shared {
    queue: Mutex<Queue>,
    waker: mio::Waker,
    stop_requested: AtomicBool,
    running: AtomicBool,
    /// Set by every post (under the lock), cleared by the loop before it
    /// takes the queue.
    has_tasks: AtomicBool,
}

struct Queue {
    tasks: Vec<Task>,
    /// Set when the dispatcher shuts down; later posts are refused.
    closed: bool,
}

impl Shared {
    pub(crate) fn new(waker: mio::Waker) -> Shared {
        Shared {
            queue: Mutex::new(Queue {
                tasks: Vec::new(),
                closed: false,
            }),
            waker,
            stop_requested: AtomicBool::new(false),
            running: AtomicBool::new(false),
            has_tasks: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding this lock cannot leave the queue inconsistent
        // (push and swap are the only operations), so poisoning is ignored.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves the posted tasks into `out` (which must be empty). Returns
    /// whether there were any.
    pub(crate) fn take_tasks(&self, out: &mut Vec<Task>) -> bool {
        // The loop asks every turn; skip the lock when nothing was posted.
        if !self.has_tasks.swap(false, Ordering::AcqRel) {
            return false;
        }
        let mut q = self.lock();
        std::mem::swap(&mut q.tasks, out);
        !out.is_empty()
    }

    /// Refuses further posts.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
    }

    pub(crate) fn stop_requested(&self) -> bool {
        self.stop_requested.load(Ordering::Acquire)
    }

    pub(crate) fn request_stop(&self) {
        self.stop_requested.store(true, Ordering::Release);
    }

    pub(crate) fn set_running(&self, running: bool) {
        self.running.store(running, Ordering::Release);
    }

    pub(crate) fn wake(&self) {
        if let Err(e) = self.waker.wake() {
            log::error!("netlib: cannot wake the event loop: {e}");
        }
    }
}

/// A cloneable, `Send` handle for posting work to a dispatcher and stopping
/// it from other threads.
///
/// ```
/// use netlib::EventDispatch;
/// let mut dispatch = EventDispatch::new().unwrap();
/// let poster = dispatch.poster();
/// let worker = std::thread::spawn(move || {
///     poster.post(|ctx| ctx.stop()).unwrap();
/// });
/// dispatch.run().unwrap(); // returns once the posted closure stopped it
/// worker.join().unwrap();
/// ```
#[derive(Clone)]
pub struct Poster {
    pub(crate) shared: Arc<Shared>,
}

impl Poster {
    /// Queues `task` to run on the loop thread and wakes the loop.
    ///
    /// Tasks from one thread run in the order they were posted. Fails with
    /// [`Error::Stopped`] once the dispatcher has shut down.
    pub fn post<F>(&self, task: F) -> Result<()>
    where
        F: FnOnce(&mut Context) + Send + 'static,
    {
        let was_empty = {
            let mut q = self.shared.lock();
            if q.closed {
                return Err(Error::Stopped);
            }
            let was_empty = q.tasks.is_empty();
            q.tasks.push(Box::new(task));
            self.shared.has_tasks.store(true, Ordering::Release);
            was_empty
        };
        if was_empty {
            self.shared.wake();
        }
        Ok(())
    }

    /// Asks the loop to stop after its current turn. Safe from any thread.
    pub fn stop(&self) {
        self.shared.request_stop();
        self.shared.wake();
    }

    /// Whether the loop is inside [`EventDispatch::run`](crate::EventDispatch::run)
    /// and not stopping.
    pub fn is_running(&self) -> bool {
        self.shared.running.load(Ordering::Acquire) && !self.shared.stop_requested()
    }
}

impl std::fmt::Debug for Poster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poster")
            .field("running", &self.is_running())
            .finish()
    }
}
