//! [`TimingWheel`]: close idle connections with one timer for all of them.
//!
//! muduo's idleconnection example keeps a `boost::circular_buffer` of
//! buckets, one per second. Every second a repeating timer pushes an empty
//! bucket at the back and drops the one at the front; a connection that
//! receives data puts (a reference to) itself into the back bucket. When the
//! last bucket holding a connection falls off the front, nothing has arrived
//! for the wheel's length and the connection is closed. Cost: O(1) per
//! message and per tick, instead of one timer per connection to reset on
//! every message.
//!
//! muduo counted references with `shared_ptr`; here each connection keeps the
//! tick it was last seen in (its *stamp*), and a bucket falling off only
//! closes the connections whose stamp still equals that bucket's tick. A
//! connection is put into at most one bucket per tick, however busy it is.
//!
//! The wheel is plain data, driven by whoever owns it (tests turn it by
//! hand; the example turns it from a repeating netlib timer).
//!
//! ```
//! use examples::wheel::TimingWheel;
//! let mut wheel: TimingWheel<&str> = TimingWheel::new(3);
//! let mut stamp = None;
//! wheel.touch("conn", &mut stamp);
//! let mut expired = Vec::new();
//! for _ in 0..2 {
//!     wheel.advance(&mut expired);
//!     assert!(expired.is_empty()); // seen within the last 3 ticks
//! }
//! let tick = wheel.advance(&mut expired);
//! assert_eq!(expired, ["conn"]);
//! assert_eq!(stamp, Some(tick)); // not seen since: idle, close it
//! ```

use std::collections::VecDeque;

/// A ring of `slots` buckets of keys `K` (connection handles).
#[derive(Debug)]
pub struct TimingWheel<K> {
    buckets: VecDeque<Vec<K>>,
    /// The tick of the back (newest) bucket.
    tick: u64,
    /// Emptied buckets kept for reuse, so turning the wheel does not allocate.
    spare: Vec<Vec<K>>,
}

impl<K: Copy> TimingWheel<K> {
    /// A wheel after whose `slots` ticks without a touch a key expires.
    pub fn new(slots: usize) -> TimingWheel<K> {
        let slots = slots.max(1);
        TimingWheel {
            buckets: (0..slots).map(|_| Vec::new()).collect(),
            // Numbered so that the oldest bucket is tick 0.
            tick: slots as u64 - 1,
            spare: Vec::new(),
        }
    }

    /// Number of buckets.
    pub fn slots(&self) -> usize {
        self.buckets.len()
    }

    /// The current tick (of the newest bucket).
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// Records activity of `key`, whose stamp is `stamp`: puts it into the
    /// newest bucket unless it is there already.
    pub fn touch(&mut self, key: K, stamp: &mut Option<u64>) {
        if *stamp != Some(self.tick) {
            *stamp = Some(self.tick);
            if let Some(back) = self.buckets.back_mut() {
                back.push(key);
            }
        }
    }

    /// Turns the wheel one tick: the oldest bucket falls off and its keys are
    /// appended to `expired`. Returns that bucket's tick; a key whose stamp
    /// equals it has not been touched since, and is idle.
    pub fn advance(&mut self, expired: &mut Vec<K>) -> u64 {
        let oldest_tick = self.tick + 1 - self.buckets.len() as u64;
        let mut oldest = self.buckets.pop_front().unwrap_or_default();
        expired.append(&mut oldest);
        self.spare.push(oldest);
        self.tick += 1;
        let fresh = self.spare.pop().unwrap_or_default();
        self.buckets.push_back(fresh);
        oldest_tick
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Turns the wheel once, returning the keys that are really idle.
    fn turn(wheel: &mut TimingWheel<u32>, stamps: &[Option<u64>]) -> Vec<u32> {
        let mut out = Vec::new();
        let tick = wheel.advance(&mut out);
        out.retain(|k| stamps[*k as usize] == Some(tick));
        out
    }

    #[test]
    fn a_touched_key_survives_and_an_idle_one_expires() {
        let mut wheel = TimingWheel::new(4);
        let mut stamps = vec![None, None];
        wheel.touch(0, &mut stamps[0]);
        wheel.touch(1, &mut stamps[1]);
        for _ in 0..3 {
            assert!(turn(&mut wheel, &stamps).is_empty());
            wheel.touch(0, &mut stamps[0]); // 0 keeps talking
        }
        assert_eq!(turn(&mut wheel, &stamps), [1]);
        // 0 was last touched before that turn: three more to go.
        for _ in 0..2 {
            assert!(turn(&mut wheel, &stamps).is_empty());
        }
        assert_eq!(turn(&mut wheel, &stamps), [0]);
    }

    #[test]
    fn a_busy_key_enters_one_bucket_per_tick() {
        let mut wheel = TimingWheel::new(2);
        let mut stamp = None;
        for _ in 0..1000 {
            wheel.touch(7u32, &mut stamp);
        }
        assert_eq!(wheel.buckets.back().map(Vec::len), Some(1));
    }

    #[test]
    fn turning_does_not_allocate_new_buckets_in_steady_state() {
        let mut wheel: TimingWheel<u32> = TimingWheel::new(3);
        let mut out = Vec::new();
        for _ in 0..10 {
            wheel.advance(&mut out);
        }
        assert_eq!(wheel.slots(), 3);
        assert!(wheel.spare.is_empty());
    }
}
