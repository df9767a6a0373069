//! Read-only access to a root filesystem, and symlink resolution inside it.
//!
//! This module owns the [`Root`] trait, its directory-backed implementation
//! [`DirRoot`], and [`resolve`], the only place where symlinks are followed.
//! It does not know about any package database.
//!
//! Paths are root-relative strings: components separated by `/`, no
//! leading `/`, and `""` for the root itself. A [`Root`] never follows a
//! symlink on its own; [`resolve`] walks a path one component at a time,
//! asking the root what each component is, and substitutes link targets
//! itself. Its invariant: the path it returns names no symlink and no `..`,
//! so reading it cannot leave the root whatever the links said.

use std::fs;
use std::io;
use std::path::PathBuf;

/// How many symlinks [`resolve`] follows for one path before it gives up,
/// the same limit as Linux's path lookup. It also ends symlink loops.
const MAX_LINKS: usize = 40;

/// What a path names, without following a final symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// Anything else: a device, a fifo, a socket.
    Other,
}

/// Read-only access to a root filesystem.
///
/// Paths are root-relative, `/`-separated, without a leading `/`; `""` is
/// the root. Implementations answer for the path as given and never follow
/// symlinks: callers resolve paths with [`resolve`] first, so `read` and
/// `read_dir` receive paths without symlinks in them. Errors need not name
/// the path, since callers know it.
pub trait Root {
    /// What `path` is. A final symlink is reported, not followed.
    fn lstat(&self, path: &str) -> io::Result<FileKind>;

    /// The target of the symlink at `path`, exactly as stored: absolute
    /// targets start with `/` and are meant relative to the root.
    fn read_link(&self, path: &str) -> io::Result<String>;

    /// The contents of the regular file at `path`.
    fn read(&self, path: &str) -> io::Result<Vec<u8>>;

    /// The names of the entries of the directory at `path`, sorted, without
    /// `.` and `..`.
    fn read_dir(&self, path: &str) -> io::Result<Vec<String>>;

    /// The entries of the directory at `path` with what each is, sorted by
    /// name. An implementation that learns the kinds from the listing
    /// itself overrides this, which spares a walk one `lstat` per entry.
    /// An entry that vanishes between the listing and its `lstat` is left
    /// out.
    fn entries(&self, path: &str) -> io::Result<Vec<(String, FileKind)>> {
        let mut entries = Vec::new();
        for name in self.read_dir(path)? {
            let full = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}/{name}")
            };
            match self.lstat(&full) {
                Ok(kind) => entries.push((name, kind)),
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
        Ok(entries)
    }
}

fn kind_of(file_type: fs::FileType) -> FileKind {
    if file_type.is_symlink() {
        FileKind::Symlink
    } else if file_type.is_dir() {
        FileKind::Dir
    } else if file_type.is_file() {
        FileKind::File
    } else {
        FileKind::Other
    }
}

/// A [`Root`] backed by a directory, read with `std::fs`.
///
/// Every operation checks that the directories on the way to `path` are
/// real directories, not symlinks, before it touches `path`, and inspects
/// `path` itself with `symlink_metadata`, so that an unresolved path given
/// by mistake fails instead of following a link out of the base directory.
/// Paths containing `..` are refused for the same reason.
///
/// ```no_run
/// use scanhost_analyzers::{DirRoot, Root, resolve};
///
/// let root = DirRoot::new("/mnt/rootfs");
/// let path = resolve(&root, "etc/os-release")?;
/// let bytes = root.read(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirRoot {
    /// The directory that is the root. It may itself be reached through a
    /// symlink; only paths below it are checked.
    base: PathBuf,
}

impl DirRoot {
    /// A root at `base`, e.g. `/` inside the host-scanner's sandbox or a
    /// fixture directory in tests.
    pub fn new(base: impl Into<PathBuf>) -> Self {
        DirRoot { base: base.into() }
    }

    /// The host path for `path`, after checking that no directory on the
    /// way is a symlink and that `path` has no `..` component.
    fn host_path(&self, path: &str) -> io::Result<PathBuf> {
        let mut host = self.base.clone();
        let mut components = components(path).peekable();
        while let Some(name) = components.next() {
            if name == ".." {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{path}: `..` in a root path"),
                ));
            }
            host.push(name);
            if components.peek().is_none() {
                break;
            }

            let file_type = fs::symlink_metadata(&host)?.file_type();
            if file_type.is_symlink() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{path}: a directory on the way is a symlink"),
                ));
            }
            if !file_type.is_dir() {
                return Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    format!("{path}: a component on the way is not a directory"),
                ));
            }
        }
        Ok(host)
    }
}

