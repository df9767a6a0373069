//! Alpine packages from apk's database.
//!
//! The database is `lib/apk/db/installed` or, on newer and merged-usr
//! systems, `usr/lib/apk/db/installed`; both are resolved inside the root
//! and read when present. When both lead to the same file (`lib` is a
//! symlink to `usr/lib`), it is read once, under the first path. A package
//! with the same name, version and architecture as one already found is
//! not listed again.
//!
//! The file is a list of records separated by blank lines. Each line is a
//! one-letter key, a colon and a value: `P` name, `V` version, `A`
//! architecture, `L` license, `o` origin (the source package); the many
//! other keys are ignored. Lines have no length limit (dependency lists
//! run to hundreds of kilobytes). A record without a name or a version is
//! skipped with a warning naming the line it starts at.
//!
//! Licenses: apk stores one string, either an SPDX expression
//! (`MIT AND BSD-2-Clause`) or, in older packages, a space-separated list
//! of names (`MIT BSD GPL2+`). A string with an SPDX operator (`AND`, `OR`,
//! `WITH`) or a parenthesis is kept whole as one expression; any other is
//! split into one license per word.
//!
//! The source version is the package's version: apk builds every package
//! of an origin from one build recipe at one version.
//!
//! The purl is `pkg:apk/ID/NAME@VERSION?arch=ARCH&distro=VERSION_ID`, where
//! `ID` and `VERSION_ID` come from os-release (`alpine` when there is no
//! OS), and a qualifier whose value is unknown is left out.

use std::collections::HashSet;

use crate::purl::Purl;
use crate::root::{Root, read_if_present};
use crate::{OsInfo, Package};

/// Where the database is looked for, in order.
const DATABASE_PATHS: [&str; 2] = ["lib/apk/db/installed", "usr/lib/apk/db/installed"];

/// The installed Alpine packages of `root`; faults go to `warnings`.
pub(crate) fn analyze(
    root: &dyn Root,
    os: Option<&OsInfo>,
    warnings: &mut Vec<String>,
) -> Vec<Package> {
    let mut packages = Vec::new();

    // `files` holds the resolved path of every database read; `seen` the
    // (name, version, architecture) of every package in `packages`.
    let mut files = HashSet::new();
    let mut seen = HashSet::new();

    for path in DATABASE_PATHS {
        let bytes = match read_if_present(root, path) {
            Ok(Some((resolved, bytes))) => {
                if !files.insert(resolved) {
                    continue;
                }
                bytes
            }
            Ok(None) => continue,
            Err(err) => {
                warnings.push(format!("{path}: cannot read: {err}"));
                continue;
            }
        };

        for record in parse(&String::from_utf8_lossy(&bytes)) {
            let record = match record {
                Ok(record) => record,
                Err((line, reason)) => {
                    warnings.push(format!("{path}: record at line {line} skipped: {reason}"));
                    continue;
                }
            };
            let key = (
                record.name.clone(),
                record.version.clone(),
                record.architecture.clone(),
            );
            if seen.insert(key) {
                packages.push(package(record, path, os));
            }
        }
    }

    packages
}

/// The fields of one database record that the analyzer keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    name: String,
    version: String,
    architecture: Option<String>,
    license: Option<String>,
    origin: Option<String>,
}

/// The records of an `installed` file, in order; a record without a name
/// or a version is an error with its first line number and the reason.
fn parse(text: &str) -> Vec<Result<Record, (usize, String)>> {
    let mut records = Vec::new();

    // The fields of the record being read, and the number of its first
    // line; `start` is `None` between records.
    let mut start = None;
    let mut fields: [Option<&str>; 5] = [None; 5];

    for (index, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            if let Some(line) = start.take() {
                records.push(record(line, std::mem::take(&mut fields)));
            }
            continue;
        }
        start.get_or_insert(index + 1);

        // Keys are single ASCII letters; a line of another shape is not a
        // field and is ignored, as is a key the analyzer does not use.
        let slot = match line.as_bytes() {
            [b'P', b':', ..] => 0,
            [b'V', b':', ..] => 1,
            [b'A', b':', ..] => 2,
            [b'L', b':', ..] => 3,
            [b'o', b':', ..] => 4,
            _ => continue,
        };
        fields[slot] = Some(line[2..].trim());
    }
    if let Some(line) = start {
        records.push(record(line, fields));
    }

    records
}

