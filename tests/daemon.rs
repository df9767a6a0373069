//! End-to-end tests of `scanhost run`: the real binary with an OCI layout
//! source and the host source, observed through its API, its log and its
//! output directory.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::agent::{self, Agent, wait_for};
use support::oci::{Entry, blob_path, layer, write_image};
use support::two_layer_image;
use support::{fixtures, minbase, minbase_root, rebuilt};

/// Starts the agent on `layout` and the host root of the minbase
/// fixture; `extra` goes into its [scan] table (and may open tables of its
/// own).
fn start(dir: &Path, layout: &Path, extra: &str) -> Agent {
    start_with_root(
        dir,
        layout,
        extra,
        &fixtures().join("debian-bookworm-minbase"),
    )
}

fn start_with_root(dir: &Path, layout: &Path, extra: &str, root: &Path) -> Agent {
    agent::start(
        dir,
        &format!(
            r#"
[scan]
base_backoff = "1s"
max_backoff = "4s"
{extra}
[sources.host]
root = "{root}"
interval = "6s"
[[sources.oci_layout]]
path = "{layout}"
"#,
            root = root.display(),
            layout = layout.display(),
        ),
    )
}

/// Makes the layout list no image, as removing the last one does.
fn empty_index(layout: &Path) {
    std::fs::create_dir_all(layout).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(
        layout.join("index.json"),
        br#"{"schemaVersion":2,"manifests":[]}"#,
    )
    .unwrap();
}

#[test]
fn a_missing_layer_is_retried_with_backoff_until_it_appears_and_removal_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let image = two_layer_image(&layout, "example.test/debian:12");
    let blob = blob_path(&layout, &image.layers[1]);
    let saved = std::fs::read(&blob).unwrap();
    std::fs::remove_file(&blob).unwrap();

    let daemon = start(dir.path(), &layout, "");
    let id = image.config.clone();

    // Failed, retryable, with attempts counting up at 1s then 2s.
    let failed = wait_for("three failed attempts", Duration::from_secs(30), || {
        daemon
            .workload(&id)
            .filter(|w| w["attempts"].as_u64() >= Some(3))
    });
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["retryable"], true);
    assert!(
        failed["last_error"]
            .as_str()
            .unwrap()
            .contains(&image.layers[1])
    );
    assert!(failed["next_attempt"].is_string());
    let retries = daemon.log_lines(&id, "retry scheduled");
    assert!(
        retries[0].contains("attempt=1") && retries[0].contains("delay=1s"),
        "{retries:?}"
    );
    assert!(
        retries[1].contains("attempt=2") && retries[1].contains("delay=2s"),
        "{retries:?}"
    );
    assert!(
        retries[2].contains("attempt=3") && retries[2].contains("delay=4s"),
        "{retries:?}"
    );
    // The host was scanned once at start, and its interval (6s) has not come.
    assert_eq!(daemon.log_lines("workload=host", "scan finished").len(), 1);

    // The blob arrives: the next attempt succeeds, and no attempt follows.
    std::fs::write(&blob, &saved).unwrap();
    let done = wait_for("success", Duration::from_secs(30), || {
        daemon.workload(&id).filter(|w| w["status"] == "success")
    });
    assert_eq!(done["packages"], 96);
    let document = daemon
        .output
        .join(format!("{}.cdx.json", id.replace(':', "-")));
    let doc: Value = serde_json::from_slice(&std::fs::read(&document).unwrap()).unwrap();
    assert_eq!(
        doc["metadata"]["component"]["name"],
        "example.test/debian:12"
    );
    let host_doc: Value =
        serde_json::from_slice(&std::fs::read(daemon.output.join("host.cdx.json")).unwrap())
            .unwrap();
    support::validate_cyclonedx(&[
        ("image from the agent", &doc),
        ("host from the agent", &host_doc),
    ]);
    let attempts_after_success = daemon.log_lines(&id, "scan failed").len();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        daemon.log_lines(&id, "scan failed").len(),
        attempts_after_success
    );
    assert_eq!(daemon.log_lines(&id, "scan finished").len(), 1);

    // The host: scanned at start and again at its interval, never retried.
    let host = daemon.workload("host").unwrap();
    assert_eq!(host["status"], "success");
    assert_eq!(host["packages"], 96);
    assert!(
        daemon.log_lines("workload=host", "scan finished").len() >= 2,
        "{}",
        daemon.log()
    );
    assert!(
        daemon
            .log_lines("workload=host", "retry scheduled")
            .is_empty()
    );

    // Removed from index.json: the workload and its document go at once.
    empty_index(&layout);
    wait_for("removal", Duration::from_secs(10), || {
        daemon.workload(&id).is_none().then_some(())
    });
    assert!(
        !document.exists(),
        "the document of a removed workload is still there"
    );
}

