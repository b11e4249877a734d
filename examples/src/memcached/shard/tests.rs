use super::*;

const NOW: u64 = 1_700_000_000;
const MAX: usize = 1 << 20;

/// A deliberately weak hash so that tests exercise bucket chains.
fn h(key: &[u8]) -> u64 {
    key.iter().map(|&b| u64::from(b)).sum()
}

fn item(key: &str, value: &str) -> NewItem {
    NewItem::new(key.as_bytes(), value.as_bytes(), 0, 0).expect("valid key")
}

fn set(shard: &mut Shard, key: &str, value: &str) -> StoreOutcome {
    shard.store(
        h(key.as_bytes()),
        StoreMode::Set,
        item(key, value),
        MAX,
        NOW,
    )
}

fn get(shard: &mut Shard, key: &str, now: u64) -> Option<String> {
    shard.get(h(key.as_bytes()), key.as_bytes(), None, now, |v| {
        String::from_utf8_lossy(v.value).into_owned()
    })
}

#[test]
fn set_get_delete_through_shared_buckets() {
    let mut s = Shard::new(usize::MAX, 0, 1);
    // "ab" and "ba" hash alike under `h`, so they share a chain.
    assert_eq!(set(&mut s, "ab", "1"), StoreOutcome::Stored);
    assert_eq!(set(&mut s, "ba", "2"), StoreOutcome::Stored);
    assert_eq!(get(&mut s, "ab", NOW).as_deref(), Some("1"));
    assert_eq!(get(&mut s, "ba", NOW).as_deref(), Some("2"));
    assert!(s.delete(h(b"ab"), b"ab", NOW));
    assert!(!s.delete(h(b"ab"), b"ab", NOW));
    assert_eq!(get(&mut s, "ba", NOW).as_deref(), Some("2"));
    assert_eq!(s.len(), 1);
}

#[test]
fn table_grows_and_reuses_slots() {
    let mut s = Shard::new(usize::MAX, 0, 1);
    for i in 0..1000 {
        let key = format!("key{i}");
        let hash = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        s.store(hash, StoreMode::Set, item(&key, "v"), MAX, NOW);
    }
    assert_eq!(s.len(), 1000);
    assert!(s.buckets.len() >= 1000 * 2 / 3);
    for i in 0..1000 {
        let key = format!("key{i}");
        let hash = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        assert!(s.get(hash, key.as_bytes(), None, NOW, |_| ()).is_some());
        assert!(s.delete(hash, key.as_bytes(), NOW));
    }
    assert_eq!((s.len(), s.used()), (0, 0));
    let slots = s.entries.len();
    set(&mut s, "again", "v");
    assert_eq!(s.entries.len(), slots, "a freed slot is reused");
}

#[test]
fn lru_order_follows_use() {
    let mut s = Shard::new(usize::MAX, 0, 1);
    set(&mut s, "a", "1");
    set(&mut s, "b", "1");
    set(&mut s, "c", "1");
    assert_eq!(
        s.lru_keys(),
        vec![b"c".to_vec(), b"b".to_vec(), b"a".to_vec()]
    );
    get(&mut s, "a", NOW);
    assert_eq!(
        s.lru_keys(),
        vec![b"a".to_vec(), b"c".to_vec(), b"b".to_vec()]
    );
    // add on an existing key counts as a use.
    s.store(h(b"b"), StoreMode::Add, item("b", "2"), MAX, NOW);
    assert_eq!(s.lru_keys()[0], b"b".to_vec());
}

#[test]
fn eviction_takes_the_least_recently_used() {
    let one = item_size(1, 0, 10);
    let mut s = Shard::new(one * 3, 0, 1);
    for k in ["a", "b", "c"] {
        set(&mut s, k, "0123456789");
    }
    get(&mut s, "a", NOW);
    set(&mut s, "d", "0123456789");
    assert_eq!(get(&mut s, "b", NOW), None, "b was least recently used");
    assert!(get(&mut s, "a", NOW).is_some());
    assert_eq!(s.counts.evictions, 1);
    assert_eq!(s.counts.evicted_unfetched, 1, "b was never fetched");
    assert_eq!(s.counts.evicted_nonzero, 0);
    assert!(s.used() <= s.budget());
}

