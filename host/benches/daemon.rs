//! Benchmark of `scanhost run`, the scan queue and the workload store.
//!
//! Prints:
//! - the daemon: how long `scanhost run` takes to bring 1,000 small images
//!   of an OCI layout from Pending to Success, and its peak memory;
//! - the same for 200 images sharing a base layer in a real containerd
//!   (Debian's package, started by the benchmark as root on a private
//!   socket, installed when missing);
//! - queue throughput: add, next and done cycles per second, with one
//!   consumer, and with four consumer tasks on a multi-thread runtime
//!   while a producer adds many keys;
//! - the store with 10,000 images (two references each, a Success status):
//!   the time to record them and the resident set that adds, then the time
//!   to open the store again and the resident set that adds.
//!
//! No targets are set for these figures yet.
//!
//! Run with `cargo bench -p scanhost --bench daemon`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use scanhost::queue::{self, Attempt, Queue, Retry};
use scanhost::store::Store;
use scanhost::workload::{Kind, Origin, PluginVersion, Status, WorkloadId};
use serde_json::Value;

#[allow(dead_code)]
#[path = "../../tests/support/containerd.rs"]
mod containerd;
mod measure;
use measure::proc_status_kib;
#[allow(dead_code)]
#[path = "../../tests/support/oci.rs"]
mod oci;

/// add/next/done cycles of the single-consumer run.
const SINGLE_CYCLES: u64 = 1_000_000;
/// Keys added, and so cycles, in the contended run.
const CONTENDED_KEYS: u64 = 200_000;
const CONSUMERS: usize = 4;

const STORE_IMAGES: usize = 10_000;

const DAEMON_IMAGES: usize = 1_000;
/// Images in containerd, sharing their base layer.
const CONTAINERD_IMAGES: usize = 200;
const DAEMON_WORKERS: usize = 2;
/// How long the daemon may take to scan them all before the run fails.
const DAEMON_DEADLINE: Duration = Duration::from_secs(600);

/// Set in the environment of a child process that measures the store, to
/// `fill:PATH` or `reopen:PATH`, PATH being the database file.
const STORE_ENV: &str = "SCANHOST_BENCH_STORE";

const MIB: f64 = 1024.0;

/// The daemon runs first, and the store is measured in child processes,
/// because memory figures need small processes. Linux carries a parent's
/// peak resident set over exec into its child's `ru_maxrss`, which `wait4`
/// reports; and a process's resident set stays high after it frees memory,
/// so growth is best measured in one that allocated little before.
fn main() {
    if let Some(task) = std::env::var_os(STORE_ENV) {
        store_child(&task.to_string_lossy());
        return;
    }
    daemon();
    containerd();
    queue_single();
    queue_contended();
    store_memory();
}

fn queue_config() -> queue::Config {
    queue::Config {
        base_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(60),
        max_attempts: 0,
    }
}

fn queue_single() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let queue = Queue::new(queue_config());
    let started = Instant::now();
    runtime.block_on(async {
        for key in 0..SINGLE_CYCLES {
            queue.add(key, Retry::Backoff);
            let next = queue.next().await;
            assert_eq!(next, Some(key));
            queue.done(&key, Attempt::Success);
        }
    });
    let elapsed = started.elapsed();
    assert!(queue.is_empty() && queue.in_flight() == 0);
    println!(
        "queue single consumer: {:.0} cycles/s ({SINGLE_CYCLES} add/next/done cycles, \
         current-thread runtime)",
        SINGLE_CYCLES as f64 / elapsed.as_secs_f64()
    );
}

fn queue_contended() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let threads = runtime.metrics().num_workers();
    let queue = Queue::new(queue_config());
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    runtime.block_on(async {
        let consumers: Vec<_> = (0..CONSUMERS)
            .map(|_| {
                let (queue, done) = (queue.clone(), done.clone());
                tokio::spawn(async move {
                    while let Some(key) = queue.next().await {
                        queue.done(&key, Attempt::Success);
                        let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
                        if finished as u64 == CONTENDED_KEYS {
                            queue.shutdown();
                        }
                    }
                })
            })
            .collect();
        let producer = tokio::spawn({
            let queue = queue.clone();
            async move {
                for key in 0..CONTENDED_KEYS {
                    queue.add(key, Retry::Backoff);
                    // Lets the consumers on this thread run, as a source
                    // between two events would.
                    if key % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            }
        });
        producer.await.unwrap();
        for consumer in consumers {
            consumer.await.unwrap();
        }
    });
    let elapsed = started.elapsed();
    assert_eq!(done.load(Ordering::Relaxed) as u64, CONTENDED_KEYS);
    println!(
        "queue {CONSUMERS} consumers: {:.0} cycles/s ({CONTENDED_KEYS} keys added by one \
         producer task, {threads} runtime threads)",
        CONTENDED_KEYS as f64 / elapsed.as_secs_f64()
    );
}

