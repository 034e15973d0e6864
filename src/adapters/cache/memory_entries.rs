//! The memory cache's store: entries by key with their expiry, in key
//! order (prefix deletes), and in order of last use, so that a bounded
//! cache (`CACHE_MEMORY_MAX`) drops the least recently used entry first.

use std::collections::BTreeMap;
use std::time::Instant;

pub(super) struct Entry {
    pub value: Vec<u8>,
    pub expires_at: Option<Instant>,
    /// The tick of its last use (a key of `Entries::by_use`).
    used: u64,
}

impl Entry {
    pub fn live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

pub(super) struct Entries {
    map: BTreeMap<String, Entry>,
    by_use: BTreeMap<u64, String>,
    tick: u64,
    /// At most this many entries (`None`: unbounded).
    max: Option<usize>,
    pub last_sweep: Instant,
}

impl Entries {
    pub fn new(max: Option<usize>) -> Self {
        Self {
            map: BTreeMap::new(),
            by_use: BTreeMap::new(),
            tick: 0,
            max: max.map(|m| m.max(1)),
            last_sweep: Instant::now(),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// The live value of `key`, marking it used; an expired entry is dropped.
    pub fn get(&mut self, key: &str, now: Instant) -> Option<Vec<u8>> {
        let live = self.map.get(key)?.live(now);
        if !live {
            self.remove(key);
            return None;
        }
        let tick = self.next_tick();
        let entry = self.map.get_mut(key)?;
        self.by_use.remove(&entry.used);
        entry.used = tick;
        self.by_use.insert(tick, key.to_string());
        Some(entry.value.clone())
    }

    /// Insert or replace `key`. When the cache is full, expired entries go
    /// first, then the least recently used ones. Returns how many entries
    /// were evicted while still live.
    pub fn insert(
        &mut self,
        key: &str,
        value: Vec<u8>,
        expires_at: Option<Instant>,
        now: Instant,
    ) -> usize {
        self.remove(key);
        let mut evicted = 0;
        if let Some(max) = self.max
            && self.map.len() >= max
        {
            self.retain_live(now);
            while self.map.len() >= max {
                let Some((_, oldest)) = self.by_use.pop_first() else {
                    break;
                };
                self.map.remove(&oldest);
                evicted += 1;
            }
        }
        let used = self.next_tick();
        self.by_use.insert(used, key.to_string());
        self.map.insert(
            key.to_string(),
            Entry {
                value,
                expires_at,
                used,
            },
        );
        evicted
    }

    /// Remove `key`; the entry, if there was one.
    pub fn remove(&mut self, key: &str) -> Option<Entry> {
        let entry = self.map.remove(key)?;
        self.by_use.remove(&entry.used);
        Some(entry)
    }

    /// The keys starting with `prefix`, in key order.
    pub fn keys_with_prefix(&self, prefix: &str) -> Vec<String> {
        self.map
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Drop every expired entry; how many were dropped.
    pub fn retain_live(&mut self, now: Instant) -> usize {
        let before = self.map.len();
        let by_use = &mut self.by_use;
        self.map.retain(|_, e| {
            let live = e.live(now);
            if !live {
                by_use.remove(&e.used);
            }
            live
        });
        self.last_sweep = now;
        before - self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_full_cache_drops_the_least_recently_used_entry() {
        let now = Instant::now();
        let mut e = Entries::new(Some(3));
        for k in ["a", "b", "c"] {
            assert_eq!(e.insert(k, k.as_bytes().to_vec(), None, now), 0);
        }
        // "a" is used, so "b" is now the least recently used.
        assert_eq!(e.get("a", now), Some(b"a".to_vec()));
        assert_eq!(e.insert("d", b"d".to_vec(), None, now), 1);
        assert_eq!(e.get("b", now), None);
        assert_eq!(e.len(), 3);
        // Replacing a key never evicts another.
        assert_eq!(e.insert("c", b"c2".to_vec(), None, now), 0);
        assert_eq!(e.get("c", now), Some(b"c2".to_vec()));
        assert_eq!(e.by_use.len(), e.map.len());
    }

    #[test]
    fn expired_entries_go_before_live_ones() {
        let now = Instant::now();
        let mut e = Entries::new(Some(2));
        e.insert("old", vec![1], Some(now + Duration::from_millis(1)), now);
        e.insert("keep", vec![2], None, now);
        let later = now + Duration::from_millis(5);
        assert_eq!(
            e.insert("new", vec![3], None, later),
            0,
            "the expired one made room"
        );
        assert_eq!(e.get("keep", later), Some(vec![2]));
        assert_eq!(e.by_use.len(), e.map.len());
    }
}
