//! The agent and `scanhost scan` against a real containerd: images listed
//! and followed through events, content read through containerd, the
//! retry scenario of a discarded layer, an outage with changes while
//! containerd was away, and namespaces kept apart.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::agent::{self, Agent, wait_for};
use support::containerd::{Containerd, archive};
use support::oci::Image;
use support::{
    alpine_image, minbase_root, os, packages, scanhost, two_layer_image, validate_cyclonedx,
};

/// Writes a layout holding one image made by `make` and packs it into an
/// archive for `ctr images import`.
fn image_archive(
    dir: &Path,
    file: &str,
    name: &str,
    make: fn(&Path, &str) -> Image,
) -> (Image, std::path::PathBuf) {
    let layout = dir.join(format!("{file}-layout"));
    let image = make(&layout, name);
    let tar = dir.join(format!("{file}.tar"));
    archive(&layout, &tar);
    (image, tar)
}

/// Starts the agent on containerd's `namespaces`, with the minbase host
/// root scanned at start and then hourly, and retries between 500 ms and
/// 2 s.
fn start_agent(dir: &Path, containerd: &Containerd, namespaces: &[&str]) -> Agent {
    let namespaces: Vec<String> = namespaces.iter().map(|n| format!("\"{n}\"")).collect();
    agent::start(
        dir,
        &format!(
            r#"
[scan]
base_backoff = "500ms"
max_backoff = "2s"
[sources.host]
root = "{root}"
interval = "1h"
[sources.containerd]
address = "{socket}"
namespaces = [{namespaces}]
"#,
            root = minbase_root(dir).display(),
            socket = containerd.socket.display(),
            namespaces = namespaces.join(", "),
        ),
    )
}

