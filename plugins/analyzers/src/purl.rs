//! Package URLs (purls), built as the purl specification (ECMA-427) says.
//!
//! `pkg:type/namespace/name@version?key=value&...`, where:
//! - the type is a lowercase constant and is not encoded;
//! - the namespace and the name are lowercased, because the two types built
//!   here, `deb` and `apk`, declare both case-insensitive with lowercase as
//!   the canonical form;
//! - the namespace, the name, the version and every qualifier value are
//!   percent-encoded: every byte of their UTF-8 form is written as `%XX`
//!   except ASCII letters and digits, `.`, `-`, `_`, `~` and the colon,
//!   which the specification says is never encoded. So a Debian version
//!   `1:4.13+dfsg1-1` becomes `1:4.13%2Bdfsg1-1`;
//! - qualifiers are sorted by key, and a qualifier with an empty value is
//!   left out, since the specification treats it as absent.
//!
//! This module only writes purls; nothing in the analyzers parses them.
//! Plugins with analyzers of their own build their purls with it too.

use std::collections::BTreeMap;
use std::fmt;

/// A package URL under construction; [`fmt::Display`] writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purl {
    /// A purl type such as `deb`: lowercase ASCII letters only.
    ty: &'static str,
    namespace: String,
    name: String,
    version: String,
    /// Keys are lowercase ASCII constants; values are never empty.
    qualifiers: BTreeMap<&'static str, String>,
}

impl Purl {
    /// A purl of type `ty` (lowercase ASCII letters); an empty namespace
    /// is left out.
    pub fn new(ty: &'static str, namespace: &str, name: &str, version: &str) -> Self {
        Purl {
            ty,
            namespace: namespace.to_lowercase(),
            name: name.to_lowercase(),
            version: version.to_string(),
            qualifiers: BTreeMap::new(),
        }
    }

    /// Adds the qualifier `key=value`, unless the value is missing or empty.
    pub fn qualifier(mut self, key: &'static str, value: Option<&str>) -> Self {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            self.qualifiers.insert(key, value.to_string());
        }
        self
    }
}

impl fmt::Display for Purl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pkg:{}/", self.ty)?;
        if !self.namespace.is_empty() {
            write!(f, "{}/", Encoded(&self.namespace))?;
        }
        write!(f, "{}", Encoded(&self.name))?;
        if !self.version.is_empty() {
            write!(f, "@{}", Encoded(&self.version))?;
        }

        let mut separator = '?';
        for (key, value) in &self.qualifiers {
            write!(f, "{separator}{key}={}", Encoded(value))?;
            separator = '&';
        }
        Ok(())
    }
}

/// Writes a string percent-encoded as a purl component.
struct Encoded<'a>(&'a str);

impl fmt::Display for Encoded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &byte in self.0.as_bytes() {
            if byte.is_ascii_alphanumeric() || b".-_~:".contains(&byte) {
                write!(f, "{}", byte as char)?;
            } else {
                write!(f, "%{byte:02X}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_epoch_and_plus() {
        let purl = Purl::new("deb", "debian", "login", "1:4.13+dfsg1-1")
            .qualifier("upstream", Some("shadow"))
            .qualifier("distro", Some("debian-12"))
            .qualifier("arch", Some("amd64"));
        assert_eq!(
            purl.to_string(),
            "pkg:deb/debian/login@1:4.13%2Bdfsg1-1?arch=amd64&distro=debian-12&upstream=shadow"
        );
    }

    #[test]
    fn specification_example() {
        let purl =
            Purl::new("deb", "debian", "attr", "1:2.4.47-2+b1").qualifier("arch", Some("amd64"));
        assert_eq!(
            purl.to_string(),
            "pkg:deb/debian/attr@1:2.4.47-2%2Bb1?arch=amd64"
        );
    }

    #[test]
    fn apk_version_with_underscore() {
        let purl = Purl::new("apk", "alpine", "musl", "1.2.4_git20230717-r4")
            .qualifier("arch", Some("x86_64"))
            .qualifier("distro", Some("3.19.0"));
        assert_eq!(
            purl.to_string(),
            "pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64&distro=3.19.0"
        );
    }

    #[test]
    fn empty_and_missing_qualifiers_are_left_out() {
        let purl = Purl::new("deb", "debian", "a", "1")
            .qualifier("arch", None)
            .qualifier("distro", Some(""));
        assert_eq!(purl.to_string(), "pkg:deb/debian/a@1");
    }

    #[test]
    fn reserved_and_non_ascii_characters_are_encoded() {
        let purl = Purl::new("deb", "My/Vendor", "Lib C++", "1.0~rc1@x#y?z")
            .qualifier("upstream", Some("a&b=c/é"));
        assert_eq!(
            purl.to_string(),
            "pkg:deb/my%2Fvendor/lib%20c%2B%2B@1.0~rc1%40x%23y%3Fz?upstream=a%26b%3Dc%2F%C3%A9"
        );
    }
}
