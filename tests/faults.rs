//! Fault tests: components that loop, hog memory, trap, try to leave their
//! sandbox, or are not valid plugins. Each failure must be contained and
//! reported, and the same process must then scan a good root.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use scanhost::plugins::{FailureKind, Limits, LoadError, Origin, Plugin, Registry, Runtime};
use scanhost::scan::scan;
use scanhost::target::Target;
use support::{fixtures, test_plugin};

fn runtime(limits: Limits) -> Runtime {
    Runtime::new(limits, Some(&support::cache_dir())).expect("runtime")
}

fn load(runtime: &Runtime, path: &Path) -> Result<Plugin, LoadError> {
    let bytes = std::fs::read(path).unwrap();
    runtime.load(Origin::File(path.to_path_buf()), &bytes)
}

fn faults(runtime: &Runtime) -> Plugin {
    load(runtime, &test_plugin("testing-faults")).expect("the faults component loads")
}

/// A root whose `fault` file asks the faults component for `fault`.
fn root_with_fault(fault: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("fault"), fault).unwrap();
    root
}

/// The shipped host scanner, in the same runtime, still scans a real root.
fn assert_good_scan(runtime: &Runtime) {
    let (registry, refused) = Registry::load(runtime, None).unwrap();
    assert!(refused.is_empty());
    let target = Target::Host {
        root: fixtures().join("debian-bookworm-minbase"),
    };
    let outcome = scan(runtime, &registry, &target).unwrap();
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert_eq!(outcome.packages.len(), 96);
}

#[test]
fn a_plugin_that_never_returns_ends_by_deadline_as_retryable() {
    let runtime = runtime(Limits {
        scan_timeout: Duration::from_secs(1),
        ..Limits::default()
    });
    let plugin = faults(&runtime);
    let root = root_with_fault("spin");

    let started = Instant::now();
    let failure = runtime
        .scan(
            &plugin,
            &Target::Host {
                root: root.path().into(),
            },
        )
        .unwrap_err();

    assert_eq!(failure.kind, FailureKind::Timeout);
    assert!(failure.retryable());
    assert!(failure.to_string().contains("faults"), "{failure}");
    assert!(failure.reason.contains("deadline of 1s"), "{failure}");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert_good_scan(&runtime);
}

#[test]
fn a_plugin_that_grows_memory_without_bound_hits_the_cap_as_fatal() {
    let runtime = runtime(Limits {
        max_memory: 64 << 20,
        ..Limits::default()
    });
    let plugin = faults(&runtime);
    let root = root_with_fault("hog");

    let failure = runtime
        .scan(
            &plugin,
            &Target::Host {
                root: root.path().into(),
            },
        )
        .unwrap_err();

    assert_eq!(failure.kind, FailureKind::MemoryCap);
    assert!(!failure.retryable());
    assert!(failure.reason.contains("67108864"), "{failure}");
    assert_good_scan(&runtime);
}

#[test]
fn a_plugin_that_traps_fails_as_fatal() {
    let runtime = runtime(Limits::default());
    let plugin = faults(&runtime);
    let root = root_with_fault("trap");

    let failure = runtime
        .scan(
            &plugin,
            &Target::Host {
                root: root.path().into(),
            },
        )
        .unwrap_err();

    assert_eq!(failure.kind, FailureKind::Trap);
    assert!(!failure.retryable());
    assert!(failure.reason.contains("unreachable"), "{failure}");
    assert_good_scan(&runtime);
}

#[test]
fn a_plugin_cannot_open_paths_outside_its_preopen() {
    let runtime = runtime(Limits::default());
    let plugin = faults(&runtime);
    let root = root_with_fault("escape");
    std::os::unix::fs::symlink("/etc/hostname", root.path().join("link-absolute")).unwrap();
    std::os::unix::fs::symlink(
        "../../../../../../etc/hostname",
        root.path().join("link-relative"),
    )
    .unwrap();

    // The component answers `fatal("escaped: ...")` if any read succeeds.
    let report = runtime
        .scan(
            &plugin,
            &Target::Host {
                root: root.path().into(),
            },
        )
        .expect("every read outside the root fails");
    assert!(report.packages.is_empty());
    assert_good_scan(&runtime);
}

