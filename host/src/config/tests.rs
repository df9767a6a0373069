//! Unit tests of the configuration: defaults, every key landing in its
//! field, and each kind of error naming the file, line and key.

use super::*;

const EXAMPLE: &str = include_str!("../../../examples/scanhost.toml");

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
        max_size = "1GiB"
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
        cache: CacheConfig {
            max_size: 1024 * MIB,
        },
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
    let config = parse("[scan]\nmax_memory = \"64MiB\"\n").unwrap();
    assert_eq!(config.scan.max_memory, 64 * 1024 * 1024);
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
        message.ends_with(":2: sources.containerd.namespaces: must name at least one namespace"),
        "{message}"
    );
}

// containerd's own configuration writes its address as a unix URL.
#[test]
fn a_containerd_address_may_be_a_unix_url() {
    let config =
        parse("[sources.containerd]\naddress = \"unix:///run/k3s/containerd.sock\"\n").unwrap();
    assert_eq!(
        config.sources.containerd.unwrap().address,
        Path::new("/run/k3s/containerd.sock")
    );
}

// A name containerd refuses must stop the start, naming the key and the
// line, rather than look like a containerd that is away.
#[test]
fn a_namespace_containerd_refuses_is_invalid() {
    for bad in [
        "Bad_NS!",
        "",
        "-lead",
        "trail.",
        "two..dots",
        &"n".repeat(77),
    ] {
        let message = error(&format!(
            "[sources.containerd]\nnamespaces = [\"k8s.io\", \"{bad}\"]\n"
        ));
        assert!(
            message.contains(":2: sources.containerd.namespaces: ")
                && message.contains("is not a containerd namespace"),
            "{bad}: {message}"
        );
    }
    for good in ["k8s.io", "default", "moby", "a-b_c.d9", &"n".repeat(76)] {
        let text = format!("[sources.containerd]\nnamespaces = [\"{good}\"]\n");
        assert!(parse(&text).is_ok(), "{good}");
    }
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

// Huge values once made the agent abort allocating workers, or panic
// writing a retry's date: they are refused with the key.
#[test]
fn absurd_workers_and_durations_are_refused() {
    let err = Config::parse("[scan]\nworkers = 100000000000\n", Path::new("c.toml")).unwrap_err();
    assert!(
        err.to_string()
            .contains("scan.workers: must be at most 256"),
        "{err}"
    );
    let err = Config::parse(
        "[scan]\nbase_backoff = \"9999999years\"\n",
        Path::new("c.toml"),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("scan.base_backoff: must be at most"),
        "{err}"
    );
}
