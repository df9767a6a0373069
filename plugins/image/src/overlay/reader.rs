//! Reading one layer's tar into the changes it makes.
//!
//! Each entry is taken for what it means to the overlay: a whiteout or
//! opaque marker, a directory, a symlink, a kept file (its bytes read), a
//! hard link (a copy of what is kept of its target), or a non-directory
//! that is not kept and only hides what is below it. Entries that cannot
//! be applied become warnings; only a tar that cannot be read is an error.
//!
//! Nothing is applied here, and the lower layers are not looked at: the
//! changes are the layer's alone, so that they can be kept and applied on
//! top of any layers. The caller merges them once the whole tar has been
//! read, resolving then the hard links to lower files.

use std::io::{self, Read};

use tar::{Entry, EntryType};

use super::entry_path::{self, Name};
use super::tree::{Changes, Content, Leaf, Lookup, not_kept_link};

/// The largest file whose bytes are kept. Package databases of real images
/// are a few MiB; a bigger file at a wanted path is not one.
pub(super) const MAX_KEPT_FILE: u64 = 64 << 20;

/// The most components an entry's path may have. Deeper entries are
/// skipped: no package database is that deep, and the limit bounds the
/// recursion over the tree.
const MAX_DEPTH: usize = 256;

/// The state of one layer being read: its entries are gathered into
/// `changes`.
pub(super) struct LayerReader {
    wanted: fn(&str) -> bool,
    changes: Changes,
    /// The path and the fault of each entry that could not be applied.
    warnings: Vec<(String, String)>,
}

impl LayerReader {
    pub(super) fn new(wanted: fn(&str) -> bool) -> Self {
        LayerReader {
            wanted,
            changes: Changes::default(),
            warnings: Vec::new(),
        }
    }

    /// The changes and the warnings of the entries read.
    pub(super) fn finish(self) -> (Changes, Vec<(String, String)>) {
        (self.changes, self.warnings)
    }

    fn warn(&mut self, path: &str, what: &str) {
        self.warnings.push((path.to_owned(), what.to_owned()));
    }

