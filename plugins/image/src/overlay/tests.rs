//! Layers built with the `tar` crate's writer, applied through a reader
//! that allows forward relative seeks only, as the plugin's does.

use std::fmt;
use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::path::PathBuf;

use tar::{EntryType, Header};

use super::reader::MAX_KEPT_FILE;
use super::*;

/// The test's `wanted`: every path without `junk` in it.
fn wanted(path: &str) -> bool {
    !path.contains("junk")
}

/// A reader over bytes that panics on any seek but a forward relative one.
struct ForwardOnly(Cursor<Vec<u8>>);

impl Read for ForwardOnly {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Seek for ForwardOnly {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        match pos {
            SeekFrom::Current(n) if n >= 0 => self.0.seek(pos),
            other => panic!("{other:?}: only forward relative seeks are allowed"),
        }
    }
}

/// A layer tar under construction.
struct Layer(tar::Builder<Vec<u8>>);

fn header(entry_type: EntryType, size: u64) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(entry_type);
    header.set_size(size);
    header.set_mode(if entry_type.is_dir() { 0o755 } else { 0o644 });
    header
}

impl Layer {
    fn new() -> Self {
        Layer(tar::Builder::new(Vec::new()))
    }

    /// A regular file; a path over 100 bytes gets a GNU long-name entry.
    fn file(mut self, path: &str, contents: impl AsRef<[u8]>) -> Self {
        let contents = contents.as_ref();
        let mut header = header(EntryType::Regular, contents.len() as u64);
        self.0.append_data(&mut header, path, contents).unwrap();
        self
    }

    fn dir(mut self, path: &str) -> Self {
        let mut header = header(EntryType::Directory, 0);
        self.0.append_data(&mut header, path, io::empty()).unwrap();
        self
    }

    fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut header = header(EntryType::Symlink, 0);
        self.0.append_link(&mut header, path, target).unwrap();
        self
    }

    fn hard_link(mut self, path: &str, target: &str) -> Self {
        let mut header = header(EntryType::Link, 0);
        self.0.append_link(&mut header, path, target).unwrap();
        self
    }

    fn fifo(mut self, path: &str) -> Self {
        let mut header = header(EntryType::Fifo, 0);
        self.0.append_data(&mut header, path, io::empty()).unwrap();
        self
    }

    /// An entry whose name and link name are written as given, which the
    /// writer's checks would refuse (`..`).
    fn raw(mut self, entry_type: EntryType, name: &str, link_name: &str) -> Self {
        let mut header = header(entry_type, 0);
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link_name.len()].copy_from_slice(link_name.as_bytes());
        header.set_cksum();
        self.0.append(&header, io::empty()).unwrap();
        self
    }

    /// A regular file whose path is in a PAX `path` record, the header
    /// holding a short name that must not be used.
    fn pax_file(mut self, path: &str, contents: &str) -> Self {
        let record = pax_record("path", path);
        let mut pax = header(EntryType::XHeader, record.len() as u64);
        self.0
            .append_data(&mut pax, "PaxHeaders/entry", record.as_bytes())
            .unwrap();
        self.file("short-name-not-used", contents)
    }

    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// One PAX extended header record: `LENGTH KEY=VALUE\n`, where LENGTH
/// counts the whole record, its own digits included.
fn pax_record(key: &str, value: &str) -> String {
    let body = format!(" {key}={value}\n");
    let mut length = body.len() + 1;
    while length.to_string().len() + body.len() != length {
        length = length.to_string().len() + body.len();
    }
    format!("{length}{body}")
}

fn apply(overlay: &mut Overlay, digest: &str, layer: Layer) {
    let reader = ForwardOnly(Cursor::new(layer.bytes()));
    overlay.apply_layer(digest, reader).unwrap();
}

