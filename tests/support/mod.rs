//! Shared helpers of the end-to-end tests: running the real `scanhost`
//! binary, reading fixture cases, and checking documents against the
//! official CycloneDX schema.

#![allow(dead_code)]

pub mod agent;
pub mod containerd;
pub mod fake_containerd;
pub mod oci;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

/// Version of the library whose bundled schemas and validator are the
/// reference for CycloneDX 1.6 documents.
const CYCLONEDX_PYTHON_LIB: &str = "cyclonedx-python-lib[json-validation]==11.12.0";

/// The repository's `tests/fixtures` directory.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// A file of the Debian minbase fixture.
pub fn minbase(path: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("debian-bookworm-minbase").join(path)).unwrap()
}

/// A host root under `dir` holding the minbase os-release and database.
pub fn minbase_root(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    for path in ["usr/lib/os-release", "var/lib/dpkg/status"] {
        std::fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
        std::fs::write(root.join(path), minbase(path)).unwrap();
    }
    root
}

/// The minbase Debian database (96 packages) as an image of two layers
/// written into `layout` under `name`; the upper layer holds the
/// database.
pub fn two_layer_image(layout: &Path, name: &str) -> oci::Image {
    let os_release = minbase("usr/lib/os-release");
    let status = minbase("var/lib/dpkg/status");
    let lower = oci::layer(&[oci::Entry::File("etc/os-release", &os_release)]);
    let upper = oci::layer(&[oci::Entry::File("var/lib/dpkg/status", &status)]);
    oci::write_image(layout, name, &[lower, upper])
}

/// An Alpine image of one layer (os-release and the apk database of the
/// `installed.multiple-1` fixture, 4 packages) written into `layout` under `name`.
pub fn alpine_image(layout: &Path, name: &str) -> oci::Image {
    let fixtures = fixtures();
    let os_release = std::fs::read(fixtures.join("os-release/alpine_etc_os-release")).unwrap();
    let installed = std::fs::read(fixtures.join("alpine/installed.multiple-1")).unwrap();
    let only = oci::layer(&[
        oci::Entry::File("etc/os-release", &os_release),
        oci::Entry::File("lib/apk/db/installed", &installed),
    ]);
    oci::write_image(layout, name, &[only])
}

/// `component` with a custom section appended: the same plugin, another
/// component digest, as a rebuild gives.
pub fn rebuilt(component: &[u8], note: &str) -> Vec<u8> {
    let mut payload = vec![note.len() as u8];
    payload.extend_from_slice(note.as_bytes());
    let mut bytes = component.to_vec();
    bytes.push(0); // custom section
    bytes.push(payload.len() as u8);
    bytes.extend_from_slice(&payload);
    bytes
}

/// The directory of test components built by the host's build script.
pub fn test_plugin(name: &str) -> PathBuf {
    Path::new(env!("SCANHOST_TEST_PLUGINS")).join(format!("{}.wasm", name.replace('-', "_")))
}

/// A compilation cache shared by every test, so that each component is
/// compiled once per build.
pub fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("compile-cache")
}

/// `scanhost` with the shared compilation cache, and without the plugin
/// cache: each test sees its own input, not what another one kept.
pub fn scanhost() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_scanhost"));
    command
        .env("SCANHOST_LOG", "info")
        .env("SCANHOST_NO_CACHE", "true")
        .env("XDG_CACHE_HOME", Path::new(env!("CARGO_TARGET_TMPDIR")));
    command
}

/// Runs `scanhost scan ROOT` with `args` appended.
pub fn scan(root: &Path, args: &[&str]) -> Output {
    scanhost()
        .arg("scan")
        .arg(root)
        .args(args)
        .output()
        .expect("cannot run scanhost")
}

/// The document printed by a successful scan.
pub fn document(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "scanhost failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("stdout is not JSON")
}

/// One fixture case: its input and what expected.json says of it.
pub struct Case {
    pub name: String,
    pub input: PathBuf,
    pub os: Option<(String, String)>,
    /// `[purl type, name, version, architecture?]`.
    pub packages: BTreeSet<(String, String, String, Option<String>)>,
    /// `None`, `Some("retryable")` or `Some("fatal")`.
    pub error: Option<String>,
}

