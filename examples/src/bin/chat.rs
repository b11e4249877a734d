//! # chat - broadcast with a slow-consumer policy
//!
//! Every message a member sends is sent to every member (the sender too).
//! Messages are frames of a 4-byte big-endian length and a body of at most
//! `--max-message` bytes (64 KiB); a member that declares a longer frame is
//! disconnected.
//!
//! The problem it exists to show: one member that stops reading. The server
//! cannot block on it (that would hold back everyone), and if it queued that
//! member's output without bound, one idle reader could exhaust the server's
//! memory. So each member's unsent output is capped at `--max-queue` bytes;
//! a member past it is disconnected with a log line, and everyone else
//! carries on at full speed.
//!
//! Both sides are [`imconn::Server`]s with [`imconn::LengthCodec`]. The
//! server encodes each message once and sends it to every member with
//! `send_bytes_to`; the limit is each member's high-water mark, and its
//! `on_high_water` hook - which runs on the member that fell behind, even
//! though another member's message did the sending - disconnects it.
//!
//! The client sends each line of stdin as a message and prints each message
//! received on a line of stdout; its one connection is opened with
//! `Server::connect`. Stdin is read on its own thread, which posts the lines
//! to the event loop (netlib's `Poster`), where `Server::send_to` sends them.
//!
//! ```text
//! chat server [--host 127.0.0.1] [--port 2010] [--max-queue 1048576] [--max-message 65536]
//! chat client --connect 127.0.0.1:2010
//! ```

use clap::{Parser, Subcommand};
use examples::cli;
use imconn::codec::LENGTH_HEADER_LEN;
use imconn::{Accepted, ConnConfig, ConnCtx, Connection, Encoder, LengthCodec, Limits, Server};
use netlib::{CloseReason, ConnectOptions, Context, EventDispatch, Handle, ListenOptions};
use std::io::{BufRead, Write};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

/// Length-prefixed broadcast chat; slow readers are disconnected.
#[derive(Parser)]
#[command(name = "chat")]
struct Args {
    #[command(subcommand)]
    role: Role,
    /// Largest message body in bytes
    #[arg(long, global = true, default_value_t = 64 * 1024, value_parser = cli::positive::<usize>)]
    max_message: usize,
}

#[derive(Subcommand)]
enum Role {
    /// Run the chat server
    Server {
        /// Address to listen on
        #[arg(long, default_value = "127.0.0.1")]
        host: IpAddr,
        /// Port to listen on, 0 for any free port
        #[arg(long, default_value_t = 2010)]
        port: u16,
        /// Unsent bytes a member may have queued before it is disconnected
        #[arg(long, default_value_t = 1 << 20, value_parser = cli::positive::<usize>)]
        max_queue: usize,
    },
    /// Send stdin's lines, print what others say
    Client {
        /// The chat server
        #[arg(long, value_name = "ADDR", value_parser = cli::socket_addr)]
        connect: SocketAddr,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    cli::init_logging();
    let result = match args.role {
        Role::Server {
            host,
            port,
            max_queue,
        } => server(cli::listen_addr(host, port), max_queue, args.max_message),
        Role::Client { connect } => client(connect, args.max_message),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat: {e}");
            ExitCode::FAILURE
        }
    }
}

// ----- server ---------------------------------------------------------------

/// A member of the room.
struct Member;

/// The room: who is in it, and the frame being broadcast, encoded once for
/// all members.
struct Room {
    members: Vec<Handle>,
    frame: Vec<u8>,
}

impl Connection for Member {
    type Codec = LengthCodec;
    type Shared = Room;

    fn on_connect(&mut self, cx: &mut ConnCtx<'_, Self>) {
        log::info!("{} joined", cli::addr_or_unknown(cx.peer()));
        cx.shared.members.push(cx.handle());
    }

    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, body: &[u8]) {
        let mut frame = std::mem::take(&mut cx.shared.frame);
        frame.clear();
        if LengthCodec.encode(body, &mut frame).is_ok() {
            for i in 0..cx.shared.members.len() {
                let member = cx.shared.members[i];
                // A member that fell too far behind hears of it in its own
                // on_high_water, once this hook returns.
                let _ = cx.send_bytes_to(member, &frame);
            }
        }
        cx.shared.frame = frame;
    }

    /// The slow-consumer policy: this member's unsent output passed the
    /// limit - whichever member's message put it there.
    fn on_high_water(&mut self, cx: &mut ConnCtx<'_, Self>, queued: usize) {
        log::warn!(
            "disconnecting slow member {:?}: {queued} bytes unsent, over the {} byte limit",
            cx.peer(),
            cx.io().limits().high_water - 1
        );
        cx.close();
    }

    fn on_close(&mut self, cx: &mut ConnCtx<'_, Self>, reason: CloseReason) {
        let me = cx.handle();
        cx.shared.members.retain(|&h| h != me);
        let io = cx.io();
        log::info!(
            "{:?} left ({reason}) after {} messages in, {} out",
            io.peer(),
            io.frames_in,
            io.frames_out
        );
    }
}

