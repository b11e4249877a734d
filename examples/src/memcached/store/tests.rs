use super::*;
use crate::memcached::clock::ManualClock;

const T0: u64 = 1_700_000_000;

fn store_with(config: Config) -> (Store, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    (Store::new(&config, clock.clone()), clock)
}

fn put(store: &Store, key: &str, value: &str, exptime: u64) -> StoreOutcome {
    let item = NewItem::new(key.as_bytes(), value.as_bytes(), 0, exptime).expect("key");
    store.store(StoreMode::Set, item, store.now())
}

fn fetch(store: &Store, key: &str) -> Option<Vec<u8>> {
    store.get(key.as_bytes(), store.now(), |i| i.value.to_vec())
}

#[test]
fn store_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Store>();
}

#[test]
fn keys_are_validated() {
    assert!(is_valid_key(b"a"));
    assert!(is_valid_key("こんにちは".as_bytes()));
    assert!(is_valid_key(&[b'k'; 250]));
    assert!(!is_valid_key(&[b'k'; 251]));
    assert!(!is_valid_key(b""));
    assert!(!is_valid_key(b"a b"));
    assert!(!is_valid_key(b"a\nb"));
    assert!(!is_valid_key(b"a\0b"));
    // memcached takes control characters (memaslap sends 0x10).
    assert!(is_valid_key(b"a\tb"));
    assert!(is_valid_key(b"a\x7f"));
    assert!(is_valid_key(b"\x10\x10k"));
    assert!(NewItem::new(b"bad key", b"v", 0, 0).is_none());
    assert!(NewItem::from_buffer(b"k".to_vec(), 2, 0, 0).is_none());
}

#[test]
fn exptime_conventions() {
    let now = T0;
    assert_eq!(expiry_deadline(0, now), 0);
    assert_eq!(expiry_deadline(1, now), now + 1);
    assert_eq!(expiry_deadline(MAX_RELATIVE_EXPTIME, now), now + 2_592_000);
    assert_eq!(expiry_deadline(MAX_RELATIVE_EXPTIME + 1, now), 2_592_001);
    assert_eq!(expiry_deadline(T0 as i64 + 100, now), T0 + 100);
    assert_eq!(expiry_deadline(-1, now), 1);
    assert_eq!(expiry_deadline(i64::MIN, now), 1);
}

#[test]
fn relative_expiry() {
    let (store, clock) = store_with(Config::default());
    put(&store, "k", "v", expiry_deadline(10, T0));
    clock.advance(9);
    assert!(fetch(&store, "k").is_some());
    clock.advance(1);
    assert!(fetch(&store, "k").is_none());
    assert_eq!(store.item_stats().curr_items, 0);
}

#[test]
fn thirty_days_is_relative_and_one_more_is_absolute() {
    let (store, clock) = store_with(Config::default());
    put(
        &store,
        "rel",
        "v",
        expiry_deadline(MAX_RELATIVE_EXPTIME, T0),
    );
    put(
        &store,
        "abs",
        "v",
        expiry_deadline(MAX_RELATIVE_EXPTIME + 1, T0),
    );
    assert!(fetch(&store, "rel").is_some(), "30 days from now");
    assert!(
        fetch(&store, "abs").is_none(),
        "1970 plus 30 days is long gone"
    );
    clock.advance(MAX_RELATIVE_EXPTIME as u64);
    assert!(fetch(&store, "rel").is_none());
}

#[test]
fn absolute_and_negative_expiry() {
    let (store, clock) = store_with(Config::default());
    put(&store, "future", "v", expiry_deadline(T0 as i64 + 5, T0));
    put(&store, "past", "v", expiry_deadline(T0 as i64 - 5, T0));
    put(&store, "neg", "v", expiry_deadline(-1, T0));
    assert!(fetch(&store, "future").is_some());
    assert!(fetch(&store, "past").is_none());
    assert!(fetch(&store, "neg").is_none());
    clock.advance(5);
    assert!(fetch(&store, "future").is_none());
}

