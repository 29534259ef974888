//! The C SDK's own unit tests (`guest-sdk/c/tests`, `make check`), run as
//! part of the workspace's tests natively: its reading of parameters (the
//! sentences of `guest-sdk/CONTRACT.md`). The SDK end to end is the
//! conformance suite's `c` cases (`tests/contract.rs`).

use std::path::Path;
use std::process::Command;

#[test]
fn the_c_sdk_passes_its_unit_tests() {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk/c");
    // Built beside the other test outputs, not in the SDK's folder.
    let build = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c-sdk-check");
    let output = Command::new("make")
        .args(["-s", "-C"])
        .arg(&sdk)
        .arg("check")
        .arg(format!("BUILDDIR={}", build.display()))
        .output()
        .expect("make runs (tests/setup installs it with the C SDK's toolchain)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{report}");
    assert!(report.contains(" passed, 0 failed"), "{report}");
}
