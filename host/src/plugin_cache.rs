//! What plugins keep across scans: the host's side of the `cache` import.
//!
//! Values live in a redb database (the agent's workload database, or a
//! file of their own for `scanhost scan`), each under its plugin's scope
//! (name and component digest) and the key the plugin chose, so that a
//! rebuilt plugin never reads what an older build kept. The total size is
//! bounded: storing past it drops the least recently used values first.
//!
//! It is a cache: a failure to read or write is logged and taken as a
//! miss, and recency is written without waiting for the disk (a crash may
//! forget which values were used last, never a value). Each value is
//! stored with its SHA-256 and checked when read: a value changed on disk
//! is dropped and taken as a miss. The bound is on the values; the
//! database file reuses the space of evicted values, and may stay larger.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use sha2::{Digest, Sha256};

/// Values by scoped key, each after the 32 bytes of its SHA-256.
const VALUES: TableDefinition<&str, &[u8]> = TableDefinition::new("plugin_cache_values");
/// When each value was last used (a logical clock) and its size, by
/// scoped key: what opening the cache reads.
const INDEX: TableDefinition<&str, (u64, u64)> = TableDefinition::new("plugin_cache_index");

/// The longest key a plugin may use.
const MAX_KEY: usize = 1024;

/// The values plugins keep, bounded in size.
pub struct PluginCache {
    db: Arc<Database>,
    max_size: u64,
    index: Mutex<Index>,
}

/// What is kept, in memory: sizes and recency.
#[derive(Default)]
struct Index {
    clock: u64,
    size: u64,
    entries: HashMap<String, Entry>,
    /// Scoped keys by last use, oldest first.
    by_use: BTreeSet<(u64, String)>,
}

struct Entry {
    size: u64,
    used: u64,
}

/// One plugin's view of the cache: its name and component digest.
#[derive(Clone)]
pub struct Scope {
    cache: Arc<PluginCache>,
    prefix: String,
}

impl PluginCache {
    /// The cache in `db`, keeping at most `max_size` bytes of values.
    pub fn new(db: Arc<Database>, max_size: u64) -> Result<PluginCache, redb::Error> {
        let mut index = Index::default();
        let txn = db.begin_write()?;
        {
            let mut values = txn.open_table(VALUES)?;
            let mut used = txn.open_table(INDEX)?;
            for entry in used.iter()? {
                let (key, value) = entry?;
                let key = key.value().to_owned();
                let (last, size) = value.value();
                index.clock = index.clock.max(last);
                index.size += size;
                index.by_use.insert((last, key.clone()));
                index.entries.insert(key, Entry { size, used: last });
            }
            evict(&mut index, &mut values, &mut used, max_size)?;
        }
        txn.commit()?;
        Ok(PluginCache {
            db,
            max_size,
            index: Mutex::new(index),
        })
    }

    /// The cache in the database file at `path`, made when missing.
    pub fn open(path: &Path, max_size: u64) -> Result<PluginCache, redb::Error> {
        let db = Database::create(path)?;
        PluginCache::new(Arc::new(db), max_size)
    }

    /// The view of the plugin `name` whose component has `digest`.
    pub fn scope(self: &Arc<Self>, name: &str, digest: &str) -> Scope {
        Scope {
            cache: self.clone(),
            prefix: format!("{name}@{digest}\n"),
        }
    }

    /// The bytes of values kept.
    pub fn size(&self) -> u64 {
        self.lock().size
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, redb::Error> {
        let mut index = self.lock();
        let Some(size) = index.entries.get(key).map(|e| e.size) else {
            return Ok(None);
        };
        let stored = {
            let txn = self.db.begin_read()?;
            let values = txn.open_table(VALUES)?;
            values.get(key)?.map(|v| v.value().to_vec())
        };
        let value = stored.and_then(|stored| {
            let (sum, value) = stored.split_at_checked(32)?;
            (Sha256::digest(value).as_slice() == sum).then(|| value.to_vec())
        });
        let Some(value) = value else {
            tracing::warn!(key, "a cached value does not match its checksum; dropped");
            self.drop_entry(&mut index, key)?;
            return Ok(None);
        };
        let tick = index.touch(key);
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::None)
            .map_err(|err| redb::Error::Corrupted(err.to_string()))?;
        txn.open_table(INDEX)?.insert(key, (tick, size))?;
        txn.commit()?;
        Ok(Some(value))
    }

