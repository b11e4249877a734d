//! The IM traffic both IM store measurements send: `im_bench` over
//! msg_server (BENCH.md section 5) and `bench im_store` to the SQLite store
//! alone (section 5a). One definition, so the two shapes cannot drift apart:
//! each message goes from a random user to a random other user, and its
//! `msg_data` carries (magic, sender, receiver, per-sender sequence number,
//! send time in monotonic ns).

/// First word of every message's `msg_data` ("IMB1").
pub const MAGIC: u32 = 0x494d_4231;

/// Bytes of the `msg_data` [`write_payload`] writes.
pub const PAYLOAD_LEN: usize = 24;

/// Picks senders and receivers: a xorshift64* generator, seeded, so a run
/// can be repeated exactly.
#[derive(Debug, Clone)]
pub struct Traffic {
    state: u64,
}

impl Traffic {
    /// A generator seeded with `seed` (0 is replaced: xorshift needs a bit set).
    pub fn new(seed: u64) -> Traffic {
        Traffic {
            state: if seed == 0 {
                0x9e37_79b9_7f4a_7c15
            } else {
                seed
            },
        }
    }

    /// The next pseudo-random number.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A random sender and a random other receiver among users `1..=users`
    /// (`users` >= 2).
    pub fn pair(&mut self, users: u32) -> (u32, u32) {
        let n = u64::from(users);
        let from = 1 + (self.next_u64() % n) as u32;
        let mut to = 1 + (self.next_u64() % (n - 1)) as u32;
        if to >= from {
            to += 1;
        }
        (from, to)
    }
}

/// Replaces `d` with the [`PAYLOAD_LEN`] bytes of message `seq` of `from`
/// to `to`, sent at `sent_ns` (little-endian words after [`MAGIC`]).
///
/// ```
/// let mut d = Vec::new();
/// bench::traffic::write_payload(&mut d, 7, 9, 3, 1_000);
/// assert_eq!(d.len(), bench::traffic::PAYLOAD_LEN);
/// assert_eq!(d[4..8], 7u32.to_le_bytes());
/// ```
pub fn write_payload(d: &mut Vec<u8>, from: u32, to: u32, seq: u32, sent_ns: u64) {
    d.clear();
    for v in [MAGIC, from, to, seq] {
        d.extend_from_slice(&v.to_le_bytes());
    }
    d.extend_from_slice(&sent_ns.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_two_different_users_in_range() {
        let mut t = Traffic::new(1);
        for users in [2, 3, 1000] {
            for _ in 0..10_000 {
                let (a, b) = t.pair(users);
                assert!(a != b && (1..=users).contains(&a) && (1..=users).contains(&b));
            }
        }
    }
}
