//! The on-disk cache of compiled components.
//!
//! Compiling a component with Cranelift takes far longer than loading the
//! native code it produces, so the compiled form is kept in a directory and
//! reused at the next start. An entry's name is the SHA-256 of the
//! component's bytes together with the engine's compatibility hash, so a
//! changed component or a different wasmtime build or configuration never
//! reads an old entry. Entries are written to a temporary file and renamed,
//! so a crash leaves either a whole entry or none. An entry is native code
//! that is run as it is: it starts with the SHA-256 of the rest, checked
//! before anything is loaded, so a damaged entry is compiled again rather
//! than run.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// A directory of compiled components.
pub struct CompileCache {
    dir: PathBuf,
}

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compiled {
    /// Read from the cache: no compilation happened.
    Cached,
    /// Compiled now (and stored, when the cache is writable).
    Fresh,
}

impl CompileCache {
    /// Uses `dir`, creating it when missing.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The compiled `bytes`, from the cache when an entry is there.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, Compiled)> {
        let entry = self.entry(engine, bytes);
        if let Ok(stored) = fs::read(&entry) {
            match checked(&stored) {
                // SAFETY: the code was written by `Component::serialize` of
                // an engine with the same compatibility hash (it is part of
                // the name), into a directory only this host writes, and is
                // whole: it matches the checksum written with it.
                Some(code) => match unsafe { Component::deserialize(engine, code) } {
                    Ok(component) => return Ok((component, Compiled::Cached)),
                    Err(err) => tracing::warn!(
                        path = %entry.display(),
                        "unreadable compilation cache entry, compiling again: {err}"
                    ),
                },
                None => tracing::warn!(
                    path = %entry.display(),
                    "damaged compilation cache entry (checksum), compiling again"
                ),
            }
        }

        let component = Component::new(engine, bytes)?;
        if let Err(err) = self.store(&entry, &component) {
            tracing::warn!(
                path = %entry.display(),
                "cannot write compilation cache entry: {err:#}"
            );
        }
        Ok((component, Compiled::Fresh))
    }

    fn entry(&self, engine: &Engine, bytes: &[u8]) -> PathBuf {
        let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
        engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let mut hasher = Sha256::new();
        hasher.update(engine_hash.finish().to_le_bytes());
        hasher.update(bytes);
        self.dir.join(format!("{:x}.cwasm", hasher.finalize()))
    }

    fn store(&self, entry: &Path, component: &Component) -> anyhow::Result<()> {
        let serialized = component.serialize()?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        tmp.write_all(&Sha256::digest(&serialized))?;
        tmp.write_all(&serialized)?;
        tmp.persist(entry)?;
        Ok(())
    }
}

/// The code of a stored entry, when it matches the checksum in front of it.
fn checked(stored: &[u8]) -> Option<&[u8]> {
    let (sum, code) = stored.split_at_checked(32)?;
    (Sha256::digest(code).as_slice() == sum).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A damaged entry must be compiled again, never run.
    #[test]
    fn a_damaged_entry_is_compiled_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(dir.path()).unwrap();
        let engine = Engine::default();
        let path = Path::new(env!("SCANHOST_TEST_PLUGINS")).join("testing_incompatible.wasm");
        let bytes = fs::read(path).unwrap();

        assert_eq!(
            cache.load_or_compile(&engine, &bytes).unwrap().1,
            Compiled::Fresh
        );
        assert_eq!(
            cache.load_or_compile(&engine, &bytes).unwrap().1,
            Compiled::Cached
        );
        let entry = cache.entry(&engine, &bytes);
        let mut stored = fs::read(&entry).unwrap();
        let middle = stored.len() / 2;
        stored[middle..middle + 64].fill(0xcc);
        fs::write(&entry, &stored).unwrap();

        assert_eq!(
            cache.load_or_compile(&engine, &bytes).unwrap().1,
            Compiled::Fresh
        );
        assert_eq!(
            cache.load_or_compile(&engine, &bytes).unwrap().1,
            Compiled::Cached
        );
    }
}