fn references(workload: &Value) -> BTreeSet<String> {
    workload["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The image workloads of the agent: id -> references.
fn images(agent: &Agent) -> std::collections::BTreeMap<String, BTreeSet<String>> {
    agent
        .workloads()
        .into_iter()
        .filter(|(_, w)| w["kind"] == "container-image")
        .map(|(id, w)| (id, references(&w)))
        .collect()
}

fn document(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

const NS: &str = "scanhost-test";

#[test]
fn a_discarded_layer_is_retried_until_pulled_again_and_the_last_reference_ends_it() {
    let dir = tempfile::tempdir().unwrap();
    let containerd = Containerd::start(dir.path());
    let (image, tar) = image_archive(
        dir.path(),
        "debian",
        "example.test/debian:12",
        two_layer_image,
    );
    containerd.import(NS, &tar);
    // containerd discards a layer, as it does after unpacking.
    containerd.ctr(NS, &["content", "rm", &image.layers[1]]);

    let agent = start_agent(dir.path(), &containerd, &[NS]);
    let id = image.config.clone();
    let reference = format!("containerd://{NS}/example.test/debian:12");

    // Failed, retryable, attempts counting up at 500ms, 1s, then 2s.
    let failed = wait_for("three failed attempts", Duration::from_secs(30), || {
        agent
            .workload(&id)
            .filter(|w| w["attempts"].as_u64() >= Some(3))
    });
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["retryable"], true);
    assert_eq!(references(&failed), set(&[&reference]));
    let error = failed["last_error"].as_str().unwrap();
    assert!(
        error.contains(&image.layers[1]) && error.contains("not found"),
        "{error}"
    );
    assert!(failed["next_attempt"].is_string());
    let retries = agent.log_lines(&id, "retry scheduled");
    for (line, (attempt, delay)) in retries.iter().zip([(1, "500ms"), (2, "1s"), (3, "2s")]) {
        assert!(
            line.contains(&format!("attempt={attempt}"))
                && line.contains(&format!("delay={delay}")),
            "{retries:?}"
        );
    }

    // Pulled again: the next retry succeeds, and no attempt follows.
    containerd.import(NS, &tar);
    let done = wait_for("success", Duration::from_secs(30), || {
        agent.workload(&id).filter(|w| w["status"] == "success")
    });
    assert_eq!(done["packages"], 96);
    let doc = document(&agent.document_path(&id));
    assert_eq!(
        doc["metadata"]["component"]["name"],
        "example.test/debian:12"
    );
    assert_eq!(os(&doc), Some(("debian".to_owned(), "12".to_owned())));
    assert_eq!(packages(&doc).len(), 96);
    validate_cyclonedx(&[("image from containerd", &doc)]);
    let failures = agent.log_lines(&id, "scan failed").len();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(agent.log_lines(&id, "scan failed").len(), failures);
    assert_eq!(agent.log_lines(&id, "scan finished").len(), 1);

    // A second reference: the same workload, nothing scanned again.
    containerd.ctr(
        NS,
        &[
            "images",
            "tag",
            "example.test/debian:12",
            "example.test/debian:latest",
        ],
    );
    let latest = format!("containerd://{NS}/example.test/debian:latest");
    wait_for("the second reference", Duration::from_secs(10), || {
        agent
            .workload(&id)
            .filter(|w| references(w) == set(&[&reference, &latest]))
    });
    containerd.ctr(NS, &["images", "rm", "example.test/debian:12"]);
    let kept = wait_for("the first reference to go", Duration::from_secs(10), || {
        agent
            .workload(&id)
            .filter(|w| references(w) == set(&[&latest]))
    });
    assert_eq!(kept["status"], "success");
    assert!(agent.document_path(&id).exists());
    assert_eq!(agent.log_lines(&id, "scan finished").len(), 1);

    // The last reference goes: the workload and its document go, and no
    // attempt follows.
    containerd.ctr(NS, &["images", "rm", "example.test/debian:latest"]);
    wait_for("the workload to go", Duration::from_secs(10), || {
        agent.workload(&id).is_none().then_some(())
    });
    assert!(!agent.document_path(&id).exists());
    let lines = agent.log_lines(&id, "").len();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(agent.log_lines(&id, "").len(), lines, "{}", agent.log());

    // The host: scanned once at start, never retried.
    let host = agent.workload("host").unwrap();
    assert_eq!(host["status"], "success");
    assert_eq!(host["packages"], 96);
    assert_eq!(agent.log_lines("workload=host", "scan finished").len(), 1);
    assert!(
        agent
            .log_lines("workload=host", "retry scheduled")
            .is_empty()
    );
}

#[test]
fn after_a_containerd_restart_the_store_matches_containerd_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut containerd = Containerd::start(dir.path());
    let (debian, debian_tar) = image_archive(
        dir.path(),
        "debian",
        "example.test/debian:12",
        two_layer_image,
    );
    let (alpine, alpine_tar) =
        image_archive(dir.path(), "alpine", "example.test/alpine:3", alpine_image);
    containerd.import(NS, &debian_tar);
    let agent = start_agent(dir.path(), &containerd, &[NS]);
    wait_for("the debian image scanned", Duration::from_secs(30), || {
        agent
            .workload(&debian.config)
            .filter(|w| w["status"] == "success")
    });

    // containerd goes away; the agent says so and keeps serving.
    containerd.stop();
    wait_for("the outage in the log", Duration::from_secs(10), || {
        agent
            .log()
            .lines()
            .any(|l| l.contains("WARN") && l.contains(&containerd.socket.display().to_string()))
            .then_some(())
    });
    assert!(agent.workload("host").is_some());

    // While it is away, the debian image is deleted and the alpine one
    // imported; then it comes back.
    containerd.change_while_away(|away| {
        away.ctr(NS, &["images", "rm", "example.test/debian:12"]);
        away.import(NS, &alpine_tar);
    });
    let expected = [(
        alpine.config.clone(),
        set(&[&format!("containerd://{NS}/example.test/alpine:3")]),
    )]
    .into_iter()
    .collect();
    wait_for(
        "the store to match containerd",
        Duration::from_secs(30),
        || (images(&agent) == expected).then_some(()),
    );
    assert_eq!(containerd.images(NS), ["example.test/alpine:3"]);
    let scanned = wait_for("the alpine image scanned", Duration::from_secs(30), || {
        agent
            .workload(&alpine.config)
            .filter(|w| w["status"] == "success")
    });
    assert_eq!(scanned["packages"], 4);
    assert!(!agent.document_path(&debian.config).exists());
    let log = agent.log();
    assert!(log.contains("containerd is back"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn each_namespace_is_read_with_its_own_content() {
    let dir = tempfile::tempdir().unwrap();
    let containerd = Containerd::start(dir.path());
    // One name, two different images, one in each namespace.
    let (debian, debian_tar) =
        image_archive(dir.path(), "debian", "example.test/app:1", two_layer_image);
    let (alpine, alpine_tar) =
        image_archive(dir.path(), "alpine", "example.test/app:1", alpine_image);
    containerd.import("team-a", &debian_tar);
    containerd.import("team-b", &alpine_tar);

    let agent = start_agent(dir.path(), &containerd, &["team-a", "team-b"]);
    for (image, namespace, count, distro) in [
        (&debian, "team-a", 96, "debian"),
        (&alpine, "team-b", 4, "alpine"),
    ] {
        let done = wait_for("both images scanned", Duration::from_secs(30), || {
            agent
                .workload(&image.config)
                .filter(|w| w["status"] == "success")
        });
        assert_eq!(
            references(&done),
            set(&[&format!("containerd://{namespace}/example.test/app:1")])
        );
        assert_eq!(done["packages"], count);
        let doc = document(&agent.document_path(&image.config));
        assert_eq!(doc["metadata"]["component"]["name"], "example.test/app:1");
        assert_eq!(os(&doc).unwrap().0, distro);
    }

    // A namespace taken out of the configuration: its images go at the
    // next start; containerd taken out: all of them go.
    drop(agent);
    let agent = start_agent(dir.path(), &containerd, &["team-a"]);
    assert_eq!(images(&agent).keys().collect::<Vec<_>>(), [&debian.config]);
    assert!(!agent.document_path(&alpine.config).exists());
    drop(agent);
    let agent = agent::start(dir.path(), "[sources.host]\nenabled = false\n");
    assert!(agent.workloads().is_empty(), "{:?}", agent.workloads());
    assert!(!agent.document_path(&debian.config).exists());
}

#[test]
fn scan_reads_one_image_of_containerd_and_names_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let containerd = Containerd::start(dir.path());
    let (image, tar) = image_archive(
        dir.path(),
        "debian",
        "example.test/debian:12",
        two_layer_image,
    );
    containerd.import(NS, &tar);
    let scan = |target: &str| {
        scanhost()
            .args(["scan", target, "--containerd-address"])
            .arg(&containerd.socket)
            .output()
            .unwrap()
    };

    let output = scan(&format!("containerd://{NS}/example.test/debian:12"));
    let doc = support::document(&output);
    assert_eq!(
        doc["metadata"]["component"]["name"],
        "example.test/debian:12"
    );
    assert_eq!(packages(&doc).len(), 96);
    // The same packages as a scan of the layout the image came from.
    let layout = dir.path().join("debian-layout");
    let from_layout = support::document(&support::scan(&layout, &[]));
    assert_eq!(packages(&doc), packages(&from_layout));

    let stderr =
        |output: &std::process::Output| String::from_utf8_lossy(&output.stderr).into_owned();
    let missing = scan(&format!("containerd://{NS}/example.test/debian:13"));
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("no image example.test/debian:13 in namespace scanhost-test"),
        "{}",
        stderr(&missing)
    );

    let malformed = scan("containerd://only-a-namespace");
    assert_eq!(malformed.status.code(), Some(2));
    assert!(stderr(&malformed).contains("containerd://NAMESPACE/NAME"));

    let nowhere = scanhost()
        .args([
            "scan",
            "containerd://ns/example.test/debian:12",
            "--containerd-address",
        ])
        .arg(dir.path().join("no.sock"))
        .output()
        .unwrap();
    // containerd away: a later try may work.
    assert_eq!(nowhere.status.code(), Some(3));
    assert!(stderr(&nowhere).contains("no.sock"), "{}", stderr(&nowhere));

    let refused = scan("containerd://Bad_NS!/example.test/debian:12");
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("Bad_NS!"), "{}", stderr(&refused));

    // A discarded layer: a retryable failure (exit 3) that names it.
    containerd.ctr(NS, &["content", "rm", &image.layers[0]]);
    let discarded = scan(&format!("containerd://{NS}/example.test/debian:12"));
    assert_eq!(discarded.status.code(), Some(3), "{}", stderr(&discarded));
    assert!(stderr(&discarded).contains(&image.layers[0]));
}

/// The resident set of process `pid`, in MiB.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024
}

