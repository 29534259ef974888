//! The Python SDK's own unit tests (`guest-sdk/python/tests`), run as part of
//! the workspace's tests under plain CPython: its reading of parameters (the
//! sentences of `guest-sdk/CONTRACT.md`) and `orizuru-build`'s checks. The
//! SDK end to end is the conformance suite's `python` cases (`tests/contract.rs`).

use std::path::Path;
use std::process::Command;

#[test]
fn the_python_sdk_passes_its_unit_tests() {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk/python");
    // -B: no __pycache__ beside the SDK's sources, which the build watches.
    let output = Command::new("python3")
        .args(["-B", "-m", "unittest", "discover", "-s", "tests", "-v"])
        .current_dir(&sdk)
        .output()
        .expect("python3 runs (tests/setup needs it too)");
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{report}");
    assert!(report.contains("\nOK"), "{report}");
}
