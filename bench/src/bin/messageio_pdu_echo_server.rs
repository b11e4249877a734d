//! The comparator from message-io: a `FramedTcp` echo server. FramedTcp has
//! its own framing (a varint length before each message), so the client
//! runs with `--framing message-io`: each TeamTalk frame goes out prefixed
//! by its varint length (one byte for an 80-byte frame).
//!
//! `messageio_pdu_echo_server ADDR [ALLOC_STATS_FILE]`

use bench::CountingAlloc;
use message_io::network::{NetEvent, Transport};
use message_io::node::{self, NodeEvent};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn main() -> std::io::Result<()> {
    let args = bench::start_server();
    if args.threads > 1 {
        eprintln!("messageio_pdu_echo_server: --threads is not supported (message-io runs its own threads)");
        std::process::exit(2);
    }
    let addr = args.addr;
    let (handler, listener) = node::split::<()>();
    handler.network().listen(Transport::FramedTcp, addr)?;
    listener.for_each(move |event| {
        if let NodeEvent::Network(NetEvent::Message(endpoint, data)) = event {
            handler.network().send(endpoint, data);
        }
    });
    Ok(())
}
