//! End-to-end scans of container images in OCI layouts, with the real
//! `scanhost` binary and the shipped `image-scanner` component.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use support::oci::{Entry, blob_path, gzip, layer, tar, write_image};
use support::{document, minbase, packages, property, scan, validate_cyclonedx};

/// The dpkg status of the minbase fixture without the stanzas of `drop`.
fn status_without(drop: &[&str]) -> Vec<u8> {
    let status = String::from_utf8(minbase("var/lib/dpkg/status")).unwrap();
    let kept: Vec<&str> = status
        .split("\n\n")
        .filter(|stanza| {
            let name = stanza.lines().find_map(|l| l.strip_prefix("Package: "));
            !name.is_some_and(|n| drop.contains(&n))
        })
        .collect();
    kept.join("\n\n").into_bytes()
}

/// Digests of the layers a manifest lists whose blob is not in the layout.
fn missing_blobs(layout: &Path) -> Vec<String> {
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mut missing = Vec::new();
    let mut pending: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect();
    while let Some(digest) = pending.pop() {
        let Ok(bytes) = std::fs::read(blob_path(layout, &digest)) else {
            missing.push(digest);
            continue;
        };
        let doc: Value = serde_json::from_slice(&bytes).unwrap_or_default();
        for key in ["manifests", "layers"] {
            for d in doc[key].as_array().into_iter().flatten() {
                pending.push(d["digest"].as_str().unwrap().to_string());
            }
        }
    }
    missing
}

#[test]
fn oci_cases_match_expected() {
    let cases = support::cases("oci");
    assert!(cases.len() >= 6, "fixture cases are missing");

    let mut docs = Vec::new();
    for case in &cases {
        let output = scan(&case.input, &[]);
        match case.error.as_deref() {
            None => {
                let doc = document(&output);
                case.check(&doc);
                let subject = &doc["metadata"]["component"];
                assert_eq!(subject["type"], "container", "{}", case.name);
                assert!(
                    subject["name"]
                        .as_str()
                        .unwrap()
                        .starts_with("example.test/case:")
                );
                assert!(subject["version"].as_str().unwrap().starts_with("sha256:"));
                assert!(
                    property(subject, "scanhost:image:id")
                        .unwrap()
                        .starts_with("sha256:")
                );
                docs.push((case.name.as_str(), doc));
            }
            Some("retryable") => {
                let stderr = String::from_utf8_lossy(&output.stderr);
                assert_eq!(output.status.code(), Some(3), "{}: {stderr}", case.name);
                assert!(
                    output.stdout.is_empty(),
                    "{}: no partial document",
                    case.name
                );
                let missing = missing_blobs(&case.input);
                assert!(!missing.is_empty());
                for digest in missing {
                    assert!(
                        stderr.contains(&digest),
                        "{}: {digest} not named: {stderr}",
                        case.name
                    );
                }
            }
            Some(other) => panic!("{}: unexpected error kind {other}", case.name),
        }
    }
    let named: Vec<_> = docs.iter().map(|(n, d)| (*n, d)).collect();
    validate_cyclonedx(&named);
}

// A lower layer's database replaced and a stanza file whited out above it:
// only the top layer's packages count, each located in the layer that
// wrote its file.
#[test]
fn debian_image_with_replacing_and_whiteout_layers_has_the_top_package_set() {
    let layout = tempfile::tempdir().unwrap();
    let extra =
        b"Package: extra-tool\nStatus: install ok installed\nVersion: 1.0\nArchitecture: amd64\n";
    let lower = layer(&[
        Entry::Dir("etc/"),
        Entry::Symlink("etc/os-release", "../usr/lib/os-release"),
        Entry::File("etc/debian_version", &minbase("etc/debian_version")),
        Entry::Dir("usr/"),
        Entry::Dir("usr/lib/"),
        Entry::File("usr/lib/os-release", &minbase("usr/lib/os-release")),
        Entry::File("usr/bin/tool", b"\x7fELF not really"),
        Entry::Dir("var/lib/dpkg/"),
        Entry::File("var/lib/dpkg/status", &minbase("var/lib/dpkg/status")),
        Entry::Dir("var/lib/dpkg/status.d/"),
        Entry::File("var/lib/dpkg/status.d/extra-tool", extra),
    ]);
    let upper = layer(&[
        Entry::File("var/lib/dpkg/status", &status_without(&["sed", "gzip"])),
        Entry::File("var/lib/dpkg/status.d/.wh.extra-tool", b""),
        Entry::File("etc/.wh.debian_version", b""),
    ]);
    let image = write_image(layout.path(), "example.test/debian:12", &[lower, upper]);

    let doc = document(&scan(layout.path(), &[]));

    assert_eq!(support::os(&doc), Some(("debian".into(), "12".into())));
    let found = packages(&doc);
    let names: Vec<_> = found.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(found.len(), 94, "{names:?}");
    for gone in ["sed", "gzip", "extra-tool"] {
        assert!(!names.contains(&gone), "{gone} is still listed");
    }
    for component in support::components(&doc).filter(|c| c["type"] == "library") {
        assert_eq!(
            property(component, "scanhost:location:layer-digest").as_deref(),
            Some(image.layers[1].as_str()),
            "{}",
            component["name"]
        );
    }
    let subject = &doc["metadata"]["component"];
    assert_eq!(subject["name"], "example.test/debian:12");
    assert_eq!(subject["version"], image.manifest.as_str());
    assert_eq!(
        property(subject, "scanhost:image:id").unwrap(),
        image.config
    );
    validate_cyclonedx(&[("debian image", &doc)]);
}

