//! The timer queue: one-shot and repeating deadlines, cancellable by id.
//!
//! Why a module of its own: the dispatcher needs "what is due now" and "how long
//! until the next deadline" (its poll timeout), and both are easy to get subtly
//! wrong. Keeping the logic free of sockets and of the real clock lets the tests
//! drive it with made-up [`Instant`]s instead of sleeping.
//!
//! Cost: a binary heap ordered by `(deadline, sequence)` gives O(log n) insert
//! and pop; cancellation is O(1) (the entry leaves the id map, and its heap
//! record is skipped when it surfaces). When stale records outnumber live ones
//! the heap is rebuilt, so cancel-heavy workloads do not grow it without bound.
//!
//! Ordering: timers with equal deadlines fire in the order they were
//! scheduled (the sequence number breaks ties).
//!
//! No bursts: a repeating timer that fell behind by several intervals (the loop
//! stalled) fires once and is rescheduled at the next interval boundary still
//! in the future - TeamTalk's original fired once per missed interval.
//!
//! Ownership: owned by one dispatcher and used only on its thread. The payload
//! of a timer is taken out while it runs ([`TimerQueue::pop_due`]) and given
//! back with [`TimerQueue::finish`], so a running timer may cancel itself.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

/// Identifies a scheduled timer; returned when it is added, used to cancel it.
///
/// Ids are never reused by one dispatcher, so cancelling a timer that already
/// fired (or was cancelled) is a harmless no-op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(pub(crate) u64);

impl TimerId {
    /// The raw number, for logging.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

struct Entry<T> {
    deadline: Instant,
    interval: Option<Duration>,
    /// Matches the heap record that currently represents this entry.
    seq: u64,
    /// `None` while the payload is out running.
    payload: Option<T>,
}

/// A queue of deadlines carrying payloads of type `T`.
pub(crate) struct TimerQueue<T> {
    heap: BinaryHeap<Reverse<(Instant, u64, u64)>>,
    entries: HashMap<u64, Entry<T>>,
    next_id: u64,
    next_seq: u64,
}

impl<T> Default for TimerQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> TimerQueue<T> {
    pub(crate) fn new() -> Self {
        TimerQueue {
            heap: BinaryHeap::new(),
            entries: HashMap::new(),
            next_id: 1,
            next_seq: 0,
        }
    }

    /// Number of live timers (scheduled or running).
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Schedules `payload` at `deadline`; with `interval` it repeats.
    pub(crate) fn insert(
        &mut self,
        deadline: Instant,
        interval: Option<Duration>,
        payload: T,
    ) -> TimerId {
        let id = self.next_id;
        self.next_id += 1;
        let seq = self.push_record(deadline, id);
        self.entries.insert(
            id,
            Entry {
                deadline,
                interval: interval.filter(|d| !d.is_zero()),
                seq,
                payload: Some(payload),
            },
        );
        TimerId(id)
    }

