//! Debian packages from dpkg's database.
//!
//! Two kinds of database file are read, resolved inside the root:
//! - `var/lib/dpkg/status`, written by dpkg;
//! - every stanza file in `var/lib/dpkg/status.d/`, written by image
//!   builders that install packages without dpkg (distroless images): one
//!   file per package, named after it. dpkg's other per-package files may
//!   sit beside them (`libc6.md5sums`); a name ending in one of dpkg's
//!   control-file suffixes ([`CONTROL_FILE_SUFFIXES`]) is skipped. Package
//!   names may contain dots (`python3.11`), so a dot alone does not make a
//!   name a control file. Anything else that does not parse as stanzas is
//!   reported as a warning.
//!
//! A package counts when its files are on disk: the third word of `Status`
//! (the package state) is `installed`, `unpacked`, `half-configured`,
//! `triggers-awaited` or `triggers-pending`, whatever the first two words
//! (the wanted action and the error flag) say. `config-files`,
//! `half-installed` and `not-installed` do not count. A stanza without
//! `Status` counts as installed: distroless builders write none, and the
//! file claims the package is there.
//!
//! A package is identified by name and architecture, so the amd64 and i386
//! copies of a Multi-Arch package are both listed. When the same name and
//! architecture appear twice, in one file or across files, the later one
//! replaces the earlier one (keeping its place in the list), with a warning:
//! files are read in the order `status`, then `status.d` by name, and a
//! later record is the more recent write.
//!
//! The source package comes from `Source: NAME` or `Source: NAME (VERSION)`;
//! without a version it has the binary package's version, and without a
//! `Source` field there is none (dpkg omits the field when the source has
//! the binary's name, but reporting that guess adds nothing). dpkg records
//! no licenses.
//!
//! The purl is `pkg:deb/ID/NAME@VERSION?arch=ARCH&distro=ID-VERSION_ID&upstream=SOURCE`,
//! where `ID` and `VERSION_ID` come from os-release (`debian` when there is
//! no OS), and a qualifier whose value is unknown is left out.

mod control;

use std::collections::HashMap;

use crate::purl::Purl;
use crate::root::{FileKind, Root, is_absent, read_if_present, resolve};
use crate::{OsInfo, Package};

const STATUS: &str = "var/lib/dpkg/status";
const STATUS_D: &str = "var/lib/dpkg/status.d";

/// Suffixes of dpkg's per-package control files, which are not stanzas.
const CONTROL_FILE_SUFFIXES: [&str; 13] = [
    ".clilibs",
    ".conffiles",
    ".config",
    ".list",
    ".md5sums",
    ".postinst",
    ".postrm",
    ".preinst",
    ".prerm",
    ".shlibs",
    ".symbols",
    ".templates",
    ".triggers",
];

/// Package states in which the package's files are on disk.
const PRESENT_STATES: [&str; 5] = [
    "installed",
    "unpacked",
    "half-configured",
    "triggers-awaited",
    "triggers-pending",
];

/// Package states in which the package's files are not on disk.
const ABSENT_STATES: [&str; 3] = ["config-files", "half-installed", "not-installed"];

/// The installed Debian packages of `root`; faults go to `warnings`.
pub(crate) fn analyze(
    root: &dyn Root,
    os: Option<&OsInfo>,
    warnings: &mut Vec<String>,
) -> Vec<Package> {
    let mut packages = Packages::default();

    match read_if_present(root, STATUS) {
        Ok(Some((_, bytes))) => packages.add_file(STATUS, &bytes, os, warnings),
        Ok(None) => {}
        Err(err) => warnings.push(format!("{STATUS}: cannot read: {err}")),
    }

    for name in status_d_entries(root, warnings) {
        let path = format!("{STATUS_D}/{name}");
        match read_stanza_file(root, &path) {
            Ok(Some(bytes)) => packages.add_file(&path, &bytes, os, warnings),
            Ok(None) => {}
            Err(err) => warnings.push(format!("{path}: cannot read: {err}")),
        }
    }

    packages.list
}

