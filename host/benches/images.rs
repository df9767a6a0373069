//! Benchmark of container image scans, on a real multi-layer image.
//!
//! Prints:
//! - the wall time of `scanhost scan LAYOUT:large` beside the time
//!   `gzip -dc` takes over the same layer blobs, and their ratio (target:
//!   at most 1.3x; every byte must be decompressed, so gzip is the floor);
//! - the peak memory of the scan (target: under 100 MiB);
//! - the image's sizes, and the packages and the OS the scan found.
//!
//! Then it checks a one-layer image of a plain `mmdebstrap --variant=minbase
//! bookworm` root filesystem: the scan must report exactly 96 deb packages
//! and OS debian 12. It prints PASS or FAIL, and panics on FAIL.
//!
//! The large image is Debian bookworm in three gzip layers, as a Dockerfile
//! with two `apt-get install` steps would make it: minbase, then the files
//! that installing Python, Perl and git adds or changes, then those of a C
//! toolchain, each upper layer with its own `var/lib/dpkg/status`. It is
//! built once, by a child process, with `mmdebstrap` (root and the Debian
//! mirror needed, a few minutes) and kept under `target/tmp/bench-images/`.
//! Where mmdebstrap is missing or fails, or `SCANHOST_BENCH_SYNTHETIC` is
//! set, a synthetic image is used: this machine's `/usr` beneath the
//! package database of the minbase fixture; the minbase check is then
//! skipped. The first lines printed say which image was used.
//!
//! Run with `cargo bench -p scanhost --bench images`.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

mod measure;
#[allow(dead_code)]
#[path = "../../tests/support/oci.rs"]
mod oci;

/// Timed runs of each command, after one warm-up run.
const RUNS: usize = 3;

/// What the minbase check expects of `mmdebstrap --variant=minbase bookworm`.
const MINBASE_PACKAGES: usize = 96;
const MINBASE_OS: (&str, &str) = ("debian", "12");

/// The packages each upper layer of the large image installs.
const UPPER_LAYERS: [&str; 2] = [
    "python3,perl,git,curl,ca-certificates",
    "gcc,g++,make,libc6-dev,python3-dev,cmake",
];

/// What the synthetic image takes from this machine, bottom layer first:
/// directories of `/` and the most bytes of regular files taken from them.
const SYNTHETIC_LAYERS: [(&[&str], u64); 2] = [
    (&["usr/lib"], 320 << 20),
    (&["usr/share", "usr/bin", "usr/sbin"], 220 << 20),
];

/// The tags of the two images in the layout.
const LARGE: &str = "example.test/bench:large";
const MINBASE: &str = "example.test/bench:minbase";

const MIB: f64 = (1 << 20) as f64;

/// Set in the environment of the child process that builds the image.
const BUILD_ENV: &str = "SCANHOST_BENCH_BUILD_IMAGE";

fn main() {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let work = tmp.join("bench-images");
    if std::env::var_os(BUILD_ENV).is_some() {
        build(&work);
        return;
    }

    let cache = tmp.join("bench-compile-cache");
    let image = bench_image(&work);
    println!("image: {}", image.description);
    large_scan(&image, &cache);
    minbase_check(&image, &cache);
    let shared = add_shared_base_images(&image);
    let packages = shared_base_scan(&image, &shared, &cache);
    shared_base_daemon(&shared, packages);
}

/// An image layout built for this benchmark, as recorded beside it.
#[derive(Serialize, Deserialize)]
struct BenchImage {
    /// What the image is made of, for the first line printed.
    description: String,
    /// The OCI layout: `LARGE`, and `MINBASE` when mmdebstrap made it.
    layout: PathBuf,
    /// Layer digests of `LARGE`, bottom first.
    layers: Vec<String>,
    /// Bytes of the layers' tars, and of their gzip blobs.
    uncompressed: u64,
    compressed: u64,
    /// Packages installed according to the top dpkg status of `LARGE`.
    packages: usize,
    /// Packages installed according to the dpkg status of `MINBASE`.
    minbase_packages: Option<usize>,
}