/// A layout with one Debian image of one layer: the minbase database and
/// os-release, then `extra`.
fn debian_layout(extra: &[Entry]) -> (tempfile::TempDir, support::oci::Image) {
    let layout = tempfile::tempdir().unwrap();
    let os_release = minbase("usr/lib/os-release");
    let status = minbase("var/lib/dpkg/status");
    let mut entries = vec![
        Entry::File("etc/os-release", &os_release),
        Entry::File("var/lib/dpkg/status", &status),
    ];
    entries.extend_from_slice(extra);
    let image = write_image(layout.path(), "example.test/debian:12", &[layer(&entries)]);
    (layout, image)
}

fn assert_fails(layout: &Path, code: i32, needle: &str) {
    let output = scan(layout, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    assert!(output.stdout.is_empty(), "a partial document was printed");
    assert!(stderr.contains(needle), "{needle:?} not in: {stderr}");
}

#[test]
fn a_truncated_gzip_layer_fails_as_fatal_without_a_document() {
    let (layout, image) = debian_layout(&[]);
    let path = blob_path(layout.path(), &image.layers[0]);
    let blob = std::fs::read(&path).unwrap();
    // Keep the name: the digest check and the gzip decoder both see it.
    std::fs::write(&path, &blob[..blob.len() / 2]).unwrap();

    assert_fails(layout.path(), 4, &image.layers[0]);
}

#[test]
fn a_layer_whose_bytes_do_not_match_its_digest_fails_as_fatal() {
    let (layout, image) = debian_layout(&[]);
    let other = gzip(&tar(&[Entry::File("etc/motd", b"hello")]));
    std::fs::write(blob_path(layout.path(), &image.layers[0]), other).unwrap();

    assert_fails(layout.path(), 4, &image.layers[0]);
}

#[test]
fn a_manifest_that_is_not_json_fails_as_fatal() {
    let (layout, image) = debian_layout(&[]);
    std::fs::write(blob_path(layout.path(), &image.manifest), b"{ not json").unwrap();

    // The blob no longer matches its digest either; the failure names it.
    assert_fails(layout.path(), 4, &image.manifest);
}

#[test]
fn tar_entries_that_climb_out_have_no_effect_outside_the_image() {
    let outside = tempfile::tempdir().unwrap();
    let escape = outside.path().join("escaped");
    let climb = format!("../../../../../../..{}", escape.display());
    let (layout, _) = debian_layout(&[
        Entry::File("../../etc/os-release", b"ID=evil\nVERSION_ID=666\n"),
        Entry::File(&climb, b"written outside"),
    ]);

    let output = scan(layout.path(), &[]);
    let doc = document(&output);

    assert!(!escape.exists(), "a file was written outside the image");
    assert_eq!(support::os(&doc), Some(("debian".into(), "12".into())));
    assert_eq!(packages(&doc).len(), 96);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("../../etc/os-release"),
        "no warning: {stderr}"
    );
}