fn record(line: usize, fields: [Option<&str>; 5]) -> Result<Record, (usize, String)> {
    let [name, version, architecture, license, origin] =
        fields.map(|value| value.filter(|v| !v.is_empty()).map(String::from));
    let Some(name) = name else {
        return Err((line, "no package name (P:)".to_string()));
    };
    let Some(version) = version else {
        return Err((line, format!("package {name}: no version (V:)")));
    };
    Ok(Record {
        name,
        version,
        architecture,
        license,
        origin,
    })
}

fn package(record: Record, path: &str, os: Option<&OsInfo>) -> Package {
    let vendor = os.map_or("alpine", |os| os.id.as_str());
    let distro = os.map(|os| os.version_id.as_str());
    let purl = Purl::new("apk", vendor, &record.name, &record.version)
        .qualifier("arch", record.architecture.as_deref())
        .qualifier("distro", distro);

    Package {
        ecosystem: "apk".to_string(),
        purl: purl.to_string(),
        source_version: record.origin.as_ref().map(|_| record.version.clone()),
        source_name: record.origin,
        licenses: record.license.as_deref().map(licenses).unwrap_or_default(),
        name: record.name,
        version: record.version,
        architecture: record.architecture,
        path: path.to_string(),
    }
}

/// The licenses in an apk license string; see the module comment.
fn licenses(license: &str) -> Vec<String> {
    let is_expression = license.contains(['(', ')'])
        || license
            .split_whitespace()
            .any(|word| matches!(word, "AND" | "OR" | "WITH"));
    if is_expression {
        vec![license.to_string()]
    } else {
        license.split_whitespace().map(String::from).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory_root::MemoryRoot;

    const DB: &str = "lib/apk/db/installed";

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/../../tests/fixtures/alpine/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(path).unwrap()
    }

    fn alpine(version_id: &str) -> OsInfo {
        OsInfo {
            id: "alpine".to_string(),
            version_id: version_id.to_string(),
            pretty_name: String::new(),
        }
    }

    /// Each package of a database as `name version arch origin [licenses]`.
    fn summary(text: &str) -> Vec<String> {
        let root = MemoryRoot::new().file(DB, text);
        let mut warnings = Vec::new();
        let packages = analyze(&root, None, &mut warnings);
        assert!(warnings.is_empty(), "{warnings:?}");
        packages
            .into_iter()
            .map(|p| {
                format!(
                    "{} {} {} {} [{}]",
                    p.name,
                    p.version,
                    p.architecture.unwrap_or_default(),
                    p.source_name.unwrap_or_default(),
                    p.licenses.join(", ")
                )
            })
            .collect()
    }

    #[test]
    fn fixture_base() {
        assert_eq!(
            summary(&fixture("installed.base")),
            ["alpine-baselayout 3.2.0-r6 x86_64 alpine-baselayout [GPL-2.0-only]"]
        );
    }

    #[test]
    fn fixture_coverage() {
        assert_eq!(
            summary(&fixture("installed.coverage")),
            [
                "libc-utils 0.7.2-r0 x86_64 libc-dev [BSD]",
                "musl-utils 1.1.24-r2 x86_64 musl [MIT, BSD, GPL2+]",
            ]
        );
    }

    #[test]
    fn fixture_empty_deps_and_provides() {
        assert_eq!(
            summary(&fixture("installed.empty-deps-and-provides")),
            ["alpine-baselayout-data 3.4.0-r0 x86_64 alpine-baselayout [GPL-2.0-only]"]
        );
    }

    #[test]
    fn fixture_extra_file_attributes() {
        assert_eq!(
            summary(&fixture("installed.extra-file-attributes")),
            ["openjdk8-jre 8.212.04-r0 x86_64 openjdk8 [custom]"]
        );
    }

    #[test]
    fn fixture_multiple() {
        assert_eq!(
            summary(&fixture("installed.multiple-1")),
            [
                "bash 5.2.21-r0 x86_64 bash [GPL-3.0-or-later]",
                "busybox-binsh 1.36.1-r15 x86_64 busybox [GPL-2.0-only]",
                "musl 1.2.4_git20230717-r4 x86_64 musl [MIT]",
                "readline 8.2.1-r2 x86_64 readline [GPL-2.0-or-later]",
            ]
        );
    }

    // installed.single ends without a newline: the last record must still
    // be read.
    #[test]
    fn fixture_single_without_final_newline() {
        let text = fixture("installed.single");
        assert!(!text.ends_with('\n'));
        assert_eq!(
            summary(&text),
            ["musl-utils 1.1.24-r2 x86_64 musl [MIT, BSD, GPL2+]"]
        );
    }

    #[test]
    fn package_fields_and_purl() {
        let text = "P:busybox\nV:1.36.1-r29\nA:x86_64\nL:GPL-2.0-only\no:busybox\n";
        let root = MemoryRoot::new().file(DB, text);
        let packages = analyze(&root, Some(&alpine("3.20.3")), &mut Vec::new());
        assert_eq!(
            packages,
            [Package {
                ecosystem: "apk".to_string(),
                name: "busybox".to_string(),
                version: "1.36.1-r29".to_string(),
                purl: "pkg:apk/alpine/busybox@1.36.1-r29?arch=x86_64&distro=3.20.3".to_string(),
                architecture: Some("x86_64".to_string()),
                source_name: Some("busybox".to_string()),
                source_version: Some("1.36.1-r29".to_string()),
                licenses: vec!["GPL-2.0-only".to_string()],
                path: DB.to_string(),
            }]
        );
    }

    #[test]
    fn purl_namespace_and_distro_follow_the_os() {
        let root = MemoryRoot::new().file(DB, "P:a\nV:1-r0\n");
        let purl = |os: Option<&OsInfo>| analyze(&root, os, &mut Vec::new())[0].purl.clone();
        assert_eq!(purl(None), "pkg:apk/alpine/a@1-r0");
        let wolfi = OsInfo {
            id: "wolfi".to_string(),
            version_id: "20230201".to_string(),
            pretty_name: String::new(),
        };
        assert_eq!(purl(Some(&wolfi)), "pkg:apk/wolfi/a@1-r0?distro=20230201");
        assert_eq!(purl(Some(&alpine(""))), "pkg:apk/alpine/a@1-r0");
    }

    #[test]
    fn license_strings() {
        assert_eq!(licenses("MIT"), ["MIT"]);
        assert_eq!(licenses("MIT BSD GPL2+"), ["MIT", "BSD", "GPL2+"]);
        assert_eq!(licenses("MIT AND BSD-2-Clause"), ["MIT AND BSD-2-Clause"]);
        assert_eq!(
            licenses("GPL-2.0-or-later WITH Linux-syscall-note"),
            ["GPL-2.0-or-later WITH Linux-syscall-note"]
        );
        assert_eq!(licenses("(MIT OR Apache-2.0)"), ["(MIT OR Apache-2.0)"]);
        assert!(licenses("  ").is_empty());
    }

    #[test]
    fn records_without_name_or_version_are_skipped_with_their_line() {
        let text = "P:a\nV:1\n\nV:2\nA:x86_64\n\nC:Q1abc=\nP:b\n\r\nP:c\nV:3\r\n";
        let root = MemoryRoot::new().file(DB, text);
        let mut warnings = Vec::new();
        let packages = analyze(&root, None, &mut warnings);
        let names: Vec<_> = packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "c"]);
        assert_eq!(packages[1].version, "3");
        assert_eq!(
            warnings,
            [
                "lib/apk/db/installed: record at line 4 skipped: no package name (P:)",
                "lib/apk/db/installed: record at line 7 skipped: package b: no version (V:)",
            ]
        );
    }

    #[test]
    fn huge_line_does_not_drop_the_record() {
        let deps = "so:libdep.so.1 ".repeat(100_000);
        let text = format!("P:a\nV:1\n\nP:b\nV:2\nD:{deps}\nA:x86_64\n\nP:c\nV:3\n");
        assert_eq!(summary(&text), ["a 1   []", "b 2 x86_64  []", "c 3   []"]);
    }

    #[test]
    fn both_paths_to_one_file_are_read_once() {
        let root = MemoryRoot::new()
            .file("usr/lib/apk/db/installed", "P:a\nV:1\n")
            .link("lib", "usr/lib");
        let packages = analyze(&root, None, &mut Vec::new());
        assert_eq!(packages.len(), 1);
        assert_eq!(packages[0].path, DB);
    }

    #[test]
    fn same_package_in_two_databases_is_listed_once() {
        let root = MemoryRoot::new()
            .file(DB, "P:a\nV:1\nA:x86_64\n\nP:b\nV:1\n")
            .file(
                "usr/lib/apk/db/installed",
                "P:a\nV:1\nA:x86_64\n\nP:a\nV:2\nA:x86_64\n",
            );
        let packages = analyze(&root, None, &mut Vec::new());
        let found: Vec<_> = packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str(), p.path.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                ("a", "1", DB),
                ("b", "1", DB),
                ("a", "2", "usr/lib/apk/db/installed"),
            ]
        );
    }
}
