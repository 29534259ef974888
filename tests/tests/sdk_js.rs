//! The JavaScript SDK's own unit tests (`guest-sdk/js/test`, `npm test` on
//! Node's test runner), run as part of the workspace's tests: its reading of
//! parameters through zod schemas (the sentences of `guest-sdk/CONTRACT.md`).
//! The SDK end to end is the conformance suite's `js` cases
//! (`tests/contract.rs`).

use std::path::Path;
use std::process::Command;

#[test]
fn the_js_sdk_passes_its_unit_tests() {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk/js");
    let output = Command::new("npm")
        .args(["test", "--silent"])
        .current_dir(&sdk)
        .output()
        .expect("npm runs (tests/setup needs Node.js and npm too)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{report}");
    assert!(report.contains("# fail 0"), "{report}");
    assert!(!report.contains("# pass 0\n"), "{report}");
}
