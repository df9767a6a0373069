//! The `scanhost` command.
//!
//! `scanhost scan PATH` prints one CycloneDX document on stdout, as syft
//! and trivy do; logs go to stderr. PATH is a root filesystem, an OCI
//! image layout or an oci-archive, the last two optionally followed by
//! `:TAG` or `@DIGEST`, or `containerd://NAMESPACE/NAME`. Exit codes: 0 success, 2 bad usage or unreadable
//! input, 3 a retryable scan failure, 4 a fatal one.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use scanhost::api::WorkloadView;
use scanhost::config::Config;
use scanhost::containerd::{self, Client};
use scanhost::content::containerd::ContainerdContent;
use scanhost::content::oci_layout::ref_name;
use scanhost::content::{ContentError, Digest, OciLayout};
use scanhost::plugin_cache::PluginCache;
use scanhost::plugins::{Limits, Registry, Runtime, TargetKind};
use scanhost::sbom::{self, Subject};
use scanhost::target::{ImageTarget, Target, host_platform};
use scanhost::workload::Kind;
use scanhost_image::oci::Platform;

/// The most `scanhost scan` keeps of what plugins made of layers.
const PLUGIN_CACHE_SIZE: u64 = 256 << 20;

const EXIT_USAGE: u8 = 2;
const EXIT_RETRYABLE: u8 = 3;
const EXIT_FATAL: u8 = 4;