#[test]
fn negative_exptime_set_removes_the_old_value() {
    let (store, _) = store_with(Config::default());
    put(&store, "k", "v", 0);
    assert_eq!(
        put(&store, "k", "w", expiry_deadline(-1, T0)),
        StoreOutcome::Stored
    );
    assert!(fetch(&store, "k").is_none());
}

#[test]
fn touch_moves_expiry() {
    let (store, clock) = store_with(Config::default());
    put(&store, "k", "v", expiry_deadline(2, T0));
    assert!(store.touch(b"k", expiry_deadline(100, T0), T0));
    clock.advance(50);
    assert!(fetch(&store, "k").is_some());
    assert!(store.touch(b"k", expiry_deadline(-1, T0), store.now()));
    assert!(fetch(&store, "k").is_none());
    assert!(!store.touch(b"k", 0, store.now()));
}

#[test]
fn gat_returns_the_value_then_applies_the_new_expiry() {
    let (store, _) = store_with(Config::default());
    put(&store, "k", "v", 0);
    let got = store.get_and_touch(b"k", expiry_deadline(-1, T0), T0, |i| i.value.to_vec());
    assert_eq!(got.as_deref(), Some(&b"v"[..]));
    assert!(fetch(&store, "k").is_none());
}

#[test]
fn storage_modes() {
    let (store, _) = store_with(Config::default());
    let now = T0;
    let item = |v: &str| NewItem::new(b"k", v.as_bytes(), 5, 0).expect("key");
    assert_eq!(
        store.store(StoreMode::Replace, item("r"), now),
        StoreOutcome::NotStored
    );
    assert_eq!(
        store.store(StoreMode::Append, item("a"), now),
        StoreOutcome::NotStored
    );
    assert_eq!(
        store.store(StoreMode::Prepend, item("p"), now),
        StoreOutcome::NotStored
    );
    assert_eq!(
        store.store(StoreMode::Cas(1), item("c"), now),
        StoreOutcome::NotFound
    );
    assert_eq!(
        store.store(StoreMode::Add, item("1"), now),
        StoreOutcome::Stored
    );
    assert_eq!(
        store.store(StoreMode::Add, item("2"), now),
        StoreOutcome::NotStored
    );
    let appended = NewItem::new(b"k", b"<", 9, 0).expect("key");
    assert_eq!(
        store.store(StoreMode::Append, appended, now),
        StoreOutcome::Stored
    );
    let prepended = NewItem::new(b"k", b">", 9, 0).expect("key");
    assert_eq!(
        store.store(StoreMode::Prepend, prepended, now),
        StoreOutcome::Stored
    );
    let (value, flags, cas) = store
        .get(b"k", now, |i| (i.value.to_vec(), i.flags, i.cas))
        .expect("present");
    assert_eq!(value, b">1<");
    assert_eq!(flags, 5, "append/prepend keep the old flags");
    assert_eq!(
        store.store(StoreMode::Cas(cas + 1), item("x"), now),
        StoreOutcome::Exists
    );
    assert_eq!(
        store.store(StoreMode::Cas(cas), item("y"), now),
        StoreOutcome::Stored
    );
    assert_eq!(
        store.store(StoreMode::Cas(cas), item("z"), now),
        StoreOutcome::Exists
    );
    assert_eq!(
        store.store(StoreMode::Replace, item("q"), now),
        StoreOutcome::Stored
    );
    assert_eq!(fetch(&store, "k").as_deref(), Some(&b"q"[..]));
}

#[test]
fn every_mutation_gets_a_new_cas() {
    let (store, _) = store_with(Config::default());
    let cas = |s: &Store| s.get(b"n", T0, |i| i.cas).expect("present");
    put(&store, "n", "1", 0);
    let a = cas(&store);
    store.delta(b"n", true, 1, T0).expect("numeric");
    let b = cas(&store);
    put(&store, "n", "1", 0);
    let c = cas(&store);
    assert!(a != b && b != c && a != c);
}