fn store_memory() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = dir.path().join("workloads.redb");
    let filled = run_store_child("fill", &path);
    let reopened = run_store_child("reopen", &path);
    let size = std::fs::metadata(&path).unwrap().len();

    let changes = STORE_IMAGES * 3;
    let recorded = filled["seconds"].as_f64().unwrap();
    println!(
        "store recording {STORE_IMAGES} images: {recorded:.1} s ({changes} changes, \
         2 set_reference and 1 finish per image: {:.0} changes/s)",
        changes as f64 / recorded
    );
    println!(
        "store RSS growth after recording {STORE_IMAGES} images: {:.1} MiB",
        filled["growth_kib"].as_f64().unwrap() / MIB
    );
    println!(
        "store open with {STORE_IMAGES} images: {:.1} ms",
        reopened["seconds"].as_f64().unwrap() * 1000.0
    );
    println!(
        "store RSS growth after reopening with {STORE_IMAGES} images: {:.1} MiB",
        reopened["growth_kib"].as_f64().unwrap() / MIB
    );
    println!(
        "store file size with {STORE_IMAGES} images: {:.1} MiB",
        size as f64 / (1 << 20) as f64
    );
}

/// Runs `task` on the store at `path` in a child process; returns what it
/// reported.
fn run_store_child(task: &str, path: &Path) -> Value {
    let output = Command::new(std::env::current_exe().unwrap())
        .env(STORE_ENV, format!("{task}:{}", path.display()))
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(output.status.success(), "the store {task} child failed");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["workloads"], STORE_IMAGES, "{task}: {report}");
    report
}

/// The child's part: `fill` opens a new store and records the images in
/// it, `reopen` opens the filled one. Prints, as JSON, the seconds that
/// took, the resident set it added, and the workloads the store holds.
fn store_child(task: &str) {
    let (task, path) = task.split_once(':').unwrap();
    let before = vm_rss_kib();
    let started = Instant::now();
    let store = Store::open(Path::new(path)).unwrap();
    if task == "fill" {
        fill(&store);
    }
    let elapsed = started.elapsed();
    let after = vm_rss_kib();
    let report = serde_json::json!({
        "seconds": elapsed.as_secs_f64(),
        "growth_kib": after - before,
        "workloads": store.list().len(),
    });
    println!("{report}");
}

/// Records `STORE_IMAGES` images, each with two references and a Success.
fn fill(store: &Store) {
    for i in 0..STORE_IMAGES {
        let id = WorkloadId(format!("sha256:{i:064x}"));
        let manifest = format!("sha256:{:064x}", i + STORE_IMAGES);
        let origin = Origin::OciLayout {
            path: PathBuf::from("/var/lib/images/layout"),
            digest: manifest.clone(),
        };
        let references = [
            format!("registry.example.test/team/app-{i}:1.0"),
            format!("registry.example.test/team/app-{i}@{manifest}"),
        ];
        for reference in &references {
            store
                .set_reference(&id, Kind::ContainerImage, reference, origin.clone())
                .unwrap();
        }
        // Success comes only with a document: an empty one stands for none.
        assert!(store.finish(&id, success(), b"").unwrap());
    }
}

fn success() -> Status {
    Status::Success {
        finished: SystemTime::now(),
        duration: Duration::from_millis(850),
        packages: 96,
        plugins: vec![PluginVersion {
            name: "image-scanner".to_string(),
            version: "0.1.0".to_string(),
            digest: format!("sha256:{:064x}", 1),
        }],
        failed_plugins: Vec::new(),
    }
}

/// This process's resident set size.
fn vm_rss_kib() -> i64 {
    proc_status_kib("self", "VmRSS")
}

