//! Symlinks in a root filesystem on disk, read through `DirRoot`.
//!
//! Each test builds a small root in a temporary directory. Where a link
//! would lead to a different file when followed by the machine that scans
//! (an absolute target, `..` past the root), the root's own file holds a
//! value the machine's cannot, so reading the wrong one fails the test.

#![cfg(unix)]

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::symlink;
use std::path::Path;

use scanhost_analyzers::{DirRoot, FileKind, Root, analyze, resolve};
use tempfile::TempDir;

const OS_RELEASE: &str = "ID=scanhost-test\nVERSION_ID=\"1.2\"\nPRETTY_NAME=\"Test OS\"\n";
const APK_DB: &str = "P:musl\nV:1.2.5-r0\nA:x86_64\nL:MIT\no:musl\n";

/// Writes `contents` at `path` below `root`, creating its directories.
fn write(root: &Path, path: &str, contents: &str) {
    let path = root.join(path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
}

/// Creates the symlink `path` below `root`, pointing at `target`.
fn link(root: &Path, path: &str, target: &str) {
    let path = root.join(path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    symlink(target, path).unwrap();
}

fn os_id(dir: &TempDir) -> Option<String> {
    analyze(&DirRoot::new(dir.path())).os.map(|os| os.id)
}

#[test]
fn relative_os_release_link() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "usr/lib/os-release", OS_RELEASE);
    link(dir.path(), "etc/os-release", "../usr/lib/os-release");

    let inventory = analyze(&DirRoot::new(dir.path()));
    let os = inventory.os.unwrap();
    assert_eq!(
        (
            os.id.as_str(),
            os.version_id.as_str(),
            os.pretty_name.as_str()
        ),
        ("scanhost-test", "1.2", "Test OS")
    );
    assert!(inventory.warnings.is_empty(), "{:?}", inventory.warnings);
}

// etc/os-release -> /usr/lib/os-release must read the root's file, not the
// scanning machine's /usr/lib/os-release.
#[test]
fn absolute_os_release_link_stays_in_the_root() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "usr/lib/os-release", OS_RELEASE);
    link(dir.path(), "etc/os-release", "/usr/lib/os-release");

    assert_eq!(os_id(&dir).as_deref(), Some("scanhost-test"));
}

// A link climbing out with ../../.. must land at the root's top, not in
// the scanning machine's directories above the root.
#[test]
fn dotdot_link_stays_in_the_root() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "usr/lib/os-release-real", OS_RELEASE);
    link(
        dir.path(),
        "etc/os-release",
        "../../../../../../../../../../usr/lib/os-release-real",
    );

    assert_eq!(os_id(&dir).as_deref(), Some("scanhost-test"));
}

// A link to /../../../etc/passwd must name the root's etc/passwd.
#[test]
fn absolute_dotdot_link_reads_the_roots_file() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "etc/passwd", "inside the root\n");
    link(dir.path(), "var/passwd-link", "/../../../etc/passwd");

    let root = DirRoot::new(dir.path());
    let resolved = resolve(&root, "var/passwd-link").unwrap();
    assert_eq!(resolved, "etc/passwd");
    assert_eq!(root.read(&resolved).unwrap(), b"inside the root\n");
}

// Merged /usr with lib -> usr/lib: the apk database is reachable twice and
// must be read once.
#[test]
fn merged_usr_apk_database_is_read_once() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "usr/lib/apk/db/installed", APK_DB);
    link(dir.path(), "lib", "usr/lib");

    let inventory = analyze(&DirRoot::new(dir.path()));
    assert_eq!(inventory.packages.len(), 1, "{:?}", inventory.packages);
    assert_eq!(inventory.packages[0].name, "musl");
    assert_eq!(inventory.packages[0].path, "lib/apk/db/installed");
    assert!(inventory.warnings.is_empty(), "{:?}", inventory.warnings);
}

// The same with an absolute lib -> /usr/lib link.
#[test]
fn merged_usr_with_absolute_link_is_read_once() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "usr/lib/apk/db/installed", APK_DB);
    link(dir.path(), "lib", "/usr/lib");

    let inventory = analyze(&DirRoot::new(dir.path()));
    assert_eq!(inventory.packages.len(), 1, "{:?}", inventory.packages);
}

// A symlink loop must become a warning naming the path, not a hang or a
// failed scan; the other os-release file is still used.
#[test]
fn loop_is_a_warning() {
    let dir = TempDir::new().unwrap();
    link(dir.path(), "etc/os-release", "os-release-2");
    link(dir.path(), "etc/os-release-2", "/etc/os-release");
    write(dir.path(), "usr/lib/os-release", OS_RELEASE);

    let root = DirRoot::new(dir.path());
    let err = resolve(&root, "etc/os-release").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("etc/os-release"), "{err}");

    let inventory = analyze(&root);
    assert_eq!(inventory.os.unwrap().id, "scanhost-test");
    assert_eq!(inventory.warnings.len(), 1, "{:?}", inventory.warnings);
    assert!(inventory.warnings[0].starts_with("etc/os-release: "));
}

#[test]
fn symlinked_dpkg_directory() {
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "opt/dpkg/status",
        "Package: a\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n",
    );
    link(dir.path(), "var/lib/dpkg", "/opt/dpkg");

    let inventory = analyze(&DirRoot::new(dir.path()));
    assert_eq!(inventory.packages.len(), 1);
    assert_eq!(inventory.packages[0].path, "var/lib/dpkg/status");
}

#[test]
fn dangling_links_are_no_database() {
    let dir = TempDir::new().unwrap();
    link(dir.path(), "lib/apk/db/installed", "/nowhere");
    link(dir.path(), "etc/os-release", "../nowhere");

    let inventory = analyze(&DirRoot::new(dir.path()));
    assert_eq!(inventory, Default::default());
}

#[test]
fn dir_root_never_follows_links_itself() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "usr/lib/os-release", OS_RELEASE);
    link(dir.path(), "lib", "usr/lib");
    link(dir.path(), "etc/os-release", "../usr/lib/os-release");
    let root = DirRoot::new(dir.path());

    assert_eq!(root.lstat("etc/os-release").unwrap(), FileKind::Symlink);
    assert_eq!(root.lstat("lib").unwrap(), FileKind::Symlink);
    assert_eq!(root.lstat("usr").unwrap(), FileKind::Dir);
    assert_eq!(root.lstat("usr/lib/os-release").unwrap(), FileKind::File);
    assert_eq!(root.lstat("").unwrap(), FileKind::Dir);
    assert_eq!(root.read_link("lib").unwrap(), "usr/lib");

    // Unresolved paths are refused instead of followed.
    assert_eq!(
        root.read("etc/os-release").unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        root.read("lib/os-release").unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        root.lstat("lib/os-release").unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        root.read_dir("lib").unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        root.read("../etc/passwd").unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        root.read("usr/lib/os-release/x").unwrap_err().kind(),
        ErrorKind::NotADirectory
    );
    assert_eq!(
        root.read("usr/missing").unwrap_err().kind(),
        ErrorKind::NotFound
    );

    assert_eq!(
        root.read("usr/lib/os-release").unwrap(),
        OS_RELEASE.as_bytes()
    );
    assert_eq!(root.read_dir("").unwrap(), ["etc", "lib", "usr"]);
}
