//! Where a key is in the configuration text: the dotted path of the key
//! a byte span falls in, and the line a dotted path is set on.
//!
//! A [`Document`] is the file parsed once into a tree of TOML tables with
//! the byte span of every key and value. It turns spans reported by the
//! `toml` crate into `ConfigError::Parse` and failed checks into
//! `ConfigError::Invalid`, each naming the file, the line and the key. It
//! knows nothing of the schema: the typed values and their checks are in
//! the parent module.

use std::ops::Range;
use std::path::Path;

use toml::de::{DeTable, DeValue};

use super::ConfigError;

/// The parsed file, kept beside the typed [`Config`](super::Config) to
/// locate keys.
pub(super) struct Document<'a> {
    origin: &'a Path,
    text: &'a str,
    /// The document as TOML tables, with the byte span of every key and
    /// value in `text`.
    pub(super) root: toml::Spanned<DeTable<'a>>,
}

impl<'a> Document<'a> {
    pub(super) fn parse(text: &'a str, origin: &'a Path) -> Result<Self, ConfigError> {
        // On a syntax error the recovered tree still holds the keys before
        // it, and usually the one it is in.
        let (root, errors) = DeTable::parse_recoverable(text);
        let document = Document { origin, text, root };
        match errors.first() {
            Some(error) => Err(document.parse_error(error)),
            None => Ok(document),
        }
    }

    pub(super) fn parse_error(&self, error: &toml::de::Error) -> ConfigError {
        let span = error.span();
        let offset = span.as_ref().map(|span| span.start);
        let key = offset.and_then(|offset| self.key_at(offset));

        // The crate's messages can span lines (a description, then what
        // was expected); the error must stay on one.
        let mut message = error
            .message()
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join("; ");

        // A syntax error outside any key the tree holds (a duplicate key,
        // whose first occurrence is the one kept) says nothing of where it
        // is but its span: quote the text there when it is short.
        if key.is_none() {
            let quoted = span
                .and_then(|span| self.text.get(span))
                .map(str::trim)
                .filter(|text| !text.is_empty() && text.len() <= 40 && !text.contains('\n'));
            if let Some(text) = quoted {
                message = format!("{message} at `{text}`");
            }
        }
        ConfigError::Parse {
            path: self.origin.to_owned(),
            line: offset.map(|offset| self.line_at(offset)),
            key,
            message,
        }
    }

    pub(super) fn invalid(&self, key: &str, message: &str) -> ConfigError {
        ConfigError::Invalid {
            path: self.origin.to_owned(),
            key: key.to_owned(),
            line: self.line_of(key),
            message: message.to_owned(),
        }
    }

    /// The 1-based line holding byte `offset` of the text.
    fn line_at(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        1 + self.text.as_bytes()[..end]
            .iter()
            .filter(|&&byte| byte == b'\n')
            .count()
    }

    /// The line of the key at dotted path `key` (`a.b[2].c`), if the file
    /// sets it.
    pub(super) fn line_of(&self, key: &str) -> Option<usize> {
        let mut table = Some(self.root.get_ref());
        let mut found: Option<Range<usize>> = None;
        for segment in key.split('.') {
            let (name, index) = match segment.split_once('[') {
                Some((name, index)) => {
                    let index = index.trim_end_matches(']').parse::<usize>().ok()?;
                    (name, Some(index))
                }
                None => (segment, None),
            };
            let (name_span, mut value) = table?
                .iter()
                .find(|(k, _)| k.get_ref() == name)
                .map(|(k, v)| (k.span(), v))?;
            found = Some(name_span);
            if let Some(index) = index {
                let DeValue::Array(items) = value.get_ref() else {
                    return None;
                };
                value = items.get(index)?;
                found = Some(value.span());
            }
            table = match value.get_ref() {
                DeValue::Table(inner) => Some(inner),
                _ => None,
            };
        }
        found.map(|span| self.line_at(span.start))
    }

    /// The dotted path of the key whose name or value holds byte `offset`;
    /// the innermost one when tables nest.
    fn key_at(&self, offset: usize) -> Option<String> {
        let mut best = None;
        find_key(self.root.get_ref(), "", offset, &mut best);
        best.map(|(_, key)| key)
    }
}

/// Searches `table` (at dotted path `prefix`) for the smallest key or
/// value span holding `offset`, recording it in `best` with its length.
fn find_key(table: &DeTable<'_>, prefix: &str, offset: usize, best: &mut Option<(usize, String)>) {
    for (key, value) in table.iter() {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        for span in [key.span(), value.span()] {
            consider(span, &path, offset, best);
        }
        match value.get_ref() {
            DeValue::Table(inner) => find_key(inner, &path, offset, best),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let path = format!("{path}[{i}]");
                    consider(item.span(), &path, offset, best);
                    if let DeValue::Table(inner) = item.get_ref() {
                        find_key(inner, &path, offset, best);
                    }
                }
            }
            _ => {}
        }
    }
}

fn consider(span: Range<usize>, path: &str, offset: usize, best: &mut Option<(usize, String)>) {
    let holds = span.contains(&offset) || (span.is_empty() && span.start == offset);
    let len = span.len();

    // Tables are searched after their own key, so `<=` gives a tie to the
    // deeper key, which says more.
    if holds && best.as_ref().is_none_or(|(best_len, _)| len <= *best_len) {
        *best = Some((len, path.to_owned()));
    }
}
