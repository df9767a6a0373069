//! Operating system detection from `os-release`.
//!
//! The file is `etc/os-release`, else `usr/lib/os-release`, both resolved
//! inside the root (on most systems the first is a symlink to the second).
//! Its lines are shell-style assignments, `KEY=value`, where the value may
//! be unquoted, in double quotes with backslash escapes, or in single quotes
//! taken literally; comments and blank lines are skipped. Only `ID`,
//! `VERSION_ID` and `PRETTY_NAME` are kept. A file without `ID` names no
//! operating system.
//!
//! Two rules go beyond the os-release manual:
//! - `etc/os-release` without an `ID` does not hide `usr/lib/os-release`.
//!   The manual says the first file wins when it exists, but a file with no
//!   `ID` is not a usable answer, and it happens in practice: a tool that
//!   copies a root filesystem without symlink support turns the usual
//!   `etc/os-release -> ../usr/lib/os-release` into a text file holding
//!   that path.
//! - Debian without `VERSION_ID` (distroless images, Debian testing) takes
//!   the major version from `etc/debian_version` when that file holds a
//!   release number such as `12.7`, because `VERSION_ID` of a Debian release
//!   is its major version and purls need it for the `distro` qualifier.

use crate::OsInfo;
use crate::root::{Root, read_if_present};

/// Where `os-release` is looked for, in order.
const OS_RELEASE_PATHS: [&str; 2] = ["etc/os-release", "usr/lib/os-release"];

/// Finds the operating system of `root`; a file that cannot be read is
/// reported in `warnings` and the next one is tried.
pub(crate) fn detect(root: &dyn Root, warnings: &mut Vec<String>) -> Option<OsInfo> {
    for path in OS_RELEASE_PATHS {
        match read_if_present(root, path) {
            Ok(Some((_, bytes))) => {
                if let Some(mut os) = parse(&String::from_utf8_lossy(&bytes)) {
                    if os.id == "debian" && os.version_id.is_empty() {
                        os.version_id = debian_major_version(root, warnings).unwrap_or_default();
                    }
                    return Some(os);
                }
            }
            Ok(None) => {}
            Err(err) => warnings.push(format!("{path}: cannot read: {err}")),
        }
    }
    None
}

/// The operating system an `os-release` file describes; `None` when it has
/// no `ID` or an empty one.
pub(crate) fn parse(text: &str) -> Option<OsInfo> {
    let mut os = OsInfo::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = line.split_once('=') else {
            continue;
        };

        // Later assignments override earlier ones, as in a shell.
        match key {
            "ID" => os.id = unquote(raw),
            "VERSION_ID" => os.version_id = unquote(raw),
            "PRETTY_NAME" => os.pretty_name = unquote(raw),
            _ => {}
        }
    }
    (!os.id.is_empty()).then_some(os)
}

/// The value of a shell assignment: quoted parts are joined with unquoted
/// ones (`"a"'b'c` is `abc`), and the value ends at the first unquoted
/// whitespace, so trailing blanks and comments are dropped. An unterminated
/// quote runs to the end of the line.
fn unquote(raw: &str) -> String {
    let mut value = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        // Inside double quotes a backslash escapes only
                        // these; before anything else it is kept.
                        '\\' => match chars.peek() {
                            Some(&next @ ('"' | '\\' | '$' | '`')) => {
                                value.push(next);
                                chars.next();
                            }
                            _ => value.push('\\'),
                        },
                        c => value.push(c),
                    }
                }
            }
            '\'' => {
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    value.push(c);
                }
            }
            '\\' => {
                if let Some(next) = chars.next() {
                    value.push(next);
                }
            }
            c if c.is_whitespace() => break,
            c => value.push(c),
        }
    }
    value
}

