//! [`NatsCodec`] against Debian's `nats-server`, started here on a loopback
//! port: two reconnecting links of one imconn server, one subscribed and one
//! publishing; payloads with CRLF and binary bytes arrive intact, `UNSUB`
//! stops them, and after the NATS server is killed and started again the
//! links reconnect, subscribe again and routing resumes without a restart.

use imconn::{Backoff, ConnConfig, ConnCtx, Connection, NatsCodec, NatsFrame, NatsOut, Server};
use netlib::{CloseReason, Context, EventDispatch, HandlerRef};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(20);
const SUBJECT: &str = "im.user.7";

/// nats-server on `port`, killed when dropped.
struct Nats(Child);

impl Nats {
    fn start(port: u16) -> Nats {
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (Debian's nats-server package) must be installed");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let start = Instant::now();
        while TcpStream::connect(addr).is_err() {
            assert!(start.elapsed() < TIMEOUT, "nats-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nats(child)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Default)]
struct Seen {
    infos: u32,
    /// PONGs per link index (0: subscriber, 1: publisher).
    pongs: [u32; 2],
    payloads: Vec<Vec<u8>>,
    closed: Vec<CloseReason>,
    errors: Vec<String>,
}

/// A NATS client link: the subscriber subscribes at every (re)connect.
struct Client {
    subscriber: bool,
}

impl Connection for Client {
    type Codec = NatsCodec;
    type Shared = Seen;

    fn on_confirm(&mut self, cx: &mut ConnCtx<'_, Self>) {
        let connect = r#"{"verbose":false,"pedantic":false,"headers":false,"name":"imconn-test"}"#;
        cx.send(NatsOut::Connect(connect)).unwrap();
        if self.subscriber {
            cx.send(NatsOut::Sub {
                subject: SUBJECT,
                queue: None,
                sid: 1,
            })
            .unwrap();
        }
        // The PONG says the server has processed everything before it.
        cx.send(NatsOut::Ping).unwrap();
    }

    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, frame: NatsFrame<'_>) {
        match frame {
            NatsFrame::Info(json) => {
                assert!(json.starts_with('{'), "INFO carries JSON: {json}");
                cx.shared.infos += 1;
            }
            NatsFrame::Ping => {
                cx.send(NatsOut::Pong).unwrap();
            }
            NatsFrame::Pong => cx.shared.pongs[usize::from(!self.subscriber)] += 1,
            NatsFrame::Msg {
                subject,
                sid,
                payload,
                ..
            } => {
                assert_eq!((subject, sid), (SUBJECT, 1));
                cx.shared.payloads.push(payload.to_vec());
            }
            NatsFrame::Ok => {}
            NatsFrame::Err(e) => cx.shared.errors.push(e.to_string()),
        }
    }

    fn on_close(&mut self, cx: &mut ConnCtx<'_, Self>, reason: CloseReason) {
        cx.shared.closed.push(reason);
    }
}

fn run_until(
    d: &mut EventDispatch,
    srv: HandlerRef,
    what: &str,
    mut done: impl FnMut(&Seen) -> bool,
) {
    let start = Instant::now();
    loop {
        let ok = d
            .context()
            .with_handler(srv, |s: &mut Server<Client>, _| done(&s.shared))
            .unwrap();
        if ok {
            return;
        }
        assert!(start.elapsed() < TIMEOUT, "timed out waiting for {what}");
        d.run_once(Some(Duration::from_millis(10))).unwrap();
    }
}

/// Sends `items` on link `index`.
fn send(ctx: &mut Context, srv: HandlerRef, index: usize, items: &[NatsOut<'_>]) {
    ctx.with_handler(srv, |s: &mut Server<Client>, ctx| {
        let h = s.link_handle(index).expect("link connected");
        s.with_conn(ctx, h, |_, cx| {
            for item in items {
                cx.send(*item).unwrap();
            }
        })
        .expect("link open");
    })
    .unwrap();
}

fn publish(payload: &[u8]) -> NatsOut<'_> {
    NatsOut::Pub {
        subject: SUBJECT,
        reply: None,
        payload,
    }
}

#[test]
fn links_talk_to_a_real_nats_server_and_resume_after_it_restarts() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let nats = Nats::start(port);
    let mut d = EventDispatch::new().unwrap();
    let srv = Server::<Client>::register(d.context(), Seen::default(), |_, _| None);
    d.context()
        .with_handler(srv, |s: &mut Server<Client>, ctx| {
            let backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(200));
            for subscriber in [true, false] {
                s.add_link(
                    ctx,
                    addr,
                    ConnConfig::default(),
                    backoff.clone(),
                    move |_| Client { subscriber },
                );
            }
        })
        .unwrap();
    run_until(&mut d, srv, "both links ready", |s| {
        s.pongs == [1, 1] && s.infos == 2
    });

    let binary: Vec<u8> = (0..=255u8).chain(*b"\r\nMSG x 1 1\r\n").collect();
    send(
        d.context(),
        srv,
        1,
        &[publish(b"hello"), publish(&binary), publish(b"")],
    );
    run_until(&mut d, srv, "three messages", |s| s.payloads.len() == 3);
    d.context()
        .with_handler(srv, |s: &mut Server<Client>, _| {
            assert_eq!(
                s.shared.payloads,
                [b"hello".to_vec(), binary.clone(), Vec::new()]
            );
        })
        .unwrap();

    // After UNSUB (and a PING round trip on each link) nothing arrives.
    send(
        d.context(),
        srv,
        0,
        &[NatsOut::Unsub { sid: 1, max: None }, NatsOut::Ping],
    );
    run_until(&mut d, srv, "unsub processed", |s| s.pongs[0] == 2);
    send(d.context(), srv, 1, &[publish(b"lost"), NatsOut::Ping]);
    run_until(&mut d, srv, "publish processed", |s| s.pongs[1] == 2);
    // The publisher's PONG follows its PUB; the subscriber would have its
    // MSG by now, give it a few more turns of the loop.
    for _ in 0..20 {
        d.run_once(Some(Duration::from_millis(5))).unwrap();
    }
    run_until(&mut d, srv, "still three", |s| s.payloads.len() == 3);

    // The NATS server goes away and comes back on the same port: both links
    // reconnect on their own, the subscriber subscribes again.
    drop(nats);
    run_until(&mut d, srv, "both links closed", |s| s.closed.len() >= 2);
    let _nats = Nats::start(port);
    run_until(&mut d, srv, "both links back", |s| s.pongs == [3, 3]);
    send(d.context(), srv, 1, &[publish(b"after restart")]);
    run_until(&mut d, srv, "the message after the restart", |s| {
        s.payloads.len() == 4
    });
    d.context()
        .with_handler(srv, |s: &mut Server<Client>, _| {
            assert_eq!(s.shared.payloads[3], b"after restart");
            assert!(s.shared.errors.is_empty(), "{:?}", s.shared.errors);
        })
        .unwrap();
}
