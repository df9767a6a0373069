//! The path of a layer entry: its normal form and what its name means.
//!
//! Tar writers spell the same path several ways (`./etc/passwd`,
//! `/etc/passwd`, `etc//passwd`); all become the root-relative components
//! `["etc", "passwd"]`. `..` is applied lexically, as a tar is a list of
//! names and not a walk through a filesystem; a path that climbs above the
//! root has no normal form. Whiteout markers are recognised by their last
//! component alone, whatever the entry type.

/// The prefix of a whiteout marker's name.
const WHITEOUT_PREFIX: &str = ".wh.";

/// The name of the marker that makes its directory opaque.
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// What the last component of an entry's path means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Name<'a> {
    /// An ordinary name: the entry is a file, directory or link.
    Plain,
    /// `.wh.NAME`: NAME, in the same directory, is deleted from the lower
    /// layers.
    Whiteout(&'a str),
    /// `.wh..wh..opq`: the directory's lower contents are hidden.
    Opaque,
    /// A name in the whiteout namespace that is neither: `.wh.` alone, a
    /// whiteout of `.` or `..`, or `.wh..wh.` followed by anything but
    /// `.opq` (aufs bookkeeping such as `.wh..wh.plnk`).
    Malformed,
}

/// The root-relative components of `path`, or `None` when it climbs out of
/// the root with `..`. The root itself is the empty list.
pub(super) fn normalise(path: &str) -> Option<Vec<&str>> {
    let mut components = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                components.pop()?;
            }
            name => components.push(name),
        }
    }
    Some(components)
}

/// What the name `component` means in a layer.
pub(super) fn classify(component: &str) -> Name<'_> {
    let Some(rest) = component.strip_prefix(WHITEOUT_PREFIX) else {
        return Name::Plain;
    };
    if component == OPAQUE_MARKER {
        return Name::Opaque;
    }
    match rest {
        "" | "." | ".." => Name::Malformed,
        rest if rest.starts_with(WHITEOUT_PREFIX) => Name::Malformed,
        target => Name::Whiteout(target),
    }
}

/// Whether `component` is in the whiteout namespace (starts with `.wh.`).
pub(super) fn is_marker(component: &str) -> bool {
    component.starts_with(WHITEOUT_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_path() {
        for path in [
            "etc/passwd",
            "./etc/passwd",
            "/etc/passwd",
            "etc//./passwd/",
            "etc/x/../passwd",
        ] {
            assert_eq!(normalise(path), Some(vec!["etc", "passwd"]), "{path}");
        }
        assert_eq!(normalise("./"), Some(vec![]));
        assert_eq!(normalise("a/.."), Some(vec![]));
    }

    // `../../etc/passwd` in a layer must not be taken as `etc/passwd`.
    #[test]
    fn climbing_out_has_no_normal_form() {
        for path in [
            "..",
            "../etc/passwd",
            "../../etc/passwd",
            "a/../../b",
            "/../x",
        ] {
            assert_eq!(normalise(path), None, "{path}");
        }
    }

    #[test]
    fn whiteout_names() {
        assert_eq!(classify("passwd"), Name::Plain);
        assert_eq!(classify(".whatever"), Name::Plain);
        assert_eq!(classify(".wh.passwd"), Name::Whiteout("passwd"));
        assert_eq!(classify(".wh..hidden"), Name::Whiteout(".hidden"));
        assert_eq!(classify(".wh..wh..opq"), Name::Opaque);
        for malformed in [
            ".wh.",
            ".wh..",
            ".wh...",
            ".wh..wh.",
            ".wh..wh.plnk",
            ".wh..wh..opqx",
        ] {
            assert_eq!(classify(malformed), Name::Malformed, "{malformed}");
        }
    }
}