impl Root for DirRoot {
    fn lstat(&self, path: &str) -> io::Result<FileKind> {
        Ok(kind_of(
            fs::symlink_metadata(self.host_path(path)?)?.file_type(),
        ))
    }

    fn read_link(&self, path: &str) -> io::Result<String> {
        let target = fs::read_link(self.host_path(path)?)?;
        target.into_os_string().into_string().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{path}: symlink target is not UTF-8"),
            )
        })
    }

    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        let host = self.host_path(path)?;

        // `fs::read` follows a final symlink; refuse one instead. And only
        // a regular file is opened: opening a FIFO would block the scan in
        // a system call, where no deadline reaches it.
        let file_type = fs::symlink_metadata(&host)?.file_type();
        if file_type.is_symlink() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{path}: is a symlink, resolve it first"),
            ));
        }
        if !file_type.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{path}: not a regular file"),
            ));
        }
        fs::read(host)
    }

    fn read_dir(&self, path: &str) -> io::Result<Vec<String>> {
        Ok(self
            .entries(path)?
            .into_iter()
            .map(|(name, _)| name)
            .collect())
    }

    fn entries(&self, path: &str) -> io::Result<Vec<(String, FileKind)>> {
        let host = self.host_path(path)?;
        if fs::symlink_metadata(&host)?.file_type().is_symlink() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{path}: is a symlink, resolve it first"),
            ));
        }

        // A name that is not UTF-8 cannot be passed back as a root path,
        // so it is left out; no package database uses one. The kind comes
        // with the listing (no `stat` per entry).
        let mut entries = Vec::new();
        for entry in fs::read_dir(host)? {
            let entry = entry?;
            if let Ok(name) = entry.file_name().into_string() {
                entries.push((name, kind_of(entry.file_type()?)));
            }
        }
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(entries)
    }
}

/// Resolves every symlink in `path` inside `root` and returns the resulting
/// root-relative path, which names no symlink.
///
/// The lookup works like the kernel's with `root` as the process root: an
/// absolute link target starts again from the root, `..` goes to the parent
/// directory and stays at the root when it is already there. The final
/// component must exist. Following more than 40 links (a loop does that)
/// fails with [`io::ErrorKind::InvalidInput`]; a file used as a directory
/// fails with [`io::ErrorKind::NotADirectory`]; errors of the root pass
/// through.
///
/// ```no_run
/// use scanhost_analyzers::{DirRoot, resolve};
///
/// // With etc/os-release -> /usr/lib/os-release inside the root:
/// let root = DirRoot::new("/mnt/rootfs");
/// assert_eq!(resolve(&root, "etc/os-release")?, "usr/lib/os-release");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn resolve(root: &dyn Root, path: &str) -> io::Result<String> {
    // `resolved` holds the components found so far, each a directory (or,
    // last, the final file) and none a symlink. `pending` is a stack of the
    // components still to walk, the next one on top.
    let mut resolved: Vec<String> = Vec::new();
    let mut pending: Vec<String> = components(path).rev().map(String::from).collect();
    let mut links = 0;

    while let Some(name) = pending.pop() {
        if name == ".." {
            resolved.pop();
            continue;
        }

        resolved.push(name);
        let current = resolved.join("/");
        match root.lstat(&current)? {
            FileKind::Symlink => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "{path}: more than {MAX_LINKS} symlinks to follow \
                             (a loop?), the last at {current}"
                        ),
                    ));
                }
                let target = root.read_link(&current)?;
                if target.is_empty() {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("{path}: the symlink at {current} is empty"),
                    ));
                }

                resolved.pop();
                if target.starts_with('/') {
                    resolved.clear();
                }
                pending.extend(components(&target).rev().map(String::from));
            }
            FileKind::Dir => {}
            FileKind::File | FileKind::Other => {
                if !pending.is_empty() {
                    return Err(io::Error::new(
                        io::ErrorKind::NotADirectory,
                        format!("{path}: {current} is not a directory"),
                    ));
                }
            }
        }
    }

    Ok(resolved.join("/"))
}

