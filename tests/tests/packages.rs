//! Each SDK packs as its own ecosystem's package, ready to publish: a crate,
//! a Python distribution, an npm package and a C install with pkg-config,
//! each carrying the WIT it builds against and its build command. (That a
//! project depending on each builds and tests itself is `host/tests/cli.rs`.)

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sdk(language: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../guest-sdk")
        .join(language)
}

fn succeeded(output: Output, what: &str) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{what} failed:\n{text}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_rust_sdk_packages_as_a_crate() {
    let target = tempfile::tempdir().expect("a temporary dir");
    // A target dir of its own: the outer `cargo test` holds the workspace's.
    let output = Command::new(env!("CARGO"))
        .args(["package", "-p", "orizuru-sdk", "--allow-dirty"])
        .env("CARGO_TARGET_DIR", target.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    succeeded(output, "cargo package -p orizuru-sdk");
    let listed = Command::new(env!("CARGO"))
        .args(["package", "-p", "orizuru-sdk", "--allow-dirty", "--list"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    let files = succeeded(listed, "cargo package --list");
    for wanted in [
        "wit/since_v0.1.0/service.wit",
        "src/parameters.rs",
        "CONTRACT.md",
    ] {
        assert!(
            files.lines().any(|file| file == wanted),
            "{wanted}:\n{files}"
        );
    }
    assert!(
        !files
            .lines()
            .any(|file| file.starts_with("python/") || file.starts_with("js/")),
        "the crate is the Rust SDK alone:\n{files}"
    );
}

#[test]
fn the_python_sdk_builds_as_a_wheel() {
    let out = tempfile::tempdir().expect("a temporary dir");
    // The SDK's own venv (guest-sdk/python/install) has pip and the build backend's reach.
    let output = Command::new(sdk("python").join(".venv/bin/pip"))
        .args([
            "wheel",
            "--no-deps",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg("--wheel-dir")
        .arg(out.path())
        .arg(sdk("python"))
        .output()
        .expect("the Python SDK's venv has pip (tests/setup makes it)");
    succeeded(output, "pip wheel guest-sdk/python");
    let wheel = out.path().join(format!(
        "orizuru_sdk-{}-py3-none-any.whl",
        env!("CARGO_PKG_VERSION")
    ));
    assert!(wheel.is_file(), "{} was built", wheel.display());
    let listing = Command::new("python3")
        .args(["-m", "zipfile", "-l"])
        .arg(&wheel)
        .output()
        .expect("python3 runs");
    let files = succeeded(listing, "python3 -m zipfile -l");
    for wanted in [
        "orizuru/__init__.py",
        "orizuru/_build.py",
        "orizuru/wit/service.wit",
        "entry_points.txt",
    ] {
        assert!(files.contains(wanted), "{wanted}:\n{files}");
    }
    let entry_points = Command::new("python3")
        .args(["-c", "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); print(next(z.read(n).decode() for n in z.namelist() if n.endswith('entry_points.txt')))"])
        .arg(&wheel)
        .output()
        .expect("python3 runs");
    assert!(
        succeeded(entry_points, "reading entry_points.txt").contains("orizuru-build"),
        "the wheel gives the orizuru-build command"
    );
}

#[test]
fn the_js_sdk_packs_as_an_npm_package() {
    let output = Command::new("npm")
        .args(["pack", "--dry-run", "--json"])
        .current_dir(sdk("js"))
        .output()
        .expect("npm runs (tests/setup needs Node.js and npm too)");
    let text = succeeded(output, "npm pack");
    // prepack's own line comes before npm's JSON.
    let json = &text[text.find('[').expect("npm pack answers JSON")..];
    let packed: serde_json::Value = serde_json::from_str(json).expect("npm's JSON");
    let package = &packed[0];
    assert_eq!(package["name"], "orizuru-sdk");
    assert_eq!(package["version"], env!("CARGO_PKG_VERSION"));
    let files: Vec<&str> = package["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|file| file["path"].as_str())
        .collect();
    for wanted in [
        "bin/orizuru-build.js",
        "dist/index.js",
        "dist/index.d.ts",
        "wit/service.wit",
    ] {
        assert!(files.contains(&wanted), "{wanted}: {files:?}");
    }
}

#[test]
fn the_c_sdk_installs_with_pkg_config() {
    let prefix = tempfile::tempdir().expect("a temporary dir");
    let build = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c-sdk-install");
    let output = Command::new("make")
        .args(["-s", "-C"])
        .arg(sdk("c"))
        .arg("install")
        .arg(format!("PREFIX={}", prefix.path().display()))
        .arg(format!("BUILDDIR={}", build.display()))
        .output()
        .expect("make runs (tests/setup installs it with the C SDK's toolchain)");
    succeeded(output, "make install");
    for wanted in [
        "include/orizuru.h",
        "lib/wasm32-wasi/liborizuru.a",
        "bin/orizuru-c-build",
        "share/orizuru/wit/service.wit",
    ] {
        assert!(prefix.path().join(wanted).is_file(), "{wanted} installed");
    }
    let version = Command::new("pkg-config")
        .args(["--modversion", "orizuru"])
        .env("PKG_CONFIG_PATH", prefix.path().join("lib/pkgconfig"))
        .output()
        .expect("pkg-config runs (the C SDK's install brings it)");
    assert_eq!(
        succeeded(version, "pkg-config").trim(),
        env!("CARGO_PKG_VERSION")
    );
}
