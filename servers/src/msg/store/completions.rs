//! [`Completions`]: how a store's answers reach the loop.

use super::{Done, Outcome};
use crate::msg::MsgConn;
use imconn::ImServer;
use netlib::{HandlerRef, Poster};
use std::sync::{Arc, Mutex};

/// Carries outcomes from a store (any thread) back to the loop: queued, and
/// one posted closure runs everything queued so far, in order.
#[derive(Clone)]
pub struct Completions {
    poster: Poster,
    server: HandlerRef,
    queue: Arc<Mutex<Vec<(Done, Outcome)>>>,
}

impl Completions {
    /// Completions run on the loop of `poster`, on msg_server `server`.
    pub fn new(poster: Poster, server: HandlerRef) -> Completions {
        Completions {
            poster,
            server,
            queue: Arc::default(),
        }
    }

    /// Queues finished operations; wakes the loop if the queue was empty.
    pub fn complete(&self, items: impl IntoIterator<Item = (Done, Outcome)>) {
        let was_empty = {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            let was_empty = q.is_empty();
            q.extend(items);
            was_empty && !q.is_empty()
        };
        if !was_empty {
            return;
        }
        let queue = Arc::clone(&self.queue);
        let server = self.server;
        let posted = self.poster.post(move |ctx| {
            let items = std::mem::take(&mut *queue.lock().unwrap_or_else(|p| p.into_inner()));
            ctx.with_handler(server, |s: &mut ImServer<MsgConn>, ctx| {
                for (done, outcome) in items {
                    done(s, ctx, outcome);
                }
            });
        });
        if posted.is_err() {
            log::debug!("store: loop stopped, outcomes dropped");
        }
    }
}
