//! SBOM documents on disk: one file per workload in the output directory.
//!
//! A document is written to a temporary file in the same directory and
//! renamed over the old one, so a reader (or a crash) never sees half a
//! document. The store is written first: a document on disk always has its
//! status in the store, and at start the directory is brought in line with
//! the store (missing documents written, stale ones removed).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::store::Store;
use crate::workload::WorkloadId;

/// The suffix of every document file.
const SUFFIX: &str = ".cdx.json";

/// The prefix of a document being written; one left by a crash is removed
/// at the next start.
const PARTIAL: &str = ".partial-";

pub struct Outputs {
    dir: PathBuf,
}

impl Outputs {
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create output directory {}", dir.display()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The file of workload `id`: its id with `:` made `-`, e.g.
    /// `sha256-1f2e....cdx.json` or `host.cdx.json`.
    pub fn path(&self, id: &WorkloadId) -> PathBuf {
        let name: String =
            id.0.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
        self.dir.join(format!("{name}{SUFFIX}"))
    }

    /// Writes the document of `id` atomically.
    pub fn write(&self, id: &WorkloadId, document: &[u8]) -> anyhow::Result<()> {
        let path = self.path(id);
        let write = || -> std::io::Result<()> {
            let mut tmp = tempfile::Builder::new()
                .prefix(PARTIAL)
                .tempfile_in(&self.dir)?;
            tmp.write_all(document)?;
            tmp.as_file().sync_all()?;
            tmp.persist(&path)?;
            Ok(())
        };
        write().with_context(|| format!("cannot write {}", path.display()))
    }

    pub fn remove(&self, id: &WorkloadId) -> anyhow::Result<()> {
        let path = self.path(id);
        match std::fs::remove_file(&path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                Err(err).with_context(|| format!("cannot remove {}", path.display()))
            }
            _ => Ok(()),
        }
    }

    /// Makes the directory hold exactly the documents of `store`, and
    /// removes documents a crash left half written.
    pub fn reconcile(&self, store: &Store) -> anyhow::Result<()> {
        let mut expected = std::collections::HashSet::new();
        for workload in store.list() {
            let path = self.path(&workload.id);
            if let Some(document) = store.document(&workload.id)? {
                // A crash between the store and the file leaves an older
                // file, or none.
                if std::fs::read(&path).ok().as_deref() != Some(document.as_slice()) {
                    self.write(&workload.id, &document)?;
                }
                expected.insert(path);
            }
        }
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let ours = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(SUFFIX) || n.starts_with(PARTIAL));
            if ours && !expected.contains(&path) {
                std::fs::remove_file(&path)
                    .with_context(|| format!("cannot remove {}", path.display()))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{Kind, Origin};

    // A crash while a document is written leaves its temporary file: the
    // next start removes it, and leaves files that are not scanhost's.
    #[test]
    fn reconcile_removes_what_a_crash_left_half_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("workloads.redb")).unwrap();
        let id = WorkloadId("host".into());
        let origin = Origin::Host { root: "/".into() };
        store
            .set_reference(&id, Kind::Host, "host", origin)
            .unwrap();
        let outputs = Outputs::open(&dir.path().join("sboms")).unwrap();
        let partial = dir.path().join("sboms/.partial-Ab12Cd");
        let foreign = dir.path().join("sboms/notes.txt");
        std::fs::write(&partial, b"{\"bomFormat\": \"Cyclo").unwrap();
        std::fs::write(&foreign, b"kept").unwrap();

        outputs.reconcile(&store).unwrap();

        assert!(!partial.exists());
        assert!(foreign.exists());
    }
}