    fn drop_entry(&self, index: &mut Index, key: &str) -> Result<(), redb::Error> {
        let txn = self.db.begin_write()?;
        txn.open_table(VALUES)?.remove(key)?;
        txn.open_table(INDEX)?.remove(key)?;
        txn.commit()?;
        if let Some(entry) = index.entries.remove(key) {
            index.size -= entry.size;
            index.by_use.remove(&(entry.used, key.to_owned()));
        }
        Ok(())
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), redb::Error> {
        let size = value.len() as u64;
        if size > self.max_size {
            tracing::debug!(key, size, "value larger than the whole cache, not kept");
            return Ok(());
        }
        let mut index = self.lock();
        let txn = self.db.begin_write()?;
        {
            let mut values = txn.open_table(VALUES)?;
            let mut used = txn.open_table(INDEX)?;
            if let Some(old) = index.entries.remove(key) {
                index.size -= old.size;
                index.by_use.remove(&(old.used, key.to_owned()));
            }
            evict(&mut index, &mut values, &mut used, self.max_size - size)?;
            index.clock += 1;
            let tick = index.clock;
            let mut stored = Sha256::digest(value).to_vec();
            stored.extend_from_slice(value);
            values.insert(key, stored.as_slice())?;
            used.insert(key, (tick, size))?;
            index.size += size;
            index.by_use.insert((tick, key.to_owned()));
            index
                .entries
                .insert(key.to_owned(), Entry { size, used: tick });
        }
        txn.commit()?;
        Ok(())
    }
}

impl Index {
    /// Marks `key` used now; returns the tick.
    fn touch(&mut self, key: &str) -> u64 {
        self.clock += 1;
        let tick = self.clock;
        if let Some(entry) = self.entries.get_mut(key) {
            self.by_use.remove(&(entry.used, key.to_owned()));
            entry.used = tick;
            self.by_use.insert((tick, key.to_owned()));
        }
        tick
    }
}

/// Drops the least recently used values until at most `budget` bytes are
/// kept.
fn evict(
    index: &mut Index,
    values: &mut redb::Table<&str, &[u8]>,
    used: &mut redb::Table<&str, (u64, u64)>,
    budget: u64,
) -> Result<(), redb::Error> {
    while index.size > budget {
        let Some((_, key)) = index.by_use.pop_first() else {
            break;
        };
        values.remove(key.as_str())?;
        used.remove(key.as_str())?;
        if let Some(entry) = index.entries.remove(&key) {
            index.size -= entry.size;
        }
        tracing::debug!(key, "cache value evicted");
    }
    Ok(())
}