#[test]
fn a_file_that_is_not_a_component_is_refused_naming_it() {
    let runtime = runtime(Limits::default());
    let dir = tempfile::tempdir().unwrap();

    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"this is not wasm at all").unwrap();
    let err = load(&runtime, &garbage).unwrap_err();
    assert!(matches!(err, LoadError::NotComponent { .. }), "{err}");
    assert!(
        err.to_string().contains(&*garbage.to_string_lossy()),
        "{err}"
    );

    // An empty core module: valid wasm, but not a component.
    let module = dir.path().join("module.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
    let err = load(&runtime, &module).unwrap_err();
    assert!(err.to_string().contains("core WebAssembly module"), "{err}");
    assert!(
        err.to_string().contains(&*module.to_string_lossy()),
        "{err}"
    );

    // A component header followed by garbage.
    let broken = dir.path().join("broken.wasm");
    std::fs::write(&broken, b"\0asm\x0d\0\x01\0\xff\xff\xff").unwrap();
    let err = load(&runtime, &broken).unwrap_err();
    assert!(matches!(err, LoadError::NotComponent { .. }), "{err}");
    assert_good_scan(&runtime);
}

#[test]
fn a_component_for_an_incompatible_contract_is_refused_naming_both_versions() {
    let runtime = runtime(Limits::default());
    let path = test_plugin("testing-incompatible");

    let err = load(&runtime, &path).unwrap_err();

    let message = err.to_string();
    assert!(matches!(err, LoadError::Contract { .. }), "{message}");
    assert!(message.contains(&*path.to_string_lossy()), "{message}");
    assert!(message.contains("1.0.0"), "{message}");
    assert!(
        message.contains("scanhost:plugin/plugin@0.1.1"),
        "{message}"
    );
    assert_good_scan(&runtime);
}

#[test]
fn a_refused_file_in_the_plugin_directory_leaves_the_others_serving() {
    let runtime = runtime(Limits::default());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("garbage.wasm"), b"garbage").unwrap();
    std::fs::copy(
        test_plugin("testing-faults"),
        dir.path().join("faults.wasm"),
    )
    .unwrap();

    let (registry, refused) = Registry::load(&runtime, Some(dir.path())).unwrap();

    assert_eq!(refused.len(), 1);
    assert!(refused[0].to_string().contains("garbage.wasm"));
    let names: Vec<_> = registry.plugins().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["faults", "host-scanner", "image-scanner"]);
}

#[test]
fn scan_command_exits_3_on_deadline_and_4_on_trap() {
    let plugins = tempfile::tempdir().unwrap();
    std::fs::copy(
        test_plugin("testing-faults"),
        plugins.path().join("faults.wasm"),
    )
    .unwrap();
    let plugin_dir = plugins.path().to_str().unwrap();

    let root = root_with_fault("spin");
    let output = support::scan(
        root.path(),
        &["--plugin-dir", plugin_dir, "--scan-timeout", "1s"],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("retryable") && stderr.contains("faults"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "no partial document");

    let root = root_with_fault("trap");
    let output = support::scan(root.path(), &["--plugin-dir", plugin_dir]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("fatal"), "{stderr}");
    assert!(output.stdout.is_empty(), "no partial document");
}

#[test]
fn what_a_plugin_logs_reaches_the_host_log_with_its_name() {
    let plugins = tempfile::tempdir().unwrap();
    std::fs::copy(
        test_plugin("testing-faults"),
        plugins.path().join("faults.wasm"),
    )
    .unwrap();
    let root = root_with_fault("escape");
    std::os::unix::fs::symlink("/etc/hostname", root.path().join("link-absolute")).unwrap();

    let output = support::scan(
        root.path(),
        &["--plugin-dir", plugins.path().to_str().unwrap()],
    );

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("denied /link-absolute"))
        .unwrap_or_else(|| panic!("no log line for the denied read: {stderr}"));
    assert!(
        line.contains("WARN") && line.contains("plugin=\"faults\""),
        "{line}"
    );
}