#[test]
fn append_past_the_size_limit_is_not_stored() {
    let config = Config {
        item_size_max: 200,
        memory_limit: 0,
        ..Config::default()
    };
    let (store, _) = store_with(config);
    put(&store, "k", &"x".repeat(100), 0);
    let more = NewItem::new(b"k", &[b'y'; 100], 0, 0).expect("key");
    assert_eq!(
        store.store(StoreMode::Append, more, T0),
        StoreOutcome::NotStored
    );
    assert_eq!(fetch(&store, "k").map(|v| v.len()), Some(100));
}

#[test]
fn incr_wraps_and_decr_floors() {
    let (store, _) = store_with(Config::default());
    put(&store, "n", "18446744073709551615", 0);
    assert_eq!(store.delta(b"n", true, 1, T0), Ok(0));
    assert_eq!(store.delta(b"n", false, 5, T0), Ok(0));
    assert_eq!(store.delta(b"n", true, 4294967296, T0), Ok(4294967296));
    put(&store, "t", "hi", 0);
    assert_eq!(store.delta(b"t", true, 1, T0), Err(DeltaError::NonNumeric));
    put(&store, "e", "", 0);
    assert_eq!(store.delta(b"e", true, 1, T0), Err(DeltaError::NonNumeric));
    assert_eq!(
        store.delta(b"missing", true, 1, T0),
        Err(DeltaError::NotFound)
    );
}

#[test]
fn lru_eviction_under_a_small_limit() {
    let per_item = item_size(4, 0, 100);
    let config = Config {
        memory_limit: per_item * 10,
        item_size_max: per_item,
        shards: 1,
        ..Config::default()
    };
    let (store, _) = store_with(config);
    for i in 0..10 {
        put(&store, &format!("k{i:03}"), &"v".repeat(100), 0);
    }
    assert_eq!(store.item_stats().evictions, 0);
    // Use k000 so that k001 is the oldest.
    assert!(fetch(&store, "k000").is_some());
    put(&store, "k010", &"v".repeat(100), 0);
    let stats = store.item_stats();
    assert_eq!(stats.evictions, 1);
    assert_eq!(stats.curr_items, 10);
    assert!(stats.bytes <= (per_item * 10) as u64);
    assert!(fetch(&store, "k001").is_none());
    assert!(fetch(&store, "k000").is_some());
    for i in 11..30 {
        put(&store, &format!("k{i:03}"), &"v".repeat(100), 0);
    }
    let stats = store.item_stats();
    assert_eq!(stats.evictions, 20);
    assert_eq!(stats.total_items, 30);
}

#[test]
fn shards_are_lowered_to_fit_two_large_items_each() {
    let config = Config {
        memory_limit: 4 << 20,
        item_size_max: 1 << 20,
        shards: 8,
        ..Config::default()
    };
    let (store, _) = store_with(config);
    assert_eq!(store.shard_count(), 2);
    let (store, _) = store_with(Config {
        shards: 4,
        ..Config::default()
    });
    assert_eq!(store.shard_count(), 4);
    let (store, _) = store_with(Config {
        shards: 0,
        ..Config::default()
    });
    assert_eq!(store.shard_count(), 1);
}

#[test]
fn flush_now_and_later() {
    let (store, clock) = store_with(Config {
        shards: 4,
        ..Config::default()
    });
    for i in 0..100 {
        put(&store, &format!("k{i}"), "v", 0);
    }
    store.flush_all(None, T0);
    assert_eq!(store.item_stats().curr_items, 0);
    put(&store, "after", "v", 0);
    assert!(
        fetch(&store, "after").is_some(),
        "a set after flush survives"
    );

    store.flush_all(Some(T0 + 10), T0);
    clock.advance(9);
    assert!(fetch(&store, "after").is_some());
    clock.advance(1);
    assert!(fetch(&store, "after").is_none());
    put(&store, "later", "v", 0);
    assert!(fetch(&store, "later").is_some());
}

#[test]
fn sharded_store_under_threads() {
    let (store, _) = store_with(Config {
        shards: 4,
        ..Config::default()
    });
    let store = Arc::new(store);
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..500 {
                    let key = format!("t{t}-{i}");
                    put(&store, &key, &key, 0);
                    assert_eq!(fetch(&store, &key), Some(key.into_bytes()));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    assert_eq!(store.item_stats().curr_items, 2000);
}