/// An overlay with `layers` applied, the n-th as `sha256:lN` (from 1).
fn overlay_of(layers: Vec<Layer>) -> Overlay {
    let mut overlay = Overlay::new(wanted);
    for (i, layer) in layers.into_iter().enumerate() {
        apply(&mut overlay, &format!("sha256:l{}", i + 1), layer);
    }
    overlay
}

fn text(overlay: &Overlay, path: &str) -> String {
    String::from_utf8(overlay.read(path).unwrap()).unwrap()
}

fn kind(overlay: &Overlay, path: &str) -> Option<FileKind> {
    overlay.lstat(path).ok()
}

#[test]
fn an_upper_layer_replaces_a_file() {
    let overlay = overlay_of(vec![
        Layer::new()
            .dir("etc")
            .file("etc/motd", "old")
            .file("etc/hosts", "h"),
        Layer::new().file("./etc/motd", "new"),
    ]);
    assert_eq!(text(&overlay, "etc/motd"), "new");
    assert_eq!(text(&overlay, "etc/hosts"), "h");
    assert_eq!(overlay.layer_of("etc/motd"), Some("sha256:l2"));
    assert_eq!(overlay.layer_of("etc/hosts"), Some("sha256:l1"));
    // The upper layer has no entry for `etc` itself.
    assert_eq!(overlay.layer_of("etc"), Some("sha256:l1"));
    assert_eq!(overlay.layer_of("etc/missing"), None);
    assert!(overlay.warnings().is_empty());
}

#[test]
fn whiteout_of_a_file() {
    let overlay = overlay_of(vec![
        Layer::new().file("etc/a", "a").file("etc/b", "b"),
        Layer::new().file("etc/.wh.a", ""),
    ]);
    assert_eq!(overlay.read_dir("etc").unwrap(), ["b"]);
    assert_eq!(kind(&overlay, "etc/a"), None);
    assert_eq!(kind(&overlay, "etc/.wh.a"), None);
}

#[test]
fn whiteout_of_a_directory_removes_everything_under_it() {
    let overlay = overlay_of(vec![
        Layer::new()
            .file("var/lib/dpkg/status", "s")
            .file("var/lib/dpkg/status.d/x", "x")
            .symlink("var/lib/dpkg/link", "status")
            .file("var/lib/other", "o"),
        Layer::new().dir("var/lib").file("var/lib/.wh.dpkg", ""),
    ]);
    assert_eq!(kind(&overlay, "var/lib/dpkg"), None);
    assert_eq!(kind(&overlay, "var/lib/dpkg/status"), None);
    assert_eq!(overlay.read_dir("var/lib").unwrap(), ["other"]);
}

#[test]
fn an_opaque_directory_hides_the_lower_contents_only() {
    let overlay = overlay_of(vec![
        Layer::new()
            .file("opt/app/old", "old")
            .file("opt/app/sub/deep", "deep")
            .file("opt/sibling", "s"),
        // The marker comes after one of the layer's own entries and before
        // another: neither is hidden.
        Layer::new()
            .file("opt/app/before", "b")
            .file("opt/app/.wh..wh..opq", "")
            .file("opt/app/after", "a"),
    ]);
    assert_eq!(overlay.read_dir("opt/app").unwrap(), ["after", "before"]);
    assert_eq!(kind(&overlay, "opt/app"), Some(FileKind::Dir));
    assert_eq!(text(&overlay, "opt/sibling"), "s");
    assert_eq!(kind(&overlay, "opt/app/.wh..wh..opq"), None);
}

// `.wh.a` listed before `a` in the same layer must not delete that `a`.
#[test]
fn whiteout_before_a_same_layer_entry_keeps_the_entry() {
    let overlay = overlay_of(vec![
        Layer::new()
            .file("etc/conf/a", "lower")
            .file("etc/conf/b", "lower"),
        Layer::new()
            .file("etc/conf/.wh.a", "")
            .file("etc/.wh.conf", "")
            .file("etc/conf/a", "upper"),
    ]);
    assert_eq!(overlay.read_dir("etc/conf").unwrap(), ["a"]);
    assert_eq!(text(&overlay, "etc/conf/a"), "upper");
    assert_eq!(overlay.layer_of("etc/conf/a"), Some("sha256:l2"));

    // A whiteout of a name only an earlier same-layer entry has does not
    // remove it either.
    let overlay = overlay_of(vec![
        Layer::new().file("x/new", "mine").file("x/.wh.new", ""),
    ]);
    assert_eq!(text(&overlay, "x/new"), "mine");
}

