//! A real containerd for the tests: Debian's package, started as root with
//! its own configuration (root, state and sockets in a temporary
//! directory, the CRI plugin disabled), driven with `ctr`, and stopped by
//! its process id.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A containerd daemon of the test, stopped when dropped.
pub struct Containerd {
    dir: PathBuf,
    pub socket: PathBuf,
    child: Option<Child>,
}

impl Containerd {
    /// Starts containerd with its state under `dir`.
    pub fn start(dir: &Path) -> Containerd {
        ensure_installed();
        let dir = dir.join("containerd");
        std::fs::create_dir_all(&dir).unwrap();
        let mut containerd = Containerd {
            socket: dir.join("containerd.sock"),
            dir,
            child: None,
        };
        containerd.resume();
        containerd
    }

    /// Starts containerd again on the same state, after [`Self::stop`].
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "containerd is running already");
        let config = self.dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                r#"version = 2
root = "{dir}/root"
state = "{dir}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
[debug]
  address = "{dir}/debug.sock"
"#,
                dir = self.dir.display(),
                socket = self.socket.display(),
            ),
        )
        .unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("containerd.log"))
            .unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cannot start containerd");
        self.child = Some(child);
        let started = Instant::now();
        while !self.ctr_raw("default", &["version"]).status.success() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "containerd did not answer on {} in 20s; its log: {}",
                self.socket.display(),
                std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Makes `changes` while containerd is away from its socket: it is
    /// stopped, started on another socket for `changes`, stopped again,
    /// and started on its socket once more. A client of the socket sees
    /// containerd go and come back changed.
    pub fn change_while_away(&mut self, changes: impl FnOnce(&Containerd)) {
        let socket = self.socket.clone();
        self.stop();
        self.socket = self.dir.join("away.sock");
        self.resume();
        changes(self);
        self.stop();
        self.socket = socket;
        self.resume();
    }

    /// Stops containerd (SIGTERM to its process, then waits for it).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on the id of a child not yet waited for.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }

    fn ctr_raw(&self, namespace: &str, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", namespace])
            .args(args)
            .output()
            .expect("cannot run ctr")
    }

    /// Runs `ctr` in `namespace`; panics with its output when it fails.
    pub fn ctr(&self, namespace: &str, args: &[&str]) -> String {
        let output = self.ctr_raw(namespace, args);
        assert!(
            output.status.success(),
            "ctr -n {namespace} {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Imports the OCI archive `archive` into `namespace`, as a pull would
    /// bring its images (not unpacked: no snapshotter is needed).
    pub fn import(&self, namespace: &str, archive: &Path) {
        self.ctr(
            namespace,
            &[
                "images",
                "import",
                "--no-unpack",
                &archive.display().to_string(),
            ],
        );
    }

    /// The image names of `namespace`.
    pub fn images(&self, namespace: &str) -> Vec<String> {
        self.ctr(namespace, &["images", "ls", "--quiet"])
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Packs the OCI layout `layout` into an archive `ctr images import`
/// takes: each image is named by its `org.opencontainers.image.ref.name`,
/// copied to the annotation containerd reads.
pub fn archive(layout: &Path, archive: &Path) {
    let mut index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    for manifest in index["manifests"].as_array_mut().unwrap() {
        let name = manifest["annotations"]["org.opencontainers.image.ref.name"].clone();
        manifest["annotations"]["io.containerd.image.name"] = name;
    }
    let mut tar = tar::Builder::new(std::fs::File::create(archive).unwrap());
    tar.append_path_with_name(layout.join("oci-layout"), "oci-layout")
        .unwrap();
    let index = serde_json::to_vec(&index).unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_size(index.len() as u64);
    header.set_mode(0o644);
    tar.append_data(&mut header, "index.json", index.as_slice())
        .unwrap();
    tar.append_dir_all("blobs", layout.join("blobs")).unwrap();
    tar.finish().unwrap();
}

/// Makes sure the `containerd` and `ctr` commands are there: installs
/// Debian's package when they are missing and this runs as root, and
/// panics saying what to do otherwise. Never skips.
pub fn ensure_installed() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        if on_path("containerd") && on_path("ctr") {
            return;
        }
        // SAFETY: geteuid(2) has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        assert!(
            root,
            "these tests need containerd: install the Debian package `containerd` \
             (apt-get install containerd), or run them as root to have it installed"
        );
        for args in [
            &["update", "--quiet"][..],
            &[
                "install",
                "--yes",
                "--quiet",
                "--no-install-recommends",
                "containerd",
            ][..],
        ] {
            let status = Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .expect("containerd is missing and apt-get cannot be run to install it");
            assert!(
                status.success(),
                "apt-get {args:?} failed: cannot install containerd"
            );
        }
        assert!(
            on_path("containerd") && on_path("ctr"),
            "containerd is installed but not on PATH"
        );
    });
}

fn on_path(command: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(command).is_file()))
}