/// The names in `status.d` that may hold stanzas, sorted.
fn status_d_entries(root: &dyn Root, warnings: &mut Vec<String>) -> Vec<String> {
    let listing = resolve(root, STATUS_D).and_then(|dir| {
        if root.lstat(&dir)? == FileKind::Dir {
            root.read_dir(&dir)
        } else {
            Ok(Vec::new())
        }
    });
    match listing {
        Ok(names) => names
            .into_iter()
            .filter(|name| !CONTROL_FILE_SUFFIXES.iter().any(|s| name.ends_with(s)))
            .collect(),
        Err(err) if is_absent(&err) => Vec::new(),
        Err(err) => {
            warnings.push(format!("{STATUS_D}: cannot list: {err}"));
            Vec::new()
        }
    }
}

/// The bytes of a `status.d` entry, or `None` when it is not a regular file
/// (a directory there is not a database).
fn read_stanza_file(root: &dyn Root, path: &str) -> std::io::Result<Option<Vec<u8>>> {
    let resolved = match resolve(root, path) {
        Ok(resolved) => resolved,
        Err(err) if is_absent(&err) => return Ok(None),
        Err(err) => return Err(err),
    };
    if root.lstat(&resolved)? != FileKind::File {
        return Ok(None);
    }
    root.read(&resolved).map(Some)
}

/// The packages found so far. Invariant: `index` maps each (name,
/// architecture) in `list` to its position, so no two entries share both.
#[derive(Default)]
struct Packages {
    list: Vec<Package>,
    index: HashMap<(String, Option<String>), usize>,
}

impl Packages {
    /// Adds the installed packages of one database file read from `path`.
    fn add_file(
        &mut self,
        path: &str,
        bytes: &[u8],
        os: Option<&OsInfo>,
        warnings: &mut Vec<String>,
    ) {
        let text = String::from_utf8_lossy(bytes);
        for stanza in control::parse(&text) {
            let stanza = match stanza {
                Ok(stanza) => stanza,
                Err(malformed) => {
                    warnings.push(format!(
                        "{path}: stanza at line {} skipped: {}",
                        malformed.line, malformed.reason
                    ));
                    continue;
                }
            };
            match package(&stanza, path, os) {
                Ok(Some(package)) => self.insert(package, warnings),
                Ok(None) => {}
                Err(reason) => warnings.push(format!(
                    "{path}: stanza at line {} skipped: {reason}",
                    stanza.line
                )),
            }
        }
    }

    fn insert(&mut self, package: Package, warnings: &mut Vec<String>) {
        let key = (package.name.clone(), package.architecture.clone());
        match self.index.get(&key) {
            Some(&at) => {
                let earlier = &self.list[at];
                warnings.push(format!(
                    "{}: package {} ({}) {} replaces version {} read from {}",
                    package.path,
                    package.name,
                    package.architecture.as_deref().unwrap_or("no architecture"),
                    package.version,
                    earlier.version,
                    earlier.path,
                ));
                self.list[at] = package;
            }
            None => {
                self.index.insert(key, self.list.len());
                self.list.push(package);
            }
        }
    }
}