/// The major version in `etc/debian_version` (`12` for `12.7`), when the
/// file holds a release number rather than a codename such as
/// `trixie/sid`.
fn debian_major_version(root: &dyn Root, warnings: &mut Vec<String>) -> Option<String> {
    const PATH: &str = "etc/debian_version";
    let bytes = match read_if_present(root, PATH) {
        Ok(Some((_, bytes))) => bytes,
        Ok(None) => return None,
        Err(err) => {
            warnings.push(format!("{PATH}: cannot read: {err}"));
            return None;
        }
    };

    let text = String::from_utf8_lossy(&bytes);
    let major = text.trim().split('.').next()?;
    (!major.is_empty() && major.bytes().all(|b| b.is_ascii_digit())).then(|| major.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory_root::MemoryRoot;
    use std::path::Path;

    fn os(id: &str, version_id: &str, pretty_name: &str) -> Option<OsInfo> {
        Some(OsInfo {
            id: id.to_string(),
            version_id: version_id.to_string(),
            pretty_name: pretty_name.to_string(),
        })
    }

    #[test]
    fn every_os_release_fixture() {
        // File names are DISTRO_..._PATH; the distro part and the path the
        // file came from agree with what is expected here.
        let expected = [
            (
                "almalinux_from-os-release_etc_os-release",
                os("almalinux", "8.4", "AlmaLinux 8.4 (Electric Cheetah)"),
            ),
            (
                "alpine_etc_os-release",
                os("alpine", "3.11.6", "Alpine Linux v3.11"),
            ),
            ("amazon_etc_os-release", os("amzn", "2", "Amazon Linux 2")),
            ("arch_etc_os-release", os("arch", "", "Arch Linux")),
            (
                "centos_usr_lib_os-release",
                os("centos", "8", "CentOS Linux 8 (Core)"),
            ),
            (
                "custom_etc_os-release",
                os("scientific", "8", "CentOS Linux 8 (Core)"),
            ),
            (
                "debian_from-debian_version_etc_os-release",
                os("debian", "", "Distroless"),
            ),
            (
                "debian_from-os-release_usr_lib_os-release",
                os("debian", "8", "Debian GNU/Linux 8 (jessie)"),
            ),
            (
                "debian_with-point-release_etc_os-release",
                os("debian", "13", "Debian GNU/Linux 13 (trixie)"),
            ),
            ("empty_etc_os-release", None),
            (
                "fedora_usr_lib_os-release",
                os("fedora", "36", "Fedora Linux 36 (Container Image)"),
            ),
            (
                "mariner_etc_os-release",
                os("mariner", "1.0", "CBL-Mariner/Linux"),
            ),
            (
                "opensuse-leap_etc_os-release",
                os("opensuse-leap", "15.2", "openSUSE Leap 15.2"),
            ),
            (
                "oraclelinux_etc_os-release",
                os("ol", "8.3", "Oracle Linux Server 8.3"),
            ),
            (
                "photon_etc_os-release",
                os("photon", "2.0", "VMware Photon OS/Linux"),
            ),
            (
                "redhat_from-os-release_usr_lib_os-release",
                os("rhel", "7.3", "Red Hat Enterprise Linux Server 7.3 (Maipo)"),
            ),
            (
                "rockylinux_from-os-release_etc_os-release",
                os("rocky", "8.4", "Rocky Linux 8.4 (Green Obsidian)"),
            ),
            (
                "scientific_from-os-release_etc_os-release",
                os("scientific", "7.5", "Scientific Linux 7.5 (Nitrogen)"),
            ),
            (
                "sles_etc_os-release",
                os("sles", "15.2", "SUSE Linux Enterprise Server 15 SP2"),
            ),
            (
                "ubuntu_etc_os-release",
                os("ubuntu", "20.04", "Ubuntu 20.04 LTS"),
            ),
            ("wolfi_etc_os-release", os("wolfi", "20220914", "Wolfi")),
        ];

        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/os-release");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        on_disk.sort();
        let listed: Vec<&str> = expected.iter().map(|(name, _)| *name).collect();
        assert_eq!(on_disk, listed, "every fixture has an expectation");

        for (name, want) in expected {
            let text = std::fs::read(dir.join(name)).unwrap();
            let path = if name.ends_with("_usr_lib_os-release") {
                "usr/lib/os-release"
            } else {
                "etc/os-release"
            };
            let root = MemoryRoot::new().file(path, text);
            let mut warnings = Vec::new();
            assert_eq!(detect(&root, &mut warnings), want, "{name}");
            assert!(warnings.is_empty(), "{name}: {warnings:?}");
        }
    }

    #[test]
    fn quoting_rules() {
        let text = concat!(
            "# a comment\n",
            "\n",
            "ID='single \"quoted\" \\n'\n",
            "VERSION_ID=\"a \\\"b\\\" \\\\ \\$x \\q\"'c'd # trailing comment\n",
            "PRETTY_NAME=unquoted\\ with\\ escapes   \n",
        );
        assert_eq!(
            parse(text),
            os(
                "single \"quoted\" \\n",
                "a \"b\" \\ $x \\qcd",
                "unquoted with escapes"
            )
        );
    }

    #[test]
    fn later_assignment_wins_and_unterminated_quote_runs_to_end() {
        assert_eq!(parse("ID=a\nID=\"b\nVERSION_ID=1\r\n"), os("b", "1", ""));
    }

    #[test]
    fn no_id_is_no_os() {
        assert_eq!(parse(""), None);
        assert_eq!(parse("NAME=Linux\nVERSION_ID=1\n"), None);
        assert_eq!(parse("ID=\n"), None);
        assert_eq!(parse("ID=\"\"\n"), None);
    }

    #[test]
    fn etc_wins_over_usr_lib() {
        let root = MemoryRoot::new()
            .file("etc/os-release", "ID=etc\n")
            .file("usr/lib/os-release", "ID=usr\n");
        assert_eq!(detect(&root, &mut Vec::new()).unwrap().id, "etc");
    }

    // etc/os-release flattened to a text file holding its link target must
    // not hide usr/lib/os-release.
    #[test]
    fn etc_without_id_falls_back_to_usr_lib() {
        let root = MemoryRoot::new()
            .file("etc/os-release", "../usr/lib/os-release")
            .file("usr/lib/os-release", "ID=debian\nVERSION_ID=\"12\"\n");
        assert_eq!(detect(&root, &mut Vec::new()), os("debian", "12", ""));
    }

    #[test]
    fn symlinked_os_release_is_read_inside_the_root() {
        let root = MemoryRoot::new()
            .link("etc/os-release", "/usr/lib/os-release")
            .file("usr/lib/os-release", "ID=alpine\n");
        assert_eq!(detect(&root, &mut Vec::new()).unwrap().id, "alpine");
    }

    #[test]
    fn debian_version_fills_a_missing_version_id() {
        let distroless = "ID=\"debian\"\nPRETTY_NAME=\"Distroless\"\n";
        let root = MemoryRoot::new()
            .file("etc/os-release", distroless)
            .file("etc/debian_version", "12.7\n");
        assert_eq!(
            detect(&root, &mut Vec::new()),
            os("debian", "12", "Distroless")
        );

        let testing = root.clone().file("etc/debian_version", "trixie/sid\n");
        assert_eq!(
            detect(&testing, &mut Vec::new()),
            os("debian", "", "Distroless")
        );

        // VERSION_ID, when present, is never overridden.
        let root = MemoryRoot::new()
            .file("etc/os-release", "ID=debian\nVERSION_ID=11\n")
            .file("etc/debian_version", "12.7\n");
        assert_eq!(detect(&root, &mut Vec::new()).unwrap().version_id, "11");
    }

    #[test]
    fn unreadable_file_is_a_warning_and_the_next_is_tried() {
        let root = MemoryRoot::new()
            .link("etc/os-release", "os-release")
            .file("usr/lib/os-release", "ID=fedora\n");
        let mut warnings = Vec::new();
        assert_eq!(detect(&root, &mut warnings).unwrap().id, "fedora");
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].starts_with("etc/os-release: "), "{warnings:?}");
    }

    #[test]
    fn nothing_found_is_no_os() {
        let mut warnings = Vec::new();
        assert_eq!(detect(&MemoryRoot::new(), &mut warnings), None);
        assert!(warnings.is_empty());
    }
}
