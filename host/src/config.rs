//! The daemon configuration: one TOML file, read once at start.
//!
//! This module owns the file's schema, its defaults, and the checks that
//! make a loaded [`Config`] safe to act on. It does not act on anything:
//! it opens no socket and creates no directory; the daemon does that with
//! the values found here.
//!
//! Every key is optional and has a default, listed on its field and in the
//! shipped `examples/scanhost.toml`. An unknown key, a wrong type and a
//! value that fails validation are all errors, and every error names the
//! file, the line and the dotted key (`scan.workers`), so an operator can
//! go straight to the mistake.
//!
//! Invariants of a [`Config`] returned by [`Config::load`] or
//! [`Config::parse`]:
//!
//! - every path is non-empty and, if the file gave it as relative, has been
//!   joined to the directory holding the file, so the daemon's working
//!   directory does not change what a file means;
//! - the numeric limits hold: `scan.workers >= 1`, every interval and
//!   timeout is positive, `scan.base_backoff <= scan.max_backoff`;
//! - `api.listen` is empty or a socket address.
//!
//! The `toml` crate reports where a deserialization error is (a byte span)
//! but does not expose which key it concerns, so the document is parsed
//! once into a spanned tree, which is kept to turn spans into key paths and
//! key paths into line numbers, for its own errors and for validation.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::de::{DeTable, DeValue};

/// Why a configuration could not be loaded.
///
/// Every variant displays as one line that starts with the file and, when
/// known, the line: `scanhost.toml:7: scan.workers: ...`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read the configuration: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    /// The file is not valid TOML, or a key is unknown or has the wrong
    /// type. `key` is the dotted path of the key, when one is involved.
    #[error("{}{}{message}", place(path, *line), key_prefix(key.as_deref()))]
    Parse {
        path: PathBuf,
        line: Option<usize>,
        key: Option<String>,
        message: String,
    },

    /// A value has the right type but is not acceptable. `line` is absent
    /// when the value is a default the file does not mention.
    #[error("{}{key}: {message}", place(path, *line))]
    Invalid {
        path: PathBuf,
        key: String,
        line: Option<usize>,
        message: String,
    },
}

fn place(path: &Path, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{}:{line}: ", path.display()),
        None => format!("{}: ", path.display()),
    }
}

fn key_prefix(key: Option<&str>) -> String {
    key.map(|key| format!("{key}: ")).unwrap_or_default()
}

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a configuration table")]
pub struct Config {
    /// Key `state_dir`, default `/var/lib/scanhost`: the workload database
    /// and the compilation cache live here.
    pub state_dir: PathBuf,
    /// Table `[scan]`.
    pub scan: ScanConfig,
    /// Table `[plugins]`.
    pub plugins: PluginsConfig,
    /// Table `[sources]`.
    pub sources: SourcesConfig,
    /// Table `[output]`.
    pub output: OutputConfig,
    /// Table `[api]`.
    pub api: ApiConfig,
    /// Table `[cache]`.
    pub cache: CacheConfig,
}

/// `[scan]`: how scans run and how failed ones are retried.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "the [scan] table")]
pub struct ScanConfig {
    /// Scans run at the same time, at least 1. Default 2.
    #[serde(deserialize_with = "count")]
    pub workers: usize,
    /// How long one scan may run before it is stopped and counted as
    /// failed; positive. Default 10 minutes.
    #[serde(deserialize_with = "duration")]
    pub scan_timeout: Duration,
    /// Memory one scan's plugins may use, in bytes. Default 512 MiB.
    #[serde(deserialize_with = "size")]
    pub max_memory: u64,
    /// Delay before the first retry of a failed scan; it doubles with each
    /// further failure. Positive. Default 5 minutes.
    #[serde(deserialize_with = "duration")]
    pub base_backoff: Duration,
    /// Longest delay between retries, at least `base_backoff`. Default 1
    /// hour.
    #[serde(deserialize_with = "duration")]
    pub max_backoff: Duration,
    /// Failed attempts after which a workload is given up on until it
    /// changes; 0 retries forever. Default 0.
    #[serde(deserialize_with = "count")]
    pub max_attempts: u32,
    /// How long running scans get to finish when the daemon stops. Default
    /// 30 seconds.
    #[serde(deserialize_with = "duration")]
    pub shutdown_timeout: Duration,
}

