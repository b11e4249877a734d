//! Property tests for the frame layer, through the public API only.
//!
//! - encode then decode gives back the same header and body, whichever encoder;
//! - however a stream of frames is cut into reads, the same frames come out;
//! - arbitrary bytes never panic the decoder and never yield an invalid frame;
//! - `SimpleBuffer` behaves like a plain queue of bytes under any operations;
//! - `ByteReader` reads back what `ByteWriter` wrote, and fails cleanly on short
//!   input.

use std::collections::VecDeque;

use pdu::prost::bytes::BufMut;
use pdu::{
    ByteReader, ByteWriter, FrameDecoder, FrameError, Header, Pdu, SimpleBuffer, HEADER_LEN,
    PROTOCOL_VERSION,
};
use proptest::prelude::*;

fn any_header() -> impl Strategy<Value = Header> {
    (
        any::<u16>(),
        any::<u16>(),
        any::<u16>(),
        any::<u16>(),
        any::<u16>(),
    )
        .prop_map(|(flag, service_id, command_id, seq_num, reserved)| Header {
            length: 0,
            version: PROTOCOL_VERSION,
            flag,
            service_id,
            command_id,
            seq_num,
            reserved,
        })
}

fn any_frame() -> impl Strategy<Value = (Header, Vec<u8>)> {
    (any_header(), proptest::collection::vec(any::<u8>(), 0..600))
}

/// Splits `stream` into chunks whose lengths cycle through `cuts` (each >= 1).
fn chunks<'a>(stream: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = stream;
    let mut i = 0;
    while !rest.is_empty() {
        let n = cuts.get(i % cuts.len().max(1)).copied().unwrap_or(1).max(1);
        let (head, tail) = rest.split_at(n.min(rest.len()));
        out.push(head);
        rest = tail;
        i += 1;
    }
    out
}

/// Feeds `stream` in the given chunks through a `SimpleBuffer` the way a
/// connection does (read into spare room, commit, decode all, consume), collecting
/// owned frames, until the end or the first error.
fn feed(
    decoder: FrameDecoder,
    stream: &[u8],
    cuts: &[usize],
) -> (Vec<Pdu>, Option<FrameError>, SimpleBuffer) {
    let mut input = SimpleBuffer::new();
    let mut out = Vec::new();
    for chunk in chunks(stream, cuts) {
        let space = input.write_space(chunk.len());
        space[..chunk.len()].copy_from_slice(chunk);
        input.commit(chunk.len());

        let mut frames = decoder.frames(input.as_slice());
        for frame in &mut frames {
            match frame {
                Ok(frame) => {
                    // Every frame handed out obeys the limits.
                    assert!(frame.frame_len() >= HEADER_LEN);
                    assert!(frame.frame_len() <= decoder.max_frame_len() as usize);
                    assert_eq!(frame.version(), PROTOCOL_VERSION);
                    assert_eq!(frame.header().length as usize, frame.frame_len());
                    out.push(frame.to_pdu());
                }
                Err(e) => return (out, Some(e), input),
            }
        }
        let used = frames.consumed();
        input.consume(used);
    }
    (out, None, input)
}