#[test]
fn removing_an_image_stops_its_retries_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let image = two_layer_image(&layout, "example.test/debian:12");
    std::fs::remove_file(blob_path(&layout, &image.layers[1])).unwrap();

    let daemon = start(dir.path(), &layout, "");
    let id = image.config.clone();
    wait_for("a failed attempt", Duration::from_secs(30), || {
        daemon.workload(&id).filter(|w| w["status"] == "failed")
    });

    empty_index(&layout);
    wait_for("removal", Duration::from_secs(10), || {
        daemon.workload(&id).is_none().then_some(())
    });
    let attempts = daemon.log_lines(&id, "scan failed").len();
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        daemon.log_lines(&id, "scan failed").len(),
        attempts,
        "a retry ran after removal"
    );
    let queue: Value = ureq::get(&format!("{}/v1/queue", daemon.api))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    assert!(!queue.to_string().contains(&id), "{queue}");
}

#[test]
fn sigkill_loses_no_finished_result_and_unfinished_work_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let os_release = minbase("usr/lib/os-release");
    let status = minbase("var/lib/dpkg/status");
    let mut images = Vec::new();
    for i in 0..150 {
        // Each image differs by a file, so each has its own id.
        let marker = format!("{i}");
        let l = layer(&[
            Entry::File("etc/os-release", &os_release),
            Entry::File("var/lib/dpkg/status", &status),
            Entry::File("etc/hostname", marker.as_bytes()),
        ]);
        images.push(write_image(
            &layout,
            &format!("example.test/image:{i}"),
            &[l],
        ));
    }

    let mut daemon = start(dir.path(), &layout, "workers = 1");
    let finished = wait_for("some finished scans", Duration::from_secs(60), || {
        let done: Vec<String> = daemon
            .workloads()
            .into_iter()
            .filter(|(id, w)| id != "host" && w["status"] == "success")
            .map(|(id, _)| id)
            .collect();
        (done.len() >= 3).then_some(done)
    });
    daemon.kill();

    // Every document on disk is whole.
    for entry in std::fs::read_dir(&daemon.output).unwrap() {
        let path = entry.unwrap().path();
        let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap())
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        assert_eq!(doc["bomFormat"], "CycloneDX");
    }

    let restarted = start(dir.path(), &layout, "workers = 1");
    wait_for("all images scanned", Duration::from_secs(120), || {
        let workloads = restarted.workloads();
        images
            .iter()
            .all(|i| {
                workloads
                    .get(&i.config)
                    .is_some_and(|w| w["status"] == "success")
            })
            .then_some(())
    });
    for id in &finished {
        assert!(
            restarted.log_lines(id, "scan finished").is_empty(),
            "{id} was scanned again after the restart"
        );
        let path = restarted
            .output
            .join(format!("{}.cdx.json", id.replace(':', "-")));
        assert!(path.exists(), "{}", path.display());
    }
    let files: Vec<_> = std::fs::read_dir(&restarted.output)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files.len(), images.len() + 1, "{files:?}");
}

fn plugins(daemon: &Agent) -> Value {
    ureq::get(&format!("{}/v1/plugins", daemon.api))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap()
}

fn serving(daemon: &Agent, name: &str) -> Option<Value> {
    plugins(daemon)["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
}

/// The digests of the plugins named in the host's current document.
fn host_document_tools(daemon: &Agent) -> Vec<(String, String)> {
    let Ok(mut response) = ureq::get(&format!("{}/v1/workloads/host/sbom", daemon.api)).call()
    else {
        return Vec::new();
    };
    let doc: Value = response.body_mut().read_json().unwrap();
    doc["metadata"]["tools"]["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let hash = t["hashes"][0]["content"].as_str().unwrap_or_default();
            (t["name"].as_str().unwrap().to_string(), hash.to_string())
        })
        .collect()
}

/// A host root: the minbase database and one installed Python
/// distribution.
fn root_with_python(dir: &Path) -> PathBuf {
    let root = minbase_root(dir);
    let dist = root.join("usr/lib/python3/dist-packages/requests-2.31.0.dist-info");
    std::fs::create_dir_all(&dist).unwrap();
    std::fs::write(
        dist.join("METADATA"),
        "Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\nLicense: Apache 2.0\n\nbody\n",
    )
    .unwrap();
    root
}

