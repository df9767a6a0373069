//! The package analyzers shared by scanhost's scanner plugins.
//!
//! Given a root filesystem, [`analyze`] finds the operating system (from
//! `os-release`) and the packages recorded in the package databases it
//! knows: dpkg's `status` and `status.d`, and apk's `installed`. It returns
//! an [`Inventory`]: plain data that a plugin turns into its report.
//!
//! # Design
//!
//! The analyzers never touch a filesystem directly. They read through the
//! [`Root`] trait, which offers four operations on root-relative paths:
//! `lstat`, `read_link`, `read` and `read_dir`. Two kinds of root exist:
//! [`DirRoot`], a directory read with `std::fs` (the host's root inside the
//! host-scanner's WASI sandbox, or a fixture directory in tests), and the
//! image scanner's in-memory view of a container image's merged layers.
//! A root never follows a symlink itself; the analyzers resolve every
//! symlink with [`resolve`], always inside the root: an absolute link
//! target is taken relative to the root, and `..` never climbs above it. A link that a container image
//! points at `/etc/passwd` therefore reads the image's file, never the file
//! of the machine that scans.
//!
//! Nothing here fails a whole scan. A database that cannot be read, a
//! stanza that cannot be parsed or a symlink loop becomes a line in
//! [`Inventory::warnings`] naming the file (and the line where it helps),
//! and everything else that was readable is still reported. A scanner that
//! found nothing to read reports an empty inventory, which is a correct
//! answer for an image without a package manager.
//!
//! Parsers hold whole files in memory and impose no limit on the length of
//! a line or a record: package databases of real images contain lines of
//! hundreds of kilobytes, and a limit that silently drops a package is
//! worse than the memory it saves. The plugin runtime caps a scan's memory.
//!
//! The source is laid out one concept per module: `root` (the trait, the
//! directory root and symlink resolution), `os_release`, `dpkg` (with its
//! control-file syntax in `dpkg::control`), `apk`, and `purl` (package URL
//! encoding). Each module's comment states the rules it applies.
//!
//! # Example
//!
//! ```no_run
//! use scanhost_analyzers::{DirRoot, analyze};
//!
//! let inventory = analyze(&DirRoot::new("/mnt/rootfs"));
//! if let Some(os) = &inventory.os {
//!     println!("{} {}", os.id, os.version_id);
//! }
//! for package in &inventory.packages {
//!     println!("{}", package.purl);
//! }
//! ```

mod apk;
mod dpkg;
mod os_release;
mod purl;
mod root;
mod walk;

#[cfg(test)]
mod memory_root;

pub use purl::Purl;
pub use root::{DirRoot, FileKind, Root, resolve};
pub use walk::{MAX_DEPTH, walk};

/// The operating system of a root filesystem, from its `os-release` file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OsInfo {
    /// `ID`, e.g. `debian`; never empty.
    pub id: String,
    /// `VERSION_ID`, e.g. `12`; empty when unknown.
    pub version_id: String,
    /// `PRETTY_NAME`, e.g. `Debian GNU/Linux 12 (bookworm)`; empty when
    /// the file has none.
    pub pretty_name: String,
}

/// One installed package, as its package database records it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Package {
    /// The package ecosystem as a purl type: `deb` or `apk`.
    pub ecosystem: String,
    /// The package name.
    pub name: String,
    /// The full version, including a Debian epoch (`1:4.13+dfsg1-1`).
    pub version: String,
    /// The package URL, e.g.
    /// `pkg:deb/debian/login@1:4.13%2Bdfsg1-1?arch=amd64&distro=debian-12&upstream=shadow`
    /// or `pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64&distro=3.20.3`. The
    /// namespace is the OS `ID` (`debian` or `alpine` when there is no OS).
    pub purl: String,
    /// The architecture the package was built for (`amd64`, `all`,
    /// `x86_64`), when the database records one.
    pub architecture: Option<String>,
    /// The source package it was built from (dpkg `Source`, apk origin).
    pub source_name: Option<String>,
    /// The version of the source package; `None` when there is no source
    /// name.
    pub source_version: Option<String>,
    /// Licenses as the package declares them: SPDX expressions or names.
    pub licenses: Vec<String>,
    /// The root-relative path of the database file the package was read
    /// from, as it was looked up (`var/lib/dpkg/status`,
    /// `lib/apk/db/installed`), even when a symlink led elsewhere.
    pub path: String,
}

/// Everything [`analyze`] found in a root filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inventory {
    /// The operating system; `None` when no `os-release` file names one.
    pub os: Option<OsInfo>,
    /// Installed packages: dpkg's first, then apk's, each in database
    /// order. No two share ecosystem, name and architecture (and, for apk,
    /// version).
    pub packages: Vec<Package>,
    /// Faults that were handled: unreadable files, malformed records,
    /// symlink loops. Each names the file involved.
    pub warnings: Vec<String>,
}