#[test]
fn a_directory_replaced_by_a_symlink_hides_the_lower_subtree() {
    let overlay = overlay_of(vec![
        Layer::new()
            .file("lib/apk/db/installed", "P:x\n")
            .file("usr/lib/placeholder", ""),
        Layer::new().symlink("lib", "usr/lib"),
    ]);
    assert_eq!(kind(&overlay, "lib"), Some(FileKind::Symlink));
    assert_eq!(overlay.read_link("lib").unwrap(), "usr/lib");
    assert!(overlay.lstat("lib/apk/db/installed").is_err());
    assert_eq!(
        scanhost_analyzers::resolve(&overlay, "lib/apk")
            .unwrap_err()
            .kind(),
        io::ErrorKind::NotFound
    );
    assert_eq!(overlay.layer_of("lib"), Some("sha256:l2"));
}

#[test]
fn a_symlink_replaced_by_a_directory() {
    let overlay = overlay_of(vec![
        Layer::new()
            .file("usr/lib/os-release", "ID=a\n")
            .symlink("etc", "usr/lib"),
        Layer::new().dir("etc").file("etc/os-release", "ID=b\n"),
    ]);
    assert_eq!(kind(&overlay, "etc"), Some(FileKind::Dir));
    assert_eq!(overlay.read_dir("etc").unwrap(), ["os-release"]);
    assert_eq!(text(&overlay, "etc/os-release"), "ID=b\n");
    assert_eq!(overlay.layer_of("etc"), Some("sha256:l2"));
}

#[test]
fn a_file_replaced_by_a_directory() {
    let overlay = overlay_of(vec![
        Layer::new().file("data", "a file"),
        Layer::new().dir("data").file("data/inner", "i"),
    ]);
    assert_eq!(kind(&overlay, "data"), Some(FileKind::Dir));
    assert_eq!(text(&overlay, "data/inner"), "i");
}

// Lower `lib -> usr/lib` plus upper `lib/foo` must not write through the link.
#[test]
fn an_entry_under_a_lower_symlink_makes_a_directory() {
    let overlay = overlay_of(vec![
        Layer::new()
            .file("usr/lib/keep", "k")
            .symlink("lib", "usr/lib")
            .symlink("opt/extra", "/elsewhere"),
        Layer::new().file("lib/foo", "f").file("opt/extra/x", "x"),
    ]);
    assert_eq!(kind(&overlay, "lib"), Some(FileKind::Dir));
    assert_eq!(overlay.read_dir("lib").unwrap(), ["foo"]);
    assert_eq!(overlay.read_dir("usr/lib").unwrap(), ["keep"]);
    assert_eq!(kind(&overlay, "opt/extra"), Some(FileKind::Dir));
    assert_eq!(text(&overlay, "opt/extra/x"), "x");
    // Created for an entry below it, the directory is the upper layer's.
    assert_eq!(overlay.layer_of("lib"), Some("sha256:l2"));
}

