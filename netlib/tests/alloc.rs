//! No allocation per event on the hot path of an established connection:
//! a counting global allocator shows that a steady-state echo loop (poll,
//! dispatch, recv, send) allocates nothing on the loop thread.

use netlib::{Context, Event, EventDispatch, Handle, ListenOptions};
use std::cell::Cell;
use std::io::{Read, Write};
use std::rc::Rc;

#[global_allocator]
static GLOBAL: alloc_count::CountingAlloc = alloc_count::CountingAlloc;

fn allocs() -> u64 {
    alloc_count::thread_allocs()
}

const WARMUP: u64 = 1_000;
const MEASURED: u64 = 20_000;

#[test]
fn steady_state_echo_allocates_nothing_per_event() {
    let mut d = EventDispatch::new().unwrap();
    // (round trips seen, allocation count at end of warm-up, at end)
    let stats = Rc::new(Cell::new((0u64, 0u64, 0u64)));
    let s = stats.clone();
    let handler = move |ctx: &mut Context, h: Handle, ev: Event| {
        if ev != Event::Read {
            return;
        }
        let mut buf = [0u8; 64];
        while let Ok(n @ 1..) = ctx.recv(h, &mut buf) {
            ctx.send(h, &buf[..n]).unwrap();
            let (mut trips, mut warm, mut end) = s.get();
            trips += 1;
            if trips == WARMUP {
                warm = allocs();
            }
            if trips == WARMUP + MEASURED {
                end = allocs();
                ctx.stop();
            }
            s.set((trips, warm, end));
        }
    };
    let l = d
        .context()
        .listen(
            "127.0.0.1:0".parse().unwrap(),
            &ListenOptions::default(),
            handler,
        )
        .unwrap();
    let addr = d.context().local_addr(l).unwrap();
    let client = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 64];
        for _ in 0..WARMUP + MEASURED {
            s.write_all(&buf).unwrap();
            s.read_exact(&mut buf).unwrap();
        }
    });
    d.run().unwrap();
    client.join().unwrap();
    let (trips, warm, end) = stats.get();
    assert!(trips >= WARMUP + MEASURED);
    assert_eq!(
        end - warm,
        0,
        "{} allocations over {MEASURED} round trips on the loop thread",
        end - warm
    );
}