#[test]
fn a_layout_with_several_images_needs_a_selector() {
    let (layout, first) = debian_layout(&[]);
    let second = write_image(
        layout.path(),
        "example.test/other:2",
        &[layer(&[Entry::File(
            "etc/os-release",
            b"ID=alpine\nVERSION_ID=3.20.3\n",
        )])],
    );
    let path = layout.path().display().to_string();

    let output = scan(layout.path(), &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("example.test/debian:12") && stderr.contains("example.test/other:2"));

    let by_tag = document(
        &support::scanhost()
            .args(["scan", &format!("{path}:2")])
            .output()
            .unwrap(),
    );
    assert_eq!(
        by_tag["metadata"]["component"]["version"],
        second.manifest.as_str()
    );
    let by_digest = document(
        &support::scanhost()
            .args(["scan", &format!("{path}@{}", first.manifest)])
            .output()
            .unwrap(),
    );
    assert_eq!(packages(&by_digest).len(), 96);

    let output = support::scanhost()
        .args(["scan", &format!("{path}:nope")])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("\"nope\""));
}

#[test]
fn an_oci_archive_is_scanned_in_place() {
    let (layout, image) = debian_layout(&[]);
    let archive = layout.path().with_extension("tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&archive).unwrap());
    builder.append_dir_all(".", layout.path()).unwrap();
    builder.finish().unwrap();

    let doc = document(&scan(&archive, &[]));
    std::fs::remove_file(&archive).unwrap();

    assert_eq!(packages(&doc).len(), 96);
    assert_eq!(
        doc["metadata"]["component"]["version"],
        image.manifest.as_str()
    );
}

/// A gzip layer whose `var/lib/dpkg/status` is `size` zero bytes, built
/// from repeated gzip members so that it is small and quick to make.
fn bomb_layer(size: u64) -> support::oci::Layer {
    use sha2::Digest as _;

    let mut header = tar::Header::new_gnu();
    header.set_path("var/lib/dpkg/status").unwrap();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_cksum();
    let chunk = vec![0u8; 64 << 20];
    assert_eq!(size % chunk.len() as u64, 0);

    // The tar: the header, the zeros of the file, two zero end blocks.
    let mut hasher = sha2::Sha256::new();
    hasher.update(header.as_bytes());
    let mut blob = gzip(header.as_bytes());
    let member = {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut encoder, &chunk).unwrap();
        encoder.finish().unwrap()
    };
    for _ in 0..size / chunk.len() as u64 {
        hasher.update(&chunk);
        blob.extend_from_slice(&member);
    }
    hasher.update([0u8; 1024]);
    blob.extend_from_slice(&gzip(&[0u8; 1024]));
    support::oci::Layer {
        blob,
        diff_id: format!("sha256:{:x}", hasher.finalize()),
    }
}

#[test]
fn a_decompression_bomb_stays_within_the_memory_cap_and_the_host_goes_on() {
    use scanhost::content::{Digest, OciLayout};
    use scanhost::plugins::{FailureKind, Limits, Registry, Runtime};
    use scanhost::target::{ImageTarget, Target, host_platform};

    let layout = tempfile::tempdir().unwrap();
    let bomb = bomb_layer(1 << 30);
    assert!(bomb.blob.len() < 2 << 20, "{} bytes", bomb.blob.len());
    let image = write_image(layout.path(), "example.test/bomb:1", &[bomb]);

    let runtime = Runtime::new(
        Limits {
            scan_timeout: Duration::from_secs(120),
            max_memory: 64 << 20,
        },
        Some(&support::cache_dir()),
    )
    .unwrap();
    let (registry, _) = Registry::load(&runtime, None).unwrap();
    let target = |dir: &Path, digest: &str| {
        let store = Arc::new(OciLayout::open(dir).unwrap());
        let digest = Digest::parse(digest).unwrap();
        Target::Image(ImageTarget::identify(store, digest, vec![], host_platform()).unwrap())
    };

    let outcome =
        scanhost::scan::scan(&runtime, &registry, &target(layout.path(), &image.manifest)).unwrap();
    for failure in &outcome.failures {
        assert_eq!(failure.kind, FailureKind::Timeout, "{failure}");
    }
    assert!(outcome.packages.is_empty());

    let (good, good_image) = debian_layout(&[]);
    let outcome = scanhost::scan::scan(
        &runtime,
        &registry,
        &target(good.path(), &good_image.manifest),
    )
    .unwrap();
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert_eq!(outcome.packages.len(), 96);
}

// A layer blob that is a symlink to a file outside the layout: it must not
// be read, and nothing of that file may reach the output.
#[test]
fn a_blob_symlinked_out_of_the_layout_is_refused_without_quoting_it() {
    let (layout, image) = debian_layout(&[]);
    let secret = layout.path().with_extension("secret");
    std::fs::write(&secret, "SECRET-TOKEN-1234 outside the layout\n".repeat(40)).unwrap();
    let blob = blob_path(layout.path(), &image.layers[0]);
    std::fs::remove_file(&blob).unwrap();
    std::os::unix::fs::symlink(&secret, &blob).unwrap();

    let output = scan(layout.path(), &[]);
    std::fs::remove_file(&secret).unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("symlink"), "{stderr}");
    assert!(!stderr.contains("SECRET"), "{stderr}");
}

