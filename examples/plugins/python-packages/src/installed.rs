//! The Python distributions installed anywhere in a root filesystem.
//!
//! Python has no single package database: every interpreter, and every
//! virtual environment, keeps its distributions in its own `site-packages`
//! (or, on Debian and its derivatives, `dist-packages`) directory, wherever
//! it was installed. So the whole root is walked, and a file counts as the
//! metadata of an installed distribution when it is one of:
//! - `<dir>/NAME.dist-info/METADATA` (installed from a wheel);
//! - `<dir>/NAME.egg-info/PKG-INFO` (installed by setuptools);
//! - `<dir>/NAME.egg-info`, a file (installed by distutils);
//!
//! where `<dir>` is named `site-packages` or `dist-packages`. Symlinks are
//! not followed, so an environment reached through a link (`lib64 -> lib`)
//! is read once, under its real path.
//!
//! Each distribution is reported once per purl: the same version of a
//! distribution in two environments is one package, found at the first of
//! its paths in the walk's sorted order. A metadata file that cannot be
//! read or names no version is a warning naming the file; the others are
//! still reported.

use std::collections::BTreeSet;

use scanhost_analyzers::{FileKind, Root, walk};

use crate::metadata::{self, Metadata};

/// The directories a Python installation keeps its distributions in.
const PACKAGE_DIRS: [&str; 2] = ["site-packages", "dist-packages"];

/// One installed distribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distribution {
    /// What its metadata says.
    pub metadata: Metadata,
    /// Its package URL; no two distributions found share one.
    pub purl: String,
    /// The root-relative path of the metadata file it was read from.
    pub path: String,
}

/// Everything [`find`] found in a root.
#[derive(Debug, Default)]
pub struct Found {
    /// The distributions, in the order of their paths in the walk.
    pub distributions: Vec<Distribution>,
    /// Faults that were handled, each naming the path involved.
    pub warnings: Vec<String>,
}

/// Whether the root-relative `path` names the metadata file of an
/// installed distribution, as the module comment lists them.
///
/// The image scanner keeps the files of an image for which this is true.
pub fn is_metadata(path: &str) -> bool {
    let mut components = path.rsplit('/');
    let (Some(file), Some(parent)) = (components.next(), components.next()) else {
        return false;
    };
    let in_package_dir = |dir: Option<&str>| dir.is_some_and(|dir| PACKAGE_DIRS.contains(&dir));

    match file {
        "METADATA" => has_stem(parent, ".dist-info") && in_package_dir(components.next()),
        "PKG-INFO" => has_stem(parent, ".egg-info") && in_package_dir(components.next()),
        _ => has_stem(file, ".egg-info") && in_package_dir(Some(parent)),
    }
}

/// Whether `name` is something followed by `suffix`.
fn has_stem(name: &str, suffix: &str) -> bool {
    name.strip_suffix(suffix)
        .is_some_and(|stem| !stem.is_empty())
}

