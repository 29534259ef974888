//! `orizuru check PLUGIN.wasm`: is it a plugin this host can serve?

use std::path::PathBuf;
use std::process::ExitCode;

use orizuru::runtime::{Runtime, RuntimeSettings, WIT_VERSIONS};
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// The wasm component to check.
    #[arg(value_name = "PLUGIN.wasm")]
    plugin: PathBuf,
    /// Print the findings as one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> ExitCode {
    let label = args.plugin.display().to_string();
    let bytes = match std::fs::read(&args.plugin) {
        Ok(bytes) => bytes,
        Err(err) => {
            return super::fail(format!(
                "cannot read {label}: {err}; pass the path of a built plugin (.wasm)"
            ));
        }
    };
    let settings = RuntimeSettings {
        max_concurrent_calls: 1,
        cache_dir: None,
        keyvalue_path: None,
        ..RuntimeSettings::default()
    };
    // Nothing is served, so nothing reads what the runtime records.
    let runtime = match Runtime::new(&settings, std::sync::Arc::default()) {
        Ok(runtime) => runtime,
        Err(err) => return super::fail(format!("{err:#}")),
    };
    let inspection = match runtime.inspect(&bytes, &label) {
        Ok(inspection) => inspection,
        Err(err) => {
            if args.json {
                println!(
                    "{}",
                    json!({ "plugin": label, "valid": false, "error": format!("{err:#}") })
                );
                return ExitCode::FAILURE;
            }
            return super::fail(format!("{err:#}"));
        }
    };
    if args.json {
        let capabilities: Vec<_> = inspection
            .capabilities
            .iter()
            .map(|(import, key)| json!({ "import": import, "granted_by": key }))
            .collect();
        let report = json!({
            "plugin": label,
            "valid": true,
            "contract": format!("orizuru:service/handler@{}", inspection.version.wit),
            "size_bytes": inspection.version.size,
            "sha256": inspection.version.sha256,
            "compile_ms": inspection.took.as_millis() as u64,
            "capabilities": capabilities,
        });
        println!("{report:#}");
        return ExitCode::SUCCESS;
    }
    println!("{label}: a valid Orizuru plugin");
    println!(
        "  contract      orizuru:service/handler@{} (this host serves {WIT_VERSIONS})",
        inspection.version.wit
    );
    println!(
        "  size          {} (sha256 {})",
        size(inspection.version.size),
        inspection.version.sha256
    );
    println!(
        "  compiled in   {:.2} s (once per version: a host keeps it compiled in its cache_dir)",
        inspection.took.as_secs_f64()
    );
    if inspection.capabilities.is_empty() {
        println!("  capabilities  none beyond WASI's clocks, random and stdio: no grants needed");
    } else {
        println!("  capabilities  its service's [[services]] entry must grant:");
        for (import, key) in &inspection.capabilities {
            println!("                {import}: {key}");
        }
    }
    ExitCode::SUCCESS
}

/// `252 KB`, `18.9 MB`.
fn size(bytes: usize) -> String {
    let bytes = bytes as f64;
    if bytes >= 1_000_000.0 {
        format!("{:.1} MB", bytes / 1_000_000.0)
    } else {
        format!("{:.0} KB", (bytes / 1000.0).max(1.0))
    }
}
