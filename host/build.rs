//! Builds the scanner components under `plugins/` for wasm32-wasip2.
//!
//! The shipped plugins are embedded in the `scanhost` binary, so it works
//! with no plugin directory. The fault-injection components under
//! `plugins/testing/` are built beside them for the tests, which find them
//! through `SCANHOST_TEST_PLUGINS`; they are never embedded. The example
//! plugin of `examples/plugins/python-packages`, a crate of its own as a
//! plugin author's would be, is built too, so that the tests use it and a
//! change that breaks it breaks the build (`SCANHOST_EXAMPLE_PLUGIN`).
//!
//! The components are built by a nested `cargo build` into a target
//! directory of their own, always optimised: a component is compiled to
//! native code by wasmtime at load time, and an unoptimised one would make
//! every scan slow.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

/// Components embedded in the binary, by crate name.
const SHIPPED: &[&str] = &["host-scanner", "image-scanner"];

/// Components built for the tests only.
const TESTING: &[&str] = &["testing-faults", "testing-incompatible"];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap().to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());

    let example = workspace.join("examples/plugins/python-packages");
    for path in ["plugins", "wit", "Cargo.lock"] {
        println!("cargo::rerun-if-changed={}", workspace.join(path).display());
    }

    // OUT_DIR is <target>/<profile>/build/<crate>-<hash>/out: keep the
    // components next to the profile so that every build of the host with
    // that profile shares one component build.
    let target_dir = out_dir.ancestors().nth(3).unwrap().join("components");
    let ours: Vec<&str> = SHIPPED.iter().chain(TESTING).copied().collect();
    build_components(&workspace, &ours, &target_dir);
    for path in ["src", "Cargo.toml", "Cargo.lock"] {
        println!("cargo::rerun-if-changed={}", example.join(path).display());
    }
    let example_target = out_dir.ancestors().nth(3).unwrap().join("example-plugins");
    build_components(&example, &[], &example_target);
    println!(
        "cargo::rustc-env=SCANHOST_EXAMPLE_PLUGIN={}",
        component_file(
            &example_target.join(TARGET).join("release"),
            "python-packages"
        )
        .display()
    );

    let wasm_dir = target_dir.join(TARGET).join("release");
    let mut shipped = String::from("&[\n");
    for name in SHIPPED {
        let file = component_file(&wasm_dir, name);
        writeln!(
            shipped,
            "    ({name:?}, include_bytes!({:?}).as_slice()),",
            file.display()
        )
        .unwrap();
    }
    shipped.push(']');
    std::fs::write(out_dir.join("shipped_plugins.rs"), shipped).unwrap();
    println!(
        "cargo::rustc-env=SCANHOST_TEST_PLUGINS={}",
        wasm_dir.display()
    );
}

fn component_file(wasm_dir: &Path, crate_name: &str) -> PathBuf {
    wasm_dir.join(format!("{}.wasm", crate_name.replace('-', "_")))
}

/// Builds the `packages` of the workspace at `dir` (all of it when none
/// are named) for wasm32-wasip2 into `target_dir`.
fn build_components(dir: &Path, packages: &[&str], target_dir: &Path) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(dir)
        .args(["build", "--release", "--target", TARGET])
        .arg("--target-dir")
        .arg(target_dir);
    for name in packages {
        command.args(["-p", name]);
    }

    // The outer build's settings are for the host's target, not for the
    // components: a wrapper (clippy) or flags meant for x86_64 must not
    // leak into the nested build.
    for var in [
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_RUSTFLAGS",
    ] {
        command.env_remove(var);
    }

    let status = command
        .status()
        .unwrap_or_else(|err| panic!("cannot run cargo to build the plugins: {err}"));
    if !status.success() {
        panic!(
            "building the components in {} for {TARGET} failed ({status}): see the \
             compiler's messages above; if they say the target is missing, run \
             `rustup toolchain install` in the repository (it reads \
             rust-toolchain.toml) or `rustup target add {TARGET}`",
            dir.display()
        );
    }
}