#[test]
fn a_non_directory_over_a_directory_hides_it_even_when_not_kept() {
    let overlay = overlay_of(vec![
        Layer::new()
            .file("var/lib/dpkg/status", "s")
            .symlink("etc/os-release", "../usr/lib/os-release"),
        Layer::new()
            .file("var/lib/junk", "")
            .file("var/lib/dpkg", "")
            .fifo("etc/junk"),
    ]);
    // `var/lib/dpkg` is kept (the test's `wanted` accepts it) but empty.
    assert_eq!(kind(&overlay, "var/lib/dpkg"), Some(FileKind::File));
    assert_eq!(kind(&overlay, "var/lib/dpkg/status"), None);

    let overlay = overlay_of(vec![
        Layer::new()
            .file("junk/dir/status", "s")
            .symlink("etc/junk", "/somewhere"),
        Layer::new()
            .file("junk/dir", "not kept")
            .file("etc/junk", "not kept"),
    ]);
    assert_eq!(kind(&overlay, "junk/dir"), None);
    assert_eq!(kind(&overlay, "junk/dir/status"), None);
    assert_eq!(kind(&overlay, "etc/junk"), None);
    assert_eq!(overlay.read_dir("etc").unwrap(), Vec::<String>::new());
}

#[test]
fn unwanted_files_are_not_kept() {
    let overlay = overlay_of(vec![
        Layer::new()
            .file("usr/share/junk", "big")
            .file("usr/share/kept", "k"),
    ]);
    assert_eq!(
        overlay.read("usr/share/junk").unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    assert_eq!(overlay.read_dir("usr/share").unwrap(), ["kept"]);
    // Their parent directories still count.
    assert_eq!(kind(&overlay, "usr"), Some(FileKind::Dir));
}

#[test]
fn devices_and_fifos_at_wanted_paths_are_other() {
    let overlay = overlay_of(vec![
        Layer::new().file("dev/null", "x"),
        Layer::new().fifo("dev/null"),
    ]);
    assert_eq!(kind(&overlay, "dev/null"), Some(FileKind::Other));
    assert!(overlay.read("dev/null").is_err());
}

#[test]
fn hard_links_copy_what_is_kept_of_their_target() {
    let overlay = overlay_of(vec![
        Layer::new()
            .file("lower/status", "from below")
            .file("lower/junk", "j"),
        Layer::new()
            .file("same/file", "same layer")
            .hard_link("same/link", "same/file")
            .hard_link("./lower-link", "lower/status")
            .hard_link("to-unkept", "lower/junk")
            .hard_link("junk-link", "same/file"),
    ]);
    assert_eq!(text(&overlay, "same/link"), "same layer");
    assert_eq!(text(&overlay, "lower-link"), "from below");
    assert_eq!(overlay.layer_of("lower-link"), Some("sha256:l2"));

    // The target's contents were not kept: the link exists, unreadable.
    assert_eq!(kind(&overlay, "to-unkept"), Some(FileKind::File));
    let err = overlay.read("to-unkept").unwrap_err();
    assert!(err.to_string().contains("not kept"), "{err}");

    assert_eq!(kind(&overlay, "junk-link"), None);
}

// `../../etc/passwd` in a layer must not land on `etc/passwd`.
#[test]
fn an_entry_climbing_out_of_the_root_is_ignored_with_a_warning() {
    let overlay = overlay_of(vec![
        Layer::new().file("etc/passwd", "image"),
        Layer::new()
            .raw(EntryType::Regular, "../../etc/passwd", "")
            .raw(EntryType::Symlink, "etc/../../passwd", "x")
            .raw(EntryType::Link, "etc/link", "../../etc/passwd"),
    ]);
    assert_eq!(text(&overlay, "etc/passwd"), "image");
    assert_eq!(overlay.read_dir("etc").unwrap(), ["passwd"]);
    assert_eq!(overlay.read_dir("").unwrap(), ["etc"]);
    let warnings = overlay.warnings();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert_eq!(
        warnings[0],
        "layer sha256:l2: ../../etc/passwd: the path climbs out of the root; entry ignored"
    );
    assert!(warnings[2].contains("etc/link"), "{warnings:?}");
}

#[test]
fn a_malformed_whiteout_is_ignored_with_a_warning() {
    let overlay = overlay_of(vec![
        Layer::new().file("etc/a", "a"),
        Layer::new()
            .file("etc/.wh.", "")
            .file("etc/.wh..wh.plnk", "")
            .file("etc/.wh..wh.aufs/inside", ""),
    ]);
    assert_eq!(overlay.read_dir("etc").unwrap(), ["a"]);
    assert_eq!(
        overlay.warnings(),
        [
            "layer sha256:l2: etc/.wh.: a malformed whiteout marker; ignored",
            "layer sha256:l2: etc/.wh..wh.plnk: a malformed whiteout marker; ignored",
            "layer sha256:l2: etc/.wh..wh.aufs/inside: inside a whiteout marker; entry ignored",
        ]
    );
}

#[test]
fn long_paths_from_gnu_and_pax_entries() {
    let dir = "a-directory-with-a-rather-long-name/".repeat(4);
    let gnu = format!("{dir}gnu-file");
    let pax = format!("{dir}pax-file");
    assert!(gnu.len() > 100);
    let overlay = overlay_of(vec![
        Layer::new()
            .file(&gnu, "g")
            .pax_file(&pax, "p")
            .symlink("link", &format!("/{gnu}")),
    ]);
    assert_eq!(text(&overlay, &gnu), "g");
    assert_eq!(text(&overlay, &pax), "p");
    assert_eq!(kind(&overlay, "short-name-not-used"), None);
    assert_eq!(overlay.read_link("link").unwrap(), format!("/{gnu}"));
}

#[test]
fn the_root_api() {
    let overlay = overlay_of(vec![
        Layer::new()
            .dir("./")
            .file("b/z", "z")
            .file("b/a", "a")
            .symlink("b/l", "z"),
    ]);
    assert_eq!(overlay.lstat("").unwrap(), FileKind::Dir);
    assert_eq!(overlay.lstat("/b/./a").unwrap(), FileKind::File);
    assert_eq!(overlay.read_dir("b").unwrap(), ["a", "l", "z"]);
    assert_eq!(overlay.read_dir("").unwrap(), ["b"]);
    assert_eq!(overlay.layer_of(""), Some("sha256:l1"));
    assert_eq!(
        overlay.read("b").unwrap_err().kind(),
        io::ErrorKind::IsADirectory
    );
    assert_eq!(
        overlay.read("b/l").unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    assert_eq!(
        overlay.read_link("b/a").unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    assert_eq!(
        overlay.lstat("b/l/x").unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    assert_eq!(
        overlay.lstat("b/a/x").unwrap_err().kind(),
        io::ErrorKind::NotADirectory
    );
    assert_eq!(
        overlay.lstat("b/../b").unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    assert_eq!(scanhost_analyzers::resolve(&overlay, "b/l").unwrap(), "b/z");
}

/// A tar of `head`, then `zeros` zero bytes that are never stored, then
/// `tail`.
struct Gap {
    head: Vec<u8>,
    zeros: u64,
    tail: Vec<u8>,
    position: u64,
}

impl Read for Gap {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let head = self.head.len() as u64;
        let (source, offset): (&[u8], u64) = if self.position < head {
            (&self.head, self.position)
        } else if self.position < head + self.zeros {
            let n = buf.len().min((head + self.zeros - self.position) as usize);
            buf[..n].fill(0);
            self.position += n as u64;
            return Ok(n);
        } else {
            (&self.tail, self.position - head - self.zeros)
        };
        let rest = source.get(offset as usize..).unwrap_or_default();
        let n = buf.len().min(rest.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.position += n as u64;
        Ok(n)
    }
}

impl Seek for Gap {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let SeekFrom::Current(n @ 0..) = pos else {
            panic!("{pos:?}: only forward relative seeks are allowed");
        };
        self.position += n as u64;
        Ok(self.position)
    }
}

#[test]
fn a_wanted_file_over_64_mib_is_not_kept() {
    let size = MAX_KEPT_FILE + 1;
    let mut big = header(EntryType::Regular, size);
    big.set_path("var/lib/dpkg/status").unwrap();
    big.set_cksum();
    let gap = Gap {
        head: big.as_bytes().to_vec(),
        zeros: size.next_multiple_of(512),
        tail: Layer::new().file("after", "still read").bytes(),
        position: 0,
    };
    let mut overlay = Overlay::new(wanted);
    overlay.apply_layer("sha256:big", gap).unwrap();

    assert_eq!(kind(&overlay, "var/lib/dpkg/status"), Some(FileKind::File));
    let err = overlay.read("var/lib/dpkg/status").unwrap_err();
    assert!(err.to_string().contains("more than 64 MiB"), "{err}");
    assert_eq!(text(&overlay, "after"), "still read");
    assert_eq!(
        overlay.warnings(),
        [
            "layer sha256:big: var/lib/dpkg/status: 67108865 bytes, more than the 64 MiB kept; its contents are not read"
        ]
    );
}

#[test]
fn a_truncated_tar_is_a_layer_error_and_changes_nothing() {
    let mut overlay = overlay_of(vec![Layer::new().file("base", "b")]);
    let layer = Layer::new()
        .file("kept", vec![b'k'; 2000])
        .file("junk", vec![b'j'; 5000])
        .file("last", "l")
        .bytes();
    // Inside kept data, inside skipped data, inside the last header.
    let kept_data = 512 + 1000;
    let junk_data = 512 + 2048 + 512 + 3000;
    let last_header = 512 + 2048 + 512 + 5120 + 100;
    for (cut, why) in [
        (kept_data, "the tar ends inside the data of kept"),
        (
            junk_data,
            "the tar ends inside an entry, before offset 8192",
        ),
        (last_header, ""),
    ] {
        let truncated = ForwardOnly(Cursor::new(layer[..cut].to_vec()));
        let err = overlay.apply_layer("sha256:cut", truncated).unwrap_err();
        let LayerError::Corrupt { digest, reason } = &err else {
            panic!("{cut}: {err:?}");
        };
        assert_eq!(digest, "sha256:cut");
        assert!(reason.starts_with(why), "{cut}: {reason}");
        assert!(
            err.to_string()
                .starts_with("layer sha256:cut: not a valid tar: ")
        );
    }
    assert_eq!(overlay.read_dir("").unwrap(), ["base"]);
    assert_eq!(overlay.layer_of("base"), Some("sha256:l1"));

    // Not a tar at all: the error does not quote the layer's bytes.
    let mut text = b"SECRET-TOKEN ".repeat(80);
    text.truncate(1024);
    let garbage = ForwardOnly(Cursor::new(text));
    let err = overlay.apply_layer("sha256:garbage", garbage).unwrap_err();
    assert!(matches!(err, LayerError::Corrupt { .. }), "{err:?}");
    assert!(!err.to_string().contains("SECRET"), "{err}");
}

#[derive(Debug)]
struct BlobGone;

impl fmt::Display for BlobGone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the blob went away")
    }
}

impl std::error::Error for BlobGone {}

/// A reader that fails with [`BlobGone`] once `fail_at` bytes are read.
struct Failing {
    inner: ForwardOnly,
    fail_at: u64,
}

impl Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.inner.0.position() >= self.fail_at {
            return Err(io::Error::other(BlobGone));
        }
        self.inner.read(buf)
    }
}