/// The image to scan: the one built before, else one that a child process
/// builds now.
///
/// The child keeps this process small, which the figures need: on Linux a
/// process started by another one carries its parent's peak resident set
/// over exec, into the `ru_maxrss` that `wait4` reports, and building the
/// image takes hundreds of MB.
fn bench_image(work: &Path) -> BenchImage {
    let debian = work.join("debian");
    let synthetic = work.join("synthetic");
    let wanted = if synthetic_wanted() {
        &synthetic
    } else {
        &debian
    };
    if let Some(image) = load(wanted) {
        println!("image source: built before, {}", wanted.display());
        return image;
    }

    let status = Command::new(std::env::current_exe().unwrap())
        .env(BUILD_ENV, "1")
        .status()
        .unwrap();
    assert!(status.success(), "building the image failed: {status}");
    load(wanted)
        .or_else(|| load(&synthetic))
        .expect("the image was not built")
}

/// The child's part: builds the image with mmdebstrap, or else the
/// synthetic one, and says which.
fn build(work: &Path) {
    let synthetic = work.join("synthetic");
    if synthetic_wanted() {
        println!("image source: synthetic (SCANHOST_BENCH_SYNTHETIC is set)");
    } else {
        let debian = work.join("debian");
        match build_debian(work, &debian) {
            Ok(()) => {
                println!("image source: mmdebstrap, built now, {}", debian.display());
                return;
            }
            Err(reason) => println!("image source: synthetic, since {reason}"),
        }
    }
    if load(&synthetic).is_none() {
        build_synthetic(&synthetic);
        println!(
            "image source: synthetic, built now, {}",
            synthetic.display()
        );
    }
}

fn synthetic_wanted() -> bool {
    std::env::var_os("SCANHOST_BENCH_SYNTHETIC").is_some()
}

fn load(dir: &Path) -> Option<BenchImage> {
    let bytes = fs::read(dir.join("image.json")).ok()?;
    Some(serde_json::from_slice(&bytes).expect("image.json of an older benchmark"))
}

/// Builds the image under `NAME.partial` and renames it to `dest`, so that
/// an interrupted build is not taken for a finished one.
fn save(dest: &Path, description: String, layers: Vec<BuiltLayer>, minbase: Option<oci::Layer>) {
    let partial = dest.with_extension("partial");
    let _ = fs::remove_dir_all(&partial);
    let layout = partial.join("layout");
    let uncompressed = layers.iter().map(|l| l.tar_len).sum();
    let compressed = layers.iter().map(|l| l.layer.blob.len() as u64).sum();
    let packages = layers.last().unwrap().packages;
    let minbase_packages = minbase.as_ref().map(|_| layers[0].packages);
    let large: Vec<oci::Layer> = layers.into_iter().map(|l| l.layer).collect();
    let written = oci::write_image(&layout, LARGE, &large);
    if let Some(minbase) = minbase {
        oci::write_image(&layout, MINBASE, &[minbase]);
    }

    let image = BenchImage {
        description,
        layout: dest.join("layout"),
        layers: written.layers,
        uncompressed,
        compressed,
        packages,
        minbase_packages,
    };
    let json = serde_json::to_vec_pretty(&image).unwrap();
    fs::write(partial.join("image.json"), json).unwrap();
    fs::rename(&partial, dest).unwrap();
}

/// Builds three root filesystems with mmdebstrap, each with more packages
/// than the last, and makes a layer of each one's changes.
fn build_debian(work: &Path, dest: &Path) -> Result<(), String> {
    let found = Command::new("mmdebstrap")
        .arg("--version")
        .stdout(Stdio::null())
        .status();
    if !found.is_ok_and(|status| status.success()) {
        return Err("mmdebstrap is not installed".to_string());
    }

    let roots = work.join("rootfs");
    let _ = fs::remove_dir_all(&roots);
    fs::create_dir_all(&roots).unwrap();
    let mut trees = vec![roots.join("0")];
    mmdebstrap(None, &trees[0])?;
    let mut included = Vec::new();
    for packages in UPPER_LAYERS {
        included.push(packages);
        let tree = roots.join(trees.len().to_string());
        mmdebstrap(Some(&included.join(",")), &tree)?;
        trees.push(tree);
    }

    let mut layers = Vec::new();
    for (i, tree) in trees.iter().enumerate() {
        eprintln!("writing layer {} from {}", i + 1, tree.display());
        let lower = i.checked_sub(1).map(|below| trees[below].as_path());
        let changes = diff(lower, tree, Path::new("")).unwrap();
        let (layer, tar_len) = write_layer(&[(tree.as_path(), changes)]);
        let packages = installed(&tree.join("var/lib/dpkg/status"));
        layers.push(BuiltLayer {
            layer,
            tar_len,
            packages,
        });
    }
    let minbase = oci::Layer {
        blob: layers[0].layer.blob.clone(),
        diff_id: layers[0].layer.diff_id.clone(),
    };
    let description = format!(
        "debian bookworm, {} gzip layers: mmdebstrap --variant=minbase, then \
         the changes of --include={}, then those of --include={}",
        layers.len(),
        UPPER_LAYERS[0],
        UPPER_LAYERS.join(",")
    );
    save(dest, description, layers, Some(minbase));
    fs::remove_dir_all(&roots).unwrap();
    Ok(())
}