/// The package a stanza describes; `Ok(None)` when its files are not on
/// disk, `Err` with the reason when the stanza is unusable.
fn package(
    stanza: &control::Stanza<'_>,
    path: &str,
    os: Option<&OsInfo>,
) -> Result<Option<Package>, String> {
    let name = stanza
        .get("Package")
        .filter(|name| !name.is_empty())
        .ok_or("no Package field")?;

    // The state is checked before the version: dpkg keeps records of
    // packages that are not installed, and some of them have no version.
    if let Some(status) = stanza.get("Status") {
        let words: Vec<&str> = status.split_whitespace().collect();
        let [_, _, state] = words[..] else {
            return Err(format!(
                "package {name}: Status `{status}` is not three words"
            ));
        };
        if ABSENT_STATES.contains(&state) {
            return Ok(None);
        }
        if !PRESENT_STATES.contains(&state) {
            return Err(format!("package {name}: unknown package state `{state}`"));
        }
    }

    let version = stanza
        .get("Version")
        .filter(|version| !version.is_empty())
        .ok_or_else(|| format!("package {name}: no Version field"))?;
    let architecture = stanza.get("Architecture").filter(|a| !a.is_empty());
    let (source_name, source_version) = match stanza.get("Source") {
        Some(source) if !source.is_empty() => {
            let (source_name, source_version) = parse_source(source);
            (Some(source_name), Some(source_version.unwrap_or(version)))
        }
        _ => (None, None),
    };

    let vendor = os.map_or("debian", |os| os.id.as_str());
    let distro = os
        .filter(|os| !os.version_id.is_empty())
        .map(|os| format!("{}-{}", os.id, os.version_id));
    let purl = Purl::new("deb", vendor, name, version)
        .qualifier("arch", architecture)
        .qualifier("distro", distro.as_deref())
        .qualifier("upstream", source_name);

    Ok(Some(Package {
        ecosystem: "deb".to_string(),
        name: name.to_string(),
        version: version.to_string(),
        purl: purl.to_string(),
        architecture: architecture.map(String::from),
        source_name: source_name.map(String::from),
        source_version: source_version.map(String::from),
        licenses: Vec::new(),
        path: path.to_string(),
    }))
}

