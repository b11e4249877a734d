//! The `roundtrip` example's wire format and arithmetic, kept apart from any
//! I/O so they are unit-tested and shared by the server and the client.
//!
//! muduo's roundtrip measures the round-trip time to a server and the offset
//! between the two machines' clocks, the way NTP does with one exchange:
//!
//! ```text
//! client                         server
//!   t1 = now  ----[t1, 0]---->
//!                                t2 = now
//!             <---[t1, t2]----
//!   t3 = now
//!   rtt    = t3 - t1
//!   offset = t2 - (t1 + t3) / 2     (server clock minus client clock)
//! ```
//!
//! The offset assumes the two legs take equally long; its error is at most
//! half the round trip. Every frame is [`FRAME_LEN`] bytes: two big-endian
//! `i64`s, microseconds since the Unix epoch. The stream has no other
//! framing ([`FrameCodec`] cuts it into 16-byte units for the connection
//! server), so the server simply stamps each complete unit it reads
//! (whatever its content) and sends it back.
//!
//! These are wall-clock times on purpose: comparing two machines' clocks is
//! the point. Deadlines in the example still use the monotonic clock, and so
//! does the client's round-trip time, which it takes from an [`Instant`]
//! kept for every frame in flight - a clock step during the run then skews
//! the offset of one sample, not its round trip.
//!
//! ```
//! use examples::roundtrip::{Frame, Sample};
//! // Sent at t1 = 1000 us, stamped by the server at t2 = 1600, back at t3 = 1200.
//! let reply = Frame { client_us: 1000, server_us: 1600 }.to_bytes();
//! let frame = Frame::from_bytes(&reply);
//! let sample = Sample::new(frame, 1200, 200).unwrap();
//! assert_eq!((sample.rtt_us, sample.offset_us), (200, 500)); // server clock 500 us ahead
//! ```
//!
//! [`Instant`]: std::time::Instant

use imconn::{Codec, DecodeError, EncodeError, Encoder};
use std::time::{SystemTime, UNIX_EPOCH};

/// Bytes in a frame: client time, then server time.
pub const FRAME_LEN: usize = 16;

/// One frame: the client's send time and (in replies) the server's time,
/// both in microseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// When the client sent the frame (`t1`).
    pub client_us: i64,
    /// When the server stamped it (`t2`); 0 in requests.
    pub server_us: i64,
}

impl Frame {
    /// The wire form.
    pub fn to_bytes(self) -> [u8; FRAME_LEN] {
        let mut out = [0u8; FRAME_LEN];
        out[..8].copy_from_slice(&self.client_us.to_be_bytes());
        out[8..].copy_from_slice(&self.server_us.to_be_bytes());
        out
    }

    /// Reads a frame; every 16 bytes are some frame.
    pub fn from_bytes(bytes: &[u8; FRAME_LEN]) -> Frame {
        let mut half = [0u8; 8];
        half.copy_from_slice(&bytes[..8]);
        let client_us = i64::from_be_bytes(half);
        half.copy_from_slice(&bytes[8..]);
        Frame {
            client_us,
            server_us: i64::from_be_bytes(half),
        }
    }
}

/// The framing of the stream: every [`FRAME_LEN`] bytes are a frame,
/// whatever they hold (decoded as the raw bytes, so a garbage frame is
/// stamped and returned like any other); [`Frame`]s encode as
/// [`Frame::to_bytes`]. The codec of both the server and the client.
///
/// ```
/// use examples::roundtrip::{Frame, FrameCodec, FRAME_LEN};
/// use imconn::{Codec, Encoder};
/// let mut input = Frame { client_us: 7, server_us: 0 }.to_bytes().to_vec();
/// input.extend_from_slice(&[1, 2, 3]); // the start of the next frame
/// let (frame, used) = FrameCodec.decode(&input, 1024).unwrap().unwrap();
/// assert_eq!(used, FRAME_LEN);
/// // The server's half: stamp it and send it back.
/// let reply = Frame { server_us: 99, ..Frame::from_bytes(frame) };
/// let mut out = Vec::new();
/// FrameCodec.encode(reply, &mut out).unwrap();
/// assert_eq!(out, Frame { client_us: 7, server_us: 99 }.to_bytes());
/// assert!(FrameCodec.decode(&input[used..], 1024).unwrap().is_none()); // partial
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct FrameCodec;

impl Codec for FrameCodec {
    type Frame<'a> = &'a [u8; FRAME_LEN];

    fn decode<'a>(
        &mut self,
        src: &'a [u8],
        _max_frame: usize,
    ) -> Result<Option<(&'a [u8; FRAME_LEN], usize)>, DecodeError> {
        Ok(src
            .first_chunk::<FRAME_LEN>()
            .map(|frame| (frame, FRAME_LEN)))
    }
}

impl Encoder<Frame> for FrameCodec {
    fn encode(&mut self, frame: Frame, dst: &mut Vec<u8>) -> Result<(), EncodeError> {
        dst.extend_from_slice(&frame.to_bytes());
        Ok(())
    }
}

/// What one reply tells: round trip and clock offset, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Time from send to reply.
    pub rtt_us: i64,
    /// Server clock minus client clock.
    pub offset_us: i64,
}