fn mmdebstrap(include: Option<&str>, tree: &Path) -> Result<(), String> {
    eprintln!(
        "building {} with mmdebstrap (--include={})",
        tree.display(),
        include.unwrap_or("")
    );
    let started = Instant::now();
    let mut command = Command::new("mmdebstrap");
    command.args(["--quiet", "--variant=minbase"]);
    if let Some(include) = include {
        command.arg(format!("--include={include}"));
    }
    let output = command
        .arg("bookworm")
        .arg(tree)
        .output()
        .map_err(|err| format!("mmdebstrap cannot run: {err}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!(
            "mmdebstrap failed ({}): {}",
            output.status,
            tail.join(" / ")
        ));
    }
    eprintln!("built {} in {:.0?}", tree.display(), started.elapsed());
    Ok(())
}

/// Layers of this machine's `/usr` beneath a top layer holding the minbase
/// fixture: its os-release and its dpkg status.
fn build_synthetic(dest: &Path) {
    let mut layers = Vec::new();
    for (dirs, budget) in SYNTHETIC_LAYERS {
        eprintln!("writing a layer of {}", dirs.join(", "));
        let mut changes = Vec::new();
        let mut parents = BTreeSet::new();
        for dir in dirs {
            let mut ancestors: Vec<&Path> = Path::new(dir)
                .ancestors()
                .filter(|a| !a.as_os_str().is_empty())
                .collect();
            ancestors.reverse();
            for ancestor in ancestors {
                if parents.insert(ancestor) {
                    changes.push(Change::Add(ancestor.to_path_buf()));
                }
            }
            changes.extend(diff(None, Path::new("/"), Path::new(dir)).unwrap());
        }
        let changes = within(Path::new("/"), changes, budget);
        let (layer, tar_len) = write_layer(&[(Path::new("/"), changes)]);
        layers.push(BuiltLayer {
            layer,
            tar_len,
            packages: 0,
        });
    }

    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/debian-bookworm-minbase");
    let changes = diff(None, &fixture, Path::new("")).unwrap();
    let (layer, tar_len) = write_layer(&[(fixture.as_path(), changes)]);
    layers.push(BuiltLayer {
        layer,
        tar_len,
        packages: installed(&fixture.join("var/lib/dpkg/status")),
    });

    let description = format!(
        "synthetic, {} gzip layers: this machine's /usr/lib, then its \
         /usr/share, /usr/bin and /usr/sbin (cut at a size), then the \
         os-release and dpkg status of tests/fixtures/debian-bookworm-minbase",
        layers.len()
    );
    save(dest, description, layers, None)
}

/// A layer written for the image, with what the scan should find in the
/// image whose top layer it is.
struct BuiltLayer {
    layer: oci::Layer,
    /// Bytes of its uncompressed tar.
    tar_len: u64,
    packages: usize,
}

/// The packages a dpkg status file lists as installed.
fn installed(status: &Path) -> usize {
    fs::read_to_string(status)
        .unwrap()
        .lines()
        .filter(|line| *line == "Status: install ok installed")
        .count()
}

/// One entry of a layer, relative to the root of a tree.
enum Change {
    /// The path, as it is in the upper tree.
    Add(PathBuf),
    /// The path of a lower layer is deleted: a whiteout.
    Remove(PathBuf),
}