/// Splits `NAME (VERSION)` into its parts; the version is `None` when the
/// parentheses are missing or empty.
fn parse_source(source: &str) -> (&str, Option<&str>) {
    let Some((name, rest)) = source.split_once('(') else {
        return (source.trim(), None);
    };
    let version = rest.split(')').next().unwrap_or_default().trim();
    (name.trim(), (!version.is_empty()).then_some(version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory_root::MemoryRoot;

    fn debian_12() -> OsInfo {
        OsInfo {
            id: "debian".to_string(),
            version_id: "12".to_string(),
            pretty_name: String::new(),
        }
    }

    fn stanza(name: &str, status: &str, extra: &str) -> String {
        format!("Package: {name}\nStatus: {status}\nArchitecture: amd64\nVersion: 1.0-1\n{extra}\n")
    }

    fn names(packages: &[Package]) -> Vec<&str> {
        packages.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn third_word_of_status_decides() {
        let states = [
            ("a", "install ok installed"),
            ("b", "deinstall ok config-files"),
            ("c", "purge ok installed"),
            ("d", "install ok not-installed"),
            ("e", "hold ok unpacked"),
            ("f", "install reinstreq half-installed"),
            ("g", "install ok half-configured"),
            ("h", "install ok triggers-awaited"),
            ("i", "install ok triggers-pending"),
        ];
        let status: String = states.iter().map(|(n, s)| stanza(n, s, "")).collect();
        let root = MemoryRoot::new().file(STATUS, status);
        let mut warnings = Vec::new();
        let packages = analyze(&root, Some(&debian_12()), &mut warnings);
        assert_eq!(names(&packages), ["a", "c", "e", "g", "h", "i"]);
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn not_installed_record_without_version_is_silently_skipped() {
        let root =
            MemoryRoot::new().file(STATUS, "Package: gone\nStatus: purge ok not-installed\n");
        let mut warnings = Vec::new();
        assert!(analyze(&root, None, &mut warnings).is_empty());
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn package_fields_and_purl() {
        let status = concat!(
            "Package: login\nStatus: install ok installed\nArchitecture: amd64\n",
            "Version: 1:4.13+dfsg1-1\nSource: shadow\n\n",
            "Package: libgcc-s1\nStatus: install ok installed\nArchitecture: amd64\n",
            "Version: 12.2.0-14\nSource: gcc-12 (12.2.0-14)\n\n",
            "Package: base-files\nStatus: install ok installed\nArchitecture: all\n",
            "Version: 12.4\n",
        );
        let root = MemoryRoot::new().file(STATUS, status);
        let packages = analyze(&root, Some(&debian_12()), &mut Vec::new());

        assert_eq!(
            packages[0],
            Package {
                ecosystem: "deb".to_string(),
                name: "login".to_string(),
                version: "1:4.13+dfsg1-1".to_string(),
                purl: "pkg:deb/debian/login@1:4.13%2Bdfsg1-1?arch=amd64&distro=debian-12&upstream=shadow"
                    .to_string(),
                architecture: Some("amd64".to_string()),
                source_name: Some("shadow".to_string()),
                source_version: Some("1:4.13+dfsg1-1".to_string()),
                licenses: Vec::new(),
                path: STATUS.to_string(),
            }
        );
        assert_eq!(packages[1].source_name.as_deref(), Some("gcc-12"));
        assert_eq!(packages[1].source_version.as_deref(), Some("12.2.0-14"));
        assert_eq!(packages[2].source_name, None);
        assert_eq!(packages[2].source_version, None);
        assert_eq!(
            packages[2].purl,
            "pkg:deb/debian/base-files@12.4?arch=all&distro=debian-12"
        );
    }

    #[test]
    fn purl_namespace_and_distro_follow_the_os() {
        let root = MemoryRoot::new().file(STATUS, stanza("a", "install ok installed", ""));
        let purl = |os: Option<&OsInfo>| analyze(&root, os, &mut Vec::new())[0].purl.clone();

        assert_eq!(purl(None), "pkg:deb/debian/a@1.0-1?arch=amd64");
        let ubuntu = OsInfo {
            id: "ubuntu".to_string(),
            version_id: "22.04".to_string(),
            pretty_name: String::new(),
        };
        assert_eq!(
            purl(Some(&ubuntu)),
            "pkg:deb/ubuntu/a@1.0-1?arch=amd64&distro=ubuntu-22.04"
        );
        let no_version = OsInfo {
            version_id: String::new(),
            ..ubuntu
        };
        assert_eq!(purl(Some(&no_version)), "pkg:deb/ubuntu/a@1.0-1?arch=amd64");
    }

    #[test]
    fn multi_arch_copies_are_distinct_and_duplicates_replace() {
        let status = [
            stanza("libc6", "install ok installed", ""),
            stanza("libc6", "install ok installed", "").replace("amd64", "i386"),
            stanza("zlib1g", "install ok installed", ""),
            stanza("libc6", "install ok installed", "").replace("1.0-1", "2.0-1"),
        ]
        .join("\n");
        let root = MemoryRoot::new().file(STATUS, status);
        let mut warnings = Vec::new();
        let packages = analyze(&root, None, &mut warnings);

        let found: Vec<_> = packages
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.architecture.as_deref().unwrap(),
                    p.version.as_str(),
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                ("libc6", "amd64", "2.0-1"),
                ("libc6", "i386", "1.0-1"),
                ("zlib1g", "amd64", "1.0-1")
            ]
        );
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("libc6 (amd64) 2.0-1 replaces version 1.0-1"),
            "{warnings:?}"
        );
    }

    #[test]
    fn malformed_stanzas_are_skipped_with_their_line() {
        let status = concat!(
            "Package: a\nStatus: install ok installed\nVersion: 1\n\n",
            "Status: install ok installed\nVersion: 1\n\n",
            "Package: b\nStatus: install ok installed\n\n",
            "Package: c\nStatus: install ok\nVersion: 1\n\n",
            "Package: d\nStatus: install ok exploded\nVersion: 1\n\n",
            "Package: e\nbroken line\nVersion: 1\n\n",
            "Package: f\nStatus: install ok installed\nVersion: 1\n",
        );
        let root = MemoryRoot::new().file(STATUS, status);
        let mut warnings = Vec::new();
        let packages = analyze(&root, None, &mut warnings);

        assert_eq!(names(&packages), ["a", "f"]);
        assert_eq!(
            warnings,
            [
                "var/lib/dpkg/status: stanza at line 5 skipped: no Package field",
                "var/lib/dpkg/status: stanza at line 8 skipped: package b: no Version field",
                "var/lib/dpkg/status: stanza at line 11 skipped: package c: Status `install ok` is not three words",
                "var/lib/dpkg/status: stanza at line 15 skipped: package d: unknown package state `exploded`",
                "var/lib/dpkg/status: stanza at line 19 skipped: line 20 is not a `Name: value` field",
            ]
        );
    }

    #[test]
    fn status_d_files_and_control_file_suffixes() {
        let root = MemoryRoot::new()
            .file(
                "var/lib/dpkg/status.d/libc6",
                stanza("libc6", "install ok installed", ""),
            )
            .file(
                "var/lib/dpkg/status.d/libc6.md5sums",
                "0123  lib/libc.so.6\n",
            )
            .file("var/lib/dpkg/status.d/libc6.list", "/lib/libc.so.6\n")
            .file(
                "var/lib/dpkg/status.d/python3.11",
                "Package: python3.11\nVersion: 3.11.2-6\n",
            )
            .dir("var/lib/dpkg/status.d/subdir");
        let mut warnings = Vec::new();
        let packages = analyze(&root, None, &mut warnings);

        assert_eq!(names(&packages), ["libc6", "python3.11"]);
        assert_eq!(packages[1].path, "var/lib/dpkg/status.d/python3.11");
        assert_eq!(packages[1].architecture, None);
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn status_d_file_that_is_no_stanza_is_a_warning() {
        let root = MemoryRoot::new().file("var/lib/dpkg/status.d/README", "not a stanza\n");
        let mut warnings = Vec::new();
        assert!(analyze(&root, None, &mut warnings).is_empty());
        assert_eq!(
            warnings,
            [
                "var/lib/dpkg/status.d/README: stanza at line 1 skipped: line 1 is not a `Name: value` field"
            ]
        );
    }

    #[test]
    fn status_and_status_d_together() {
        let root = MemoryRoot::new()
            .file(STATUS, stanza("a", "install ok installed", ""))
            .file(
                "var/lib/dpkg/status.d/b",
                stanza("b", "install ok installed", ""),
            );
        let packages = analyze(&root, None, &mut Vec::new());
        assert_eq!(names(&packages), ["a", "b"]);
        assert_eq!(packages[0].path, STATUS);
        assert_eq!(packages[1].path, "var/lib/dpkg/status.d/b");
    }

    #[test]
    fn symlinked_database_directory_keeps_the_looked_up_path() {
        let root = MemoryRoot::new()
            .file("data/dpkg/status", stanza("a", "install ok installed", ""))
            .link("var/lib/dpkg", "/data/dpkg");
        let packages = analyze(&root, None, &mut Vec::new());
        assert_eq!(packages[0].path, STATUS);
    }

    #[test]
    fn source_field_forms() {
        assert_eq!(parse_source("glibc"), ("glibc", None));
        assert_eq!(
            parse_source("gcc-12 (12.2.0-14)"),
            ("gcc-12", Some("12.2.0-14"))
        );
        assert_eq!(
            parse_source("shadow (1:4.13+dfsg1-1)"),
            ("shadow", Some("1:4.13+dfsg1-1"))
        );
        assert_eq!(parse_source("odd ()"), ("odd", None));
        assert_eq!(parse_source("open (1.0"), ("open", Some("1.0")));
    }

    #[test]
    fn no_database_is_no_package() {
        let mut warnings = Vec::new();
        assert!(analyze(&MemoryRoot::new(), None, &mut warnings).is_empty());
        assert!(warnings.is_empty());
    }
}
