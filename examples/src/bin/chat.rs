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
//! The client sends each line of stdin as a message and prints each message
//! received on a line of stdout. Stdin is read on its own thread, which posts
//! the lines to the event loop (netlib's `Poster`).
//!
//! ```text
//! chat server [--host 127.0.0.1] [--port 2010] [--max-queue 1048576] [--max-message 65536]
//! chat client --connect 127.0.0.1:2010
//! ```

use clap::{Parser, Subcommand};
use examples::cli;
use examples::codec::{LengthCodec, HEADER_LEN};
use examples::conns::ConnTable;
use imconn::{BufferedConn, Limits};
use netlib::{ConnectOptions, Context, Event, EventDispatch, Handle, Handler, ListenOptions};
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

struct ChatServer {
    members: ConnTable<BufferedConn>,
    codec: LengthCodec,
    /// The frame being broadcast, encoded once for all members.
    frame: Vec<u8>,
    max_queue: usize,
}

impl ChatServer {
    fn on_read(&mut self, ctx: &mut Context, h: Handle) {
        let Some(conn) = self.members.get_mut(h) else {
            return;
        };
        conn.fill(ctx);
        loop {
            let Some(conn) = self.members.get_mut(h) else {
                return;
            };
            if conn.is_closed() {
                return; // disconnected by a broadcast below (slow reader too)
            }
            match self.codec.decode(conn.in_buf.as_slice()) {
                Ok(Some((len, body))) => {
                    self.frame.clear();
                    LengthCodec::encode(&mut self.frame, body);
                    conn.in_buf.consume(len);
                    conn.frames_in += 1;
                    self.broadcast(ctx);
                }
                Ok(None) => return,
                Err(e) => {
                    log::warn!("disconnecting {}: {e}", cli::addr_or_unknown(conn.peer()));
                    conn.force_close(ctx);
                    return;
                }
            }
        }
    }

    fn broadcast(&mut self, ctx: &mut Context) {
        for (_, member) in self.members.iter_mut() {
            if member.is_closed() {
                continue;
            }
            match member.send(ctx, &self.frame) {
                Ok(status) if status.queued > self.max_queue => {
                    log::warn!(
                        "disconnecting slow member {}: {} bytes unsent, over the {} byte limit",
                        cli::addr_or_unknown(member.peer()),
                        status.queued,
                        self.max_queue
                    );
                    member.force_close(ctx);
                }
                Ok(_) => member.frames_out += 1,
                Err(_) => {} // closed; its Close event follows
            }
        }
    }
}

impl Handler for ChatServer {
    fn on_event(&mut self, ctx: &mut Context, h: Handle, event: Event) {
        match event {
            Event::Connect { .. } => {
                let limits = Limits {
                    high_water: self.max_queue,
                    // Our own policy (above) acts first; this is a backstop.
                    hard_cap: self.max_queue + 2 * (self.codec.max_body() + HEADER_LEN),
                    read_chunk: 64 * 1024,
                };
                let conn = BufferedConn::new(ctx, h, limits);
                log::info!("{} joined", cli::addr_or_unknown(conn.peer()));
                self.members.insert(h, conn);
            }
            Event::Read => self.on_read(ctx, h),
            Event::Write => {
                if let Some(conn) = self.members.get_mut(h) {
                    let _ = conn.flush(ctx);
                }
            }
            Event::Close(reason) => {
                if let Some(conn) = self.members.remove(h) {
                    log::info!(
                        "{} left ({reason}) after {} messages in, {} out",
                        cli::addr_or_unknown(conn.peer()),
                        conn.frames_in,
                        conn.frames_out
                    );
                }
            }
            _ => {}
        }
    }
}

fn server(
    addr: SocketAddr,
    max_queue: usize,
    max_message: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut dispatch = EventDispatch::new()?;
    let ctx = dispatch.context();
    let chat = ChatServer {
        members: ConnTable::new(),
        codec: LengthCodec::new(max_message),
        frame: Vec::with_capacity(max_message + HEADER_LEN),
        max_queue,
    };
    let listener = ctx.listen(addr, &ListenOptions::default(), chat)?;
    cli::announce(ctx.local_addr(listener)?);
    dispatch.run()?;
    Ok(())
}

// ----- client ---------------------------------------------------------------

struct ChatClient {
    conn: Option<BufferedConn>,
    codec: LengthCodec,
    frame: Vec<u8>,
}

impl ChatClient {
    /// Called on the loop with a line read from stdin by the stdin thread.
    fn say(&mut self, ctx: &mut Context, line: &str) {
        let Some(conn) = self.conn.as_mut() else {
            log::warn!("not connected yet; dropped {line:?}");
            return;
        };
        self.frame.clear();
        LengthCodec::encode(&mut self.frame, line.as_bytes());
        if let Err(e) = conn.send(ctx, &self.frame) {
            log::error!("cannot send: {e}");
        }
    }
}

impl Handler for ChatClient {
    fn on_event(&mut self, ctx: &mut Context, h: Handle, event: Event) {
        match event {
            Event::Confirm => {
                let conn = BufferedConn::new(ctx, h, Limits::default());
                println!("connected to {}", cli::addr_or_unknown(conn.peer()));
                self.conn = Some(conn);
            }
            Event::Read => {
                let Some(conn) = self.conn.as_mut() else {
                    return;
                };
                conn.fill(ctx);
                let mut out = std::io::stdout().lock();
                loop {
                    match self.codec.decode(conn.in_buf.as_slice()) {
                        Ok(Some((len, body))) => {
                            let _ = writeln!(out, "{}", String::from_utf8_lossy(body));
                            conn.in_buf.consume(len);
                        }
                        Ok(None) => break,
                        Err(e) => {
                            log::error!("bad frame from the server: {e}");
                            conn.force_close(ctx);
                            break;
                        }
                    }
                }
                let _ = out.flush();
            }
            Event::Write => {
                if let Some(conn) = self.conn.as_mut() {
                    let _ = conn.flush(ctx);
                }
            }
            Event::Close(reason) => {
                log::info!("disconnected: {reason}");
                ctx.stop();
            }
            _ => {}
        }
    }
}

fn client(addr: SocketAddr, max_message: usize) -> Result<(), Box<dyn std::error::Error>> {
    let mut dispatch = EventDispatch::new()?;
    let ctx = dispatch.context();
    let chat = ctx.add_handler(ChatClient {
        conn: None,
        codec: LengthCodec::new(max_message),
        frame: Vec::new(),
    });
    ctx.connect_with(addr, &ConnectOptions::default(), chat)?;
    let poster = dispatch.poster();
    // Blocking stdin reads stay off the loop: each line is posted to it.
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let posted = poster.post(move |ctx| {
                ctx.with_handler(chat, |c: &mut ChatClient, ctx| c.say(ctx, &line));
            });
            if posted.is_err() {
                return; // the loop is gone
            }
        }
        // End of input: finish sending, then half-close; the server's close
        // of our connection stops the loop.
        let _ = poster.post(move |ctx| {
            ctx.with_handler(chat, |c: &mut ChatClient, ctx| {
                if let Some(conn) = c.conn.as_mut() {
                    conn.shutdown(ctx);
                } else {
                    ctx.stop();
                }
            });
        });
    });
    dispatch.run()?;
    Ok(())
}