/// `[plugins]`: where scanner components come from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "the [plugins] table")]
pub struct PluginsConfig {
    /// A directory of extra plugin components. Default none: only the
    /// built-in plugins.
    pub dir: Option<PathBuf>,
    /// Reload plugins when files in `dir` change. Default false.
    pub watch: bool,
    /// After a reload, rescan every workload whose result came from a
    /// changed plugin. Default true.
    pub rescan_on_change: bool,
}

/// `[sources]`: what is scanned.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "the [sources] table")]
pub struct SourcesConfig {
    /// `[sources.host]`: the machine's own file system.
    pub host: HostSource,
    /// `[[sources.oci_layout]]`: OCI image layout directories, one entry
    /// each. Default none.
    pub oci_layout: Vec<OciLayoutSource>,
    /// `[sources.containerd]`: the images known to containerd. Present
    /// means enabled; default absent.
    pub containerd: Option<ContainerdSource>,
}

/// `[sources.host]`: the host file system as a scan target.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "the [sources.host] table")]
pub struct HostSource {
    /// Scan the host at all. Default true.
    pub enabled: bool,
    /// Root of the file system to scan. Default `/`.
    pub root: PathBuf,
    /// Time between two scans of the host; positive. Default 1 hour.
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
}

/// One `[[sources.oci_layout]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[sources.oci_layout]] table")]
pub struct OciLayoutSource {
    /// The layout directory (the one holding `index.json`). Required.
    pub path: PathBuf,
}

/// `[sources.containerd]`: images from a containerd daemon.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "the [sources.containerd] table"
)]
pub struct ContainerdSource {
    /// containerd's socket. Default `/run/containerd/containerd.sock`.
    pub address: PathBuf,
    /// Namespaces whose images are scanned; at least one. Default
    /// `["k8s.io"]`, where Kubernetes keeps its images.
    pub namespaces: Vec<String>,
}

/// `[output]`: where SBOM documents are written.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "the [output] table")]
pub struct OutputConfig {
    /// Output directory. Default none, meaning `<state_dir>/sboms`; use
    /// [`Config::output_dir`] rather than this field.
    pub dir: Option<PathBuf>,
}

/// `[api]`: the HTTP API.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "the [api] table")]
pub struct ApiConfig {
    /// Address to listen on, or empty to disable the API. Default
    /// `127.0.0.1:7878`; use [`Config::api_listen`] rather than this field.
    pub listen: String,
}

/// `[cache]`: the cache of compiled plugin components.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "the [cache] table")]
pub struct CacheConfig {
    /// Size the cache is kept under, in bytes. Default 256 MiB.
    #[serde(deserialize_with = "size")]
    pub max_size: u64,
}

const MIB: u64 = 1024 * 1024;

impl Default for Config {
    fn default() -> Self {
        Config {
            state_dir: PathBuf::from("/var/lib/scanhost"),
            scan: ScanConfig::default(),
            plugins: PluginsConfig::default(),
            sources: SourcesConfig::default(),
            output: OutputConfig::default(),
            api: ApiConfig::default(),
            cache: CacheConfig::default(),
        }
    }
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            workers: 2,
            scan_timeout: Duration::from_secs(10 * 60),
            max_memory: 512 * MIB,
            base_backoff: Duration::from_secs(5 * 60),
            max_backoff: Duration::from_secs(60 * 60),
            max_attempts: 0,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            dir: None,
            watch: false,
            rescan_on_change: true,
        }
    }
}