/// Finds the operating system and the installed packages of a root.
///
/// Never fails: whatever could not be read or parsed is reported in
/// [`Inventory::warnings`] and the rest is kept.
pub fn analyze(root: &dyn Root) -> Inventory {
    let mut warnings = Vec::new();

    // The OS comes first: it names the purl namespace and distro of every
    // package found afterwards.
    let os = os_release::detect(root, &mut warnings);

    let mut packages = dpkg::analyze(root, os.as_ref(), &mut warnings);
    packages.extend(apk::analyze(root, os.as_ref(), &mut warnings));

    Inventory {
        os,
        packages,
        warnings,
    }
}

/// Whether [`analyze`] may read the file at `path`, a root-relative path
/// such as `var/lib/dpkg/status`.
///
/// A scanner that cannot keep a whole root filesystem (the image scanner
/// reads layers as streams) keeps the files for which this is true. It
/// must therefore accept every path that `analyze` reads: `os-release` in
/// `etc` and `usr/lib`, `etc/debian_version`, dpkg's `status` and every
/// file directly in `status.d`, and apk's `installed` in `lib` and
/// `usr/lib`. A database reached only through a symlink to a path of
/// another name is not covered.
///
/// ```
/// use scanhost_analyzers::wanted;
///
/// assert!(wanted("var/lib/dpkg/status.d/libc6"));
/// assert!(!wanted("usr/bin/dpkg"));
/// ```
pub fn wanted(path: &str) -> bool {
    const FILES: [&str; 6] = [
        "etc/os-release",
        "usr/lib/os-release",
        "etc/debian_version",
        "var/lib/dpkg/status",
        "lib/apk/db/installed",
        "usr/lib/apk/db/installed",
    ];
    FILES.contains(&path)
        || path
            .strip_prefix("var/lib/dpkg/status.d/")
            .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::io;

    use super::*;
    use crate::memory_root::MemoryRoot;

    /// A root that records every path read through it.
    struct Recording {
        root: MemoryRoot,
        read: RefCell<Vec<String>>,
    }

    impl Root for Recording {
        fn lstat(&self, path: &str) -> io::Result<FileKind> {
            self.root.lstat(path)
        }

        fn read_link(&self, path: &str) -> io::Result<String> {
            self.root.read_link(path)
        }

        fn read(&self, path: &str) -> io::Result<Vec<u8>> {
            self.read.borrow_mut().push(path.to_string());
            self.root.read(path)
        }

        fn read_dir(&self, path: &str) -> io::Result<Vec<String>> {
            self.root.read_dir(path)
        }
    }

    // A path that `analyze` reads but `wanted` rejects would be dropped by
    // the image scanner, and its packages silently missing.
    #[test]
    fn wanted_accepts_every_path_analyze_reads() {
        let stanza = "Package: a\nStatus: install ok installed\nVersion: 1\n";
        let root = MemoryRoot::new()
            .file("etc/os-release", "ID=debian\n")
            .file("usr/lib/os-release", "ID=debian\n")
            .file("etc/debian_version", "12.7\n")
            .file("var/lib/dpkg/status", stanza)
            .file(
                "var/lib/dpkg/status.d/b",
                stanza.replace("Package: a", "Package: b"),
            )
            .file(
                "var/lib/dpkg/status.d/python3.11",
                stanza.replace("Package: a", "Package: c"),
            )
            .file("lib/apk/db/installed", "P:d\nV:1\n")
            .file("usr/lib/apk/db/installed", "P:e\nV:1\n");
        let recording = Recording {
            root,
            read: RefCell::new(Vec::new()),
        };
        let inventory = analyze(&recording);
        assert_eq!(inventory.packages.len(), 5, "{inventory:?}");

        let read = recording.read.into_inner();
        assert!(read.contains(&"etc/debian_version".to_string()), "{read:?}");
        for path in &read {
            assert!(wanted(path), "{path} is read but not wanted");
        }
    }

    #[test]
    fn wanted_rejects_everything_else() {
        for path in [
            "",
            "etc",
            "etc/passwd",
            "var/lib/dpkg",
            "var/lib/dpkg/status-old",
            "var/lib/dpkg/status.d",
            "var/lib/dpkg/status.d/",
            "var/lib/dpkg/status.d/sub/x",
            "var/lib/dpkg/info/libc6.list",
            "/etc/os-release",
            "usr/share/doc/os-release",
        ] {
            assert!(!wanted(path), "{path}");
        }
    }
}
