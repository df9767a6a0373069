//! A depth-first walk of a whole [`Root`], for analyzers that look for
//! files wherever they are rather than at known paths (the packages of
//! language ecosystems: Python's `site-packages`, Node's `node_modules`).
//!
//! This module owns [`walk`] and nothing else: it lists what a root holds
//! and leaves the choice of what to read to the caller.
//!
//! The walk keeps to the tree as it is stored:
//! - symlinks are listed as [`FileKind::Symlink`] and never followed, so a
//!   link to a directory is not descended, a loop cannot hold the walk,
//!   and no file is listed twice under two names;
//! - the order is fixed: a directory comes before its entries, and the
//!   entries of a directory come sorted by name, each directory's subtree
//!   before its next sibling. Two walks of the same tree give the same
//!   sequence, so that whatever a caller keeps first is the same each time;
//! - a fault does not end the walk. A directory that cannot be listed, an
//!   entry that cannot be inspected, or a directory at the depth limit
//!   ([`MAX_DEPTH`]) whose entries are left out becomes a warning naming
//!   its path, and the walk goes on with the rest.
//!
//! Hosts have pseudo filesystems at the top of their root (`proc`, `sys`,
//! `dev`) which hold no packages and can be huge or even endless to list;
//! callers name them in `skip`.

use std::io;

use crate::root::{FileKind, Root};

/// How many directories deep the walk goes. A directory whose path has
/// this many components is visited, but its entries are not. Real package trees stay
/// far below it; a tree nested deeper is most likely made to exhaust the
/// scanner.
pub const MAX_DEPTH: usize = 64;

/// Walks `root` depth first and calls `visit` with the root-relative path
/// (`usr/lib/python3/dist-packages`) and kind of every entry, except the
/// root itself and the top-level entries named in `skip`. Returns the
/// faults it handled, each naming the path involved.
///
/// Symlinks are reported, not followed. Entries come in a fixed order: a
/// directory, then its entries sorted by name, each with its own subtree.
/// An entry that disappears between the listing of its directory and its
/// inspection (a file removed on a live host) is left out silently.
///
/// ```
/// use scanhost_analyzers::{DirRoot, FileKind, walk};
///
/// let dir = std::env::temp_dir().join("scanhost-walk-doc");
/// std::fs::create_dir_all(dir.join("usr/lib"))?;
/// std::fs::create_dir_all(dir.join("proc/1"))?;
///
/// let mut dirs = Vec::new();
/// let warnings = walk(&DirRoot::new(&dir), &["proc"], &mut |path, kind| {
///     if kind == FileKind::Dir {
///         dirs.push(path.to_string());
///     }
/// });
/// assert!(warnings.is_empty());
/// assert_eq!(dirs, ["usr", "usr/lib"]);
/// # std::fs::remove_dir_all(dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn walk(root: &dyn Root, skip: &[&str], visit: &mut dyn FnMut(&str, FileKind)) -> Vec<String> {
    let mut warnings = Vec::new();

    // The entries still to visit, with their kind and depth, the next one
    // on top. A directory's entries are pushed in reverse order when it is
    // visited, so that they come off sorted and before its siblings.
    let mut pending: Vec<(String, FileKind, usize)> = Vec::new();
    match list(root, "") {
        Ok(entries) => pending.extend(
            entries
                .into_iter()
                .rev()
                .filter(|(name, _)| !skip.contains(&name.as_str()))
                .map(|(name, kind)| (name, kind, 1)),
        ),
        Err(err) => warnings.push(format!("/: cannot list the root: {err}")),
    }

    while let Some((path, kind, depth)) = pending.pop() {
        visit(&path, kind);
        if kind != FileKind::Dir {
            continue;
        }

        if depth >= MAX_DEPTH {
            warnings.push(format!(
                "{path}: not listed, the walk stops {MAX_DEPTH} directories deep"
            ));
            continue;
        }
        match list(root, &path) {
            Ok(entries) => pending.extend(
                entries
                    .into_iter()
                    .rev()
                    .map(|(name, kind)| (format!("{path}/{name}"), kind, depth + 1)),
            ),
            Err(err) => warnings.push(format!("{path}: cannot list: {err}")),
        }
    }
    warnings
}