impl Sample {
    /// The sample of `reply`, received at wall-clock time `now_us`, whose
    /// round trip measured `rtt_us` (pass `now_us - reply.client_us` when
    /// there is no better measure). `None` if the numbers are nonsense - a
    /// negative round trip, or an offset beyond `i64` (a garbage frame).
    pub fn new(reply: Frame, now_us: i64, rtt_us: i64) -> Option<Sample> {
        if rtt_us < 0 {
            return None;
        }
        // i128: garbage times must not overflow, in debug builds or release.
        let midpoint = (i128::from(reply.client_us) + i128::from(now_us)) / 2;
        let offset = i128::from(reply.server_us) - midpoint;
        Some(Sample {
            rtt_us,
            offset_us: i64::try_from(offset).ok()?,
        })
    }
}

/// Minimum, maximum and mean of a series of samples.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Samples added.
    pub count: u64,
    /// Smallest and largest round trip.
    pub rtt_min_us: i64,
    /// Largest round trip.
    pub rtt_max_us: i64,
    rtt_sum: i128,
    /// Smallest and largest offset.
    pub offset_min_us: i64,
    /// Largest offset.
    pub offset_max_us: i64,
    offset_sum: i128,
}

impl Summary {
    /// Adds one sample.
    pub fn add(&mut self, s: Sample) {
        if self.count == 0 {
            self.rtt_min_us = s.rtt_us;
            self.rtt_max_us = s.rtt_us;
            self.offset_min_us = s.offset_us;
            self.offset_max_us = s.offset_us;
        }
        self.count += 1;
        self.rtt_min_us = self.rtt_min_us.min(s.rtt_us);
        self.rtt_max_us = self.rtt_max_us.max(s.rtt_us);
        self.rtt_sum += i128::from(s.rtt_us);
        self.offset_min_us = self.offset_min_us.min(s.offset_us);
        self.offset_max_us = self.offset_max_us.max(s.offset_us);
        self.offset_sum += i128::from(s.offset_us);
    }

    /// Mean round trip (0 with no samples).
    pub fn rtt_avg_us(&self) -> i64 {
        mean(self.rtt_sum, self.count)
    }

    /// Mean offset (0 with no samples).
    pub fn offset_avg_us(&self) -> i64 {
        mean(self.offset_sum, self.count)
    }
}

fn mean(sum: i128, count: u64) -> i64 {
    if count == 0 {
        return 0;
    }
    // The mean of i64 values fits an i64.
    i64::try_from(sum / i128::from(count)).unwrap_or(0)
}

/// Microseconds since the Unix epoch by the wall clock (negative before it).
pub fn wall_clock_us() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_is_two_big_endian_i64() {
        let f = Frame {
            client_us: 0x0102030405060708,
            server_us: -2,
        };
        let b = f.to_bytes();
        assert_eq!(&b[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            &b[8..],
            &[0xff; 7].iter().chain(&[0xfe]).copied().collect::<Vec<_>>()[..]
        );
        assert_eq!(Frame::from_bytes(&b), f);
    }

    #[test]
    fn the_codec_takes_whole_frames_only() {
        let mut codec = FrameCodec;
        assert!(codec.decode(&[0; 15], 64).unwrap().is_none());
        let garbage = [0xAAu8; 40]; // two frames and a half
        let (frame, used) = codec.decode(&garbage, 64).unwrap().unwrap();
        assert_eq!((frame, used), (&[0xAA; FRAME_LEN], FRAME_LEN));
        let (_, used2) = codec.decode(&garbage[used..], 64).unwrap().unwrap();
        assert!(codec
            .decode(&garbage[used + used2..], 64)
            .unwrap()
            .is_none());
        let mut out = Vec::new();
        let stamped = Frame {
            server_us: 5,
            ..Frame::from_bytes(frame)
        };
        codec.encode(stamped, &mut out).unwrap();
        assert_eq!(&out[..8], &[0xAA; 8]);
        assert_eq!(Frame::from_bytes(out[..].try_into().unwrap()).server_us, 5);
    }

    #[test]
    fn garbage_times_do_not_overflow() {
        let f = Frame {
            client_us: i64::MIN,
            server_us: i64::MAX,
        };
        assert_eq!(Sample::new(f, i64::MIN, 10), None);
        let f = Frame {
            client_us: i64::MAX,
            server_us: i64::MAX,
        };
        assert!(Sample::new(f, i64::MAX, 0).is_some());
        assert_eq!(Sample::new(f, 0, -1), None);
    }

    #[test]
    fn summary_tracks_extremes_and_means() {
        let mut s = Summary::default();
        assert_eq!(s.rtt_avg_us(), 0);
        for (rtt, off) in [(100, -5), (300, 5), (200, 3)] {
            s.add(Sample {
                rtt_us: rtt,
                offset_us: off,
            });
        }
        assert_eq!(
            (s.rtt_min_us, s.rtt_max_us, s.rtt_avg_us()),
            (100, 300, 200)
        );
        assert_eq!(
            (s.offset_min_us, s.offset_max_us, s.offset_avg_us()),
            (-5, 5, 1)
        );
    }

    #[test]
    fn wall_clock_is_after_2020() {
        assert!(wall_clock_us() > 1_577_836_800_000_000);
    }
}
