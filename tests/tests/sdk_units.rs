//! Each language SDK's own unit tests, run with that language's own runner
//! as part of the workspace's tests: above all its reading of parameters
//! (the sentences of `guest-sdk/CONTRACT.md`), and for Python the checks of
//! `orizuru-build`. Each SDK end to end is the conformance suite's cases for
//! its language (`tests/contract.rs`). Also the provisioners' own unit
//! tests (how they derive names), which run natively beside their wasm
//! builds.

use std::path::{Path, PathBuf};
use std::process::Command;

fn sdk(language: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../guest-sdk")
        .join(language)
}

/// Runs `command` and answers all it printed, asserting it succeeded.
fn passes(command: &mut Command, what: &str) -> String {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("{what} cannot run ({err}); tests/setup installs it"));
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{what}:\n{report}");
    report
}

#[test]
fn the_python_sdk_passes_its_unit_tests() {
    // -B: no __pycache__ beside the SDK's sources, which the build watches.
    let report = passes(
        Command::new("python3")
            .args(["-B", "-m", "unittest", "discover", "-s", "tests", "-v"])
            .current_dir(sdk("python")),
        "python3 -m unittest",
    );
    assert!(report.contains("\nOK"), "{report}");
}

#[test]
fn the_js_sdk_passes_its_unit_tests() {
    let report = passes(
        Command::new("npm")
            .args(["test", "--silent"])
            .current_dir(sdk("js")),
        "npm test",
    );
    assert!(report.contains("# fail 0"), "{report}");
    assert!(!report.contains("# pass 0\n"), "{report}");
}

#[test]
fn the_c_sdk_passes_its_unit_tests() {
    // Built beside the other test outputs, not in the SDK's folder.
    let build = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c-sdk-check");
    let report = passes(
        Command::new("make")
            .args(["-s", "-C"])
            .arg(sdk("c"))
            .arg("check")
            .arg(format!("BUILDDIR={}", build.display())),
        "make check",
    );
    assert!(report.contains(" passed, 0 failed"), "{report}");
}

#[test]
fn the_provisioners_pass_their_unit_tests() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/Cargo.toml");
    // Built natively, apart from the wasm plugins and this build's own outputs.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-units");
    let report = passes(
        Command::new(cargo)
            .arg("test")
            .arg("--manifest-path")
            .arg(&plugins)
            .args(["-p", "postgres", "-p", "redis", "--target-dir"])
            .arg(&target),
        "cargo test on the provisioners",
    );
    let passed: usize = report
        .lines()
        .filter_map(|line| line.strip_prefix("test result: ok. "))
        .filter_map(|rest| rest.split(' ').next()?.parse::<usize>().ok())
        .sum();
    assert!(
        passed >= 6,
        "expected the provisioners' unit tests to run:\n{report}"
    );
}