/// The changes that turn the directory `rel` of the tree `lower` (none:
/// an empty tree) into that of `upper`, a directory before its contents.
/// A directory is listed when it changed or holds something that did.
fn diff(lower: Option<&Path>, upper: &Path, rel: &Path) -> io::Result<Vec<Change>> {
    let names = |tree: &Path| -> io::Result<BTreeSet<OsString>> {
        fs::read_dir(tree.join(rel))?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect()
    };
    let upper_names = names(upper)?;
    let lower_names = match lower {
        Some(lower) => names(lower)?,
        None => BTreeSet::new(),
    };

    let mut changes: Vec<Change> = lower_names
        .difference(&upper_names)
        .map(|gone| Change::Remove(rel.join(gone)))
        .collect();
    for name in &upper_names {
        let path = rel.join(name);
        let new = fs::symlink_metadata(upper.join(&path))?;
        let mut old = None;
        if let Some(lower) = lower.filter(|_| lower_names.contains(name)) {
            let meta = fs::symlink_metadata(lower.join(&path))?;
            if meta.is_dir() == new.is_dir() {
                old = Some((lower, meta));
            } else {
                // A directory replaced by a file, or the reverse: nothing
                // of the lower one may show through.
                changes.push(Change::Remove(path.clone()));
            }
        }

        let changed = match &old {
            Some((lower, meta)) => !same(&lower.join(&path), meta, &upper.join(&path), &new)?,
            None => true,
        };
        if new.is_dir() {
            let inner = diff(old.map(|(lower, _)| lower), upper, &path)?;
            if changed || !inner.is_empty() {
                changes.push(Change::Add(path));
            }
            changes.extend(inner);
        } else if changed {
            changes.push(Change::Add(path));
        }
    }
    Ok(changes)
}

/// Whether two entries of the same kind are alike: type and mode, owner,
/// and content, link target or device. Times are not compared.
fn same(old_path: &Path, old: &Metadata, new_path: &Path, new: &Metadata) -> io::Result<bool> {
    if (old.mode(), old.uid(), old.gid()) != (new.mode(), new.uid(), new.gid()) {
        return Ok(false);
    }
    let kind = new.file_type();
    Ok(if kind.is_dir() {
        true
    } else if kind.is_symlink() {
        fs::read_link(old_path)? == fs::read_link(new_path)?
    } else if kind.is_file() {
        old.len() == new.len() && fs::read(old_path)? == fs::read(new_path)?
    } else {
        old.rdev() == new.rdev()
    })
}

/// The changes up to the one whose regular file would pass `budget` bytes.
fn within(tree: &Path, changes: Vec<Change>, budget: u64) -> Vec<Change> {
    let mut total = 0;
    let mut kept = Vec::new();
    for change in changes {
        if let Change::Add(path) = &change {
            let meta = fs::symlink_metadata(tree.join(path)).unwrap();
            if meta.is_file() {
                total += meta.len();
                if total > budget {
                    break;
                }
            }
        }
        kept.push(change);
    }
    kept
}

/// Writes the changes, each taken from its tree, as one gzip layer (the
/// default level, as image builders use); returns it and its tar's size.
fn write_layer(parts: &[(&Path, Vec<Change>)]) -> (oci::Layer, u64) {
    let gzip = GzEncoder::new(Vec::new(), Compression::default());
    let mut builder = tar::Builder::new(Hashing::new(gzip));
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Complete);
    // Plain entries, as image builders write them, even for files with holes.
    builder.sparse(false);
    for (tree, changes) in parts {
        for change in changes {
            let (name, written) = match change {
                Change::Add(path) => (path, append(&mut builder, tree, path)),
                Change::Remove(path) => {
                    let name = path.file_name().unwrap().to_string_lossy();
                    let whiteout = path.with_file_name(format!(".wh.{name}"));
                    let mut header = tar::Header::new_gnu();
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(0o644);
                    header.set_size(0);
                    (
                        path,
                        builder.append_data(&mut header, whiteout, io::empty()),
                    )
                }
            };
            written.unwrap_or_else(|err| panic!("{}: {}: {err}", tree.display(), name.display()));
        }
    }
    let tar = builder.into_inner().unwrap();
    let layer = oci::Layer {
        diff_id: format!("sha256:{:x}", tar.hasher.finalize()),
        blob: tar.inner.finish().unwrap(),
    };
    (layer, tar.len)
}

