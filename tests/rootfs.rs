//! End-to-end scans of root filesystems with the real `scanhost` binary
//! and the shipped `host-scanner` component.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use support::{Pkg, document, fixtures, os, packages, scan, validate_cyclonedx};

#[test]
fn rootfs_cases_match_expected() {
    let cases = support::cases("rootfs");
    assert!(cases.len() >= 7, "fixture cases are missing");

    let mut docs = Vec::new();
    for case in &cases {
        let doc = document(&scan(&case.input, &[]));
        case.check(&doc);
        docs.push((case.name.as_str(), doc));
    }

    let named: Vec<_> = docs.iter().map(|(n, d)| (*n, d)).collect();
    validate_cyclonedx(&named);
}

#[test]
fn debian_minbase_database_gives_96_packages_and_debian_12() {
    let doc = document(&scan(&fixtures().join("debian-bookworm-minbase"), &[]));

    assert_eq!(os(&doc), Some(("debian".to_string(), "12".to_string())));
    let found = packages(&doc);
    assert_eq!(found.len(), 96);
    assert!(found.iter().all(|p| p.ecosystem == "deb"));
    let libc = found.iter().find(|p| p.name == "libc6").expect("libc6");
    assert_eq!(libc.arch.as_deref(), Some("amd64"));

    // Every package's purl carries the distro of the root it came from.
    for component in support::components(&doc).filter(|c| c["type"] == "library") {
        let purl = component["purl"].as_str().unwrap();
        assert!(purl.starts_with("pkg:deb/debian/"), "{purl}");
        assert!(purl.contains("distro=debian-12"), "{purl}");
    }

    // The tools name scanhost and the plugin that scanned, with versions.
    let tools: Vec<_> = doc["metadata"]["tools"]["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["scanhost", "host-scanner"]);
    validate_cyclonedx(&[("debian-bookworm-minbase", &doc)]);
}

/// `dpkg-query`'s view of the installed packages of this machine: those
/// whose files are on disk (status letters i, U, F, W, t).
fn dpkg_query_installed() -> Option<BTreeSet<Pkg>> {
    let output = Command::new("dpkg-query")
        .args([
            "-W",
            "-f",
            "${db:Status-Abbrev} ${binary:Package} ${Version} ${Architecture}\n",
        ])
        .output()
        .ok()?;
    assert!(output.status.success(), "dpkg-query failed");
    let text = String::from_utf8(output.stdout).unwrap();
    let mut installed = BTreeSet::new();
    for line in text.lines() {
        // "ii  name:arch version arch": the abbreviation is three letters.
        let (abbrev, rest) = line.split_at(3);
        let status = abbrev.as_bytes()[1];
        if !b"iUFWt".contains(&status) {
            continue;
        }
        let mut words = rest.split_whitespace();
        let (name, version, arch) = (words.next()?, words.next()?, words.next()?);
        let name = name.split(':').next().unwrap();
        installed.insert(Pkg {
            ecosystem: "deb".to_string(),
            name: name.to_string(),
            version: version.to_string(),
            arch: Some(arch.to_string()),
        });
    }
    Some(installed)
}

#[test]
fn scan_of_this_machine_matches_dpkg_query() {
    let Some(expected) = dpkg_query_installed() else {
        eprintln!("dpkg-query is not installed: nothing to compare with");
        return;
    };
    let doc = document(&scan(Path::new("/"), &[]));

    let found: BTreeSet<_> = packages(&doc)
        .into_iter()
        .filter(|p| p.ecosystem == "deb")
        .collect();
    let missing: Vec<_> = expected.difference(&found).collect();
    let extra: Vec<_> = found.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}\nextra {extra:?}"
    );
    assert!(found.len() > 50, "only {} packages", found.len());
    validate_cyclonedx(&[("this machine", &doc)]);
}

#[test]
fn unreadable_input_exits_2_naming_the_path() {
    let output = scan(Path::new("/nonexistent/root"), &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/root"), "{stderr}");
    assert!(output.stdout.is_empty());

    let file = fixtures().join("README.md");
    let output = scan(&file, &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("README.md") && stderr.contains("not a directory"),
        "{stderr}"
    );
}

// A FIFO where the dpkg database should be: the plugin must not block in
// open(), where no deadline reaches it; the scan goes on with a warning.
#[test]
fn a_fifo_in_place_of_a_database_does_not_block_the_scan() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("var/lib/dpkg")).unwrap();
    let fifo = root.path().join("var/lib/dpkg/status");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );

    let output = scan(root.path(), &["--scan-timeout", "60s"]);

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("not a regular file"), "{stderr}");
}

// A second start must load the compiled plugins from the cache, not
// compile them again.
#[test]
fn a_second_run_does_not_recompile_the_plugins() {
    let cache = tempfile::tempdir().unwrap();
    let root = fixtures().join("debian-bookworm-minbase");
    let cache_arg = cache.path().to_str().unwrap();

    let first = scan(&root, &["--cache-dir", cache_arg]);
    let second = scan(&root, &["--cache-dir", cache_arg]);

    let loaded = |output: &std::process::Output| -> Vec<String> {
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .filter(|l| l.contains("plugin loaded"))
            .map(str::to_string)
            .collect()
    };
    let (first, second) = (loaded(&first), loaded(&second));
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(
        first.iter().all(|l| l.contains("compiled=true")),
        "{first:?}"
    );
    assert_eq!(second.len(), 2, "{second:?}");
    assert!(
        second.iter().all(|l| l.contains("compiled=false")),
        "{second:?}"
    );
}