impl Default for HostSource {
    fn default() -> Self {
        HostSource {
            enabled: true,
            root: PathBuf::from("/"),
            interval: Duration::from_secs(60 * 60),
        }
    }
}

impl Default for ContainerdSource {
    fn default() -> Self {
        ContainerdSource {
            address: PathBuf::from("/run/containerd/containerd.sock"),
            namespaces: vec!["k8s.io".to_owned()],
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: "127.0.0.1:7878".to_owned(),
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_size: 256 * MIB,
        }
    }
}

impl Config {
    /// Reads, parses and validates the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates `text`, the contents of the file at `origin`.
    ///
    /// `origin` names the file in errors, and relative paths in `text` are
    /// joined to its directory.
    ///
    /// ```
    /// use std::path::Path;
    /// use scanhost::config::Config;
    ///
    /// let text = "state_dir = \"state\"\n[scan]\nworkers = 4\n";
    /// let config = Config::parse(text, Path::new("/etc/scanhost.toml"))?;
    /// assert_eq!(config.state_dir, Path::new("/etc/state"));
    /// assert_eq!(config.scan.workers, 4);
    /// # Ok::<(), scanhost::config::ConfigError>(())
    /// ```
    pub fn parse(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let document = Document::parse(text, origin)?;
        let mut config = Config::deserialize(toml::de::Deserializer::from(document.root.clone()))
            .map_err(|error| document.parse_error(&error))?;

        // Validate before resolving, so that an empty path is reported as
        // empty rather than silently becoming the file's directory.
        config.validate(&document)?;
        config.resolve_paths(origin.parent().unwrap_or(Path::new("")));
        Ok(config)
    }

    /// The directory SBOM documents are written to: `output.dir`, or
    /// `<state_dir>/sboms` when that is not set.
    pub fn output_dir(&self) -> PathBuf {
        match &self.output.dir {
            Some(dir) => dir.clone(),
            None => self.state_dir.join("sboms"),
        }
    }

    /// The address the HTTP API listens on, or `None` when `api.listen`
    /// is empty and the API is disabled.
    pub fn api_listen(&self) -> Option<SocketAddr> {
        // A loaded configuration has been validated, so a non-empty value
        // always parses.
        self.api.listen.parse().ok()
    }

    fn validate(&self, document: &Document<'_>) -> Result<(), ConfigError> {
        let scan = &self.scan;
        if scan.workers == 0 {
            return Err(document.invalid("scan.workers", "must be at least 1"));
        }
        if scan.scan_timeout.is_zero() {
            return Err(document.invalid("scan.scan_timeout", "must be positive"));
        }
        if scan.max_memory == 0 {
            return Err(document.invalid("scan.max_memory", "must be positive"));
        }
        if scan.base_backoff.is_zero() {
            return Err(document.invalid("scan.base_backoff", "must be positive"));
        }
        if scan.max_backoff < scan.base_backoff {
            // Blame the key the file sets: with only `base_backoff` raised
            // above the default maximum, that is the line to look at.
            let key = if document.line_of("scan.max_backoff").is_some() {
                "scan.max_backoff"
            } else {
                "scan.base_backoff"
            };
            let message = format!(
                "scan.max_backoff ({}) must not be less than \
                 scan.base_backoff ({})",
                humantime::format_duration(scan.max_backoff),
                humantime::format_duration(scan.base_backoff),
            );
            return Err(document.invalid(key, &message));
        }
        if self.sources.host.interval.is_zero() {
            return Err(document.invalid("sources.host.interval", "must be positive"));
        }

        if !self.api.listen.is_empty() && self.api.listen.parse::<SocketAddr>().is_err() {
            let message = format!(
                "{:?} is not a socket address such as \"127.0.0.1:7878\" \
                 (leave it empty to disable the API)",
                self.api.listen
            );
            return Err(document.invalid("api.listen", &message));
        }

        if let Some(containerd) = &self.sources.containerd {
            if containerd.namespaces.is_empty() {
                return Err(document.invalid(
                    "sources.containerd.namespaces",
                    "must name at least one namespace",
                ));
            }
            if containerd.namespaces.iter().any(String::is_empty) {
                return Err(document.invalid(
                    "sources.containerd.namespaces",
                    "a namespace name must not be empty",
                ));
            }
        }

        for (key, path) in self.paths() {
            if path.as_os_str().is_empty() {
                return Err(document.invalid(&key, "must not be empty"));
            }
        }
        Ok(())
    }

