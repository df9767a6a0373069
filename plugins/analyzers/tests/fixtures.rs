//! `analyze` on the real root filesystems in the repository's
//! `tests/fixtures/`.
//!
//! `debian-bookworm-minbase` is the package database and
//! os-release of a Debian 12 system made with mmdebstrap's minbase variant.
//! `cases/NAME` are scanner cases, each an `input/` root
//! filesystem and an `expected.json` with the operating system (`id`, and a
//! `version_id` that the found one starts with) and the package set as
//! `[purl type, name, version, architecture]`, compared as sets; the
//! architecture is compared only where one is given.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use scanhost_analyzers::{DirRoot, Inventory, analyze};
use serde_json::Value;

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(path)
}

// debian-bookworm-minbase: its etc/os-release is a relative symlink to
// ../usr/lib/os-release, which must resolve inside the root.
#[test]
fn debian_bookworm_minbase() {
    let inventory = analyze(&DirRoot::new(fixture("debian-bookworm-minbase")));
    assert!(inventory.warnings.is_empty(), "{:?}", inventory.warnings);

    let os = inventory.os.expect("an OS");
    assert_eq!(
        (
            os.id.as_str(),
            os.version_id.as_str(),
            os.pretty_name.as_str()
        ),
        ("debian", "12", "Debian GNU/Linux 12 (bookworm)")
    );

    assert_eq!(inventory.packages.len(), 96);
    let names: BTreeSet<&str> = inventory.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names.len(), 96, "names are distinct");
    for package in &inventory.packages {
        assert_eq!(package.ecosystem, "deb");
        assert_eq!(package.path, "var/lib/dpkg/status");
        assert!(package.licenses.is_empty());
        assert!(
            package.purl.starts_with("pkg:deb/debian/"),
            "{}",
            package.purl
        );
        assert!(
            package.purl.contains("distro=debian-12"),
            "{}",
            package.purl
        );
    }

    let bsdutils = inventory
        .packages
        .iter()
        .find(|p| p.name == "bsdutils")
        .unwrap();
    assert_eq!(bsdutils.version, "1:2.38.1-5+deb12u3");
    assert_eq!(bsdutils.architecture.as_deref(), Some("amd64"));
    assert_eq!(bsdutils.source_name.as_deref(), Some("util-linux"));
    assert_eq!(bsdutils.source_version.as_deref(), Some("2.38.1-5+deb12u3"));
    assert_eq!(
        bsdutils.purl,
        "pkg:deb/debian/bsdutils@1:2.38.1-5%2Bdeb12u3?arch=amd64&distro=debian-12&upstream=util-linux"
    );

    // `+` is percent-encoded in names and versions alike.
    let libstdcxx = inventory
        .packages
        .iter()
        .find(|p| p.name == "libstdc++6")
        .unwrap();
    assert_eq!(
        libstdcxx.purl,
        "pkg:deb/debian/libstdc%2B%2B6@12.2.0-14%2Bdeb12u1?arch=amd64&distro=debian-12&upstream=gcc-12"
    );

    let libc6 = inventory
        .packages
        .iter()
        .find(|p| p.name == "libc6")
        .unwrap();
    assert_eq!(libc6.source_name.as_deref(), Some("glibc"));
    assert_eq!(
        libc6.source_version.as_deref(),
        Some(libc6.version.as_str())
    );
}

/// One package as `expected.json` lists it.
#[derive(Debug)]
struct Entry {
    ecosystem: String,
    name: String,
    version: String,
    architecture: Option<String>,
}

impl Entry {
    /// Whether this found package is the expected one `want`.
    fn matches(&self, want: &Entry) -> bool {
        self.ecosystem == want.ecosystem
            && self.name == want.name
            && self.version == want.version
            && (want.architecture.is_none() || self.architecture == want.architecture)
    }
}