/// The entries of the directory at `path`, sorted by name.
fn list(root: &dyn Root, path: &str) -> io::Result<Vec<(String, FileKind)>> {
    let mut entries = root.entries(path)?;

    // The trait promises sorted names, but the order of the walk is what
    // makes scans reproducible: it is not left to each implementation.
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::memory_root::MemoryRoot;
    use crate::root::DirRoot;

    /// Every entry the walk visits, in order, as `path kind`.
    fn entries(root: &dyn Root, skip: &[&str]) -> (Vec<String>, Vec<String>) {
        let mut seen = Vec::new();
        let warnings = walk(root, skip, &mut |path, kind| {
            seen.push(format!("{path} {kind:?}"));
        });
        (seen, warnings)
    }

    #[test]
    fn directory_root_in_depth_first_sorted_order() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        fs::create_dir_all(base.join("usr/lib/python3/dist-packages")).unwrap();
        fs::create_dir_all(base.join("etc")).unwrap();
        fs::write(base.join("usr/lib/b"), "").unwrap();
        fs::write(base.join("usr/lib/a"), "").unwrap();
        fs::write(base.join("etc/hosts"), "").unwrap();
        fs::write(base.join("z"), "").unwrap();

        let (seen, warnings) = entries(&DirRoot::new(base), &[]);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            seen,
            [
                "etc Dir",
                "etc/hosts File",
                "usr Dir",
                "usr/lib Dir",
                "usr/lib/a File",
                "usr/lib/b File",
                "usr/lib/python3 Dir",
                "usr/lib/python3/dist-packages Dir",
                "z File",
            ]
        );
    }

    // A symlink to a directory (here a venv's `lib64 -> lib`, and a link
    // to the root itself) must be listed once and not descended: following
    // it would list the same files twice, or forever.
    #[test]
    fn symlinks_are_listed_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        fs::create_dir_all(base.join("venv/lib/site-packages")).unwrap();
        symlink("lib", base.join("venv/lib64")).unwrap();
        symlink("/", base.join("venv/root")).unwrap();
        symlink("nowhere", base.join("venv/dangling")).unwrap();

        let (seen, warnings) = entries(&DirRoot::new(base), &[]);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            seen,
            [
                "venv Dir",
                "venv/dangling Symlink",
                "venv/lib Dir",
                "venv/lib/site-packages Dir",
                "venv/lib64 Symlink",
                "venv/root Symlink",
            ]
        );
    }

    #[test]
    fn skipped_names_are_left_out_at_the_top_only() {
        let root = MemoryRoot::new()
            .file("proc/1/status", "x")
            .file("sys/kernel/x", "x")
            .dir("dev")
            .file("usr/proc", "x");
        let (seen, warnings) = entries(&root, &["proc", "sys", "dev"]);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(seen, ["usr Dir", "usr/proc File"]);
    }

    /// A root with faults: it refuses to list one directory, as a host
    /// refuses a directory its permissions close (which root, running the
    /// tests, would not see), and fails to inspect the paths given with
    /// an error of the given kind.
    struct Faulty {
        root: MemoryRoot,
        unlistable: Option<&'static str>,
        uninspectable: &'static [(&'static str, io::ErrorKind)],
    }

    impl Root for Faulty {
        fn lstat(&self, path: &str) -> io::Result<FileKind> {
            match self.uninspectable.iter().find(|(p, _)| *p == path) {
                Some((_, kind)) => Err((*kind).into()),
                None => self.root.lstat(path),
            }
        }

        fn read_link(&self, path: &str) -> io::Result<String> {
            self.root.read_link(path)
        }

        fn read(&self, path: &str) -> io::Result<Vec<u8>> {
            self.root.read(path)
        }

        fn read_dir(&self, path: &str) -> io::Result<Vec<String>> {
            if self.unlistable == Some(path) {
                return Err(io::ErrorKind::PermissionDenied.into());
            }
            self.root.read_dir(path)
        }
    }

    // A directory the walk may not read must not end it: the entries after
    // it are still visited and the warning names the directory.
    #[test]
    fn unreadable_directory_is_a_warning_and_the_walk_goes_on() {
        let root = Faulty {
            root: MemoryRoot::new()
                .file("a/locked/secret", "x")
                .file("a/open", "x")
                .file("b", "x"),
            unlistable: Some("a/locked"),
            uninspectable: &[],
        };
        let (seen, warnings) = entries(&root, &[]);
        assert_eq!(seen, ["a Dir", "a/locked Dir", "a/open File", "b File"]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("a/locked: cannot list: "),
            "{warnings:?}"
        );
    }

    // A file removed between the listing and the lstat (a live host) is no
    // fault; an entry that cannot be inspected is one: its directory is
    // reported as unlistable and the walk goes on.
    #[test]
    fn vanished_entry_is_silent_and_uninspectable_one_a_warning() {
        let vanished = Faulty {
            root: MemoryRoot::new().file("d/a", "x").file("d/c", "x"),
            unlistable: None,
            uninspectable: &[("d/a", io::ErrorKind::NotFound)],
        };
        let (seen, warnings) = entries(&vanished, &[]);
        assert_eq!(seen, ["d Dir", "d/c File"]);
        assert!(warnings.is_empty(), "{warnings:?}");

        let uninspectable = Faulty {
            root: MemoryRoot::new().file("d/b", "x").file("e", "x"),
            unlistable: None,
            uninspectable: &[("d/b", io::ErrorKind::PermissionDenied)],
        };
        let (seen, warnings) = entries(&uninspectable, &[]);
        assert_eq!(seen, ["d Dir", "e File"]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("d: cannot list: "), "{warnings:?}");
    }

    #[test]
    fn unreadable_root_is_a_warning() {
        let root = DirRoot::new("/nonexistent/scanhost-walk");
        let (seen, warnings) = entries(&root, &[]);
        assert!(seen.is_empty());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("/: cannot list the root"),
            "{warnings:?}"
        );
    }

    // A tree nested deeper than MAX_DEPTH must end with one warning naming
    // the deepest directory, not recurse without bound.
    #[test]
    fn directories_beyond_the_depth_limit_are_not_read() {
        let deepest: Vec<String> = (1..=MAX_DEPTH + 2).map(|i| format!("d{i}")).collect();
        let root = MemoryRoot::new().file(&format!("{}/file", deepest.join("/")), "x");

        let (seen, warnings) = entries(&root, &[]);
        assert_eq!(seen.len(), MAX_DEPTH);
        assert_eq!(
            seen.last().unwrap(),
            &format!("{} Dir", deepest[..MAX_DEPTH].join("/"))
        );
        assert_eq!(
            warnings,
            [format!(
                "{}: not listed, the walk stops {MAX_DEPTH} directories deep",
                deepest[..MAX_DEPTH].join("/")
            )]
        );
    }

    #[test]
    fn memory_root_gives_the_same_order_as_a_directory() {
        let root = MemoryRoot::new()
            .file("usr/lib/b", "x")
            .file("usr/lib/a", "x")
            .link("lib", "usr/lib")
            .dir("etc");
        let (seen, warnings) = entries(&root, &[]);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            seen,
            [
                "etc Dir",
                "lib Symlink",
                "usr Dir",
                "usr/lib Dir",
                "usr/lib/a File",
                "usr/lib/b File",
            ]
        );
    }
}
