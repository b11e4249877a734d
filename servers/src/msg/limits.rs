//! What one client connection may ask of the server per unit of time, so
//! that no client can exhaust it for the others.
//!
//! Two kinds of traffic, two rules:
//!
//! - **Messages** (`IMMsgData`): at most `MsgRateLimit` a second, with a
//!   burst of twice that; past it the connection is closed with a logged
//!   reason. Nothing acknowledged is lost by that: a message counts as sent
//!   only once its `IMMsgDataAck` went out, and the closed connection's
//!   unacknowledged deliveries stay in the mailbox.
//! - **Requests** (every other command after login except heartbeats,
//!   logout and delivery acks: the store-backed queries 0x0303, 0x0307,
//!   0x0309, 0x030b, 0x030d, 0x0201, 0x0206, the group commands, the buddy
//!   queries, client time, and unknown commands, which are logged): at most
//!   `QueryRateLimit` a second with a burst of twice that, and at most
//!   `ConnQueryInFlightMax` store operations per connection waiting for the
//!   store. Past either bound the server **stops reading the connection**
//!   (imconn's [`pause_read`](imconn::ConnCtx::pause_read), which also holds
//!   the frames already read) until the store has answered enough of its
//!   queries and the rate allows the next one; then it reads on where it
//!   stopped.
//!
//! Why backpressure for requests rather than a refusal or a close: most of
//! TeamTalk's answers (unread counts, history, latest id, messages by id,
//! recent sessions, users) have no result code, so a refusal could only be
//! silence and a client would wait for an answer forever; a read ack has no
//! answer at all and a client counts it as done once sent, so dropping one
//! would undo something the user was told is done; and closing the
//! connection would punish the legitimate burst a TeamTalk client sends right
//! after login (and make it reconnect and send it again). Not reading costs
//! the server nothing: what a paused connection makes it hold is the input
//! already read (at most netlib's read budget per event, 256 KiB, plus a
//! partial frame under `ClientMaxFrameBytes`) and the kernel's socket
//! buffer, and TCP's flow control stops the client.
//! Every request is answered, in order, just no faster than the limits; the
//! flooding client is the only one that waits (its own messages and acks
//! queue behind its requests), while the store's queue holds at most
//! `ConnQueryInFlightMax` operations of it. The global `StoreInFlightMax`
//! is the last line, for many connections at once: a request that finds the
//! store with that many operations to answer is still submitted (so at most
//! one per connection goes past the bound), and its connection is then held
//! back the same way until the store is down to half the bound; messages
//! are refused while it is at the bound (not acknowledged, `route.rs`).
//!
//! Which store operations count against a connection: every one submitted
//! while one of its requests is dispatched ([`MsgState::begin_request`]):
//! the dispatch brackets the request, and [`MsgState::submit`] tags what it
//! submits meanwhile with the connection. Handlers need not know about it,
//! and a new command dispatched as a request is counted without more code.

use super::{MsgConn, MsgState};
use imconn::{ConnCtx, ImServer};
use netlib::{Context, Handle, TimerId};
use std::time::{Duration, Instant};

/// A token bucket: `rate` tokens a second, holding at most twice that
/// (the burst). Starts full.
#[derive(Debug)]
pub(super) struct TokenBucket {
    tokens: f64,
    refilled: Instant,
}

impl TokenBucket {
    /// A full bucket for `rate` a second.
    pub(super) fn full(rate: u32) -> TokenBucket {
        TokenBucket {
            tokens: 2.0 * f64::from(rate.max(1)),
            refilled: Instant::now(),
        }
    }