impl Scope {
    /// The value this plugin kept under `key`, if it is still there.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        if key.len() > MAX_KEY {
            return None;
        }
        let key = format!("{}{key}", self.prefix);
        let value = self.cache.get(&key).unwrap_or_else(|err| {
            tracing::warn!(key, "cannot read the plugin cache: {err}");
            None
        });
        tracing::debug!(key, hit = value.is_some(), "plugin cache");
        value
    }

    /// Keeps `value` under `key` for this plugin.
    pub fn set(&self, key: &str, value: &[u8]) {
        if key.len() > MAX_KEY {
            tracing::debug!("plugin cache key over {MAX_KEY} bytes ignored");
            return;
        }
        let key = format!("{}{key}", self.prefix);
        if let Err(err) = self.cache.set(&key, value) {
            tracing::warn!(key, "cannot write the plugin cache: {err}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path, max_size: u64) -> Arc<PluginCache> {
        Arc::new(PluginCache::open(&dir.join("cache.redb"), max_size).unwrap())
    }

    #[test]
    fn a_value_is_read_back_by_its_plugin_build_only() {
        let dir = tempfile::tempdir().unwrap();
        let cache = open(dir.path(), 1 << 20);
        let build = cache.scope("image-scanner", "sha256:aa");
        build.set("layer/sha256:11", b"changes");

        assert_eq!(
            build.get("layer/sha256:11").as_deref(),
            Some(&b"changes"[..])
        );
        assert_eq!(
            cache
                .scope("image-scanner", "sha256:bb")
                .get("layer/sha256:11"),
            None
        );
        assert_eq!(
            cache.scope("other", "sha256:aa").get("layer/sha256:11"),
            None
        );
        assert_eq!(build.get("layer/sha256:22"), None);
    }

    #[test]
    fn values_survive_a_reopen_and_the_least_recently_used_go_first() {
        let dir = tempfile::tempdir().unwrap();
        {
            let cache = open(dir.path(), 30);
            let scope = cache.scope("p", "sha256:aa");
            scope.set("a", &[1; 10]);
            scope.set("b", &[2; 10]);
            scope.set("c", &[3; 10]);
            // `a` is used: `b` is now the least recently used.
            assert!(scope.get("a").is_some());
        }
        let cache = open(dir.path(), 30);
        let scope = cache.scope("p", "sha256:aa");
        assert_eq!(cache.size(), 30);
        scope.set("d", &[4; 10]);

        assert_eq!(cache.size(), 30);
        assert_eq!(scope.get("b"), None);
        for kept in ["a", "c", "d"] {
            assert!(scope.get(kept).is_some(), "{kept} was evicted");
        }
    }

    #[test]
    fn a_value_larger_than_the_cache_is_not_kept_and_a_smaller_bound_evicts() {
        let dir = tempfile::tempdir().unwrap();
        {
            let cache = open(dir.path(), 100);
            let scope = cache.scope("p", "sha256:aa");
            scope.set("big", &[0; 101]);
            assert_eq!(scope.get("big"), None);
            scope.set("a", &[1; 40]);
            scope.set("b", &[2; 40]);
            // Replacing a value counts its new size only.
            scope.set("b", &[3; 50]);
            assert_eq!(cache.size(), 90);
        }
        let cache = open(dir.path(), 60);
        assert_eq!(cache.size(), 50);
        assert_eq!(cache.scope("p", "sha256:aa").get("b"), Some(vec![3; 50]));
    }

    // A value changed on disk is not handed to the plugin: it is dropped
    // and taken as a miss.
    #[test]
    fn a_value_changed_on_disk_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Database::create(dir.path().join("cache.redb")).unwrap());
        let cache = Arc::new(PluginCache::new(db.clone(), 1 << 20).unwrap());
        let scope = cache.scope("p", "sha256:aa");
        scope.set("layer", b"Package: base7");
        let key = "p@sha256:aa\nlayer";
        let txn = db.begin_write().unwrap();
        {
            let mut values = txn.open_table(VALUES).unwrap();
            let mut stored = values.get(key).unwrap().unwrap().value().to_vec();
            let at = stored.len() - 5;
            stored[at..].copy_from_slice(b"EVIL7");
            values.insert(key, stored.as_slice()).unwrap();
        }
        txn.commit().unwrap();

        assert_eq!(scope.get("layer"), None);
        assert_eq!(cache.size(), 0);
    }

    // A bound of 0 empties what a larger one kept.
    #[test]
    fn a_zero_bound_drops_every_value() {
        let dir = tempfile::tempdir().unwrap();
        open(dir.path(), 100)
            .scope("p", "sha256:aa")
            .set("a", &[1; 10]);
        assert_eq!(open(dir.path(), 0).size(), 0);
        assert_eq!(open(dir.path(), 100).scope("p", "sha256:aa").get("a"), None);
    }
}