#[derive(Parser)]
#[command(
    name = "scanhost",
    version,
    about = "SBOMs for container images and hosts"
)]
struct Cli {
    /// Log filter for stderr, e.g. `info` or `scanhost=debug`.
    #[arg(long, global = true, env = "SCANHOST_LOG", default_value = "info")]
    log: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Scan a root filesystem or an image once and print a CycloneDX 1.6
    /// document.
    Scan(ScanArgs),
    /// Run the agent: keep an SBOM of every workload, serve the API.
    Run {
        /// The configuration file (see examples/scanhost.toml).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Work with plugin components.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Print the workloads of a running agent as a table.
    Status {
        /// The agent's API address.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7878")]
        api: String,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Load and validate a component as the agent would, and print what it
    /// says of itself. Exits 1 when the agent would refuse it.
    Check {
        /// The `.wasm` component.
        file: PathBuf,
    },
}

#[derive(clap::Args)]
struct ScanArgs {
    /// A directory holding a root filesystem (`/` for this machine), an OCI
    /// image layout directory or an oci-archive file; a layout or archive
    /// holding several images takes `:TAG` or `@sha256:...` to choose one.
    /// `containerd://NAMESPACE/NAME` is an image of containerd.
    path: String,

    /// The platform to choose from a multi-platform image, `os/arch[/variant]`
    /// [default: this machine's].
    #[arg(long, value_name = "PLATFORM", value_parser = parse_platform)]
    platform: Option<Platform>,

    /// A directory of `.wasm` plugins, added to the shipped ones; a plugin
    /// there replaces the shipped plugin of the same name.
    #[arg(long, value_name = "DIR")]
    plugin_dir: Option<PathBuf>,

    /// How long one plugin may scan, e.g. `30s` or `10m`.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = positive_duration)]
    scan_timeout: Duration,

    /// Memory one plugin instance may use, e.g. `512MiB`.
    #[arg(long, value_name = "SIZE", default_value = "512MiB")]
    max_memory: bytesize::ByteSize,

    /// Neither read nor keep what plugins made of layers in earlier scans
    /// (kept in the cache directory); also SCANHOST_NO_CACHE=1, true, yes
    /// or on.
    #[arg(
        long,
        env = "SCANHOST_NO_CACHE",
        hide_env = true,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    no_cache: bool,

    /// containerd's socket, for `containerd://NAMESPACE/NAME` [default:
    /// $CONTAINERD_ADDRESS, else /run/containerd/containerd.sock].
    #[arg(long, value_name = "SOCKET")]
    containerd_address: Option<String>,

    /// Where compiled plugins, and what plugins made of layers
    /// (plugin-cache.redb, at most 256 MiB of values), are kept between runs
    /// [default: $XDG_CACHE_HOME/scanhost or ~/.cache/scanhost].
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log);
    let result = match cli.command {
        Command::Scan(args) => scan(args),
        Command::Run { config } => run(&config),
        Command::Status { api } => status(&api),
        Command::Plugin(PluginCommand::Check { file }) => plugin_check(&file),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("scanhost: {}", report(&err));
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// `err` and its causes on one line. Many errors already quote their cause
/// in their own message: a cause said already is not said again.
fn report(err: &anyhow::Error) -> String {
    let mut line = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn run(config: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(scanhost::daemon::run(config))?;
    // Scans abandoned at the shutdown deadline must not hold the exit.
    runtime.shutdown_background();
    Ok(ExitCode::SUCCESS)
}

fn plugin_check(file: &Path) -> anyhow::Result<ExitCode> {
    if !file.is_file() {
        anyhow::bail!("cannot check {}: not a file", file.display());
    }
    let runtime = Runtime::new(Limits::default(), default_cache_dir().as_deref())?;
    match scanhost::plugins::load_file(&runtime, file) {
        Ok(plugin) => {
            let kinds: Vec<&str> = plugin
                .kinds
                .iter()
                .map(|k| match k {
                    TargetKind::Host => "host",
                    TargetKind::ContainerImage => "container-image",
                })
                .collect();
            println!("{}: valid plugin", file.display());
            println!("  name      {}", plugin.name);
            println!("  version   {}", plugin.version);
            println!("  kinds     {}", kinds.join(", "));
            println!("  contract  scanhost:plugin@{}", plugin.contract);
            println!("  digest    {}", plugin.digest);
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!("scanhost: refused: {err}");
            Ok(ExitCode::from(1))
        }
    }
}

fn status(api: &str) -> anyhow::Result<ExitCode> {
    let base = if api.contains("://") {
        api.to_string()
    } else {
        format!("http://{api}")
    };
    let url = format!("{base}/v1/workloads");
    let workloads: Vec<WorkloadView> = ureq::get(&url)
        .call()
        .with_context(|| format!("cannot reach the agent at {url}"))?
        .body_mut()
        .read_json()
        .with_context(|| format!("unexpected answer from {url}"))?;

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<20} {:<16} {:<9} {:>8} {:>8} REFERENCES: ERROR",
        "ID", "KIND", "STATUS", "PACKAGES", "ATTEMPTS"
    )?;
    for w in workloads {
        let id: String = w.id.chars().take(19).collect();
        let kind = match w.kind {
            Kind::Host => "host",
            Kind::ContainerImage => "container-image",
        };
        let packages = w.packages.map(|n| n.to_string()).unwrap_or_default();
        let references = w.references.join(", ");
        let detail = match (&w.last_error, &w.next_attempt) {
            (Some(err), Some(next)) => format!("{references}: {err} (next attempt {next})"),
            (Some(err), None) => format!("{references}: {err}"),
            _ => references,
        };
        writeln!(
            out,
            "{id:<20} {kind:<16} {:<9} {packages:>8} {:>8} {detail}",
            w.status, w.attempts
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Errors returned from here are usage or input errors (exit 2); scan
/// failures are turned into their own exit codes.
fn scan(args: ScanArgs) -> anyhow::Result<ExitCode> {
    let platform = args.platform.clone().unwrap_or_else(host_platform);
    // containerd's client needs a runtime for as long as the scan reads.
    let mut _containerd_runtime = None;
    let identified = match scan_input(&args.path)? {
        Input::Root(root) => Ok(Target::Host { root }),
        Input::Layout { path, selector } => {
            let layout = OciLayout::open(&path)?;
            let image = layout.select(selector.as_deref())?;
            let digest = Digest::parse(&image.digest)
                .with_context(|| format!("{}: index.json", path.display()))?;
            let references = ref_name(image).map(str::to_string).into_iter().collect();
            ImageTarget::identify(Arc::new(layout), digest, references, platform).map(Target::Image)
        }
        Input::Containerd { namespace, name } => {
            let address = containerd_address(args.containerd_address.as_deref());
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            let client = Client::new(&address, runtime.handle().clone());
            let image = match runtime.block_on(client.get_image(&namespace, &name)) {
                Ok(Some(image)) => image,
                Ok(None) => anyhow::bail!(
                    "cannot scan {}: containerd at {} has no image {name} in namespace {namespace}",
                    args.path,
                    address.display()
                ),
                // containerd away or restarting: a later try may work.
                Err(err) if err.is_connection() => {
                    eprintln!("scanhost: scan of {} failed (retryable): {err}", args.path);
                    return Ok(ExitCode::from(EXIT_RETRYABLE));
                }
                Err(err) => {
                    return Err(
                        anyhow::Error::new(err).context(format!("cannot scan {}", args.path))
                    );
                }
            };
            let target = image
                .target
                .with_context(|| format!("cannot scan {}: the image has no target", args.path))?;
            let digest = Digest::parse(&target.digest)
                .with_context(|| format!("cannot scan {}: its target", args.path))?;
            let content = ContainerdContent::new(client, &namespace);
            _containerd_runtime = Some(runtime);
            ImageTarget::identify(Arc::new(content), digest, vec![name], platform)
                .map(Target::Image)
        }
    };
    let target = match identified {
        Ok(target) => target,
        Err(err) => {
            let (kind, code) = match err {
                ContentError::NotFound { .. } | ContentError::Io { .. } => {
                    ("retryable", EXIT_RETRYABLE)
                }
                ContentError::Invalid { .. } => ("fatal", EXIT_FATAL),
            };
            eprintln!("scanhost: scan of {} failed ({kind}): {err}", args.path);
            return Ok(ExitCode::from(code));
        }
    };

    let limits = Limits {
        scan_timeout: args.scan_timeout,
        max_memory: args.max_memory.as_u64(),
    };
    let cache_dir = args.cache_dir.or_else(default_cache_dir);
    let mut runtime = Runtime::new(limits, cache_dir.as_deref())?;
    if !args.no_cache
        && let Some(dir) = &cache_dir
        && let Some(cache) = plugin_cache(dir)
    {
        runtime = runtime.with_plugin_cache(Arc::new(cache));
    }
    let (registry, _refused) = Registry::load(&runtime, args.plugin_dir.as_deref())?;

    let outcome = scanhost::scan::scan(&runtime, &registry, &target)?;
    if !outcome.failures.is_empty() {
        for failure in &outcome.failures {
            let kind = if failure.retryable() {
                "retryable"
            } else {
                "fatal"
            };
            eprintln!("scanhost: scan of {} failed ({kind}): {failure}", args.path);
        }
        let code = if outcome.retryable() {
            EXIT_RETRYABLE
        } else {
            EXIT_FATAL
        };
        return Ok(ExitCode::from(code));
    }

    if outcome.os.is_none() && outcome.packages.is_empty() {
        tracing::warn!(
            target = args.path,
            "found no operating system and no package: is this the root of a filesystem or an image?"
        );
    }
    tracing::info!(
        target = args.path,
        packages = outcome.packages.len(),
        duration = ?outcome.duration,
        "scan finished"
    );
    let document = sbom::cyclonedx::document(&Subject::of(&target), &outcome);
    match print(&document) {
        // A reader that stops early (`| head`) is not an error.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        result => {
            result.context("cannot write the document to stdout")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// What the `scan` argument names.
enum Input {
    /// A root filesystem, made absolute.
    Root(PathBuf),
    /// An OCI layout directory or archive, and the image selected in it.
    Layout {
        path: PathBuf,
        selector: Option<String>,
    },
    /// An image of a containerd namespace.
    Containerd { namespace: String, name: String },
}

/// Reads `PATH`, `PATH:SELECTOR` or `PATH@DIGEST`. The path as given wins,
/// so a path with `:` in its name is still read as a path; otherwise the
/// first `:` or `@` after which the path exists splits off the selector,
/// which may itself hold `:` (`layout:example.test/app:1.0`).
fn scan_input(arg: &str) -> anyhow::Result<Input> {
    if arg.starts_with(containerd::SCHEME) {
        let (namespace, name) = containerd::parse_reference(arg).with_context(|| {
            format!("cannot scan {arg}: a containerd image is containerd://NAMESPACE/NAME")
        })?;
        return Ok(Input::Containerd {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        });
    }
    let whole = Path::new(arg);
    if whole.exists() {
        return classify(whole, None);
    }
    let split = arg
        .match_indices([':', '@'])
        .map(|(at, _)| (&arg[..at], &arg[at + 1..]))
        .find(|(path, selector)| !selector.is_empty() && Path::new(path).exists());
    match split {
        Some((path, selector)) => classify(Path::new(path), Some(selector.to_string())),
        None => anyhow::bail!("cannot scan {arg}: no such file or directory"),
    }
}

fn classify(path: &Path, selector: Option<String>) -> anyhow::Result<Input> {
    let canonical = path
        .canonicalize()
        .with_context(|| format!("cannot scan {}", path.display()))?;
    // A directory with an index.json is meant as a layout even without
    // its oci-layout file: opening it says what is missing.
    let is_layout = canonical.is_file()
        || canonical.join("oci-layout").exists()
        || canonical.join("index.json").exists();
    if is_layout {
        return Ok(Input::Layout {
            path: canonical,
            selector,
        });
    }
    if selector.is_some() {
        anyhow::bail!(
            "cannot scan {}: a selector needs an OCI image layout or archive",
            path.display()
        );
    }
    if !canonical.is_dir() {
        anyhow::bail!("cannot scan {}: not a directory", path.display());
    }
    std::fs::read_dir(&canonical).with_context(|| format!("cannot scan {}", path.display()))?;
    Ok(Input::Root(canonical))
}

/// The plugin cache of `scanhost scan`, in `dir`; none when another scan
/// holds it or it cannot be made. A file that is not a cache (corrupt,
/// truncated) is made anew: it only held what can be read again.
fn plugin_cache(dir: &Path) -> Option<PluginCache> {
    let file = dir.join("plugin-cache.redb");
    let open = || {
        std::fs::create_dir_all(dir)
            .map_err(redb::Error::Io)
            .and_then(|()| PluginCache::open(&file, PLUGIN_CACHE_SIZE))
    };
    let failure = match open() {
        Ok(cache) => return Some(cache),
        Err(err) => err,
    };
    let unusable = match &failure {
        redb::Error::DatabaseAlreadyOpen => false,
        redb::Error::Io(err) => err.kind() == std::io::ErrorKind::InvalidData,
        _ => file.is_file(),
    };
    if unusable && std::fs::remove_file(&file).is_ok() {
        tracing::warn!(file = %file.display(), "plugin cache unreadable ({failure}); made anew");
        if let Ok(cache) = open() {
            return Some(cache);
        }
    }
    tracing::warn!(file = %file.display(), "plugin cache not used: {failure}");
    None
}

/// The containerd socket: `--containerd-address`, else a non-empty
/// `CONTAINERD_ADDRESS`, else containerd's default; `unix://` is allowed.
fn containerd_address(flag: Option<&str>) -> PathBuf {
    let from_env = std::env::var("CONTAINERD_ADDRESS").ok();
    let address = flag
        .or(from_env.as_deref())
        .filter(|a| !a.is_empty())
        .unwrap_or("/run/containerd/containerd.sock");
    PathBuf::from(containerd::socket_path(address))
}

fn positive_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => Err("must be more than 0".to_string()),
        Ok(d) => Ok(d),
        Err(err) => Err(err.to_string()),
    }
}

fn parse_platform(text: &str) -> Result<Platform, String> {
    let parts: Vec<&str> = text.split('/').collect();
    match parts.as_slice() {
        [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
            os: os.to_string(),
            architecture: arch.to_string(),
            variant: None,
        }),
        [os, arch, variant] if !os.is_empty() && !arch.is_empty() && !variant.is_empty() => {
            Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(variant.to_string()),
            })
        }
        _ => Err(format!("{text:?} is not os/arch or os/arch/variant")),
    }
}

fn print(document: &impl serde::Serialize) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, document)?;
    writeln!(stdout)?;
    stdout.flush()
}

fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("scanhost"))
}
