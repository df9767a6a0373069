//! Which platform an index entry is for, and how well it fits the one
//! wanted.
//!
//! The rules are those container runtimes apply when they pull a
//! multi-platform image. Names are compared after normalisation: the OS
//! and the architecture in lowercase, the aliases `x86_64` and `x86-64`
//! as `amd64`, `i386` to `i686` as `386`, `aarch64` as `arm64`, `armhf`
//! as `arm/v7` and `armel` as `arm/v6`, a variant `7` as `v7`, and
//! `arm64` without a variant as `arm64/v8`. A variant only has to match
//! when both sides name one; a match of the variant (or of its absence)
//! is preferred to a match that ignores it.

use crate::oci::{Descriptor, Platform};

/// The annotation buildkit puts on the index entries of attestations.
const REFERENCE_TYPE: &str = "vnd.docker.reference.type";

/// Whether an index entry describes an attestation (an SBOM or provenance
/// that buildkit attaches) rather than an image.
pub(crate) fn is_attestation(entry: &Descriptor) -> bool {
    entry.annotations.contains_key(REFERENCE_TYPE)
        || entry.platform.as_ref().is_some_and(|p| p.os == "unknown")
}

/// How well an index entry's platform matches the one wanted; the order
/// of the variants is the order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Match {
    No,
    /// OS and architecture match, and one side names no variant.
    Partial,
    /// OS, architecture and variant (or the lack of one) all match.
    Exact,
}

/// A platform with aliases replaced by the canonical names.
pub(crate) struct Normalised {
    os: String,
    architecture: String,
    variant: Option<String>,
}

impl Normalised {
    pub(crate) fn new(platform: &Platform) -> Self {
        let os = platform.os.to_ascii_lowercase();
        let mut variant = platform
            .variant
            .as_deref()
            .filter(|v| !v.is_empty())
            .map(|v| {
                // `7` and `v7` are both written.
                if v.bytes().all(|b| b.is_ascii_digit()) {
                    format!("v{v}")
                } else {
                    v.to_ascii_lowercase()
                }
            });
        let architecture = match platform.architecture.to_ascii_lowercase().as_str() {
            "x86_64" | "x86-64" => "amd64".to_string(),
            "i386" | "i486" | "i586" | "i686" => "386".to_string(),
            "aarch64" | "arm64" => {
                variant.get_or_insert_with(|| "v8".to_string());
                "arm64".to_string()
            }
            "armhf" => {
                variant.get_or_insert_with(|| "v7".to_string());
                "arm".to_string()
            }
            "armel" => {
                variant.get_or_insert_with(|| "v6".to_string());
                "arm".to_string()
            }
            other => other.to_string(),
        };
        Normalised {
            os,
            architecture,
            variant,
        }
    }

    pub(crate) fn matches(&self, entry: &Normalised) -> Match {
        if self.os != entry.os || self.architecture != entry.architecture {
            return Match::No;
        }
        match (&self.variant, &entry.variant) {
            (Some(wanted), Some(offered)) if wanted == offered => Match::Exact,
            (Some(_), Some(_)) => Match::No,
            (None, None) => Match::Exact,
            _ => Match::Partial,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalised(text: &str) -> String {
        let parts: Vec<&str> = text.split('/').collect();
        let platform = Platform {
            os: parts[0].to_string(),
            architecture: parts[1].to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        };
        let n = Normalised::new(&platform);
        match n.variant {
            Some(variant) => format!("{}/{}/{variant}", n.os, n.architecture),
            None => format!("{}/{}", n.os, n.architecture),
        }
    }

    #[test]
    fn aliases_are_normalised() {
        for (given, expected) in [
            ("linux/amd64", "linux/amd64"),
            ("Linux/x86_64", "linux/amd64"),
            ("linux/x86-64", "linux/amd64"),
            ("linux/i686", "linux/386"),
            ("linux/aarch64", "linux/arm64/v8"),
            ("linux/arm64", "linux/arm64/v8"),
            ("linux/arm64/v9", "linux/arm64/v9"),
            ("linux/armhf", "linux/arm/v7"),
            ("linux/armel", "linux/arm/v6"),
            ("linux/armel/v5", "linux/arm/v5"),
            ("linux/arm", "linux/arm"),
            ("linux/arm/7", "linux/arm/v7"),
            ("linux/arm/", "linux/arm"),
        ] {
            assert_eq!(normalised(given), expected, "{given}");
        }
    }

    #[test]
    fn quality_of_a_match() {
        let platform = |text: &str| {
            let parts: Vec<&str> = text.split('/').collect();
            Normalised::new(&Platform {
                os: parts[0].to_string(),
                architecture: parts[1].to_string(),
                variant: parts.get(2).map(|v| v.to_string()),
            })
        };
        let quality = |wanted: &str, offered: &str| platform(wanted).matches(&platform(offered));
        assert_eq!(quality("linux/arm/v7", "linux/armhf"), Match::Exact);
        assert_eq!(quality("linux/arm", "linux/arm/v7"), Match::Partial);
        assert_eq!(quality("linux/arm/v7", "linux/arm"), Match::Partial);
        assert_eq!(quality("linux/arm/v7", "linux/arm/v6"), Match::No);
        assert_eq!(quality("linux/amd64", "windows/amd64"), Match::No);
        assert_eq!(quality("linux/amd64", "linux/arm64"), Match::No);
    }
}
