//! [`History`]: the last [`HISTORY_LEN`] CPU readings, for the chart.
//!
//! A fixed ring: once full, each new reading replaces the oldest, so memory
//! stays the same however long procmon runs and recording allocates
//! nothing. At one reading a second it covers the last ten minutes.
//!
//! ```
//! use examples::procmon::history::History;
//! let mut h = History::with_capacity(3);
//! for v in [1.0, 2.0, 3.0, 4.0] {
//!     h.push(v);
//! }
//! assert_eq!(h.iter().collect::<Vec<_>>(), [2.0, 3.0, 4.0]); // oldest first
//! assert_eq!(h.max(), Some(4.0));
//! ```

/// Readings kept: ten minutes at one a second.
pub const HISTORY_LEN: usize = 600;

/// A ring of the most recent readings.
#[derive(Debug, Clone)]
pub struct History {
    values: Vec<f64>,
    /// Where the next reading goes once the ring is full.
    next: usize,
    capacity: usize,
}

impl Default for History {
    fn default() -> Self {
        History::with_capacity(HISTORY_LEN)
    }
}

impl History {
    /// An empty ring of `capacity` readings (at least one).
    pub fn with_capacity(capacity: usize) -> History {
        let capacity = capacity.max(1);
        History {
            values: Vec::with_capacity(capacity),
            next: 0,
            capacity,
        }
    }

    /// How many readings it keeps at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Readings held now.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Records a reading, dropping the oldest when full.
    pub fn push(&mut self, value: f64) {
        if self.values.len() < self.capacity {
            self.values.push(value);
        } else {
            self.values[self.next] = value;
            self.next = (self.next + 1) % self.capacity;
        }
    }

    /// The readings, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = f64> + '_ {
        let (newer, older) = self.values.split_at(self.next);
        older.iter().chain(newer).copied()
    }

    /// The most recent reading.
    pub fn last(&self) -> Option<f64> {
        if self.values.len() < self.capacity || self.next == 0 {
            self.values.last().copied()
        } else {
            self.values.get(self.next - 1).copied()
        }
    }

    /// The largest reading.
    pub fn max(&self) -> Option<f64> {
        self.values.iter().copied().reduce(f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_keeping_order() {
        let mut h = History::with_capacity(4);
        assert!(h.is_empty());
        assert_eq!((h.last(), h.max()), (None, None));
        for i in 0..10 {
            h.push(f64::from(i));
            assert_eq!(h.last(), Some(f64::from(i)));
            let want: Vec<f64> = ((i - 3).max(0)..=i).map(f64::from).collect();
            assert_eq!(h.iter().collect::<Vec<_>>(), want);
        }
        assert_eq!(h.len(), 4);
    }

    #[test]
    fn default_is_ten_minutes_of_seconds() {
        let mut h = History::default();
        for _ in 0..HISTORY_LEN * 3 {
            h.push(1.0);
        }
        assert_eq!(h.len(), HISTORY_LEN);
        assert_eq!(h.capacity(), 600);
    }
}
