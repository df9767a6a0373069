//! Benchmark of plugin reloads and of start-up with and without the
//! compilation cache.
//!
//! Prints:
//! - the median time from writing a new build of a shipped plugin into the
//!   watched plugin directory to that build serving (target: at most 1 s);
//! - the agent's start-up time (start to `/healthz` answering) with an
//!   empty compilation cache beside a warm one.
//!
//! Run with `cargo bench -p scanhost --bench reload`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod measure;

const RELOADS: usize = 10;
const STARTS: usize = 3;

fn main() {
    let work = tempfile::tempdir().unwrap();
    reloads(work.path());
    starts(work.path());
}

/// Starts the agent on a config with no sources but the plugin directory.
fn start(dir: &Path, state: &Path, plugins: &Path, port: u16) -> Child {
    let config = dir.join(format!("reload-{port}.toml"));
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\n[plugins]\ndir = \"{}\"\nwatch = true\n\
             [sources.host]\nenabled = false\n[api]\nlisten = \"127.0.0.1:{port}\"\n",
            state.display(),
            plugins.display()
        ),
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_scanhost"))
        .args(["--log", "warn", "run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn get(port: u16, path: &str) -> Option<String> {
    ureq::get(&format!("http://127.0.0.1:{port}{path}"))
        .call()
        .ok()?
        .body_mut()
        .read_to_string()
        .ok()
}

fn wait_until(timeout: Duration, mut probe: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !probe() {
        assert!(started.elapsed() < timeout, "timed out");
        std::thread::sleep(Duration::from_millis(5));
    }
    started.elapsed()
}

fn stop(mut child: Child) {
    // SIGTERM, then wait: the agent stops in order.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let _ = child.wait();
}

fn reloads(dir: &Path) {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let component =
        std::fs::read(Path::new(env!("SCANHOST_TEST_PLUGINS")).join("host_scanner.wasm")).unwrap();
    let port = measure::free_port();
    let child = start(dir, &dir.join("reload-state"), &plugins, port);
    wait_until(Duration::from_secs(120), || get(port, "/healthz").is_some());

    let file = plugins.join("host-scanner.wasm");
    let mut times = Vec::new();
    for build in 0..RELOADS {
        // Each build differs by a custom section, as a rebuild does.
        let note = format!("build {build}");
        let mut bytes = component.clone();
        bytes.extend_from_slice(&[0, note.len() as u8 + 1, note.len() as u8]);
        bytes.extend_from_slice(note.as_bytes());
        let digest = format!(
            "sha256:{:x}",
            <sha2::Sha256 as sha2::Digest>::digest(&bytes)
        );

        let written = Instant::now();
        std::fs::write(&file, &bytes).unwrap();
        wait_until(Duration::from_secs(30), || {
            get(port, "/v1/plugins").is_some_and(|body| body.contains(&digest))
        });
        times.push(written.elapsed());
    }
    stop(child);
    times.sort();
    println!(
        "reload: write to serving, {RELOADS} builds of host-scanner: median {:?}, max {:?} (target: median at most 1s)",
        times[times.len() / 2],
        times[times.len() - 1]
    );
}

fn starts(dir: &Path) {
    let plugins = dir.join("no-plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for run in 0..STARTS {
        // A new state directory: no compiled plugins yet.
        let state = dir.join(format!("start-state-{run}"));
        for times in [&mut cold, &mut warm] {
            let port = measure::free_port();
            let started = Instant::now();
            let child = start(dir, &state, &plugins, port);
            wait_until(Duration::from_secs(120), || get(port, "/healthz").is_some());
            times.push(started.elapsed());
            stop(child);
        }
    }
    cold.sort();
    warm.sort();
    println!(
        "start-up to /healthz: cold compilation cache median {:?}, warm median {:?} ({STARTS} runs each)",
        cold[cold.len() / 2],
        warm[warm.len() / 2]
    );
}