/// Walks `root`, leaving out the top-level directories in `skip`, and
/// reads the metadata of every installed distribution.
pub fn find(root: &dyn Root, skip: &[&str]) -> Found {
    let mut paths = Vec::new();
    let mut warnings = walk(root, skip, &mut |path, kind| {
        if kind == FileKind::File && is_metadata(path) {
            paths.push(path.to_string());
        }
    });

    let mut purls = BTreeSet::new();
    let mut distributions = Vec::new();
    for path in paths {
        let bytes = match root.read(&path) {
            Ok(bytes) => bytes,
            Err(err) => {
                warnings.push(format!("{path}: cannot read: {err}"));
                continue;
            }
        };

        // Core metadata is UTF-8; a stray byte in a description or an
        // author's name must not cost the whole distribution.
        let metadata = match metadata::parse(&String::from_utf8_lossy(&bytes)) {
            Ok(metadata) => metadata,
            Err(reason) => {
                warnings.push(format!("{path}: skipped: {reason}"));
                continue;
            }
        };
        let purl = metadata.purl();
        if purls.insert(purl.clone()) {
            distributions.push(Distribution {
                metadata,
                purl,
                path,
            });
        }
    }

    Found {
        distributions,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::Path;

    use scanhost_analyzers::DirRoot;

    use super::*;

    fn write(base: &Path, path: &str, contents: &str) {
        let path = base.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, contents).unwrap();
    }

    fn metadata(name: &str, version: &str) -> String {
        format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nText.\n")
    }

    #[test]
    fn metadata_paths() {
        for path in [
            "usr/lib/python3/dist-packages/requests-2.31.0.dist-info/METADATA",
            "usr/local/lib/python3.11/site-packages/six-1.16.0.egg-info/PKG-INFO",
            "usr/lib/python3/dist-packages/crcmod-1.7.egg-info",
            "site-packages/a.dist-info/METADATA",
        ] {
            assert!(is_metadata(path), "{path}");
        }
        for path in [
            "",
            "METADATA",
            "usr/lib/python3/dist-packages/.dist-info/METADATA",
            "usr/lib/python3/dist-packages/a.dist-info/RECORD",
            "usr/lib/python3/dist-packages/a.dist-info/sub/METADATA",
            "usr/lib/python3/dist-packages/a.egg-info/METADATA",
            "usr/lib/python3/dist-packages/a.dist-info/PKG-INFO",
            "usr/lib/python3/dist-packages/pkg/a.egg-info",
            "usr/lib/python2.7/wsgiref.egg-info",
            "usr/lib/python3/a.dist-info/METADATA",
        ] {
            assert!(!is_metadata(path), "{path}");
        }
    }

    #[test]
    fn distributions_of_a_system_a_local_install_and_a_venv() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        let system = "usr/lib/python3/dist-packages";
        let local = "usr/local/lib/python3.11/site-packages";
        let venv = "srv/app/venv/lib/python3.12/site-packages";
        write(
            base,
            &format!("{system}/requests-2.31.0.dist-info/METADATA"),
            &metadata("requests", "2.31.0"),
        );
        write(
            base,
            &format!("{system}/python_apt-2.6.0.egg-info/PKG-INFO"),
            "Metadata-Version: 1.1\nName: python-apt\nVersion: 2.6.0\nLicense: GNU GPL\n",
        );
        write(
            base,
            &format!("{system}/crcmod-1.7.egg-info"),
            &metadata("crcmod", "1.7"),
        );
        write(
            base,
            &format!("{local}/Foo.Bar_baz-1.0.dist-info/METADATA"),
            &metadata("Foo.Bar_baz", "1.0"),
        );
        write(
            base,
            &format!("{venv}/requests-2.32.3.dist-info/METADATA"),
            &metadata("requests", "2.32.3"),
        );
        write(
            base,
            &format!("{venv}/Requests-2.31.0.dist-info/METADATA"),
            &metadata("Requests", "2.31.0"),
        );
        symlink("lib", base.join("srv/app/venv/lib64")).unwrap();
        write(
            base,
            "proc/1/root/site-packages/x-1.dist-info/METADATA",
            &metadata("x", "1"),
        );

        let found = find(&DirRoot::new(base), &["proc"]);
        assert!(found.warnings.is_empty(), "{:?}", found.warnings);
        let seen: Vec<(&str, &str)> = found
            .distributions
            .iter()
            .map(|d| (d.purl.as_str(), d.path.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                (
                    "pkg:pypi/requests@2.31.0",
                    "srv/app/venv/lib/python3.12/site-packages/Requests-2.31.0.dist-info/METADATA"
                ),
                (
                    "pkg:pypi/requests@2.32.3",
                    "srv/app/venv/lib/python3.12/site-packages/requests-2.32.3.dist-info/METADATA"
                ),
                (
                    "pkg:pypi/crcmod@1.7",
                    "usr/lib/python3/dist-packages/crcmod-1.7.egg-info"
                ),
                (
                    "pkg:pypi/python-apt@2.6.0",
                    "usr/lib/python3/dist-packages/python_apt-2.6.0.egg-info/PKG-INFO"
                ),
                (
                    "pkg:pypi/foo-bar-baz@1.0",
                    "usr/local/lib/python3.11/site-packages/Foo.Bar_baz-1.0.dist-info/METADATA"
                ),
            ]
        );
        assert_eq!(found.distributions[3].metadata.licenses, ["GNU GPL"]);
    }

    // A distribution without a Version must be left out with a warning
    // naming its file, and must not hide the others.
    #[test]
    fn missing_version_is_skipped_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        let packages = "usr/lib/python3/dist-packages";
        write(
            base,
            &format!("{packages}/broken-0.dist-info/METADATA"),
            "Metadata-Version: 2.1\nName: broken\n",
        );
        write(
            base,
            &format!("{packages}/six-1.16.0.dist-info/METADATA"),
            &metadata("six", "1.16.0"),
        );

        let found = find(&DirRoot::new(base), &[]);
        assert_eq!(found.distributions.len(), 1);
        assert_eq!(found.distributions[0].purl, "pkg:pypi/six@1.16.0");
        assert_eq!(
            found.warnings,
            [format!(
                "{packages}/broken-0.dist-info/METADATA: skipped: \
                 distribution broken: no Version field"
            )]
        );
    }
}
