//! The core metadata of one installed Python distribution: the headers of
//! a `.dist-info/METADATA` or `.egg-info/PKG-INFO` file, and the package
//! URL they give.
//!
//! The file is a set of `Field: value` headers in the style of RFC 822,
//! then an empty line and the description, which is not read. A line that
//! starts with a space or a tab continues the value of the header above
//! it. Field names are compared without regard to case, and the first
//! occurrence of a field counts.
//!
//! Only `Name`, `Version`, `License-Expression` and `License` are read.
//! A distribution without a name or a version cannot be reported, and is
//! an error for the caller to turn into a warning.
//!
//! Licenses: `License-Expression` (an SPDX expression, metadata 2.4) when
//! present, else `License` when it is one line. Many older distributions
//! put the whole text of their license in `License`, over many lines;
//! that text is no license name, so it is not reported. Nor is `UNKNOWN`,
//! which old versions of setuptools wrote when no license was given.
//!
//! Names are compared as PEP 503 normalises them: lowercase, with every
//! run of `-`, `_` and `.` made one `-`, so that `Foo.Bar_baz` and
//! `foo-bar-baz` are the same distribution. The purl uses that form.

use scanhost_analyzers::Purl;

/// The fields of one distribution's metadata that the plugin reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// `Name`, as the distribution spells it (`PyYAML`); never empty.
    pub name: String,
    /// `Version` (`6.0.1`); never empty.
    pub version: String,
    /// SPDX expressions or license names; see the module comment.
    pub licenses: Vec<String>,
}

impl Metadata {
    /// The package URL, `pkg:pypi/<normalised name>@<version>`.
    pub fn purl(&self) -> String {
        Purl::new("pypi", "", &normalize(&self.name), &self.version).to_string()
    }
}

/// Reads the headers of a METADATA or PKG-INFO file.
///
/// Fails, with the reason in words, when `Name` or `Version` is missing or
/// empty.
pub fn parse(text: &str) -> Result<Metadata, String> {
    let headers = headers(text);
    let field = |wanted: &str| {
        headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
    };

    let name = field("Name").ok_or("no Name field")?;
    let version =
        field("Version").ok_or_else(|| format!("distribution {name}: no Version field"))?;

    let license = match field("License-Expression") {
        Some(expression) => Some(expression),
        None => field("License").filter(|license| !license.contains('\n') && *license != "UNKNOWN"),
    };

    Ok(Metadata {
        name: name.to_string(),
        version: version.to_string(),
        licenses: license.into_iter().map(String::from).collect(),
    })
}

/// The headers of `text`, in order, as (field, value) with the value
/// trimmed and its continuation lines joined to it by `\n`.
fn headers(text: &str) -> Vec<(&str, String)> {
    let mut headers: Vec<(&str, String)> = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            break;
        }

        if line.starts_with([' ', '\t']) {
            // A continuation before any header belongs to nothing.
            if let Some((_, value)) = headers.last_mut() {
                value.push('\n');
                value.push_str(line.trim());
            }
            continue;
        }

        // A line that is no header ends them, as in an email: what follows
        // is taken for the description.
        let Some((name, value)) = line.split_once(':') else {
            break;
        };
        headers.push((name.trim(), value.trim().to_string()));
    }

    // A value whose continuation lines were empty must not look like a
    // value of several lines.
    for (_, value) in &mut headers {
        let trimmed = value.trim_end_matches('\n').len();
        value.truncate(trimmed);
    }
    headers
}