    /// Records one entry. Only a failure to read the tar is an error; an
    /// entry that cannot be applied is skipped with a warning.
    pub(super) fn entry<R: Read>(&mut self, entry: &mut Entry<'_, R>) -> io::Result<()> {
        let entry_type = entry.header().entry_type();
        // A PAX global header describes the archive, not a file.
        if entry_type == EntryType::XGlobalHeader {
            return Ok(());
        }

        // `path_bytes` gives the whole name: GNU long names and PAX `path`
        // records are already applied by the tar reader.
        let raw_path = match String::from_utf8(entry.path_bytes().into_owned()) {
            Ok(raw_path) => raw_path,
            Err(err) => {
                // No analyzer reads a path that is not UTF-8, and such a
                // name cannot replace or hide one that is.
                let lossy = String::from_utf8_lossy(err.as_bytes()).into_owned();
                self.warn(&lossy, "the path is not UTF-8; entry ignored");
                return Ok(());
            }
        };
        let Some(components) = entry_path::normalise(&raw_path) else {
            self.warn(&raw_path, "the path climbs out of the root; entry ignored");
            return Ok(());
        };
        if components.len() > MAX_DEPTH {
            let start: String = raw_path.chars().take(100).collect();
            let what = format!(
                "the path has {} components, more than {MAX_DEPTH}; entry ignored",
                components.len()
            );
            self.warn(&format!("{start}..."), &what);
            return Ok(());
        }
        let path = components.join("/");

        // Old (V7) tars mark a directory only by a trailing `/` on an
        // entry of type NUL, which the tar reader takes for a regular file.
        let entry_type = match entry_type {
            EntryType::Regular
                if entry.header().as_old().linkflag[0] == 0 && raw_path.ends_with('/') =>
            {
                EntryType::Directory
            }
            other => other,
        };

        let Some((name, parent)) = components.split_last() else {
            return self.root_entry(entry_type, &raw_path);
        };
        if parent.iter().any(|c| entry_path::is_marker(c)) {
            self.warn(&path, "inside a whiteout marker; entry ignored");
            return Ok(());
        }
        match entry_path::classify(name) {
            Name::Plain => {}
            Name::Whiteout(target) => {
                self.changes.whiteout(parent, target);
                return Ok(());
            }
            Name::Opaque => {
                self.changes.make_opaque(parent);
                return Ok(());
            }
            Name::Malformed => {
                self.warn(&path, "a malformed whiteout marker; ignored");
                return Ok(());
            }
        }

        let wanted = (self.wanted)(&path);
        match entry_type {
            EntryType::Directory => self.changes.add_dir(&components),
            EntryType::Symlink => {
                // The target is kept as written: it is resolved later, at
                // lookup, against the merged tree.
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                self.changes.put(&components, Leaf::Symlink(target));
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse if wanted => {
                let content = self.file_content(entry, &path)?;
                self.changes.put(&components, Leaf::File(content));
            }
            EntryType::Link => self.hard_link(entry, &components, &path, wanted),
            EntryType::Char | EntryType::Block | EntryType::Fifo if wanted => {
                self.changes.put(&components, Leaf::Other);
            }
            EntryType::Regular
            | EntryType::Continuous
            | EntryType::GNUSparse
            | EntryType::Char
            | EntryType::Block
            | EntryType::Fifo => self.changes.hide(&components),
            other => {
                let what = format!("an entry of type {other:?}, which is not a file; ignored");
                self.warn(&path, &what);
            }
        }
        Ok(())
    }

    /// An entry for the root itself (`./`).
    fn root_entry(&mut self, entry_type: EntryType, raw_path: &str) -> io::Result<()> {
        if entry_type.is_dir() {
            self.changes.add_dir(&[]);
        } else {
            self.warn(raw_path, "a non-directory at the root; entry ignored");
        }
        Ok(())
    }

    /// The bytes of a wanted regular file, or why they are not kept.
    fn file_content<R: Read>(
        &mut self,
        entry: &mut Entry<'_, R>,
        path: &str,
    ) -> io::Result<Content> {
        let size = entry.size();
        if size > MAX_KEPT_FILE {
            let what = format!(
                "{size} bytes, more than the {} MiB kept; its contents are not read",
                MAX_KEPT_FILE >> 20
            );
            self.warn(path, &what);
            return Ok(Content::NotKept(format!(
                "it has {size} bytes, more than {} MiB",
                MAX_KEPT_FILE >> 20
            )));
        }

        // `size` is at most MAX_KEPT_FILE, so it fits in a usize.
        let mut bytes = Vec::with_capacity(size as usize);
        entry.read_to_end(&mut bytes)?;
        if bytes.len() as u64 != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the tar ends inside the data of {path}"),
            ));
        }
        Ok(Content::Kept(bytes))
    }

    /// A hard link: at a wanted path, a copy of what is kept of its
    /// target, from this layer (earlier in the tar) or, once applied, a
    /// lower one; elsewhere, like any non-directory that is not kept.
    ///
    /// The target is looked up as this layer has it so far, else as the
    /// lower layers have it, without this layer's whiteouts: tar writers
    /// only link to an earlier entry of the same tar.
    fn hard_link<R: Read>(
        &mut self,
        entry: &Entry<'_, R>,
        components: &[&str],
        path: &str,
        wanted: bool,
    ) {
        let target_bytes = entry.link_name_bytes().unwrap_or_default();
        let target = String::from_utf8_lossy(&target_bytes).into_owned();
        let Some(target_components) = entry_path::normalise(&target) else {
            let what = format!("a hard link to {target}, which climbs out of the root; ignored");
            self.warn(path, &what);
            return;
        };
        if !wanted {
            self.changes.hide(components);
            return;
        }

        match self.changes.lookup(&target_components) {
            Lookup::Leaf(leaf) => {
                let leaf = leaf.clone();
                self.changes.put(components, leaf);
            }
            Lookup::Link(lower_target) => {
                let lower_target: Vec<String> = lower_target.to_vec();
                let lower_target: Vec<&str> = lower_target.iter().map(String::as_str).collect();
                self.changes.link_below(components, &lower_target);
            }
            Lookup::NotKept => self.changes.put(components, not_kept_link(&target)),
            Lookup::Absent if !target_components.is_empty() => {
                self.changes.link_below(components, &target_components);
            }
            Lookup::Dir | Lookup::Absent => {
                let what = format!("a hard link to the directory {target}; ignored");
                self.warn(path, &what);
            }
        }
    }
}
