//! What the binary's tests share: the workspace, and the example plugins
//! built as the README's `cargo plugins` builds them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ sits in the workspace")
        .to_owned()
}

/// Builds the example plugins (a no-op when fresh), once per test binary.
pub fn build_plugins() {
    static BUILT: Once = Once::new();
    BUILT.call_once(|| {
        let status = Command::new(env!("CARGO"))
            .current_dir(workspace())
            .arg("plugins")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .expect("cargo runs");
        assert!(
            status.success(),
            "cargo plugins failed; is the wasm32-wasip2 target installed?"
        );
    });
}

/// An example plugin, built.
#[allow(dead_code)] // Not every test binary runs plugins by path.
pub fn plugin(name: &str) -> PathBuf {
    build_plugins();
    workspace()
        .join("target/plugins/wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")))
}