/// Appends the entry `path` of `tree` under the name `path`.
fn append<W: Write>(builder: &mut tar::Builder<W>, tree: &Path, path: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(tree.join(path))?;
    let kind = meta.file_type();
    if kind.is_file() || kind.is_dir() || kind.is_symlink() {
        return builder.append_path_with_name(tree.join(path), path);
    }

    // Device nodes and fifos: the tar crate would name them by their path
    // on this machine, absolute, instead of the name it is given.
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
    header.set_size(0);
    header.set_device_major(libc::major(meta.rdev()))?;
    header.set_device_minor(libc::minor(meta.rdev()))?;
    builder.append_data(&mut header, path, io::empty())
}

/// Passes bytes on, hashing and counting them.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn large_scan(image: &BenchImage, cache: &Path) {
    let target = format!("{}:{}", image.layout.display(), tag(LARGE));

    // The first run fills the compilation cache and the page cache. The
    // plugin cache is off: every run reads every layer.
    let warm_up = run_scan(&target, cache, &["--no-cache"]);
    assert_eq!(
        warm_up.packages, image.packages,
        "the scan found other packages than the image's dpkg status lists"
    );
    let mut scans = Vec::new();
    let mut peak = 0;
    for _ in 0..RUNS {
        let scan = run_scan(&target, cache, &["--no-cache"]);
        assert_eq!(scan.packages, image.packages);
        scans.push(scan.elapsed);
        peak = peak.max(scan.max_rss_kib);
    }

    let blobs: Vec<PathBuf> = image
        .layers
        .iter()
        .map(|digest| oci::blob_path(&image.layout, digest))
        .collect();
    let mut gunzips = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let status = Command::new("gzip")
            .arg("-dc")
            .args(&blobs)
            .stdout(Stdio::null())
            .status()
            .expect("gzip is needed for the floor");
        assert!(status.success(), "gzip -dc failed: {status}");
        gunzips.push(started.elapsed());
    }

    let scan = median(scans);
    let floor = median(gunzips);
    let (os, version) = warm_up.os.unwrap_or_default();
    println!("image layers: {} gzip", image.layers.len());
    println!(
        "image uncompressed size: {:.1} MiB",
        image.uncompressed as f64 / MIB
    );
    println!(
        "image compressed size: {:.1} MiB",
        image.compressed as f64 / MIB
    );
    println!(
        "scan wall time: {:.3} s (median of {RUNS}, after a warm-up run)",
        scan.as_secs_f64()
    );
    println!(
        "gzip -dc wall time: {:.3} s (median of {RUNS}, all layer blobs, the floor)",
        floor.as_secs_f64()
    );
    println!(
        "scan to gzip -dc ratio: {:.2} x (target at most 1.3 x)",
        scan.as_secs_f64() / floor.as_secs_f64()
    );
    println!(
        "scan peak RSS: {:.1} MiB (target under 100 MiB; highest of {RUNS} runs)",
        peak as f64 / 1024.0
    );
    println!(
        "packages found: {} deb (the top dpkg status lists {} installed)",
        warm_up.packages, image.packages
    );
    println!("os found: {os} {version}");
}

fn minbase_check(image: &BenchImage, cache: &Path) {
    let Some(listed) = image.minbase_packages else {
        println!("minbase check: SKIPPED (needs the image mmdebstrap makes)");
        return;
    };
    let target = format!("{}:{}", image.layout.display(), tag(MINBASE));
    let scan = run_scan(&target, cache, &["--no-cache"]);
    let os = scan.os.clone().unwrap_or_default();
    let pass =
        scan.packages == MINBASE_PACKAGES && os == (MINBASE_OS.0.into(), MINBASE_OS.1.into());
    let verdict = if pass { "PASS" } else { "FAIL" };
    let line = format!(
        "minbase check: {verdict} ({} deb packages, os {} {}; expected {MINBASE_PACKAGES} \
         and {} {}; the rootfs's dpkg status lists {listed} installed)",
        scan.packages, os.0, os.1, MINBASE_OS.0, MINBASE_OS.1
    );
    println!("{line}");
    assert!(pass, "{line}");
}

/// The image that shares the lower layers of `LARGE`: its first
/// `SHARED_LAYERS` layers, and a small layer of its own.
const SHARED: &str = "example.test/bench:shared";
const SHARED_LAYERS: usize = 2;
/// Images of `SHARED`'s kind that the agent scans end to end.
const DAEMON_IMAGES: usize = 50;

