//! Timers driven by a real dispatcher: precision, repetition, ordering,
//! cancellation and no burst after a stall. (The queue's own logic is
//! unit-tested on an injected clock in `src/timer.rs`.)

mod util;

use netlib::EventDispatch;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};
use util::*;

#[test]
fn one_shot_fires_once_not_before_its_deadline() {
    let mut d = EventDispatch::new().unwrap();
    let fired: Rc<RefCell<Vec<Instant>>> = Rc::default();
    let f = fired.clone();
    let start = Instant::now();
    d.context()
        .add_timer(Duration::from_millis(30), move |_, _| {
            f.borrow_mut().push(Instant::now())
        });
    run_until(&mut d, "fire", || !fired.borrow().is_empty());
    let late = fired.borrow()[0] - start;
    assert!(late >= Duration::from_millis(30), "fired early: {late:?}");
    // The poll timeout comes from the deadline, not a coarse tick; allow
    // generous slack for a loaded machine.
    assert!(late < Duration::from_millis(500), "fired late: {late:?}");
    let until = Instant::now() + Duration::from_millis(40);
    run_until(&mut d, "quiet", || Instant::now() > until);
    assert_eq!(fired.borrow().len(), 1);
}

#[test]
fn equal_deadlines_fire_in_the_order_they_were_added() {
    let mut d = EventDispatch::new().unwrap();
    let order: Rc<RefCell<Vec<u32>>> = Rc::default();
    // Computed from one instant so the deadlines really are equal.
    for i in 0..50u32 {
        let o = order.clone();
        d.context()
            .add_timer(Duration::from_millis(5), move |_, _| o.borrow_mut().push(i));
    }
    run_until(&mut d, "all fired", || order.borrow().len() == 50);
    let got = order.borrow().clone();
    // add_timer reads the clock each time, so deadlines are non-decreasing
    // in insertion order; ties keep insertion order.
    assert_eq!(got, (0..50).collect::<Vec<_>>());
}

#[test]
fn repeating_timer_repeats_until_cancelled() {
    let mut d = EventDispatch::new().unwrap();
    let count = Rc::new(RefCell::new(0u32));
    let c = count.clone();
    let id = d
        .context()
        .add_repeating_timer(Duration::from_millis(2), move |_, _| *c.borrow_mut() += 1);
    run_until(&mut d, "five ticks", || *count.borrow() >= 5);
    assert!(d.context().cancel_timer(id));
    let seen = *count.borrow();
    let until = Instant::now() + Duration::from_millis(20);
    run_until(&mut d, "quiet", || Instant::now() > until);
    assert_eq!(*count.borrow(), seen);
    assert!(!d.context().cancel_timer(id));
}

/// Regression: after the loop stalls for ~10 intervals, a repeating timer
/// fires once and resumes its schedule; it does not fire 10 times in a row.
#[test]
fn regression_repeating_timer_does_not_burst_after_a_stall() {
    let mut d = EventDispatch::new().unwrap();
    let fires: Rc<RefCell<Vec<Instant>>> = Rc::default();
    let f = fires.clone();
    d.context()
        .add_repeating_timer(Duration::from_millis(10), move |_, _| {
            f.borrow_mut().push(Instant::now())
        });
    // Stall the loop for 105 ms from inside a callback (deliberately).
    d.context().add_timer(Duration::from_millis(15), |_, _| {
        std::thread::sleep(Duration::from_millis(105))
    });
    let until = Instant::now() + Duration::from_millis(200);
    run_until(&mut d, "run", || Instant::now() > until);
    let fires = fires.borrow();
    // Without the fix the stall produced ~10 fires within a millisecond.
    let bursts = fires
        .windows(2)
        .filter(|w| w[1] - w[0] < Duration::from_millis(3))
        .count();
    assert_eq!(bursts, 0, "fire times: {fires:?}");
    assert!(fires.len() <= 12, "{} fires in 200 ms", fires.len());
}

#[test]
fn context_now_is_read_once_per_iteration() {
    let mut d = EventDispatch::new().unwrap();
    let seen: Rc<RefCell<Vec<(Instant, Instant)>>> = Rc::default();
    // Two timers due in the same turn see the same `now`, not later than
    // the clock in the callback and not earlier than the turn's start.
    for _ in 0..2 {
        let s = seen.clone();
        d.context()
            .add_timer(Duration::from_millis(5), move |ctx, _| {
                std::thread::sleep(Duration::from_millis(2));
                s.borrow_mut().push((ctx.now(), Instant::now()));
            });
    }
    let before = Instant::now();
    run_until(&mut d, "both timers", || seen.borrow().len() == 2);
    let turn = seen.borrow().clone();
    assert_eq!(turn[0].0, turn[1].0, "one reading for the whole turn");
    assert!(turn[0].0 >= before);
    assert!(
        turn[1].1 >= turn[0].0 + Duration::from_millis(4),
        "the second ran later"
    );
    // A later turn has a later reading.
    let s = seen.clone();
    d.context()
        .add_timer(Duration::from_millis(1), move |ctx, _| {
            s.borrow_mut().push((ctx.now(), Instant::now()));
        });
    run_until(&mut d, "third timer", || seen.borrow().len() == 3);
    let third = seen.borrow()[2];
    assert!(third.0 >= turn[1].1, "read again in the later turn");
    assert!(third.0 <= third.1);
}