fn daemon() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let empty = dir.path().join("empty-layout");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(
        empty.join("index.json"),
        br#"{"schemaVersion": 2, "manifests": []}"#,
    )
    .unwrap();
    std::fs::write(
        empty.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let images = write_images(&dir.path().join("layout"));

    // A first start on an empty layout fills the daemon's cache of
    // compiled plugins, so that the timed start loads them from it.
    let source = |layout: &str| format!("[[sources.oci_layout]]\npath = \"{layout}\"\n");
    let (daemon, started) = measure::timed_start(
        dir.path(),
        DAEMON_WORKERS,
        &source("empty-layout"),
        &source("layout"),
    );
    let api_up = started.elapsed();
    daemon.wait_all_success(&images, 96, started, DAEMON_DEADLINE);
    let elapsed = started.elapsed();
    let (max_rss_kib, hwm_kib) = daemon.stop();

    println!(
        "daemon start until the API answers: {:.2} s (compiled plugins cached)",
        api_up.as_secs_f64()
    );
    println!(
        "daemon {DAEMON_IMAGES} images pending to success: {:.2} s (from the start of \
         scanhost run, {DAEMON_WORKERS} workers)",
        elapsed.as_secs_f64()
    );
    println!(
        "daemon throughput: {:.1} images/s",
        DAEMON_IMAGES as f64 / elapsed.as_secs_f64()
    );
    println!(
        "daemon peak RSS: {:.1} MiB (wait4 after SIGTERM; VmHWM just before: {:.1} MiB)",
        max_rss_kib as f64 / MIB,
        hwm_kib as f64 / MIB
    );
}

/// `CONTAINERD_IMAGES` images in a real containerd, sharing their base
/// layer: the time from the start of `scanhost run` until all are
/// Success, and the daemon's peak memory.
fn containerd() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let containerd = containerd::Containerd::start(dir.path());
    let layout = dir.path().join("layout");
    let images = write_shared_base_images(&layout);
    let archive = dir.path().join("images.tar");
    containerd::archive(&layout, &archive);
    let imported = Instant::now();
    containerd.import("bench", &archive);
    let import = imported.elapsed();

    let source = |namespace: &str| {
        format!(
            "[sources.containerd]\naddress = \"{}\"\nnamespaces = [\"{namespace}\"]\n",
            containerd.socket.display()
        )
    };
    let (daemon, started) = measure::timed_start(
        dir.path(),
        DAEMON_WORKERS,
        &source("empty"),
        &source("bench"),
    );
    daemon.wait_all_success(&images, 96, started, DAEMON_DEADLINE);
    let elapsed = started.elapsed();
    let (max_rss_kib, hwm_kib) = daemon.stop();

    println!(
        "containerd: {CONTAINERD_IMAGES} images sharing a base layer (ctr import took {:.2} s)",
        import.as_secs_f64()
    );
    println!(
        "containerd {CONTAINERD_IMAGES} images start to all success: {:.2} s \
         ({:.1} images/s, {DAEMON_WORKERS} workers)",
        elapsed.as_secs_f64(),
        CONTAINERD_IMAGES as f64 / elapsed.as_secs_f64()
    );
    println!(
        "containerd daemon peak RSS: {:.1} MiB (wait4 after SIGTERM; VmHWM just before: {:.1} MiB)",
        max_rss_kib as f64 / MIB,
        hwm_kib as f64 / MIB
    );
}

/// Writes `DAEMON_IMAGES` images of one layer each: the minbase fixture's
/// os-release and dpkg status, and a file that makes each one distinct.
/// Returns their ids.
fn write_images(layout: &Path) -> Vec<String> {
    let (os_release, status) = minbase();
    (0..DAEMON_IMAGES)
        .map(|i| {
            let marker = format!("image-{i}\n");
            let layer = oci::layer(&[
                oci::Entry::File("etc/os-release", &os_release),
                oci::Entry::File("var/lib/dpkg/status", &status),
                oci::Entry::File("etc/hostname", marker.as_bytes()),
            ]);
            let name = format!("example.test/bench/image-{i}:1.0");
            oci::write_image(layout, &name, &[layer]).config
        })
        .collect()
}

/// Writes `CONTAINERD_IMAGES` images of two layers: one base layer shared
/// by all (the minbase fixture's os-release and dpkg status), and a layer
/// of its own on top. Returns their ids.
fn write_shared_base_images(layout: &Path) -> Vec<String> {
    let (os_release, status) = minbase();
    let base = oci::layer(&[
        oci::Entry::File("etc/os-release", &os_release),
        oci::Entry::File("var/lib/dpkg/status", &status),
    ]);
    (0..CONTAINERD_IMAGES)
        .map(|i| {
            let marker = format!("image-{i}\n");
            let top = oci::layer(&[oci::Entry::File("etc/hostname", marker.as_bytes())]);
            let name = format!("example.test/bench/app-{i}:1.0");
            oci::write_image(layout, &name, &[base.clone(), top]).config
        })
        .collect()
}

/// The minbase fixture's os-release and dpkg status.
fn minbase() -> (Vec<u8>, Vec<u8>) {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/debian-bookworm-minbase");
    (
        std::fs::read(fixture.join("usr/lib/os-release")).unwrap(),
        std::fs::read(fixture.join("var/lib/dpkg/status")).unwrap(),
    )
}
