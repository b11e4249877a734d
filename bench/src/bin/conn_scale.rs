//! Connection scale: N idle connections held by one netlib loop.
//!
//! ```text
//! conn_scale server ADDR [--processes N --status-file F]   # ImServer, heartbeat + idle deadlines armed
//! conn_scale client ADDR N [--src-base 2]   # opens N connections, prints "connected N", then idles
//! ```
//!
//! The client spreads its source addresses over `127.0.0.<src-base>..`
//! (30 000 connections each) to get past the ephemeral port range; several
//! clients with different `--src-base` share the load. Both raise
//! RLIMIT_NOFILE. With `--processes N` the server is N worker processes
//! under a prefork master, so the per-process descriptor limit no longer
//! caps it. The drivers (`bench conn_scale`, `bench prefork_scale`) read
//! the server's RSS and CPU time from /proc.

use imconn::{ConnConfig, ConnCtx, Connection, ImServer, PduCodec, Timeouts};
use netlib::{EventDispatch, ListenOptions};
use pdu::PduRef;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

struct Idle;

impl Connection for Idle {
    type Codec = PduCodec;
    type Shared = ();
    fn on_frame(&mut self, _cx: &mut ConnCtx<'_, Self>, _pdu: PduRef<'_>) {}
}

fn server(addr: SocketAddr, processes: &prefork::Args) -> Result<(), Box<dyn std::error::Error>> {
    bench::raise_nofile(200_000);
    let opts = ListenOptions {
        backlog: 4096,
        ..ListenOptions::default()
    };
    if let Some(config) = processes.config(1) {
        prefork::serve(
            config,
            &[addr],
            &opts,
            |_| {},
            |_| Ok(|ctx: &mut netlib::Context, _| Ok(register(ctx))),
        )?;
        return Ok(());
    }
    let mut dispatch = EventDispatch::new()?;
    let ctx = dispatch.context();
    let server = register(ctx);
    ctx.listen_with(addr, &opts, server)?;
    dispatch.run()?;
    Ok(())
}

/// One loop's server: every connection with heartbeat and idle deadlines
/// armed, as on a server link; long enough not to fire during the
/// measurement.
fn register(ctx: &mut netlib::Context) -> netlib::HandlerRef {
    let config = ConnConfig {
        timeouts: Timeouts {
            heartbeat: Some(Duration::from_secs(300)),
            idle: Some(Duration::from_secs(600)),
            login: None,
        },
        ..ConnConfig::client()
    };
    ImServer::<Idle>::register(ctx, (), move |_, _| Some((Idle, config)))
}

fn client(addr: SocketAddr, n: usize, src_base: u8) -> Result<(), Box<dyn std::error::Error>> {
    bench::raise_nofile(n as u64 + 1000);
    let mut socks = Vec::with_capacity(n);
    for i in 0..n {
        // SAFETY: socket(2) takes no pointers; a negative result is checked.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
        if fd < 0 {
            return Err(format!("socket: {}", std::io::Error::last_os_error()).into());
        }
        let src = SocketAddrV4::new(
            Ipv4Addr::new(127, 0, 0, src_base.saturating_add((i / 30_000) as u8)),
            0,
        );
        let dst = match addr {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => return Err("IPv4 only".into()),
        };
        for (a, bind) in [(src, true), (dst, false)] {
            let sa = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            let p = &sa as *const libc::sockaddr_in as *const libc::sockaddr;
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            // SAFETY: `p` points to `sa`, a live sockaddr_in of `len` bytes,
            // and `fd` is a socket this function owns.
            let r = unsafe {
                if bind {
                    libc::bind(fd, p, len)
                } else {
                    libc::connect(fd, p, len)
                }
            };
            if r != 0 {
                return Err(format!(
                    "{} #{i}: {}",
                    if bind { "bind" } else { "connect" },
                    std::io::Error::last_os_error()
                )
                .into());
            }
        }
        socks.push(fd);
    }
    println!("connected {n}");
    std::io::stdout().flush()?;
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Connection scale: N idle connections held by one netlib loop.
#[derive(clap::Parser)]
#[command(name = "conn_scale")]
enum Args {
    /// ImServer with heartbeat and idle deadlines armed
    Server {
        /// Address to listen on
        addr: SocketAddr,
        #[command(flatten)]
        processes: prefork::Args,
    },
    /// Open N connections, print "connected N", then idle
    Client {
        /// The conn_scale server
        addr: SocketAddr,
        /// Connections to open
        n: usize,
        /// Last byte of the first source address (127.0.0.SRC_BASE)
        #[arg(long, default_value_t = 2)]
        src_base: u8,
    },
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    match <Args as clap::Parser>::parse() {
        Args::Server { addr, processes } => server(addr, &processes),
        Args::Client { addr, n, src_base } => client(addr, n, src_base),
    }
}