    /// Every path in the configuration, with its dotted key.
    fn paths(&self) -> Vec<(String, &Path)> {
        let mut paths = vec![
            ("state_dir".to_owned(), self.state_dir.as_path()),
            ("sources.host.root".to_owned(), &self.sources.host.root),
        ];
        if let Some(dir) = &self.plugins.dir {
            paths.push(("plugins.dir".to_owned(), dir));
        }
        for (i, layout) in self.sources.oci_layout.iter().enumerate() {
            paths.push((format!("sources.oci_layout[{i}].path"), &layout.path));
        }
        if let Some(containerd) = &self.sources.containerd {
            paths.push(("sources.containerd.address".to_owned(), &containerd.address));
        }
        if let Some(dir) = &self.output.dir {
            paths.push(("output.dir".to_owned(), dir));
        }
        paths
    }

    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        };
        resolve(&mut self.state_dir);
        resolve(&mut self.sources.host.root);
        if let Some(dir) = &mut self.plugins.dir {
            resolve(dir);
        }
        for layout in &mut self.sources.oci_layout {
            resolve(&mut layout.path);
        }
        if let Some(containerd) = &mut self.sources.containerd {
            resolve(&mut containerd.address);
        }
        if let Some(dir) = &mut self.output.dir {
            resolve(dir);
        }
    }
}

/// The parsed file, kept beside the typed [`Config`] to locate keys.
struct Document<'a> {
    origin: &'a Path,
    text: &'a str,
    /// The document as TOML tables, with the byte span of every key and
    /// value in `text`.
    root: toml::Spanned<DeTable<'a>>,
}

impl<'a> Document<'a> {
    fn parse(text: &'a str, origin: &'a Path) -> Result<Self, ConfigError> {
        // On a syntax error the recovered tree still holds the keys before
        // it, and usually the one it is in.
        let (root, errors) = DeTable::parse_recoverable(text);
        let document = Document { origin, text, root };
        match errors.first() {
            Some(error) => Err(document.parse_error(error)),
            None => Ok(document),
        }
    }

    fn parse_error(&self, error: &toml::de::Error) -> ConfigError {
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

    fn invalid(&self, key: &str, message: &str) -> ConfigError {
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
    fn line_of(&self, key: &str) -> Option<usize> {
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

/// Deserializes a duration written like `"90s"`, `"5m"` or `"1h30m"`.
fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as \"90s\", \"5m\" or \"1h30m\"")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
            humantime::parse_duration(text).map_err(|error| {
                E::custom(format!(
                    "invalid duration {text:?} ({error}), expected {}",
                    Expected(&self)
                ))
            })
        }
    }

    deserializer.deserialize_str(DurationVisitor)
}

/// Deserializes a count, so that a wrong value is described in words
/// rather than as a Rust integer type.
fn count<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    struct CountVisitor<T>(std::marker::PhantomData<T>);

    impl<T: TryFrom<u64>> Visitor<'_> for CountVisitor<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a whole number, 0 or more")
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<T, E> {
            T::try_from(value).map_err(|_| E::custom(format!("{value} is too large")))
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<T, E> {
            match u64::try_from(value) {
                Ok(value) => self.visit_u64(value),
                Err(_) => Err(E::invalid_value(de::Unexpected::Signed(value), &self)),
            }
        }
    }

    deserializer.deserialize_any(CountVisitor(std::marker::PhantomData))
}