/// The purls of the host's current document.
fn host_purls(daemon: &Agent) -> Vec<String> {
    let Ok(mut response) = ureq::get(&format!("{}/v1/workloads/host/sbom", daemon.api)).call()
    else {
        return Vec::new();
    };
    let doc: Value = response.body_mut().read_json().unwrap();
    support::components(&doc)
        .filter_map(|c| c["purl"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_plugin_dropped_in_is_loaded_reloaded_refused_and_unloaded_while_the_agent_runs() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    two_layer_image(&layout, "example.test/debian:12");
    let plugin_dir = dir.path().join("plugins");
    std::fs::create_dir(&plugin_dir).unwrap();
    let root = root_with_python(dir.path());
    let extra = format!(
        "[plugins]\ndir = \"{}\"\nwatch = true\nrescan_on_change = true",
        plugin_dir.display()
    );
    let daemon = start_with_root(dir.path(), &layout, &extra, &root);
    wait_for("the first host scan", Duration::from_secs(30), || {
        daemon.workload("host").filter(|w| w["status"] == "success")
    });
    assert!(
        !host_purls(&daemon)
            .iter()
            .any(|p| p.starts_with("pkg:pypi/"))
    );

    // The example plugin dropped in: loaded, and the host is scanned again
    // with its packages in the document.
    let component = std::fs::read(env!("SCANHOST_EXAMPLE_PLUGIN")).unwrap();
    let file = plugin_dir.join("python-packages.wasm");
    std::fs::write(&file, &component).unwrap();
    let dropped = Instant::now();
    let first = wait_for("the plugin to load", Duration::from_secs(30), || {
        serving(&daemon, "python-packages")
    });
    eprintln!("loaded {:?} after the write", dropped.elapsed());
    assert_eq!(first["origin"], file.display().to_string());
    wait_for(
        "the host document with its packages",
        Duration::from_secs(30),
        || {
            host_purls(&daemon)
                .contains(&"pkg:pypi/requests@2.31.0".to_string())
                .then_some(())
        },
    );
    let digest = first["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    assert!(host_document_tools(&daemon).contains(&("python-packages".to_string(), digest)));

    // A new build written over it takes over, and is used for the host.
    std::fs::write(&file, rebuilt(&component, "second build")).unwrap();
    let second = wait_for("the new version", Duration::from_secs(30), || {
        serving(&daemon, "python-packages").filter(|p| p["digest"] != first["digest"])
    });
    let digest = second["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    wait_for(
        "a host document from the new build",
        Duration::from_secs(30),
        || {
            host_document_tools(&daemon)
                .contains(&("python-packages".to_string(), digest.clone()))
                .then_some(())
        },
    );

    // Garbage over it: refused, visible, and the last good version serves.
    std::fs::write(&file, b"not a component").unwrap();
    let refused = wait_for("the refusal", Duration::from_secs(30), || {
        plugins(&daemon)["refused"]
            .as_array()
            .unwrap()
            .first()
            .cloned()
    });
    assert_eq!(refused["file"], file.display().to_string());
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("not a WebAssembly component")
    );
    assert_eq!(refused["serving"], "0.1.0");
    assert_eq!(
        serving(&daemon, "python-packages").unwrap()["digest"],
        second["digest"]
    );

    // Removed: unloaded, and the refusal goes with the file.
    std::fs::remove_file(&file).unwrap();
    wait_for("the unload", Duration::from_secs(30), || {
        serving(&daemon, "python-packages").is_none().then_some(())
    });
    assert!(plugins(&daemon)["refused"].as_array().unwrap().is_empty());
    assert!(serving(&daemon, "host-scanner").is_some());
    assert!(daemon.log().contains("plugin unloaded"));
}

#[test]
fn a_plugin_that_fails_for_good_is_recorded_and_the_others_packages_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    empty_index(&layout);
    let plugin_dir = dir.path().join("plugins");
    std::fs::create_dir(&plugin_dir).unwrap();
    std::fs::copy(
        support::test_plugin("testing-faults"),
        plugin_dir.join("faults.wasm"),
    )
    .unwrap();

    // The host root: the minbase database, and a fault for the plugin.
    let root = minbase_root(dir.path());
    std::fs::write(root.join("fault"), "trap").unwrap();
    let config_extra = format!("[plugins]\ndir = \"{}\"", plugin_dir.display());
    let daemon = start_with_root(dir.path(), &layout, &config_extra, &root);

    let host = wait_for("the host scan", Duration::from_secs(30), || {
        daemon.workload("host").filter(|w| w["status"] == "success")
    });
    assert_eq!(host["packages"], 96);
    assert_eq!(host["failed_plugins"], serde_json::json!(["faults"]));
    let doc: Value = ureq::get(&format!("{}/v1/workloads/host/sbom", daemon.api))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    let failure = &doc["metadata"]["properties"][0];
    assert_eq!(failure["name"], "scanhost:plugin-failure");
    assert!(
        failure["value"].as_str().unwrap().contains("faults"),
        "{failure}"
    );
}

// SIGTERM as soon as the API answers (while sources and workers may still
// be starting) must stop the agent cleanly, exit status 0.
#[test]
fn sigterm_right_after_start_stops_the_agent_cleanly() {
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("layout");
        empty_index(&layout);
        let mut daemon = start(dir.path(), &layout, "");
        assert!(
            daemon.terminate(Duration::from_secs(30)),
            "{}",
            daemon.log()
        );
    }
}
