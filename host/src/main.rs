//! The `scanhost` command.
//!
//! `scanhost scan PATH` prints one CycloneDX document on stdout, as syft
//! and trivy do; logs go to stderr. Exit codes: 0 success, 2 bad usage or
//! unreadable input, 3 a retryable scan failure, 4 a fatal one.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use scanhost::plugins::{Limits, Registry, Runtime};
use scanhost::sbom::{self, Subject};
use scanhost::target::Target;

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
    /// Scan a root filesystem once and print a CycloneDX 1.6 document.
    Scan(ScanArgs),
}

#[derive(clap::Args)]
struct ScanArgs {
    /// A directory holding a root filesystem (`/` for this machine).
    path: PathBuf,

    /// A directory of `.wasm` plugins, added to the shipped ones; a plugin
    /// there replaces the shipped plugin of the same name.
    #[arg(long, value_name = "DIR")]
    plugin_dir: Option<PathBuf>,

    /// How long one plugin may scan, e.g. `30s` or `10m`.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    scan_timeout: Duration,

    /// Memory one plugin instance may use, e.g. `512MiB`.
    #[arg(long, value_name = "SIZE", default_value = "512MiB")]
    max_memory: bytesize::ByteSize,

    /// Where compiled plugins are kept between runs
    /// [default: $XDG_CACHE_HOME/scanhost or ~/.cache/scanhost].
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log);
    let result = match cli.command {
        Command::Scan(args) => scan(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("scanhost: {err:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
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

/// Errors returned from here are usage or input errors (exit 2); scan
/// failures are turned into their own exit codes.
fn scan(args: ScanArgs) -> anyhow::Result<ExitCode> {
    let root = readable_dir(&args.path)?;
    let limits = Limits {
        scan_timeout: args.scan_timeout,
        max_memory: args.max_memory.as_u64(),
    };
    let cache_dir = args.cache_dir.or_else(default_cache_dir);
    let runtime = Runtime::new(limits, cache_dir.as_deref())?;
    let (registry, _refused) = Registry::load(&runtime, args.plugin_dir.as_deref())?;

    let target = Target::Host { root: root.clone() };
    let outcome = scanhost::scan::scan(&runtime, &registry, &target)?;
    if !outcome.failures.is_empty() {
        for failure in &outcome.failures {
            let kind = if failure.retryable() {
                "retryable"
            } else {
                "fatal"
            };
            eprintln!(
                "scanhost: scan of {} failed ({kind}): {failure}",
                root.display()
            );
        }
        let code = if outcome.retryable() {
            EXIT_RETRYABLE
        } else {
            EXIT_FATAL
        };
        return Ok(ExitCode::from(code));
    }

    tracing::info!(
        root = %root.display(),
        packages = outcome.packages.len(),
        duration = ?outcome.duration,
        "scan finished"
    );
    let subject = Subject::RootFilesystem {
        path: root.display().to_string(),
    };
    let document = sbom::cyclonedx::document(&subject, &outcome);
    match print(&document) {
        // A reader that stops early (`| head`) is not an error.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        result => {
            result.context("cannot write the document to stdout")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print(document: &impl serde::Serialize) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, document)?;
    writeln!(stdout)?;
    stdout.flush()
}

/// `path` made absolute, when it is a directory that can be listed.
fn readable_dir(path: &Path) -> anyhow::Result<PathBuf> {
    let canonical = path
        .canonicalize()
        .with_context(|| format!("cannot scan {}", path.display()))?;
    if !canonical.is_dir() {
        anyhow::bail!("cannot scan {}: not a directory", path.display());
    }
    std::fs::read_dir(&canonical).with_context(|| format!("cannot scan {}", path.display()))?;
    Ok(canonical)
}

fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("scanhost"))
}