/// Reads the file at `path` through [`resolve`].
///
/// Returns the resolved path with the bytes, or `Ok(None)` when there is no
/// such file: the path or a directory on the way is missing, or a
/// directory on the way is a file. Any other failure is an error for the
/// caller to report.
pub(crate) fn read_if_present(
    root: &dyn Root,
    path: &str,
) -> io::Result<Option<(String, Vec<u8>)>> {
    let resolved = match resolve(root, path) {
        Ok(resolved) => resolved,
        Err(err) if is_absent(&err) => return Ok(None),
        Err(err) => return Err(err),
    };
    match root.read(&resolved) {
        Ok(bytes) => Ok(Some((resolved, bytes))),
        Err(err) if is_absent(&err) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Whether an I/O error means "there is no such file" rather than a fault.
pub(crate) fn is_absent(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// The components of a root-relative path, without empty ones and `.`; a
/// leading `/` is accepted and means the root.
fn components(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory_root::MemoryRoot;

    #[test]
    fn plain_path_resolves_to_itself() {
        let root = MemoryRoot::new().file("etc/os-release", "ID=x\n");
        assert_eq!(resolve(&root, "etc/os-release").unwrap(), "etc/os-release");
        assert_eq!(
            resolve(&root, "/etc/./os-release").unwrap(),
            "etc/os-release"
        );
        assert_eq!(resolve(&root, "").unwrap(), "");
    }

    #[test]
    fn relative_and_absolute_targets() {
        let root = MemoryRoot::new()
            .file("usr/lib/os-release", "ID=x\n")
            .link("etc/os-release", "../usr/lib/os-release")
            .link("etc/absolute", "/usr/lib/os-release");
        assert_eq!(
            resolve(&root, "etc/os-release").unwrap(),
            "usr/lib/os-release"
        );
        assert_eq!(
            resolve(&root, "etc/absolute").unwrap(),
            "usr/lib/os-release"
        );
    }

    #[test]
    fn directory_symlink_in_the_middle() {
        let root = MemoryRoot::new()
            .file("usr/lib/apk/db/installed", "P:x\n")
            .link("lib", "usr/lib");
        assert_eq!(
            resolve(&root, "lib/apk/db/installed").unwrap(),
            "usr/lib/apk/db/installed"
        );
    }

    // A target climbing with `..` past the root must stop at the root, not
    // reach the scanning machine's files.
    #[test]
    fn dotdot_stops_at_the_root() {
        let root = MemoryRoot::new()
            .file("etc/passwd", "root:x:0:0\n")
            .link("a/b/escape", "../../../../../etc/passwd")
            .link("a/abs", "/../../../etc/passwd");
        assert_eq!(resolve(&root, "a/b/escape").unwrap(), "etc/passwd");
        assert_eq!(resolve(&root, "a/abs").unwrap(), "etc/passwd");
        assert_eq!(resolve(&root, "../../etc/passwd").unwrap(), "etc/passwd");
    }

    #[test]
    fn chain_of_links() {
        let root = MemoryRoot::new()
            .file("target", "x")
            .link("l3", "target")
            .link("l2", "/l3")
            .link("l1", "./l2");
        assert_eq!(resolve(&root, "l1").unwrap(), "target");
    }

    #[test]
    fn loop_is_an_error_naming_the_path() {
        let root = MemoryRoot::new().link("a", "b").link("b", "/a");
        let err = resolve(&root, "a").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("a:"), "{err}");
    }

    #[test]
    fn forty_links_are_followed_but_not_forty_one() {
        let mut root = MemoryRoot::new().file("end", "x");
        for i in 0..41 {
            let next = if i == 0 {
                "end".to_string()
            } else {
                format!("l{}", i - 1)
            };
            root = root.link(&format!("l{i}"), &next);
        }
        assert_eq!(resolve(&root, "l39").unwrap(), "end");
        let err = resolve(&root, "l40").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn missing_paths_and_files_used_as_directories() {
        let root = MemoryRoot::new()
            .file("etc/hosts", "x")
            .link("dangling", "nowhere")
            .link("empty", "");
        let kind = |path| resolve(&root, path).unwrap_err().kind();
        assert_eq!(kind("etc/missing"), io::ErrorKind::NotFound);
        assert_eq!(kind("dangling"), io::ErrorKind::NotFound);
        assert_eq!(kind("empty"), io::ErrorKind::NotFound);
        assert_eq!(kind("etc/hosts/x"), io::ErrorKind::NotADirectory);
    }

    #[test]
    fn read_if_present_treats_missing_as_none() {
        let root = MemoryRoot::new()
            .file("lib", "not a directory")
            .file("usr/lib/os-release", "ID=x\n")
            .link("etc/os-release", "../usr/lib/os-release");
        assert_eq!(read_if_present(&root, "nothing").unwrap(), None);
        assert_eq!(
            read_if_present(&root, "lib/apk/db/installed").unwrap(),
            None
        );
        assert_eq!(
            read_if_present(&root, "etc/os-release").unwrap(),
            Some(("usr/lib/os-release".to_string(), b"ID=x\n".to_vec()))
        );
    }
}