/// Images that share the lower layers of `LARGE`, in layouts beside it.
struct SharedBase {
    /// `SHARED`, in the image's layout.
    target: String,
    /// A layout of `DAEMON_IMAGES` such images, and their ids.
    layout: PathBuf,
    ids: Vec<String>,
}

/// Adds `SHARED` to the image's layout, and writes a layout of
/// `DAEMON_IMAGES` images that share the same lower layers (their blobs
/// hard-linked from the image's layout), each with a top layer of its own.
/// The lower layers are referred to, never read into memory.
fn add_shared_base_images(image: &BenchImage) -> SharedBase {
    let layout = &image.layout;
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let large = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"][oci_ref_name()] == LARGE)
        .expect("the large image in the layout");
    let blob = |digest: &str| -> serde_json::Value {
        serde_json::from_slice(&fs::read(oci::blob_path(layout, digest)).unwrap()).unwrap()
    };
    let manifest = blob(large["digest"].as_str().unwrap());
    let config = blob(manifest["config"]["digest"].as_str().unwrap());
    let lower: Vec<oci::Stored> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .zip(config["rootfs"]["diff_ids"].as_array().unwrap())
        .take(SHARED_LAYERS)
        .map(|(layer, diff_id)| oci::Stored {
            digest: layer["digest"].as_str().unwrap().to_owned(),
            size: layer["size"].as_u64().unwrap(),
            diff_id: diff_id.as_str().unwrap().to_owned(),
        })
        .collect();

    if !index.to_string().contains(SHARED) {
        write_on_lower(layout, layout, &lower, SHARED, "shared");
    }

    let daemon_layout = layout.with_file_name("shared-base-layout");
    let _ = fs::remove_dir_all(&daemon_layout);
    let ids = (0..DAEMON_IMAGES)
        .map(|i| {
            let name = format!("example.test/bench/app-{i}:1.0");
            write_on_lower(layout, &daemon_layout, &lower, &name, &format!("app-{i}"))
        })
        .collect();
    SharedBase {
        target: format!("{}:{}", layout.display(), tag(SHARED)),
        layout: daemon_layout,
        ids,
    }
}

fn oci_ref_name() -> &'static str {
    "org.opencontainers.image.ref.name"
}

/// Writes into the layout `dest` an image named `name` of the layers
/// `lower` of the layout `source` (hard-linked when `dest` is another
/// layout) and one small layer whose `etc/hostname` is `marker`. Returns
/// its id.
fn write_on_lower(
    source: &Path,
    dest: &Path,
    lower: &[oci::Stored],
    name: &str,
    marker: &str,
) -> String {
    for layer in lower {
        let to = oci::blob_path(dest, &layer.digest);
        if source != dest && !to.exists() {
            let from = oci::blob_path(source, &layer.digest);
            fs::create_dir_all(to.parent().unwrap()).unwrap();
            fs::hard_link(&from, &to)
                .or_else(|_| fs::copy(&from, &to).map(|_| ()))
                .unwrap();
        }
    }
    let top = oci::layer(&[oci::Entry::File(
        "etc/hostname",
        format!("{marker}\n").as_bytes(),
    )]);
    let mut layers = lower.to_vec();
    layers.push(oci::Stored {
        digest: oci::put(dest, &top.blob),
        size: top.blob.len() as u64,
        diff_id: top.diff_id,
    });
    oci::write_image_of(dest, name, &layers).config
}