// A containerd that ends every event subscription at once (as one shutting
// down does) must be followed with backoff: connected again and again,
// with the memory of the agent flat and SIGTERM still heard.
#[test]
fn an_event_stream_that_ends_at_once_is_followed_again_with_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("fake.sock");
    let calls = support::fake_containerd::serve(&socket);
    let mut agent = agent::start(
        dir.path(),
        &format!(
            "[sources.host]\nenabled = false\n[sources.containerd]\naddress = \"{}\"\nnamespaces = [\"{NS}\"]\n",
            socket.display()
        ),
    );

    std::thread::sleep(Duration::from_secs(4));
    let subscriptions = calls
        .subscriptions
        .load(std::sync::atomic::Ordering::SeqCst);
    // 250 ms, 500 ms, 1 s, 2 s apart: four or five in four seconds.
    assert!(
        (2..=8).contains(&subscriptions),
        "{subscriptions} subscriptions"
    );
    let rss = rss_mib(agent.pid());
    assert!(rss < 300, "the agent holds {rss} MiB");
    let log = agent.log();
    assert!(log.contains("containerd ended the event stream"), "{log}");
    assert!(agent.workloads().is_empty());
    assert!(
        agent.terminate(Duration::from_secs(10)),
        "SIGTERM did not stop the agent"
    );
}