proptest! {
    #[test]
    fn encode_decode_round_trip((header, body) in any_frame()) {
        let pdu = Pdu::from_body(header, &body).unwrap();
        prop_assert_eq!(pdu.frame_len(), HEADER_LEN + body.len());

        let mut via_closure = SimpleBuffer::new();
        Pdu::encode_into(&mut via_closure, &header, |b| b.put_slice(&body)).unwrap();
        prop_assert_eq!(via_closure.as_slice(), pdu.as_bytes());

        let decoded = FrameDecoder::new().decode(pdu.as_bytes()).unwrap().unwrap();
        let mut expected = header;
        expected.length = (HEADER_LEN + body.len()) as u32;
        prop_assert_eq!(decoded.header(), &expected);
        prop_assert_eq!(decoded.body(), &body[..]);
        prop_assert_eq!(decoded.as_bytes(), pdu.as_bytes());
    }

    #[test]
    fn any_chunking_yields_the_same_frames(
        frames in proptest::collection::vec(any_frame(), 0..12),
        cuts in proptest::collection::vec(1usize..80, 1..16),
    ) {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for (header, body) in &frames {
            Pdu::encode_bytes_into(&mut stream, header, body).unwrap();
            expected.push(Pdu::from_body(*header, body).unwrap());
        }

        let (got, err, rest) = feed(FrameDecoder::new(), &stream, &cuts);
        prop_assert_eq!(err, None);
        prop_assert_eq!(got, expected);
        prop_assert!(rest.is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        cuts in proptest::collection::vec(1usize..64, 1..8),
        max in 0u32..4096,
    ) {
        let decoder = FrameDecoder::with_max_frame_len(max);
        let (frames, _err, rest) = feed(decoder, &bytes, &cuts);
        let used: usize = frames.iter().map(Pdu::frame_len).sum();
        prop_assert!(used + rest.len() <= bytes.len());
        // Peeking never panics either.
        let _ = decoder.peek_header(&bytes);
        let _ = decoder.frame_len(&bytes);
    }

    #[test]
    fn valid_prefix_then_garbage_reports_the_error_after_the_good_frames(
        (header, body) in any_frame(),
        bad_length in 0u32..16,
    ) {
        let mut stream = Pdu::from_body(header, &body).unwrap().into_bytes();
        stream.extend_from_slice(&bad_length.to_be_bytes());
        let (frames, err, _) = feed(FrameDecoder::new(), &stream, &[7]);
        prop_assert_eq!(frames.len(), 1);
        prop_assert_eq!(err, Some(FrameError::LengthTooShort { length: bad_length }));
    }

    #[test]
    fn simple_buffer_is_a_byte_queue(ops in proptest::collection::vec(buffer_op(), 0..64)) {
        let mut buf = SimpleBuffer::new();
        // A small threshold so that short op sequences cross it often.
        buf.set_shrink_threshold(4096);
        let mut model: VecDeque<u8> = VecDeque::new();
        let mut next = 0u8;
        for op in ops {
            match op {
                Op::Extend(n) => {
                    let data: Vec<u8> = (0..n).map(|_| { next = next.wrapping_add(1); next }).collect();
                    buf.extend_from_slice(&data);
                    model.extend(data);
                }
                Op::ReadInto(min, n) => {
                    let space = buf.write_space(min);
                    prop_assert!(space.len() >= min);
                    let n = n.min(space.len());
                    for b in &mut space[..n] {
                        next = next.wrapping_add(1);
                        *b = next;
                        model.push_back(next);
                    }
                    buf.commit(n);
                }
                Op::Consume(n) => {
                    buf.consume(n);
                    for _ in 0..n.min(model.len()) {
                        model.pop_front();
                    }
                    if model.is_empty() {
                        // Emptied buffers give large allocations back.
                        prop_assert!(buf.capacity() <= buf.shrink_threshold());
                    }
                }
                Op::Release => {
                    buf.release();
                    prop_assert_eq!(buf.capacity(), buf.len());
                }
            }
            prop_assert_eq!(buf.len(), model.len());
            prop_assert_eq!(buf.as_slice(), &model.iter().copied().collect::<Vec<_>>()[..]);
            prop_assert!(buf.capacity() >= buf.len());
        }
    }

    #[test]
    fn byte_stream_round_trip(values in proptest::collection::vec(value(), 0..16), cut in 0usize..64) {
        let mut space = vec![0u8; 4096];
        let mut w = ByteWriter::new(&mut space);
        for v in &values {
            match v {
                Value::U8(x) => w.write_u8(*x).unwrap(),
                Value::U16(x) => w.write_u16(*x).unwrap(),
                Value::U32(x) => w.write_u32(*x).unwrap(),
                Value::U64(x) => w.write_u64(*x).unwrap(),
                Value::I32(x) => w.write_i32(*x).unwrap(),
                Value::Bytes(x) => w.write_bytes(x).unwrap(),
                Value::Str(x) => w.write_str(x).unwrap(),
            }
        }
        let n = w.position();

        let mut r = ByteReader::new(&space[..n]);
        for v in &values {
            match v {
                Value::U8(x) => prop_assert_eq!(r.read_u8().unwrap(), *x),
                Value::U16(x) => prop_assert_eq!(r.read_u16().unwrap(), *x),
                Value::U32(x) => prop_assert_eq!(r.read_u32().unwrap(), *x),
                Value::U64(x) => prop_assert_eq!(r.read_u64().unwrap(), *x),
                Value::I32(x) => prop_assert_eq!(r.read_i32().unwrap(), *x),
                Value::Bytes(x) => prop_assert_eq!(r.read_bytes().unwrap(), &x[..]),
                Value::Str(x) => prop_assert_eq!(r.read_str().unwrap(), x.as_str()),
            }
        }
        prop_assert!(r.is_empty());

        // Reading the same sequence from a truncated copy fails cleanly somewhere.
        let short = &space[..n.saturating_sub(cut + 1)];
        let mut r = ByteReader::new(short);
        let mut failed = false;
        for v in &values {
            let ok = match v {
                Value::U8(_) => r.read_u8().is_ok(),
                Value::U16(_) => r.read_u16().is_ok(),
                Value::U32(_) => r.read_u32().is_ok(),
                Value::U64(_) => r.read_u64().is_ok(),
                Value::I32(_) => r.read_i32().is_ok(),
                Value::Bytes(_) => r.read_bytes().is_ok(),
                Value::Str(_) => r.read_str().is_ok(),
            };
            if !ok {
                failed = true;
                break;
            }
        }
        prop_assert!(failed || n == 0);
    }

    #[test]
    fn byte_reader_survives_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..64), ops in proptest::collection::vec(0u8..7, 0..32)) {
        let mut r = ByteReader::new(&bytes);
        for op in ops {
            let before = r.position();
            let ok = match op {
                0 => r.read_u8().is_ok(),
                1 => r.read_u16().is_ok(),
                2 => r.read_u32().is_ok(),
                3 => r.read_u64().is_ok(),
                4 => r.read_i32().is_ok(),
                5 => r.read_bytes().is_ok(),
                _ => r.read_str().is_ok(),
            };
            if !ok {
                prop_assert_eq!(r.position(), before);
            }
            prop_assert!(r.position() <= bytes.len());
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Extend(usize),
    ReadInto(usize, usize),
    Consume(usize),
    Release,
}

fn buffer_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..3000).prop_map(Op::Extend),
        (0usize..10_000, 0usize..10_000).prop_map(|(m, n)| Op::ReadInto(m, n)),
        (0usize..4000).prop_map(Op::Consume),
        Just(Op::Release),
    ]
}

#[derive(Clone, Debug)]
enum Value {
    U8(u8),
    U16(u16),
    U32(u32),
    U64(u64),
    I32(i32),
    Bytes(Vec<u8>),
    Str(String),
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u8>().prop_map(Value::U8),
        any::<u16>().prop_map(Value::U16),
        any::<u32>().prop_map(Value::U32),
        any::<u64>().prop_map(Value::U64),
        any::<i32>().prop_map(Value::I32),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
        "\\PC{0,20}".prop_map(Value::Str),
    ]
}
