//! The control-file syntax of dpkg's database: stanzas of `Name: value`
//! fields.
//!
//! This module knows the syntax only, not what any field means. A stanza
//! is a run of non-blank lines; stanzas are separated by blank lines, which
//! are empty or, as Debian policy allows parsers to accept, hold only
//! spaces and tabs. A line starting with a space or a tab continues the
//! previous field. A `\r` before a line end is ignored. Field names are
//! compared without regard to case, as policy says.
//!
//! Nothing here limits the length of a line or a stanza. A stanza that
//! breaks the syntax (a line without a colon, a continuation line with no
//! field before it, an empty field name) is returned as [`Malformed`], and
//! parsing goes on with the next stanza.

/// One stanza, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stanza<'a> {
    /// The 1-based number of the stanza's first line.
    pub(super) line: usize,
    /// Fields in file order; a value's continuation lines follow its first
    /// line, separated by `\n`.
    fields: Vec<(&'a str, String)>,
}

impl Stanza<'_> {
    /// The value of field `name`, trimmed; when the field appears twice, the
    /// last one, as for a key in a map.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim())
    }
}

/// A stanza that breaks the syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Malformed {
    /// The 1-based number of the stanza's first line.
    pub(super) line: usize,
    /// What is wrong, naming the offending line.
    pub(super) reason: String,
}

/// Splits a control file into its stanzas, in file order.
pub(super) fn parse(text: &str) -> Vec<Result<Stanza<'_>, Malformed>> {
    let mut stanzas = Vec::new();

    // The stanza being read, if any, and the first fault found in it; the
    // rest of a faulty stanza is read only to find its end.
    let mut current: Option<(Stanza<'_>, Option<String>)> = None;

    for (index, line) in text.split('\n').enumerate() {
        let number = index + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);

        if line.bytes().all(|b| b == b' ' || b == b'\t') {
            if let Some(done) = current.take() {
                stanzas.push(finish(done));
            }
            continue;
        }

        let (stanza, fault) = current.get_or_insert_with(|| {
            let stanza = Stanza {
                line: number,
                fields: Vec::new(),
            };
            (stanza, None)
        });
        if fault.is_some() {
            continue;
        }

        if line.starts_with([' ', '\t']) {
            match stanza.fields.last_mut() {
                Some((_, value)) => {
                    value.push('\n');
                    value.push_str(line);
                }
                None => *fault = Some(format!("line {number} continues no field")),
            }
            continue;
        }

        match line.split_once(':') {
            Some((name, value)) if !name.trim().is_empty() => {
                stanza.fields.push((name.trim(), value.to_string()));
            }
            Some(_) => *fault = Some(format!("line {number} has an empty field name")),
            None => *fault = Some(format!("line {number} is not a `Name: value` field")),
        }
    }
    if let Some(done) = current.take() {
        stanzas.push(finish(done));
    }

    stanzas
}

fn finish((stanza, fault): (Stanza<'_>, Option<String>)) -> Result<Stanza<'_>, Malformed> {
    match fault {
        None => Ok(stanza),
        Some(reason) => Err(Malformed {
            line: stanza.line,
            reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_continuations_and_separators() {
        let text = "Package: a\nDescription: short\n long\n .\n\tmore\n\n\n\
                    package: b\r\nVERSION:  2 \r\n";
        let stanzas = parse(text);
        assert_eq!(stanzas.len(), 2);

        let a = stanzas[0].as_ref().unwrap();
        assert_eq!(a.line, 1);
        assert_eq!(a.get("Package"), Some("a"));
        assert_eq!(a.get("description"), Some("short\n long\n .\n\tmore"));

        let b = stanzas[1].as_ref().unwrap();
        assert_eq!(b.line, 8);
        assert_eq!(b.get("Package"), Some("b"));
        assert_eq!(b.get("Version"), Some("2"));
        assert_eq!(b.get("Architecture"), None);
    }

    #[test]
    fn whitespace_only_line_separates_stanzas() {
        let stanzas = parse("Package: a\n  \t\nPackage: b\n");
        assert_eq!(stanzas.len(), 2);
        assert_eq!(stanzas[1].as_ref().unwrap().line, 3);
    }

    #[test]
    fn malformed_stanza_is_reported_and_the_next_is_kept() {
        let text = "Package: a\nno colon here\nVersion: 1\n\n Leading: continuation\n\n\
                    : empty name\n\nPackage: ok\n";
        let stanzas = parse(text);
        assert_eq!(
            stanzas[0],
            Err(Malformed {
                line: 1,
                reason: "line 2 is not a `Name: value` field".to_string()
            })
        );
        assert_eq!(stanzas[1].as_ref().unwrap_err().line, 5);
        assert_eq!(stanzas[2].as_ref().unwrap_err().line, 7);
        assert_eq!(stanzas[3].as_ref().unwrap().get("Package"), Some("ok"));
    }

    #[test]
    fn later_duplicate_field_wins() {
        let stanzas = parse("Package: a\nPackage: b\n");
        assert_eq!(stanzas[0].as_ref().unwrap().get("Package"), Some("b"));
    }

    #[test]
    fn no_limit_on_line_length() {
        let long = "x".repeat(4 << 20);
        let text = format!("Package: a\nDescription: {long}\nVersion: 1\n");
        let stanzas = parse(&text);
        assert_eq!(stanzas[0].as_ref().unwrap().get("Version"), Some("1"));
    }

    #[test]
    fn empty_text_has_no_stanzas() {
        assert!(parse("").is_empty());
        assert!(parse("\n\n  \n").is_empty());
    }
}