/// Runs `analyze` on `cases/NAME/input` and compares the result
/// with its `expected.json`; returns the inventory for further checks.
fn check_case(name: &str) -> Inventory {
    let dir = fixture("cases").join(name);
    let expected: Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    assert_eq!(expected["kind"], "rootfs", "{name}");
    assert_eq!(expected["error"], Value::Null, "{name}");

    let inventory = analyze(&DirRoot::new(dir.join("input")));
    assert!(
        inventory.warnings.is_empty(),
        "{name}: {:?}",
        inventory.warnings
    );

    match (&expected["os"], &inventory.os) {
        (Value::Null, None) => {}
        (want, Some(os)) if !want.is_null() => {
            assert_eq!(os.id, want["id"].as_str().unwrap(), "{name}");
            let version = want["version_id"].as_str().unwrap();
            assert!(os.version_id.starts_with(version), "{name}: {os:?}");
        }
        (want, found) => panic!("{name}: expected OS {want}, found {found:?}"),
    }

    // Packages are compared as sets: nothing missing, nothing extra. An
    // expected package without an architecture matches any.
    let want: Vec<Entry> = expected["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Entry {
            ecosystem: p[0].as_str().unwrap().to_string(),
            name: p[1].as_str().unwrap().to_string(),
            version: p[2].as_str().unwrap().to_string(),
            architecture: p.get(3).and_then(Value::as_str).map(String::from),
        })
        .collect();
    let found: Vec<Entry> = inventory
        .packages
        .iter()
        .map(|p| Entry {
            ecosystem: p.ecosystem.clone(),
            name: p.name.clone(),
            version: p.version.clone(),
            architecture: p.architecture.clone(),
        })
        .collect();
    for w in &want {
        assert!(
            found.iter().any(|f| f.matches(w)),
            "{name}: missing {w:?} in {found:?}"
        );
    }
    for f in &found {
        assert!(
            want.iter().any(|w| f.matches(w)),
            "{name}: unexpected {f:?}"
        );
    }
    assert_eq!(found.len(), want.len(), "{name}: {found:?}");

    inventory
}

/// The rootfs cases in `cases`, each checked by a test below.
const CASES: [&str; 7] = [
    "apk-huge-line",
    "dpkg-installed-size-unit",
    "dpkg-multiarch-same",
    "dpkg-oversized-stanza",
    "dpkg-source-and-epoch",
    "dpkg-status-d",
    "dpkg-status-states",
];

#[test]
fn every_rootfs_case_has_a_test() {
    let mut on_disk: Vec<String> = std::fs::read_dir(fixture("cases"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|dir| {
            let expected = std::fs::read_to_string(dir.join("expected.json")).unwrap();
            let expected: Value = serde_json::from_str(&expected).unwrap();
            expected["kind"] == "rootfs"
        })
        .map(|dir| dir.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    assert_eq!(on_disk, CASES);
}

// apk-huge-line: a 130 kB dependency line must not drop busybox.
#[test]
fn case_apk_huge_line() {
    let inventory = check_case("apk-huge-line");
    let busybox = inventory
        .packages
        .iter()
        .find(|p| p.name == "busybox")
        .unwrap();
    assert_eq!(
        busybox.purl,
        "pkg:apk/alpine/busybox@1.36.1-r29?arch=x86_64&distro=3.20.3"
    );
    assert_eq!(busybox.path, "lib/apk/db/installed");
    assert_eq!(busybox.licenses, ["MIT"]);
}

// dpkg-installed-size-unit: an Installed-Size with a unit must not drop
// the package.
#[test]
fn case_dpkg_installed_size_unit() {
    check_case("dpkg-installed-size-unit");
}

// dpkg-multiarch-same: libc6:amd64 and libc6:i386 must both be listed.
#[test]
fn case_dpkg_multiarch_same() {
    let inventory = check_case("dpkg-multiarch-same");
    let purls: Vec<&str> = inventory.packages.iter().map(|p| p.purl.as_str()).collect();
    assert_eq!(
        purls,
        [
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12&upstream=glibc",
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=i386&distro=debian-12&upstream=glibc",
        ]
    );
}

// dpkg-oversized-stanza: a 230 kB stanza must not drop it or the next one.
#[test]
fn case_dpkg_oversized_stanza() {
    check_case("dpkg-oversized-stanza");
}

// dpkg-source-and-epoch: the source name and version, and the epoch in the
// version, must survive into the package and its purl.
#[test]
fn case_dpkg_source_and_epoch() {
    let inventory = check_case("dpkg-source-and-epoch");
    let source = |name: &str| {
        let p = inventory.packages.iter().find(|p| p.name == name).unwrap();
        (p.source_name.as_deref(), p.source_version.as_deref())
    };
    assert_eq!(source("libgcc-s1"), (Some("gcc-12"), Some("12.2.0-14")));
    assert_eq!(source("login"), (Some("shadow"), Some("1:4.13+dfsg1-1")));
    let login = inventory
        .packages
        .iter()
        .find(|p| p.name == "login")
        .unwrap();
    assert_eq!(
        login.purl,
        "pkg:deb/debian/login@1:4.13%2Bdfsg1-1?arch=amd64&distro=debian-12&upstream=shadow"
    );
}

// dpkg-status-d: distroless stanza files must be read, and libc6.md5sums
// beside them must not be taken for one.
#[test]
fn case_dpkg_status_d() {
    let inventory = check_case("dpkg-status-d");
    let tzdata = inventory
        .packages
        .iter()
        .find(|p| p.name == "tzdata")
        .unwrap();
    assert_eq!(tzdata.path, "var/lib/dpkg/status.d/tzdata");
}

// dpkg-status-states: only packages whose files are on disk count,
// whatever the wanted action in Status says.
#[test]
fn case_dpkg_status_states() {
    check_case("dpkg-status-states");
}
