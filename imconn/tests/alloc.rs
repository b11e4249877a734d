//! No allocation per frame on an established ImConn connection: reading
//! (shared scratch buffer), decoding, `handle_pdu`, encoding a reply with
//! `send_pdu` and the write-through send, counted on the loop thread.

use imconn::{ConnConfig, ConnCtx, Connection, ImServer, PduCodec};
use netlib::{EventDispatch, ListenOptions};
use pdu::proto::{ImMsgDataAck, SessionType};
use pdu::{cid, sid, Header, Pdu, PduRef};
use std::io::{Read, Write};

#[global_allocator]
static GLOBAL: alloc_count::CountingAlloc = alloc_count::CountingAlloc;

const WARMUP: u64 = 1_000;
const MEASURED: u64 = 10_000;

/// Answers every frame with an ack and records allocation counts.
struct Acker;
#[derive(Default)]
struct Counts {
    frames: u64,
    at_warmup: u64,
    at_end: u64,
}

impl Connection for Acker {
    type Codec = PduCodec;
    type Shared = Counts;
    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, pdu: PduRef<'_>) {
        let ack = ImMsgDataAck {
            user_id: 1,
            session_id: 2,
            msg_id: pdu.seq_num() as u32,
            session_type: SessionType::Single as i32,
        };
        let header = Header::new(sid::MSG, cid::msg::DATA_ACK).with_seq_num(pdu.seq_num());
        cx.send_pdu(&header, &ack).unwrap();
        let c = &mut *cx.shared;
        c.frames += 1;
        if c.frames == WARMUP {
            c.at_warmup = alloc_count::thread_allocs();
        }
        if c.frames == WARMUP + MEASURED {
            c.at_end = alloc_count::thread_allocs();
            cx.ctx.stop();
        }
    }
}

#[test]
fn steady_state_pdu_echo_allocates_nothing_per_frame() {
    let mut d = EventDispatch::new().unwrap();
    let ctx = d.context();
    let srv = ImServer::<Acker>::register(ctx, Counts::default(), |_, _| {
        Some((Acker, ConnConfig::client()))
    });
    let l = ctx
        .listen_with(
            "127.0.0.1:0".parse().unwrap(),
            &ListenOptions::default(),
            srv,
        )
        .unwrap();
    let addr = ctx.local_addr(l).unwrap();
    let client = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        let mut reply = Vec::new();
        for i in 0..WARMUP + MEASURED {
            let frame = Pdu::from_body(
                Header::new(sid::MSG, cid::msg::DATA).with_seq_num(i as u16),
                &[7u8; 64],
            )
            .unwrap();
            s.write_all(frame.as_bytes()).unwrap();
            // Reply: 16-byte header then the ack body; read the header, then the rest.
            let mut head = [0u8; 16];
            s.read_exact(&mut head).unwrap();
            let len = u32::from_be_bytes(head[..4].try_into().unwrap()) as usize;
            reply.resize(len - 16, 0);
            s.read_exact(&mut reply).unwrap();
        }
    });
    d.run().unwrap();
    client.join().unwrap();
    let (frames, warm, end) = d
        .context()
        .with_handler(srv, |s: &mut ImServer<Acker>, _| {
            (s.shared.frames, s.shared.at_warmup, s.shared.at_end)
        })
        .unwrap();
    assert_eq!(frames, WARMUP + MEASURED);
    assert_eq!(
        end - warm,
        0,
        "{} allocations over {MEASURED} frames",
        end - warm
    );
}