/// The first image scanned with an empty plugin cache, beside a second
/// one that shares its lower layers, scanned right after (target: the
/// second in at most 20% of the first's time), and the second cold.
/// Returns the packages of the second.
fn shared_base_scan(image: &BenchImage, shared: &SharedBase, cache: &Path) -> usize {
    let large = format!("{}:{}", image.layout.display(), tag(LARGE));
    let plugin_cache = cache.join("plugin-cache.redb");
    let (mut firsts, mut seconds, mut colds) = (Vec::new(), Vec::new(), Vec::new());
    let mut packages = 0;
    for _ in 0..RUNS {
        let _ = fs::remove_file(&plugin_cache);
        let first = run_scan(&large, cache, &[]);
        assert_eq!(first.packages, image.packages);
        firsts.push(first.elapsed);
        let second = run_scan(&shared.target, cache, &[]);
        seconds.push(second.elapsed);
        let cold = run_scan(&shared.target, cache, &["--no-cache"]);
        assert_eq!(second.packages, cold.packages, "warm and cold differ");
        colds.push(cold.elapsed);
        packages = second.packages;
    }
    let (first, second, cold) = (median(firsts), median(seconds), median(colds));
    println!(
        "shared base: the second image has the lower {SHARED_LAYERS} layers of the first \
         and one small layer of its own ({packages} packages)"
    );
    println!(
        "shared base: first image, empty plugin cache: {:.3} s (median of {RUNS})",
        first.as_secs_f64()
    );
    println!(
        "shared base: second image, right after the first: {:.3} s (median of {RUNS})",
        second.as_secs_f64()
    );
    println!(
        "shared base: second image, plugin cache off: {:.3} s (median of {RUNS})",
        cold.as_secs_f64()
    );
    println!(
        "shared base: second to first ratio: {:.1}% (target at most 20%)",
        100.0 * second.as_secs_f64() / first.as_secs_f64()
    );
    packages
}

/// `DAEMON_IMAGES` images sharing the lower layers, end to end through
/// `scanhost run`: from its start, with an empty state, until all are
/// Success.
fn shared_base_daemon(shared: &SharedBase, packages: usize) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let source =
        |layout: &Path| format!("[[sources.oci_layout]]\npath = \"{}\"\n", layout.display());
    // Compiles the plugins into the state's cache, on an empty layout.
    let empty = dir.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    fs::write(
        empty.join("index.json"),
        br#"{"schemaVersion":2,"manifests":[]}"#,
    )
    .unwrap();
    fs::write(
        empty.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let (daemon, started) =
        measure::timed_start(dir.path(), 2, &source(&empty), &source(&shared.layout));
    daemon.wait_all_success(&shared.ids, packages, started, Duration::from_secs(1800));
    let elapsed = started.elapsed();
    let (peak_kib, _) = daemon.stop();
    println!(
        "daemon: {DAEMON_IMAGES} images sharing the lower {SHARED_LAYERS} layers, start to \
         all success: {:.2} s ({:.2} s per image, 2 workers)",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() / DAEMON_IMAGES as f64
    );
    println!(
        "daemon: peak RSS {:.1} MiB (wait4 after SIGTERM)",
        peak_kib as f64 / 1024.0
    );
}

fn tag(reference: &str) -> &str {
    reference.rsplit_once(':').unwrap().1
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// What one `scanhost scan` run took and found.
struct Scan {
    elapsed: Duration,
    /// Peak resident set size of the process.
    max_rss_kib: i64,
    /// Components with a `pkg:deb/` purl.
    packages: usize,
    /// The operating-system component's name and version.
    os: Option<(String, String)>,
}

// The child is reaped by wait4, which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn run_scan(target: &str, cache: &Path, args: &[&str]) -> Scan {
    let stdout = tempfile::tempfile().unwrap();
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_scanhost"))
        .args(["--log", "warn", "scan", target, "--cache-dir"])
        .arg(cache)
        .args(args)
        .stdout(stdout.try_clone().unwrap())
        .spawn()
        .unwrap();

    let (success, peak_kib) = measure::reap(&child);
    let elapsed = started.elapsed();
    assert!(success, "scanhost scan {target} failed");

    let doc: serde_json::Value =
        serde_json::from_reader(io::BufReader::new(reopen(stdout))).unwrap();
    let components = doc["components"].as_array().cloned().unwrap_or_default();
    let packages = components
        .iter()
        .filter(|c| c["type"] == "library")
        .filter(|c| {
            c["purl"]
                .as_str()
                .is_some_and(|p| p.starts_with("pkg:deb/"))
        })
        .count();
    let os = components
        .iter()
        .find(|c| c["type"] == "operating-system")
        .map(|c| {
            let text = |key: &str| c[key].as_str().unwrap_or_default().to_string();
            (text("name"), text("version"))
        });
    Scan {
        elapsed,
        max_rss_kib: peak_kib,
        packages,
        os,
    }
}

/// The file, read from its start.
fn reopen(mut file: fs::File) -> fs::File {
    io::Seek::rewind(&mut file).unwrap();
    file
}