/// Deserializes a size in bytes, written as a number of bytes or a string
/// like `"512MiB"` or `"2GB"`.
fn size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    struct SizeVisitor;

    impl Visitor<'_> for SizeVisitor {
        type Value = u64;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a size such as \"512MiB\" or a number of bytes")
        }

        fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<u64, E> {
            Ok(bytes)
        }

        fn visit_i64<E: de::Error>(self, bytes: i64) -> Result<u64, E> {
            u64::try_from(bytes).map_err(|_| E::invalid_value(de::Unexpected::Signed(bytes), &self))
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<u64, E> {
            // bytesize's own message is cut short mid-word; what was
            // written and what is expected say more.
            match text.parse::<ByteSize>() {
                Ok(size) => Ok(size.as_u64()),
                Err(_) => Err(E::custom(format!(
                    "invalid size {text:?}, expected {}",
                    Expected(&self)
                ))),
            }
        }
    }

    deserializer.deserialize_any(SizeVisitor)
}

/// Shows what a visitor expects, for messages built by hand.
struct Expected<'a, V>(&'a V);

impl<'de, V: Visitor<'de>> fmt::Display for Expected<'_, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../examples/scanhost.toml");

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/scanhost/scanhost.toml"))
    }

    fn error(text: &str) -> String {
        parse(text)
            .expect_err("the text must be rejected")
            .to_string()
    }

    // An empty file must give every default, not zeroes or an error.
    #[test]
    fn empty_file_gives_defaults() {
        let config = parse("").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.scan.workers, 2);
        assert_eq!(config.scan.max_memory, 512 * MIB);
        assert_eq!(config.output_dir(), Path::new("/var/lib/scanhost/sboms"));
        assert_eq!(config.api_listen(), Some("127.0.0.1:7878".parse().unwrap()));
    }

    // A file setting every key must have each value land in its field.
    #[test]
    fn full_file_sets_every_field() {
        let text = r#"
            state_dir = "/srv/scanhost"
            [scan]
            workers = 8
            scan_timeout = "2m"
            max_memory = "1GiB"
            base_backoff = "10s"
            max_backoff = "20m"
            max_attempts = 5
            shutdown_timeout = "1m"
            [plugins]
            dir = "/opt/plugins"
            watch = true
            rescan_on_change = false
            [sources.host]
            enabled = false
            root = "/host"
            interval = "6h"
            [[sources.oci_layout]]
            path = "/images/a"
            [[sources.oci_layout]]
            path = "/images/b"
            [sources.containerd]
            address = "/run/k3s/containerd/containerd.sock"
            namespaces = ["k8s.io", "default"]
            [output]
            dir = "/srv/sboms"
            [api]
            listen = "[::1]:9000"
            [cache]
            max_size = 1000
        "#;
        let expected = Config {
            state_dir: "/srv/scanhost".into(),
            scan: ScanConfig {
                workers: 8,
                scan_timeout: Duration::from_secs(120),
                max_memory: 1024 * MIB,
                base_backoff: Duration::from_secs(10),
                max_backoff: Duration::from_secs(20 * 60),
                max_attempts: 5,
                shutdown_timeout: Duration::from_secs(60),
            },
            plugins: PluginsConfig {
                dir: Some("/opt/plugins".into()),
                watch: true,
                rescan_on_change: false,
            },
            sources: SourcesConfig {
                host: HostSource {
                    enabled: false,
                    root: "/host".into(),
                    interval: Duration::from_secs(6 * 3600),
                },
                oci_layout: vec![
                    OciLayoutSource {
                        path: "/images/a".into(),
                    },
                    OciLayoutSource {
                        path: "/images/b".into(),
                    },
                ],
                containerd: Some(ContainerdSource {
                    address: "/run/k3s/containerd/containerd.sock".into(),
                    namespaces: vec!["k8s.io".into(), "default".into()],
                }),
            },
            output: OutputConfig {
                dir: Some("/srv/sboms".into()),
            },
            api: ApiConfig {
                listen: "[::1]:9000".into(),
            },
            cache: CacheConfig { max_size: 1000 },
        };
        let config = parse(text).unwrap();
        assert_eq!(config, expected);
        assert_eq!(config.output_dir(), Path::new("/srv/sboms"));
        assert_eq!(config.api_listen(), Some("[::1]:9000".parse().unwrap()));
    }

    // Compound durations must add up, not stop at the first unit.
    #[test]
    fn durations_in_seconds_and_compound_units() {
        let config = parse("[scan]\nscan_timeout = \"90s\"\nmax_backoff = \"1h30m\"\n").unwrap();
        assert_eq!(config.scan.scan_timeout, Duration::from_secs(90));
        assert_eq!(config.scan.max_backoff, Duration::from_secs(5400));
    }

    // "MiB" must be binary (1024 * 1024), not decimal.
    #[test]
    fn size_in_mebibytes() {
        let config = parse("[cache]\nmax_size = \"64MiB\"\n").unwrap();
        assert_eq!(config.cache.max_size, 64 * 1024 * 1024);
    }

    // A misspelt top-level key must be an error naming it and its line.
    #[test]
    fn unknown_top_level_key_is_an_error() {
        let message = error("\nstate_directory = \"/x\"\n");
        assert!(
            message.starts_with("/etc/scanhost/scanhost.toml:2: state_directory: "),
            "{message}"
        );
        assert!(
            message.contains("unknown field `state_directory`"),
            "{message}"
        );
    }

    // A misspelt key in a table must be named with its table and line.
    #[test]
    fn unknown_key_in_scan_is_an_error() {
        let message = error("[scan]\nworkers = 3\n\nworker = 4\n");
        assert!(
            message.starts_with("/etc/scanhost/scanhost.toml:4: scan.worker: "),
            "{message}"
        );
        assert!(message.contains("unknown field `worker`"), "{message}");
    }

    // A misspelt key in an array of tables must be named with its index.
    #[test]
    fn unknown_key_in_oci_layout_is_an_error() {
        let text = "[[sources.oci_layout]]\npath = \"a\"\n\
                    [[sources.oci_layout]]\npth = \"b\"\n";
        let message = error(text);
        assert!(
            message.contains(":4: sources.oci_layout[1].pth: "),
            "{message}"
        );
    }

    // A value of the wrong type must name the key and line, not only the
    // expected type.
    #[test]
    fn wrong_type_is_an_error() {
        let message = error("[scan]\n\nworkers = \"two\"\n");
        assert_eq!(
            message,
            "/etc/scanhost/scanhost.toml:3: scan.workers: invalid type: \
             string \"two\", expected a whole number, 0 or more"
        );
    }

    // A key set twice must be an error that says which key and where.
    #[test]
    fn duplicate_key_is_an_error() {
        let message = error("[scan]\nworkers = 2\n\nworkers = 3\n");
        assert_eq!(
            message,
            "/etc/scanhost/scanhost.toml:4: duplicate key at `workers`"
        );
    }

    // A table given as a plain value must be reported in words, not as a
    // Rust type name.
    #[test]
    fn scalar_in_place_of_table_is_an_error() {
        let message = error("scan = 5\n");
        assert!(message.contains(":1: scan: "), "{message}");
        assert!(message.contains("the [scan] table"), "{message}");
    }

    // A duration with an unknown unit must name the key, the line and the
    // text.
    #[test]
    fn invalid_duration_is_an_error() {
        let message = error("[sources.host]\ninterval = \"5 parsecs\"\n");
        assert!(
            message.starts_with("/etc/scanhost/scanhost.toml:2: sources.host.interval: "),
            "{message}"
        );
        assert!(message.contains("\"5 parsecs\""), "{message}");
    }

    // A duration written as a bare number must be rejected, since its
    // unit would be a guess.
    #[test]
    fn duration_without_unit_is_an_error() {
        let message = error("[scan]\nscan_timeout = 600\n");
        assert!(message.contains(":2: scan.scan_timeout: "), "{message}");
        assert!(message.contains("expected a duration"), "{message}");
    }

    // A size with an unknown unit must name the key and line.
    #[test]
    fn invalid_size_is_an_error() {
        let message = error("[scan]\nmax_memory = \"12 lightyears\"\n");
        assert!(message.contains(":2: scan.max_memory: "), "{message}");
        assert!(message.contains("invalid size"), "{message}");
    }

    // A TOML syntax error must still give the file and line, on one line.
    #[test]
    fn syntax_error_is_reported_on_one_line() {
        let message = error("[scan]\nworkers = 2\nmax_attempts =\n");
        assert!(
            message.starts_with("/etc/scanhost/scanhost.toml:3: "),
            "{message}"
        );
        assert!(!message.contains('\n'), "{message}");
    }

    // workers = 0 would start no scan at all; it must be refused.
    #[test]
    fn zero_workers_is_invalid() {
        let message = error("[scan]\nworkers = 0\n");
        assert_eq!(
            message,
            "/etc/scanhost/scanhost.toml:2: scan.workers: must be at least 1"
        );
    }

    // A maximum backoff below the base would make retries never back off.
    #[test]
    fn max_backoff_below_base_is_invalid() {
        let message = error("[scan]\nbase_backoff = \"10m\"\nmax_backoff = \"5m\"\n");
        assert_eq!(
            message,
            "/etc/scanhost/scanhost.toml:3: scan.max_backoff: scan.max_backoff \
             (5m) must not be less than scan.base_backoff (10m)"
        );
    }

    // With only base_backoff raised past the default maximum, the error
    // must point at the line that is there.
    #[test]
    fn base_backoff_above_default_max_is_invalid() {
        let message = error("[scan]\nbase_backoff = \"2h\"\n");
        assert!(message.contains(":2: scan.base_backoff: "), "{message}");
    }

    // Zero timeouts and intervals would spin or fail every scan.
    #[test]
    fn zero_durations_are_invalid() {
        for (text, key) in [
            ("[scan]\nscan_timeout = \"0s\"\n", "scan.scan_timeout"),
            ("[scan]\nbase_backoff = \"0s\"\n", "scan.base_backoff"),
            (
                "[sources.host]\ninterval = \"0s\"\n",
                "sources.host.interval",
            ),
        ] {
            let message = error(text);
            assert!(
                message.contains(&format!(":2: {key}: must be positive")),
                "{message}"
            );
        }
    }

    // An address without a port must be refused at load, not at bind.
    #[test]
    fn api_listen_must_be_a_socket_address() {
        let message = error("[api]\nlisten = \"localhost\"\n");
        assert!(
            message.contains(":2: api.listen: \"localhost\""),
            "{message}"
        );
    }

    // An empty layout path would scan the config file's directory.
    #[test]
    fn empty_oci_layout_path_is_invalid() {
        let text = "[[sources.oci_layout]]\npath = \"a\"\n\
                    [[sources.oci_layout]]\npath = \"\"\n";
        let message = error(text);
        assert!(
            message.ends_with(":4: sources.oci_layout[1].path: must not be empty"),
            "{message}"
        );
    }

    // An oci_layout entry without a path must not be accepted.
    #[test]
    fn oci_layout_without_path_is_an_error() {
        let message = error("[[sources.oci_layout]]\n");
        assert!(message.contains("sources.oci_layout[0]: "), "{message}");
        assert!(message.contains("missing field `path`"), "{message}");
    }

    // containerd enabled with no namespace would silently scan nothing.
    #[test]
    fn containerd_without_namespaces_is_invalid() {
        let message = error("[sources.containerd]\nnamespaces = []\n");
        assert!(
            message
                .ends_with(":2: sources.containerd.namespaces: must name at least one namespace"),
            "{message}"
        );
    }

    // An empty [sources.containerd] table must enable it with defaults.
    #[test]
    fn containerd_table_enables_it_with_defaults() {
        let config = parse("[sources.containerd]\n").unwrap();
        assert_eq!(config.sources.containerd, Some(ContainerdSource::default()));
    }

    // Relative paths must be taken from the file's directory, not from
    // the daemon's working directory.
    #[test]
    fn relative_paths_resolve_against_the_file() {
        let text = r#"
            state_dir = "state"
            [plugins]
            dir = "../plugins"
            [sources.host]
            root = "rootfs"
            [[sources.oci_layout]]
            path = "images/alpine"
            [[sources.oci_layout]]
            path = "/abs/images"
            [sources.containerd]
            address = "run/containerd.sock"
            [output]
            dir = "out"
        "#;
        let config = Config::parse(text, Path::new("/etc/scanhost/main.toml")).unwrap();
        assert_eq!(config.state_dir, Path::new("/etc/scanhost/state"));
        assert_eq!(
            config.plugins.dir.unwrap(),
            Path::new("/etc/scanhost/../plugins")
        );
        assert_eq!(config.sources.host.root, Path::new("/etc/scanhost/rootfs"));
        assert_eq!(
            config.sources.oci_layout[0].path,
            Path::new("/etc/scanhost/images/alpine")
        );
        assert_eq!(config.sources.oci_layout[1].path, Path::new("/abs/images"));
        assert_eq!(
            config.sources.containerd.unwrap().address,
            Path::new("/etc/scanhost/run/containerd.sock")
        );
        assert_eq!(config.output.dir.unwrap(), Path::new("/etc/scanhost/out"));
    }

    // The default output directory must follow a relocated state_dir.
    #[test]
    fn output_dir_defaults_under_state_dir() {
        let config = parse("state_dir = \"/data\"\n").unwrap();
        assert_eq!(config.output_dir(), Path::new("/data/sboms"));
    }

    // An empty api.listen must disable the API rather than fail to parse.
    #[test]
    fn empty_api_listen_disables_the_api() {
        let config = parse("[api]\nlisten = \"\"\n").unwrap();
        assert_eq!(config.api_listen(), None);
    }

    // A missing file must be reported with its path.
    #[test]
    fn missing_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.toml");
        let message = Config::load(&path).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!("{}: ", path.display())),
            "{message}"
        );
    }

    // The shipped example must parse, and every value it writes out must
    // be the real default, except the keys it overrides on purpose.
    #[test]
    fn example_file_matches_the_defaults() {
        let origin = Path::new("examples/scanhost.toml");
        let config = Config::parse(EXAMPLE, origin).unwrap();
        let mut expected = Config {
            state_dir: "examples/../target/scanhost-example".into(),
            ..Config::default()
        };
        expected.plugins.dir = Some("examples/plugins".into());
        expected.plugins.watch = true;
        expected.sources.oci_layout = vec![OciLayoutSource {
            path: "examples/images".into(),
        }];
        assert_eq!(config, expected);

        // Settings the example leaves commented out (`#key = value`, no
        // space after `#`) must also show the defaults once enabled.
        let enabled: String = EXAMPLE
            .lines()
            .map(|line| match line.strip_prefix('#') {
                Some(rest) if !rest.starts_with([' ', '#']) && !rest.is_empty() => rest,
                _ => line,
            })
            .flat_map(|line| [line, "\n"])
            .collect();
        let config = Config::parse(&enabled, origin).unwrap();
        expected.sources.containerd = Some(ContainerdSource::default());
        expected.output.dir = Some("examples/../target/scanhost-example/sboms".into());
        assert_eq!(config, expected);
    }
}