// A FIFO where a blob should be: opening it must not block the scan.
#[test]
fn a_fifo_in_place_of_a_blob_fails_at_once() {
    let (layout, image) = debian_layout(&[]);
    let blob = blob_path(layout.path(), &image.layers[0]);
    std::fs::remove_file(&blob).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(&blob)
        .status()
        .unwrap();
    assert!(status.success());

    let output = support::scanhost()
        .args(["scan", "--scan-timeout", "60s"])
        .arg(layout.path())
        .output()
        .unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("not a regular file"), "{stderr}");
}

// A layout whose images differ only after a ':' in the reference name is
// selected by the whole reference.
#[test]
fn a_full_reference_with_colons_selects_the_image() {
    let (layout, _) = debian_layout(&[]);
    let alpine = write_image(
        layout.path(),
        "example.test/alpine:3.20",
        &[layer(&[Entry::File(
            "etc/os-release",
            b"ID=alpine\nVERSION_ID=3.20.3\n",
        )])],
    );
    let arg = format!("{}:example.test/alpine:3.20", layout.path().display());

    let doc = document(&support::scanhost().args(["scan", &arg]).output().unwrap());

    assert_eq!(
        doc["metadata"]["component"]["version"],
        alpine.manifest.as_str()
    );
}

/// A document without what differs between two runs: its serial number
/// and timestamp.
fn stable(mut doc: Value) -> Value {
    doc.as_object_mut().unwrap().remove("serialNumber");
    doc["metadata"].as_object_mut().unwrap().remove("timestamp");
    doc
}

// What the image scanner made of each layer is kept by diff_id: a second
// scan needs no layer blob and gives the same document; another build of
// the plugin (a new component digest) does not read what the first kept.
#[test]
fn a_warm_cache_gives_the_cold_document_and_another_build_does_not_read_it() {
    let layout = tempfile::tempdir().unwrap();
    let image = support::two_layer_image(layout.path(), "example.test/debian:12");
    let cache = tempfile::tempdir().unwrap();
    let scan = |plugin_dir: Option<&Path>| {
        let mut command = support::scanhost();
        command
            .env_remove("SCANHOST_NO_CACHE")
            .arg("scan")
            .arg(layout.path())
            .arg("--cache-dir")
            .arg(cache.path());
        if let Some(dir) = plugin_dir {
            command.arg("--plugin-dir").arg(dir);
        }
        command.output().unwrap()
    };

    let cold = stable(document(&scan(None)));
    assert_eq!(packages(&cold).len(), 96);
    // The layers are gone: only what was kept can give the document.
    for layer in &image.layers {
        std::fs::remove_file(blob_path(layout.path(), layer)).unwrap();
    }
    let warm = stable(document(&scan(None)));
    assert_eq!(warm, cold);

    let plugins = tempfile::tempdir().unwrap();
    let shipped = std::fs::read(support::test_plugin("image-scanner")).unwrap();
    std::fs::write(
        plugins.path().join("image-scanner.wasm"),
        support::rebuilt(&shipped, "another build"),
    )
    .unwrap();
    let other_build = scan(Some(plugins.path()));
    let stderr = String::from_utf8_lossy(&other_build.stderr);
    assert_eq!(other_build.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(&image.layers[0]), "{stderr}");
}

// An index with no manifest for the platform asked for fails for good,
// naming the index once and the platforms it has.
#[test]
fn an_index_without_the_platform_asked_for_names_it_once() {
    let (layout, image) = debian_layout(&[]);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": image.manifest,
            "size": std::fs::metadata(blob_path(layout.path(), &image.manifest)).unwrap().len(),
            "platform": {"os": "linux", "architecture": "arm64"},
        }],
    });
    let index_digest = support::oci::put(layout.path(), &serde_json::to_vec(&index).unwrap());
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": index_digest,
            "size": serde_json::to_vec(&index).unwrap().len(),
        }],
    });
    std::fs::write(layout.path().join("index.json"), top.to_string()).unwrap();

    let output = scan(layout.path(), &["--platform", "linux/amd64"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "blob {index_digest}: the image has no linux/amd64 variant (it has linux/arm64)"
        )),
        "{stderr}"
    );
}