/// The fixture cases whose expected.json has this `kind`, by name.
pub fn cases(kind: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    for entry in std::fs::read_dir(fixtures().join("cases")).unwrap() {
        let dir = entry.unwrap().path();
        let text = std::fs::read_to_string(dir.join("expected.json")).unwrap();
        let expected: Value = serde_json::from_str(&text).unwrap();
        if expected["kind"] != kind {
            continue;
        }
        cases.push(Case {
            name: dir.file_name().unwrap().to_string_lossy().into_owned(),
            input: dir.join("input"),
            os: expected["os"].as_object().map(|os| {
                (
                    os["id"].as_str().unwrap().to_string(),
                    os["version_id"].as_str().unwrap().to_string(),
                )
            }),
            packages: expected["packages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    let field = |i: usize| p.get(i).and_then(Value::as_str).map(str::to_string);
                    (
                        field(0).unwrap(),
                        field(1).unwrap(),
                        field(2).unwrap(),
                        field(3),
                    )
                })
                .collect(),
            error: expected["error"].as_str().map(str::to_string),
        });
    }
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

impl Case {
    /// Checks the OS and the package set of `doc` against the case; the
    /// architecture is compared only where the case gives one.
    pub fn check(&self, doc: &Value) {
        let found_os = os(doc);
        match (&self.os, &found_os) {
            (Some((id, version)), Some((found_id, found_version))) => {
                assert_eq!(found_id, id, "{}: OS id", self.name);
                assert!(
                    found_version.starts_with(version.as_str()),
                    "{}: OS version {found_version}, expected {version}",
                    self.name
                );
            }
            (None, None) => {}
            _ => panic!("{}: OS {found_os:?}, expected {:?}", self.name, self.os),
        }

        let found: BTreeSet<_> = packages(doc)
            .into_iter()
            .map(|p| {
                let compare_arch = self.packages.iter().any(|e| e.1 == p.name && e.3.is_some());
                let arch = if compare_arch { p.arch } else { None };
                (p.ecosystem, p.name, p.version, arch)
            })
            .collect();
        assert_eq!(found, self.packages, "{}: packages", self.name);
    }
}

/// A package as the fixtures' expected.json lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pkg {
    pub ecosystem: String,
    pub name: String,
    pub version: String,
    pub arch: Option<String>,
}

/// The packages of a CycloneDX document, from their purls and properties.
pub fn packages(doc: &Value) -> BTreeSet<Pkg> {
    components(doc)
        .filter(|c| c["type"] == "library")
        .map(|c| {
            let purl = c["purl"].as_str().expect("a package without purl");
            let ecosystem = purl
                .strip_prefix("pkg:")
                .and_then(|rest| rest.split('/').next())
                .expect("a purl without type")
                .to_string();
            Pkg {
                ecosystem,
                name: c["name"].as_str().unwrap().to_string(),
                version: c["version"].as_str().unwrap().to_string(),
                arch: property(c, "scanhost:package:architecture"),
            }
        })
        .collect()
}

pub fn components(doc: &Value) -> impl Iterator<Item = &Value> {
    doc["components"].as_array().expect("no components").iter()
}

pub fn property(component: &Value, name: &str) -> Option<String> {
    component["properties"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .map(|p| p["value"].as_str().unwrap().to_string())
}

/// The `operating-system` component's name and version.
pub fn os(doc: &Value) -> Option<(String, String)> {
    components(doc)
        .find(|c| c["type"] == "operating-system")
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["version"].as_str().unwrap_or_default().to_string(),
            )
        })
}

/// Validates `docs` against the CycloneDX 1.6 JSON schema with the
/// validator of cyclonedx-python-lib, installed once under the target
/// directory. Panics naming every invalid document.
pub fn validate_cyclonedx(docs: &[(&str, &Value)]) {
    let lib = cyclonedx_lib();
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, (name, doc)) in docs.iter().enumerate() {
        let file = dir.path().join(format!("{i}.json"));
        std::fs::write(&file, serde_json::to_vec(doc).unwrap()).unwrap();
        files.push((name.to_string(), file));
    }
    let script = r#"
import sys
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
validator = JsonStrictValidator(SchemaVersion.V1_6)
failed = 0
for name, path in zip(sys.argv[1::2], sys.argv[2::2]):
    with open(path) as f:
        error = validator.validate_str(f.read())
    if error is not None:
        failed += 1
        print(f"{name}: {error}")
sys.exit(1 if failed else 0)
"#;
    let mut command = Command::new("python3");
    command.env("PYTHONPATH", lib).arg("-c").arg(script);
    for (name, file) in &files {
        command.arg(name).arg(file);
    }
    let output = command.output().expect("cannot run python3 to validate");
    assert!(
        output.status.success(),
        "documents do not validate against CycloneDX 1.6:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn cyclonedx_lib() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cyclonedx-python-lib");
        if !dir.join("cyclonedx").exists() {
            let status = Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .arg("--target")
                .arg(&dir)
                .arg(CYCLONEDX_PYTHON_LIB)
                .status()
                .expect("python3 with pip is needed to validate CycloneDX documents");
            assert!(status.success(), "cannot install {CYCLONEDX_PYTHON_LIB}");
        }
        dir
    })
}