fn server(
    addr: SocketAddr,
    max_queue: usize,
    max_message: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut dispatch = EventDispatch::new()?;
    let ctx = dispatch.context();
    let max_frame = max_message + LENGTH_HEADER_LEN;
    let config = ConnConfig {
        limits: Limits {
            // Reported once the queue holds max_queue + 1 bytes: over it.
            high_water: max_queue.saturating_add(1),
            // A backstop: on_high_water acts when the sending hook returns,
            // after a whole read of the sender (netlib's read budget, 256
            // KiB by default) was broadcast.
            hard_cap: max_queue
                .saturating_mul(2)
                .saturating_add(4 * max_frame)
                .max(max_queue.saturating_add(512 * 1024)),
            read_chunk: 64 * 1024,
        },
        max_frame,
        ..ConnConfig::default()
    };
    let room = Room {
        members: Vec::new(),
        frame: Vec::with_capacity(max_frame),
    };
    let chat = Server::<Member>::register(ctx, room, move |_, _: &Accepted| Some((Member, config)));
    let listener = ctx.listen_with(addr, &ListenOptions::default(), chat)?;
    cli::announce(ctx.local_addr(listener)?);
    dispatch.run()?;
    Ok(())
}

// ----- client ---------------------------------------------------------------

/// The client's connection to the server.
struct ChatClient {
    connected: bool,
}

impl Connection for ChatClient {
    type Codec = LengthCodec;
    type Shared = ();

    fn on_confirm(&mut self, cx: &mut ConnCtx<'_, Self>) {
        self.connected = true;
        println!(
            "connected to {}",
            cli::addr_or_unknown(cx.ctx.peer_addr(cx.handle()).ok())
        );
    }

    fn on_frame(&mut self, _cx: &mut ConnCtx<'_, Self>, body: &[u8]) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", String::from_utf8_lossy(body));
        let _ = out.flush();
    }

    fn on_close(&mut self, cx: &mut ConnCtx<'_, Self>, reason: CloseReason) {
        log::info!("disconnected: {reason}");
        cx.ctx.stop();
    }
}

/// Called on the loop with a line read from stdin by the stdin thread.
fn say(client: &mut Server<ChatClient>, ctx: &mut Context, h: Handle, line: &str) {
    if !client.conns().get(h).is_some_and(|c| c.connected) {
        log::warn!("not connected yet; dropped {line:?}");
        return;
    }
    if let Err(e) = client.send_to(ctx, h, line.as_bytes()) {
        log::error!("cannot send: {e}");
    }
}

fn client(addr: SocketAddr, max_message: usize) -> Result<(), Box<dyn std::error::Error>> {
    let mut dispatch = EventDispatch::new()?;
    let ctx = dispatch.context();
    let chat = Server::<ChatClient>::register(ctx, (), |_, _: &Accepted| None);
    let config = ConnConfig {
        max_frame: max_message + LENGTH_HEADER_LEN,
        ..ConnConfig::default()
    };
    let conn = ChatClient { connected: false };
    let h = ctx
        .with_handler(chat, |s: &mut Server<ChatClient>, ctx| {
            s.connect(ctx, addr, &ConnectOptions::default(), conn, config)
        })
        .ok_or("client state lost")??;
    let poster = dispatch.poster();
    // Blocking stdin reads stay off the loop: each line is posted to it.
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let posted = poster.post(move |ctx| {
                ctx.with_handler(chat, |c: &mut Server<ChatClient>, ctx| {
                    say(c, ctx, h, &line)
                });
            });
            if posted.is_err() {
                return; // the loop is gone
            }
        }
        // End of input: finish sending, then half-close; the server's close
        // of our connection stops the loop.
        let _ = poster.post(move |ctx| {
            ctx.with_handler(chat, |c: &mut Server<ChatClient>, ctx| {
                if !c.conns().get(h).is_some_and(|c| c.connected)
                    || !c.close_conn_after_flush(ctx, h)
                {
                    ctx.stop();
                }
            });
        });
    });
    dispatch.run()?;
    Ok(())
}
