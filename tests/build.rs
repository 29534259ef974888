//! Builds the example and test plugins from source for `wasm32-wasip2`, so
//! the tests always run the plugins as the code in `plugins/` says, never a
//! checked-in `.wasm` that drifted.

use std::env;
use std::path::{Path, PathBuf};
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
    "rabbitmq",
    "redis",
    "redis-probe",
    "mysql",
    "sql-probe",
    "http-probe",
    "bookkeeper",
    "wit-0-1-0",
    "bench-http",
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
    println!("cargo:rerun-if-env-changed=ORIZURU_TEST_LANGUAGES");
    // The SDKs' sources only: their installed tools (node_modules, .venv)
    // and build outputs must not make every test run rebuild the plugins.
    for watched in [
        "plugins",
        "guest-sdk/Cargo.toml",
        "guest-sdk/src",
        "guest-sdk/wit",
        "guest-sdk/python/build",
        "guest-sdk/python/pyproject.toml",
        "guest-sdk/python/orizuru",
        "guest-sdk/js/build",
        "guest-sdk/js/bin",
        "guest-sdk/js/package.json",
        "guest-sdk/js/package-lock.json",
        "guest-sdk/js/src",
        "guest-sdk/js/tools",
        "guest-sdk/c/build",
        "guest-sdk/c/Makefile",
        "guest-sdk/c/bin",
        "guest-sdk/c/orizuru.pc.in",
        "guest-sdk/c/include",
        "guest-sdk/c/src",
    ] {
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
    build_foreign(&workspace, &built);
    println!("cargo:rustc-env=ORIZURU_TEST_PLUGINS={}", built.display());
}

/// The queue example in the other SDK languages, built by each SDK's own
/// build command beside the Rust plugins, as `queue_<language>.wasm`.
const FOREIGN: &[&str] = &["python", "js", "c"];

fn build_foreign(workspace: &Path, built: &Path) {
    std::fs::create_dir_all(built).expect("the plugins' output dir can be made");
    // While one SDK is being changed, the others can be tested alone:
    // ORIZURU_TEST_LANGUAGES=python,c builds only those. A language left out
    // loses the plugin an earlier build left, so its tests fail rather than
    // pass on a stale one. Unset: all of them.
    let chosen = env::var("ORIZURU_TEST_LANGUAGES").ok();
    let (foreign, left_out): (Vec<&str>, Vec<&str>) = FOREIGN.iter().partition(|language| {
        chosen
            .as_deref()
            .is_none_or(|list| list.split(',').any(|item| item.trim() == **language))
    });
    for language in left_out {
        let stale = built.join(format!("queue_{language}.wasm"));
        if let Err(err) = std::fs::remove_file(&stale)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            panic!("cannot remove {}: {err}", stale.display());
        }
    }
    // Each build is mostly one single-threaded step, so they run side by side.
    let failures: Vec<String> = std::thread::scope(|scope| {
        let builds: Vec<_> = foreign
            .iter()
            .map(|language| {
                scope.spawn(move || {
                    let plugin = workspace.join("plugins").join(format!("queue-{language}"));
                    let out = built.join(format!("queue_{language}.wasm"));
                    let output =
                        Command::new(workspace.join("guest-sdk").join(language).join("build"))
                            .arg(&plugin)
                            .arg(&out)
                            .current_dir(workspace)
                            // No __pycache__ beside the Python SDK's watched sources.
                            .env("PYTHONDONTWRITEBYTECODE", "1")
                            .output();
                    match output {
                        Ok(output) if output.status.success() => None,
                        Ok(output) => Some(format!(
                            "building plugins/queue-{language} failed:\n{}{}",
                            String::from_utf8_lossy(&output.stdout),
                            String::from_utf8_lossy(&output.stderr)
                        )),
                        Err(err) => Some(format!("cannot run guest-sdk/{language}/build: {err}")),
                    }
                })
            })
            .collect();
        builds
            .into_iter()
            .filter_map(|build| build.join().expect("a build thread finished"))
            .collect()
    });
    if !failures.is_empty() {
        panic!(
            "{}\nif a toolchain is missing, run tests/setup (it installs every SDK's)",
            failures.join("\n")
        );
    }
}
