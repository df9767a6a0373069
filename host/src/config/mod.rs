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

mod location;
mod values;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use self::location::Document;
use self::values::{count, duration, size};

/// The most scans that may run at once.
const MAX_WORKERS: usize = 256;

/// The longest time any duration key may hold: a year.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

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

/// `[cache]`: what plugins keep across scans (what they made of each
/// layer), in the workload database.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "the [cache] table")]
pub struct CacheConfig {
    /// The most bytes kept; the least recently used values go first. 0
    /// keeps nothing. Default 256 MiB.
    #[serde(deserialize_with = "size")]
    pub max_size: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_size: 256 << 20,
        }
    }
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

/// Whether containerd accepts `name` as a namespace: letters and digits,
/// joined by single `.`, `_` or `-`, at most 76 characters.
fn valid_namespace(name: &str) -> bool {
    let separator = |c: char| matches!(c, '.' | '_' | '-');
    name.len() <= 76
        && !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || separator(c))
        && !name.starts_with(separator)
        && !name.ends_with(separator)
        && !name
            .as_bytes()
            .windows(2)
            .any(|w| separator(w[0] as char) && separator(w[1] as char))
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
        if scan.workers > MAX_WORKERS {
            let message = format!("must be at most {MAX_WORKERS}");
            return Err(document.invalid("scan.workers", &message));
        }

        // Times beyond these are mistakes, and a time far in the future
        // cannot be written as a date.
        let durations = [
            ("scan.scan_timeout", scan.scan_timeout),
            ("scan.base_backoff", scan.base_backoff),
            ("scan.max_backoff", scan.max_backoff),
            ("scan.shutdown_timeout", scan.shutdown_timeout),
            ("sources.host.interval", self.sources.host.interval),
        ];
        for (key, value) in durations {
            if value > MAX_DURATION {
                let message = format!(
                    "must be at most {}",
                    humantime::format_duration(MAX_DURATION)
                );
                return Err(document.invalid(key, &message));
            }
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
            if let Some(bad) = containerd.namespaces.iter().find(|n| !valid_namespace(n)) {
                let message = format!(
                    "{bad:?} is not a containerd namespace: letters and digits, \
                     joined by single '.', '_' or '-', at most 76 characters"
                );
                return Err(document.invalid("sources.containerd.namespaces", &message));
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
            // containerd's own configuration writes `unix:///run/...`.
            if let Some(path) = containerd.address.to_str()
                && let Some(stripped) = path.strip_prefix("unix://")
            {
                containerd.address = PathBuf::from(stripped);
            }
            resolve(&mut containerd.address);
        }
        if let Some(dir) = &mut self.output.dir {
            resolve(dir);
        }
    }
}

#[cfg(test)]
mod tests;
