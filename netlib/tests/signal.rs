//! `netlib::signal::StopSignals` in a process of its own (this test binary
//! holds no other test: the signals it raises go to the whole process).

use netlib::signal::StopSignals;
use std::sync::mpsc;
use std::time::Duration;

fn raise(sig: libc::c_int) {
    // SAFETY: raise(3) only sends a signal to this process.
    assert_eq!(unsafe { libc::raise(sig) }, 0);
}

#[test]
fn a_signal_before_on_arrival_waits_and_then_stops_once() {
    let signals = StopSignals::catch().unwrap();
    // Before anything acts on it: the default action would end the
    // process here, and with it this test.
    raise(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(100));

    let (stopped, stops) = mpsc::channel();
    signals
        .on_arrival(move || stopped.send("stop").unwrap())
        .unwrap();
    assert_eq!(stops.recv_timeout(Duration::from_secs(5)), Ok("stop"));

    // A second signal while stopping is caught too: the process (this
    // test) lives on to finish what the stop started.
    raise(libc::SIGINT);
    std::thread::sleep(Duration::from_millis(200));
}