/// The name as PEP 503 normalises it: lowercase, every run of `-`, `_`
/// and `.` made one `-`.
pub fn normalize(name: &str) -> String {
    let mut normalized = String::with_capacity(name.len());
    let mut in_separator = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_separator {
                normalized.push('-');
            }
            in_separator = true;
        } else {
            normalized.extend(c.to_lowercase());
            in_separator = false;
        }
    }
    normalized
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dist_info_metadata_with_continuation_lines() {
        let text = "Metadata-Version: 2.1\n\
                    Name: requests\n\
                    Version: 2.31.0\n\
                    Summary: Python HTTP for Humans.\n\
                    License: Apache 2.0\n\
                    Classifier: Development Status :: 5 - Production/Stable\n\
                    Description-Content-Type: text/markdown\n\
                    Keywords: http,\n\
                    \x20       client\n\
                    \n\
                    # Requests\n\
                    \n\
                    Version: 9.9.9\n";
        let metadata = parse(text).unwrap();
        assert_eq!(
            metadata,
            Metadata {
                name: "requests".to_string(),
                version: "2.31.0".to_string(),
                licenses: vec!["Apache 2.0".to_string()],
            }
        );
        assert_eq!(metadata.purl(), "pkg:pypi/requests@2.31.0");
        assert_eq!(
            headers(text).last().unwrap(),
            &("Keywords", "http,\nclient".to_string())
        );
    }

    // A License that holds a whole license text over continuation lines
    // must not be reported as a license name.
    #[test]
    fn multi_line_license_text_is_not_a_license_name() {
        let text = "Metadata-Version: 2.1\r\n\
                    Name: attrs\r\n\
                    Version: 23.1.0\r\n\
                    License: Copyright (c) 2015 Someone\r\n\
                    \x20       \r\n\
                    \x20       Permission is hereby granted, free of charge\r\n\
                    Platform: UNKNOWN\r\n";
        let metadata = parse(text).unwrap();
        assert_eq!(metadata.version, "23.1.0");
        assert!(metadata.licenses.is_empty(), "{metadata:?}");
    }

    #[test]
    fn egg_info_pkg_info() {
        let text = "Metadata-Version: 1.1\n\
                    Name: python-apt\n\
                    Version: 2.6.0\n\
                    Summary: Python bindings for APT\n\
                    Home-page: UNKNOWN\n\
                    License: GNU GPL\n\
                    Platform: posix\n";
        let metadata = parse(text).unwrap();
        assert_eq!(metadata.name, "python-apt");
        assert_eq!(metadata.licenses, ["GNU GPL"]);
        assert_eq!(metadata.purl(), "pkg:pypi/python-apt@2.6.0");
    }

    #[test]
    fn license_expression_wins_and_unknown_is_no_license() {
        let text = "Name: a\nVersion: 1\nLicense: MIT License\n\
                    License-Expression: MIT OR Apache-2.0\n";
        assert_eq!(parse(text).unwrap().licenses, ["MIT OR Apache-2.0"]);

        let text = "Name: a\nVersion: 1\nLicense: UNKNOWN\n";
        assert!(parse(text).unwrap().licenses.is_empty());
    }

    #[test]
    fn field_names_ignore_case_and_the_first_counts() {
        let text = "name: A\nVERSION: 1.0\nVersion: 2.0\n";
        let metadata = parse(text).unwrap();
        assert_eq!(
            (metadata.name.as_str(), metadata.version.as_str()),
            ("A", "1.0")
        );
    }

    #[test]
    fn missing_name_or_version_is_an_error_naming_it() {
        assert_eq!(
            parse("Name: foo\nSummary: x\n").unwrap_err(),
            "distribution foo: no Version field"
        );
        assert_eq!(
            parse("Name: foo\nVersion:\n").unwrap_err(),
            "distribution foo: no Version field"
        );
        assert_eq!(parse("Version: 1\n").unwrap_err(), "no Name field");
        assert_eq!(parse("").unwrap_err(), "no Name field");
    }

    // A Version header in the description, after the empty line, must not
    // stand in for a missing one.
    #[test]
    fn headers_end_at_the_first_empty_line() {
        let err = parse("Name: foo\n\nVersion: 1.0\n").unwrap_err();
        assert_eq!(err, "distribution foo: no Version field");
    }

    #[test]
    fn names_are_normalised_as_pep_503_says() {
        assert_eq!(normalize("Foo.Bar_baz"), "foo-bar-baz");
        assert_eq!(normalize("PyYAML"), "pyyaml");
        assert_eq!(normalize("zope.interface"), "zope-interface");
        assert_eq!(normalize("a-_.-b__c"), "a-b-c");
        assert_eq!(normalize("typing_extensions"), "typing-extensions");
    }

    #[test]
    fn purl_encodes_what_a_version_may_hold() {
        let metadata = Metadata {
            name: "Torch_Vision".to_string(),
            version: "1!0.16.0+cpu".to_string(),
            licenses: Vec::new(),
        };
        assert_eq!(metadata.purl(), "pkg:pypi/torch-vision@1%210.16.0%2Bcpu");
    }
}
