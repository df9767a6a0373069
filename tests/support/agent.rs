//! `scanhost run` as the tests run it: the real binary on a configuration
//! written for the test, observed through its API, its log and its output
//! directory, and killed when dropped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running agent, killed when dropped.
pub struct Agent {
    child: Child,
    pub api: String,
    pub log: PathBuf,
    /// The directory of its documents (`[output] dir`).
    pub output: PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes `config` into `dir`, with `state_dir`, `[output]` and `[api]`
/// added, and starts the agent on it; returns once its API answers.
pub fn start(dir: &Path, config: &str) -> Agent {
    let port = free_port();
    let file = dir.join("scanhost.toml");
    std::fs::write(
        &file,
        format!(
            "state_dir = \"state\"\n{config}\n[output]\ndir = \"sboms\"\n\
             [api]\nlisten = \"127.0.0.1:{port}\"\n"
        ),
    )
    .unwrap();
    let log = dir.join(format!("agent-{port}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_scanhost"))
        .args(["--log", "info"])
        .arg("run")
        .arg("--config")
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let agent = Agent {
        child,
        api: format!("http://127.0.0.1:{port}"),
        log,
        output: dir.join("sboms"),
    };
    wait_for("the API", Duration::from_secs(60), || {
        ureq::get(&format!("{}/healthz", agent.api)).call().ok()
    });
    agent
}

impl Agent {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM; returns whether the agent exited, with status 0,
    /// within `timeout`.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        // SAFETY: kill(2) on the id of a child not yet waited for.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Kills the agent with SIGKILL, as a crash would end it.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Every workload the API lists, by id.
    pub fn workloads(&self) -> BTreeMap<String, Value> {
        let list: Vec<Value> = ureq::get(&format!("{}/v1/workloads", self.api))
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        list.into_iter()
            .map(|w| (w["id"].as_str().unwrap().to_string(), w))
            .collect()
    }

    pub fn workload(&self, id: &str) -> Option<Value> {
        self.workloads().remove(id)
    }

    /// The document of `id` written to the output directory.
    pub fn document_path(&self, id: &str) -> PathBuf {
        self.output
            .join(format!("{}.cdx.json", id.replace(':', "-")))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    /// Log lines that mention `needle` and `workload`.
    pub fn log_lines(&self, workload: &str, needle: &str) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains(needle) && l.contains(workload))
            .map(str::to_string)
            .collect()
    }
}

/// Polls `probe` every 100 ms until it gives a value; panics naming
/// `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