impl Seek for Failing {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

#[test]
fn a_read_error_keeps_the_readers_error() {
    let layer = Layer::new()
        .file("a", "a")
        .file("junk", vec![0; 4096])
        .file("b", "b");
    let reader = Failing {
        inner: ForwardOnly(Cursor::new(layer.bytes())),
        fail_at: 2048,
    };
    let mut overlay = Overlay::new(wanted);
    let err = overlay.apply_layer("sha256:gone", reader).unwrap_err();
    let LayerError::Read { digest, source } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(digest, "sha256:gone");
    assert!(source.get_ref().unwrap().is::<BlobGone>());
    assert_eq!(
        err.to_string(),
        "layer sha256:gone: reading failed: the blob went away"
    );
    assert!(overlay.read_dir("").unwrap().is_empty());
}

// A V7 entry `etc/` of type NUL must be a directory, not a file hiding etc.
#[test]
fn a_v7_directory_entry_is_a_directory() {
    let mut layer = Layer::new();
    let mut header = header(EntryType::Regular, 0);
    header.as_old_mut().name[..4].copy_from_slice(b"etc/");
    header.as_old_mut().linkflag = [0];
    header.set_cksum();
    layer.0.append(&header, io::empty()).unwrap();
    let overlay = overlay_of(vec![Layer::new().file("etc/a", "a"), layer]);
    assert_eq!(kind(&overlay, "etc"), Some(FileKind::Dir));
    assert_eq!(text(&overlay, "etc/a"), "a");
    assert_eq!(overlay.layer_of("etc"), Some("sha256:l2"));
}

#[test]
fn a_path_that_is_not_utf8_is_ignored() {
    let mut layer = Layer::new();
    let mut header = header(EntryType::Regular, 0);
    header.as_old_mut().name[..3].copy_from_slice(b"a\xffb");
    header.set_cksum();
    layer.0.append(&header, io::empty()).unwrap();
    let overlay = overlay_of(vec![layer.file("ok", "")]);
    assert_eq!(overlay.read_dir("").unwrap(), ["ok"]);
    assert_eq!(overlay.warnings().len(), 1);
}

/// The Debian fixture's files, read from the repository.
fn debian_fixture(path: &str) -> Vec<u8> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/debian-bookworm-minbase");
    std::fs::read(root.join(path)).unwrap()
}

