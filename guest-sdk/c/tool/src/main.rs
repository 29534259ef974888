//! The C SDK's build helper (see Cargo.toml). Subcommands:
//!
//! - `bindings WIT_DIR WORLD OUT_DIR`: the C bindings of WORLD, as
//!   `wit-bindgen c WIT_DIR --world WORLD --out-dir OUT_DIR` writes them;
//! - `component CORE.wasm OUT.wasm`: the component of a core module linked as
//!   a WASI preview1 reactor, as `wasm-tools component new CORE.wasm --adapt
//!   wasi_snapshot_preview1=<reactor adapter> -o OUT.wasm` makes it;
//! - `imports COMPONENT.wasm`: the interfaces the component imports, one a line.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

/// Printed by `--version`; guest-sdk/c/versions.sh names the one it expects.
const VERSION: &str =
    "orizuru-c-tool 1 (wit-bindgen-c 0.61.1, wit-component 0.258.3, adapter 48.0.8)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["--version"] => {
            println!("{VERSION}");
            Ok(())
        }
        ["bindings", wit, world, out] => bindings(Path::new(wit), world, Path::new(out)),
        ["component", core, out] => component(Path::new(core), Path::new(out)),
        ["imports", component] => imports(Path::new(component)),
        _ => {
            eprintln!(
                "usage: orizuru-c-tool bindings WIT_DIR WORLD OUT_DIR | component CORE.wasm OUT.wasm | imports COMPONENT.wasm | --version"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("orizuru-c-tool: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn bindings(wit: &Path, world: &str, out: &Path) -> Result<()> {
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve
        .push_path(wit)
        .with_context(|| format!("the WIT at {} could not be read", wit.display()))?;
    let world = resolve
        .select_world(&[package], Some(world))
        .with_context(|| format!("the WIT at {} has no world {world}", wit.display()))?;
    let mut files = wit_bindgen_core::Files::default();
    let mut generator = wit_bindgen_c::Opts::default().build();
    generator.generate(&mut resolve, world, &mut files)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for (name, contents) in files.iter() {
        let path = out.join(name);
        std::fs::write(&path, contents)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn component(core: &Path, out: &Path) -> Result<()> {
    let module = std::fs::read(core).with_context(|| format!("cannot read {}", core.display()))?;
    let bytes = wit_component::ComponentEncoder::default()
        .module(&module)
        .context("the compiled module carries no usable component type")?
        .validate(true)
        .adapter(
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )
        .context("the WASI preview1 reactor adapter could not be loaded")?
        .encode()
        .context("the compiled module could not be made into a component")?;
    std::fs::write(out, bytes).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}

fn imports(component: &Path) -> Result<()> {
    let bytes =
        std::fs::read(component).with_context(|| format!("cannot read {}", component.display()))?;
    let decoded = wit_component::decode(&bytes)
        .with_context(|| format!("{} is not a component", component.display()))?;
    let wit_component::DecodedWasm::Component(resolve, world) = decoded else {
        bail!("{} is a WIT package, not a component", component.display());
    };
    for (key, _) in &resolve.worlds[world].imports {
        println!("{}", resolve.name_world_key(key));
    }
    Ok(())
}