    fn push_record(&mut self, deadline: Instant, id: u64) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Reverse((deadline, seq, id)));
        seq
    }

    /// Cancels a timer. Returns whether it was live. Cancelling a timer whose
    /// payload is running stops it from being rescheduled.
    pub(crate) fn cancel(&mut self, id: TimerId) -> bool {
        let removed = self.entries.remove(&id.0).is_some();
        if removed && self.heap.len() > 64 && self.heap.len() > 2 * self.entries.len() {
            self.rebuild_heap();
        }
        removed
    }

    fn rebuild_heap(&mut self) {
        let entries = &self.entries;
        self.heap
            .retain(|Reverse((_, seq, id))| entries.get(id).is_some_and(|e| e.seq == *seq));
    }

    /// The earliest deadline of a scheduled (not running) timer.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        self.discard_stale();
        self.heap.peek().map(|Reverse((deadline, _, _))| *deadline)
    }

    /// The sequence number the next insert will get; timers scheduled before a
    /// pass started have smaller ones. Used to keep a pass from running timers
    /// that callbacks of the same pass scheduled "for now".
    pub(crate) fn watermark(&self) -> u64 {
        self.next_seq
    }

    fn discard_stale(&mut self) {
        while let Some(Reverse((_, seq, id))) = self.heap.peek() {
            match self.entries.get(id) {
                Some(entry) if entry.seq == *seq && entry.payload.is_some() => return,
                _ => {
                    self.heap.pop();
                }
            }
        }
    }

    /// Takes out the payload of the earliest timer due at `now` whose record is
    /// older than `watermark`. The caller runs it and then calls
    /// [`finish`](Self::finish).
    pub(crate) fn pop_due(&mut self, now: Instant, watermark: u64) -> Option<(TimerId, T)> {
        self.discard_stale();
        let Reverse((deadline, seq, id)) = *self.heap.peek()?;
        if deadline > now || seq >= watermark {
            return None;
        }
        self.heap.pop();
        let entry = self.entries.get_mut(&id)?;
        let payload = entry.payload.take()?;
        Some((TimerId(id), payload))
    }

    /// Returns a payload taken by [`pop_due`](Self::pop_due). A one-shot timer
    /// (or one cancelled while running) is dropped; a repeating one is
    /// rescheduled at the first interval boundary after `now`.
    /// Returns the payload back when the timer is finished for good, so the
    /// caller decides where it is dropped.
    pub(crate) fn finish(&mut self, id: TimerId, payload: T, now: Instant) -> Option<T> {
        let Some(entry) = self.entries.get_mut(&id.0) else {
            return Some(payload);
        };
        let Some(interval) = entry.interval else {
            self.entries.remove(&id.0);
            return Some(payload);
        };
        let mut next = entry.deadline + interval;
        if next <= now {
            // Fell behind: skip the missed boundaries instead of firing once per
            // missed interval.
            let behind = now.duration_since(entry.deadline).as_nanos();
            let missed = behind / interval.as_nanos().max(1);
            let skip = u32::try_from(missed + 1).unwrap_or(u32::MAX);
            next = entry
                .deadline
                .checked_add(interval.saturating_mul(skip))
                .unwrap_or(now + interval);
        }
        entry.deadline = next;
        entry.payload = Some(payload);
        let seq = self.push_record(next, id.0);
        if let Some(entry) = self.entries.get_mut(&id.0) {
            entry.seq = seq;
        }
        None
    }

    /// Removes every timer, returning the payloads that were not running.
    pub(crate) fn drain(&mut self) -> Vec<T> {
        self.heap.clear();
        self.entries
            .drain()
            .filter_map(|(_, e)| e.payload)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn fire_all(q: &mut TimerQueue<&'static str>, now: Instant) -> Vec<&'static str> {
        let mark = q.watermark();
        let mut fired = Vec::new();
        while let Some((id, p)) = q.pop_due(now, mark) {
            fired.push(p);
            q.finish(id, p, now);
        }
        fired
    }

    #[test]
    fn one_shot_fires_once_at_deadline() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new();
        q.insert(t0 + ms(10), None, "a");
        assert!(fire_all(&mut q, t0 + ms(9)).is_empty());
        assert_eq!(fire_all(&mut q, t0 + ms(10)), vec!["a"]);
        assert!(fire_all(&mut q, t0 + ms(100)).is_empty());
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn equal_deadlines_fire_in_insertion_order() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new();
        for name in ["a", "b", "c", "d"] {
            q.insert(t0 + ms(5), None, name);
        }
        q.insert(t0 + ms(1), None, "first");
        assert_eq!(
            fire_all(&mut q, t0 + ms(5)),
            vec!["first", "a", "b", "c", "d"]
        );
    }

    #[test]
    fn cancel_prevents_firing_and_is_idempotent() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new();
        let a = q.insert(t0 + ms(5), None, "a");
        q.insert(t0 + ms(5), None, "b");
        assert!(q.cancel(a));
        assert!(!q.cancel(a));
        assert_eq!(q.next_deadline(), Some(t0 + ms(5)));
        assert_eq!(fire_all(&mut q, t0 + ms(5)), vec!["b"]);
        assert_eq!(q.next_deadline(), None);
    }

    #[test]
    fn repeating_timer_reschedules_by_interval() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new();
        q.insert(t0 + ms(10), Some(ms(10)), "r");
        assert_eq!(fire_all(&mut q, t0 + ms(10)), vec!["r"]);
        assert_eq!(q.next_deadline(), Some(t0 + ms(20)));
        assert_eq!(fire_all(&mut q, t0 + ms(21)), vec!["r"]);
        assert_eq!(q.next_deadline(), Some(t0 + ms(30)));
    }

    #[test]
    fn regression_repeating_timer_does_not_burst_after_stall() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new();
        q.insert(t0 + ms(10), Some(ms(10)), "r");
        // The loop stalls for 10 intervals.
        assert_eq!(fire_all(&mut q, t0 + ms(105)), vec!["r"]);
        // Next boundary strictly after now, in phase with the original schedule.
        assert_eq!(q.next_deadline(), Some(t0 + ms(110)));
    }

    #[test]
    fn cancel_while_running_stops_repeat() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new();
        let id = q.insert(t0, Some(ms(1)), "r");
        let (got, p) = q.pop_due(t0, q.watermark()).unwrap();
        assert_eq!(got, id);
        assert!(q.cancel(id), "a running timer is still live");
        assert_eq!(q.finish(id, p, t0), Some("r"));
        assert_eq!(q.len(), 0);
        assert_eq!(q.next_deadline(), None);
    }

    #[test]
    fn timers_added_during_a_pass_wait_for_the_next() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new();
        q.insert(t0, None, "old");
        let mark = q.watermark();
        let (id, p) = q.pop_due(t0, mark).unwrap();
        q.insert(t0, None, "new");
        q.finish(id, p, t0);
        assert!(q.pop_due(t0, mark).is_none());
        assert_eq!(fire_all(&mut q, t0), vec!["new"]);
    }

    #[test]
    fn heap_is_compacted_under_cancel_churn() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new();
        for i in 0..10_000u64 {
            let id = q.insert(t0 + ms(i), None, "x");
            q.cancel(id);
        }
        assert!(
            q.heap.len() <= 130,
            "heap kept {} stale records",
            q.heap.len()
        );
    }
}