#[test]
fn lookups_count_expired_and_flushed_items() {
    let mut s = Shard::new(MAX * 4, 0, 1);
    let short = NewItem::new(b"e", b"v", 0, NOW + 5).expect("key");
    s.store(h(b"e"), StoreMode::Set, short, MAX, NOW);
    assert_eq!(get(&mut s, "e", NOW + 5), None);
    assert_eq!(get(&mut s, "e", NOW + 5), None);
    assert_eq!(s.counts.get_expired, 1, "the item is gone after one look");
    set(&mut s, "x", "1");
    set(&mut s, "y", "2");
    s.flush(None, NOW);
    assert_eq!(get(&mut s, "x", NOW), None);
    assert_eq!(get(&mut s, "x", NOW), None);
    assert_eq!(s.counts.get_flushed, 1);
    // Storing over a flushed key finds it flushed too, as in memcached.
    set(&mut s, "y", "3");
    assert_eq!(s.counts.get_flushed, 2);
    assert_eq!(get(&mut s, "y", NOW).as_deref(), Some("3"));
    // A delayed flush counts the same way once due.
    s.flush(Some(NOW + 1), NOW);
    s.maintain(NOW + 2);
    assert_eq!(get(&mut s, "y", NOW + 2), None);
    assert_eq!(s.counts.get_flushed, 3);
}

#[test]
fn expired_tail_is_reclaimed_not_evicted() {
    let one = item_size(1, 0, 10);
    let mut s = Shard::new(one * 2, 0, 1);
    let short = NewItem::new(b"a", b"0123456789", 0, NOW + 5).expect("key");
    s.store(h(b"a"), StoreMode::Set, short, MAX, NOW);
    set(&mut s, "b", "0123456789");
    s.store(
        h(b"c"),
        StoreMode::Set,
        item("c", "0123456789"),
        MAX,
        NOW + 10,
    );
    assert_eq!(s.counts.reclaimed, 1);
    assert_eq!(s.counts.expired_unfetched, 1);
    assert_eq!(s.counts.evictions, 0);
}

#[test]
fn too_big_for_the_budget_is_out_of_memory() {
    let mut s = Shard::new(100, 0, 1);
    let big = "x".repeat(200);
    assert_eq!(set(&mut s, "k", &big), StoreOutcome::OutOfMemory);
    assert_eq!(s.len(), 0);
}

#[test]
fn cas_uniques_are_distinct_across_shards() {
    let mut a = Shard::new(usize::MAX, 0, 2);
    let mut b = Shard::new(usize::MAX, 1, 2);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..10 {
        assert!(seen.insert(a.next_cas()));
        assert!(seen.insert(b.next_cas()));
    }
}

#[test]
fn delayed_flush_removes_only_older_items() {
    let mut s = Shard::new(usize::MAX, 0, 1);
    set(&mut s, "old", "1");
    s.flush(Some(NOW + 10), NOW);
    assert!(get(&mut s, "old", NOW + 9).is_some());
    s.store(h(b"new"), StoreMode::Set, item("new", "1"), MAX, NOW + 11);
    s.maintain(NOW + 11);
    assert_eq!(get(&mut s, "old", NOW + 11), None);
    assert!(get(&mut s, "new", NOW + 11).is_some());
}

#[test]
fn in_place_decr_pads_with_spaces() {
    let mut s = Shard::new(usize::MAX, 0, 1);
    set(&mut s, "n", "10");
    let before = s.used();
    assert_eq!(s.delta(h(b"n"), b"n", false, 1, NOW), Ok(9));
    assert_eq!(get(&mut s, "n", NOW).as_deref(), Some("9 "));
    assert_eq!(s.used(), before);
    assert_eq!(s.delta(h(b"n"), b"n", true, 91, NOW), Ok(100));
    assert_eq!(get(&mut s, "n", NOW).as_deref(), Some("100"));
}