    fn refill(&mut self, rate: f64) {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.refilled).as_secs_f64() * rate).min(2.0 * rate);
        self.refilled = now;
    }

    /// Takes a token if there is one.
    pub(super) fn take(&mut self, rate: u32) -> bool {
        let rate = f64::from(rate.max(1));
        self.refill(rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Takes a token for work already in hand, going into debt if there is
    /// none; returns how long until the debt is paid (`None`: no debt).
    pub(super) fn take_or_wait(&mut self, rate: u32) -> Option<Duration> {
        let rate = f64::from(rate.max(1));
        self.refill(rate);
        self.tokens -= 1.0;
        (self.tokens < 0.0).then(|| Duration::from_secs_f64(-self.tokens / rate))
    }
}

/// A client connection's request budget: its rate bucket, its store
/// operations in flight, and whether it waits for tokens.
#[derive(Debug)]
pub(super) struct RequestBudget {
    bucket: TokenBucket,
    in_flight: usize,
    /// The timer that ends a wait for tokens, while one runs.
    waiting: Option<TimerId>,
    /// Held back until the store is below `StoreInFlightMax`.
    store_wait: bool,
}

impl RequestBudget {
    /// A fresh budget (a full bucket) for `rate` requests a second.
    pub(super) fn new(rate: u32) -> RequestBudget {
        RequestBudget {
            bucket: TokenBucket::full(rate),
            in_flight: 0,
            waiting: None,
            store_wait: false,
        }
    }

    fn held_back(&self, in_flight_max: usize) -> bool {
        self.waiting.is_some() || self.store_wait || self.in_flight >= in_flight_max
    }

    /// Reads on if nothing holds the connection back any more.
    fn resume_if_free(&self, cx: &mut ConnCtx<'_, MsgConn>) {
        if cx.is_read_paused() && !self.held_back(cx.shared.settings.conn_query_in_flight_max) {
            cx.resume_read();
        }
    }

    /// After a request was dispatched: counts the store operations it
    /// submitted and its token, and stops reading the connection past the
    /// limits (module docs).
    pub(super) fn after_request(&mut self, cx: &mut ConnCtx<'_, MsgConn>) {
        let submitted = cx.shared.end_request();
        self.in_flight += submitted;
        if submitted > 0 && cx.shared.store_busy() && !self.store_wait {
            if cx.shared.store_waiters.is_empty() {
                log::warn!(
                    "store busy (StoreInFlightMax {}): connections with requests \
                     are held back until it catches up",
                    cx.shared.settings.store_in_flight_max
                );
            }
            self.store_wait = true;
            cx.shared.store_waiters.push(cx.handle());
        }
        let settings = &cx.shared.settings;
        let (rate, in_flight_max) = (settings.query_rate_limit, settings.conn_query_in_flight_max);
        if let Some(wait) = self.bucket.take_or_wait(rate) {
            if self.waiting.is_none() {
                self.waiting = cx.add_timer(wait, None);
            }
        }
        if self.held_back(in_flight_max) && !cx.is_read_paused() {
            log::debug!(
                "{} held back: {} store operations in flight (ConnQueryInFlightMax \
                 {in_flight_max}), {} (QueryRateLimit {rate}/s)",
                cx.handle(),
                self.in_flight,
                if self.waiting.is_some() {
                    "over the rate"
                } else {
                    "within the rate"
                }
            );
            cx.shared.held_back += 1;
            cx.pause_read();
        }
    }

    /// A timer of the connection fired: if it ends the wait for tokens,
    /// reads on unless the store operations still hold it back.
    pub(super) fn on_timer(&mut self, cx: &mut ConnCtx<'_, MsgConn>, id: TimerId) {
        if self.waiting == Some(id) {
            self.waiting = None;
            self.resume_if_free(cx);
        }
    }
}

impl MsgState {
    /// Brackets the dispatch of a request of connection `h`: store
    /// operations submitted until [`end_request`](Self::end_request) count
    /// against it.
    pub(super) fn begin_request(&mut self, h: Handle) {
        self.requester = Some(h);
        self.requested = 0;
    }

    /// Ends the bracket; returns the store operations submitted in it.
    fn end_request(&mut self) -> usize {
        self.requester = None;
        std::mem::take(&mut self.requested)
    }
}

/// The store answered an operation: once it has at most half
/// `StoreInFlightMax` to answer, the connections held back for it read on
/// (unless their own limits still hold them back). Waiting for half, not
/// just below the bound, keeps an overloaded store from switching them on
/// and off at every answer.
pub(super) fn store_answered(s: &mut ImServer<MsgConn>, ctx: &mut Context) {
    let st = &s.shared;
    if st.store_waiters.is_empty() || st.in_flight > st.settings.store_in_flight_max / 2 {
        return;
    }
    let waiters = std::mem::take(&mut s.shared.store_waiters);
    log::info!(
        "store caught up: {} connections held back read on",
        waiters.len()
    );
    for h in waiters {
        s.with_conn(ctx, h, |conn, cx| {
            if let MsgConn::Client(client) = conn {
                client.requests.store_wait = false;
                client.requests.resume_if_free(cx);
            }
        });
    }
}

/// The store answered an operation that counted against connection `h`:
/// one fewer in flight, and it reads on if that was what held it back.
pub(super) fn answered(s: &mut ImServer<MsgConn>, ctx: &mut Context, h: Handle) {
    s.with_conn(ctx, h, |conn, cx| {
        if let MsgConn::Client(client) = conn {
            let budget = &mut client.requests;
            budget.in_flight = budget.in_flight.saturating_sub(1);
            budget.resume_if_free(cx);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::TokenBucket;
    use std::time::{Duration, Instant};

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let mut b = TokenBucket::full(100);
        // A burst of twice the rate, then one token per 10 ms (the loop
        // takes microseconds; a second of scheduling delay would be needed
        // for 100 more).
        let burst = (0..1000).take_while(|_| b.take(100)).count();
        assert!((200..300).contains(&burst), "burst {burst}");
        // Going into debt says how long until it is paid: one token at
        // 100/s is 10 ms, and debts add up.
        let mut b = TokenBucket {
            tokens: 0.0,
            refilled: Instant::now(),
        };
        let first = b.take_or_wait(100).expect("in debt");
        assert!(first <= Duration::from_millis(10), "{first:?}");
        let second = b.take_or_wait(100).expect("deeper in debt");
        assert!(second > first && second <= Duration::from_millis(20));
        // With tokens left there is no wait.
        let mut b = TokenBucket::full(100);
        assert_eq!(b.take_or_wait(100), None);
    }
}
