//! Builds the example and test plugins from source for `wasm32-wasip2`, so
//! the tests always run the plugins as the code in `plugins/` says, never a
//! checked-in `.wasm` that drifted.

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// The plugins the tests serve.
const PLUGINS: &[&str] = &[
    "fake",
    "queue",
    "misbehave",
    "generation-one",
    "generation-two",
    "broken-plans",
    "configured",
    "counter",
    "postgres",
    "sql-probe",
    "http-probe",
];

fn main() {
    let manifest_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir
        .parent()
        .expect("tests/ sits in the workspace")
        .to_owned();
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("plugins");

    println!("cargo:rerun-if-changed=build.rs");
    for watched in ["plugins", "guest-sdk"] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&workspace)
        .args([
            "build",
            "--manifest-path",
            "plugins/Cargo.toml",
            "--release",
            "--target",
            "wasm32-wasip2",
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    for plugin in PLUGINS {
        command.args(["-p", plugin]);
    }
    // The outer build's flags are for the host, not for wasm.
    for flags in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
    ] {
        command.env_remove(flags);
    }
    let status = command
        .status()
        .expect("cannot run cargo to build the test plugins");
    if !status.success() {
        panic!(
            "building the plugins for wasm32-wasip2 failed (see above); if the target is missing, run: rustup target add wasm32-wasip2"
        );
    }
    let built = target_dir.join("wasm32-wasip2").join("release");
    println!("cargo:rustc-env=ORIZURU_TEST_PLUGINS={}", built.display());
}
