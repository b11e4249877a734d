//! The `stats sizes` histogram (memcached's `stats sizes_enable`,
//! `-o track_sizes`): how many items there are of each size, in 32-byte
//! buckets of [`item_size`](super::item_size).
//!
//! Each shard keeps its own histogram, updated under the shard's lock as
//! items are linked and unlinked, so tracking costs no shared lock (memcached
//! takes one global mutex per item); `stats sizes` adds them up. Like
//! memcached's, a histogram counts only items stored after it was enabled:
//! an item's CAS unique tells which those are, so removing an older item
//! leaves the counts alone.

/// Bucket width in bytes.
const BUCKET: usize = 32;

/// One shard's histogram.
#[derive(Debug, Clone)]
pub(crate) struct SizeHistogram {
    /// `counts[i]`: items of `(i - 1) * 32 + 1 ..= i * 32` bytes.
    counts: Vec<u32>,
    /// Items with a smaller CAS unique were stored before tracking began.
    cas_min: u64,
}

impl SizeHistogram {
    /// An empty histogram for items up to `item_size_max` bytes, counting
    /// items whose CAS unique is at least `cas_min`.
    pub(crate) fn new(item_size_max: usize, cas_min: u64) -> Self {
        SizeHistogram {
            counts: vec![0; item_size_max / BUCKET + 1],
            cas_min,
        }
    }

    fn bucket(size: usize) -> usize {
        size.div_ceil(BUCKET)
    }

    /// Counts a linked item of `size` bytes with CAS unique `cas`.
    pub(crate) fn add(&mut self, cas: u64, size: usize) {
        if cas >= self.cas_min {
            if let Some(n) = self.counts.get_mut(Self::bucket(size)) {
                *n += 1;
            }
        }
    }

    /// Uncounts an unlinked item.
    pub(crate) fn remove(&mut self, cas: u64, size: usize) {
        if cas >= self.cas_min {
            if let Some(n) = self.counts.get_mut(Self::bucket(size)) {
                *n = n.saturating_sub(1);
            }
        }
    }

    /// Every item went at once (`flush_all`).
    pub(crate) fn clear(&mut self) {
        self.counts.fill(0);
    }

    /// Adds this histogram's counts into `total` (grown to fit).
    pub(crate) fn add_into(&self, total: &mut Vec<u64>) {
        if total.len() < self.counts.len() {
            total.resize(self.counts.len(), 0);
        }
        for (t, &n) in total.iter_mut().zip(&self.counts) {
            *t += u64::from(n);
        }
    }

    /// The reply lines of `stats sizes` for `total`: `STAT <bytes> <count>`
    /// for each non-empty bucket, keyed by its lower bound as memcached
    /// prints it (`bucket * 32`).
    pub(crate) fn write(total: &[u64], out: &mut Vec<u8>) {
        use std::io::Write;
        for (i, &n) in total.iter().enumerate().filter(|(_, &n)| n != 0) {
            let _ = write!(out, "STAT {} {n}\r\n", i * BUCKET);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_round_up_and_old_items_do_not_count() {
        let mut h = SizeHistogram::new(1024, 10);
        h.add(10, 64); // exactly 2 buckets: bucket 2
        h.add(11, 65); // bucket 3
        h.add(12, 65);
        h.add(9, 65); // stored before tracking: not counted
        h.remove(9, 65); // nor uncounted
        h.add(13, 5000); // larger than the largest item: no bucket
        let mut total = Vec::new();
        h.add_into(&mut total);
        let mut out = Vec::new();
        SizeHistogram::write(&total, &mut out);
        assert_eq!(out, b"STAT 64 1\r\nSTAT 96 2\r\n");
        h.remove(11, 65);
        h.remove(12, 65);
        h.remove(12, 65); // never below zero
        h.clear();
        let mut total = Vec::new();
        h.add_into(&mut total);
        assert!(total.iter().all(|&n| n == 0));
    }
}