#[test]
fn end_to_end_with_the_debian_database() {
    let status = debian_fixture("var/lib/dpkg/status");
    let base = Layer::new()
        .dir("etc")
        .symlink("etc/os-release", "../usr/lib/os-release")
        .file("etc/debian_version", debian_fixture("etc/debian_version"))
        .file("etc/passwd", "root:x:0:0::/root:/bin/sh\n")
        .dir("usr")
        .dir("usr/lib")
        .file("usr/lib/os-release", debian_fixture("usr/lib/os-release"))
        .file("usr/bin/bash", vec![0x7f; 10_000])
        .dir("var/lib/dpkg")
        .file("var/lib/dpkg/status", &status)
        .file("var/lib/dpkg/status-old", &status);
    let mut overlay = Overlay::new(scanhost_analyzers::wanted);
    apply(&mut overlay, "sha256:base", base);

    let inventory = scanhost_analyzers::analyze(&overlay);
    assert_eq!(inventory.packages.len(), 96, "{:?}", inventory.warnings);
    assert!(inventory.warnings.is_empty(), "{:?}", inventory.warnings);
    let os = inventory.os.unwrap();
    assert_eq!((os.id.as_str(), os.version_id.as_str()), ("debian", "12"));
    // Only what the analyzers read was kept.
    assert_eq!(kind(&overlay, "usr/bin/bash"), None);
    assert_eq!(kind(&overlay, "var/lib/dpkg/status-old"), None);

    let replacement = "Package: tzdata\nStatus: install ok installed\n\
                       Architecture: all\nVersion: 2024a-0+deb12u1\n\n\
                       Package: curl\nStatus: install ok installed\n\
                       Architecture: amd64\nVersion: 7.88.1-10+deb12u5\n";
    let upper = Layer::new()
        .file("var/lib/dpkg/.wh.status", "")
        .file("var/lib/dpkg/status", replacement);
    apply(&mut overlay, "sha256:upper", upper);

    let inventory = scanhost_analyzers::analyze(&overlay);
    let names: Vec<&str> = inventory.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["tzdata", "curl"]);
    assert_eq!(
        overlay.layer_of("var/lib/dpkg/status"),
        Some("sha256:upper")
    );
    let resolved = scanhost_analyzers::resolve(&overlay, "etc/os-release").unwrap();
    assert_eq!(overlay.layer_of(&resolved), Some("sha256:base"));
}
