//! `orizuru new NAME --lang rust|python|js|c`: a plugin project that builds
//! with one command and tests itself through `orizuru check` and `call`.
//!
//! The templates are in `host/templates/<lang>/`, compiled into the binary;
//! `{{name}}`, `{{crate}}`, `{{env}}` and `{{sdk}}` are filled in.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The plugin's name, which is also its service id and directory:
    /// lower-case letters, digits and '-', starting with a letter (tsuru's rule for service ids).
    #[arg(value_name = "NAME")]
    name: String,
    /// The language to write it in.
    #[arg(long, value_enum)]
    lang: Lang,
    /// Where to make the project (default: ./NAME); it must not exist or be empty.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The guest-sdk folder of an Orizuru checkout (default: the one this
    /// orizuru was built from, if it is still there).
    #[arg(long, env = "ORIZURU_SDK", value_name = "DIR")]
    sdk: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Lang {
    Rust,
    Python,
    Js,
    C,
}

/// One file of a template: its path in the project, its text, and whether it is a script.
struct File {
    path: &'static str,
    text: &'static str,
    executable: bool,
}

macro_rules! template {
    ($lang:literal: $($path:literal $(as $target:literal)? $(, $exec:ident)?;)*) => {
        &[$(File {
            path: template!(@target $path $(, $target)?),
            text: include_str!(concat!("../../templates/", $lang, "/", $path)),
            executable: template!(@exec $($exec)?),
        }),*]
    };
    (@target $path:literal) => { $path };
    (@target $path:literal, $target:literal) => { $target };
    (@exec executable) => { true };
    (@exec) => { false };
}

const RUST: &[File] = template!("rust":
    "Cargo.toml.tmpl" as "Cargo.toml";
    ".cargo/config.toml";
    ".gitignore";
    "README.md";
    "orizuru.toml";
    "src/lib.rs";
    "test", executable;
);

const PYTHON: &[File] = template!("python":
    ".gitignore";
    "README.md";
    "orizuru.toml";
    "plugin.py";
    "build", executable;
    "test", executable;
);

const JS: &[File] = template!("js":
    ".gitignore";
    "README.md";
    "orizuru.toml";
    "src/index.ts";
    "tsconfig.json";
    "build", executable;
    "test", executable;
);

const C: &[File] = template!("c":
    ".gitignore";
    "README.md";
    "orizuru.toml";
    "plugin.c";
    "build", executable;
    "test", executable;
);

pub fn run(args: Args) -> ExitCode {
    match create(&args) {
        Ok(dir) => {
            let shown = dir.display();
            let (install, build) = match args.lang {
                Lang::Rust => (
                    "rustup target add wasm32-wasip2".to_owned(),
                    "cargo build --release",
                ),
                Lang::Python => (format!("{}/python/install", sdk_shown(&args)), "./build"),
                Lang::Js => (format!("{}/js/install", sdk_shown(&args)), "./build"),
                Lang::C => (format!("{}/c/install", sdk_shown(&args)), "./build"),
            };
            println!(
                "made {shown}: a {} plugin for service \"{}\"",
                lang_name(args.lang),
                args.name
            );
            println!();
            println!("  cd {shown}");
            println!("  {install}      # once: the toolchain");
            println!("  {build}");
            println!(
                "  ./test         # builds, then runs it through orizuru check and orizuru call"
            );
            println!("  orizuru serve --config orizuru.toml");
            println!();
            println!("{shown}/README.md tells the rest: actions, capabilities, deploying.");
            ExitCode::SUCCESS
        }
        Err(sentence) => super::fail(sentence),
    }
}

fn sdk_shown(args: &Args) -> String {
    find_sdk(args.sdk.as_deref())
        .map(|sdk| sdk.display().to_string())
        .unwrap_or_default()
}

fn lang_name(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "Rust",
        Lang::Python => "Python",
        Lang::Js => "TypeScript",
        Lang::C => "C",
    }
}

/// Writes the project; its directory.
fn create(args: &Args) -> Result<PathBuf, String> {
    check_name(&args.name)?;
    let sdk = find_sdk(args.sdk.as_deref()).ok_or_else(|| {
        format!(
            "cannot find Orizuru's guest SDK{}; pass --sdk (or set ORIZURU_SDK) with the path of the guest-sdk folder of an Orizuru checkout",
            match &args.sdk {
                Some(given) => format!(" at {}", given.display()),
                None => String::new(),
            }
        )
    })?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() {
        let empty = std::fs::read_dir(&dir)
            .map(|mut entries| entries.next().is_none())
            .unwrap_or(false);
        if !empty {
            return Err(format!(
                "{} already exists and is not empty; pick another NAME, or --dir for an empty or new directory",
                dir.display()
            ));
        }
    }
    let files = match args.lang {
        Lang::Rust => RUST,
        Lang::Python => PYTHON,
        Lang::Js => JS,
        Lang::C => C,
    };
    let crate_name = args.name.replace('-', "_");
    let env = crate_name.to_uppercase();
    let sdk_text = sdk.display().to_string();
    for file in files {
        let text = file
            .text
            .replace("{{name}}", &args.name)
            .replace("{{crate}}", &crate_name)
            .replace("{{env}}", &env)
            .replace("{{sdk}}", &sdk_text);
        let path = dir.join(file.path);
        write(&path, &text, file.executable)
            .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
    }
    Ok(dir)
}

fn write(path: &Path, text: &str, executable: bool) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text)?;
    #[cfg(unix)]
    if executable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    }
    #[cfg(not(unix))]
    let _ = executable;
    Ok(())
}

/// tsuru's rule for service ids, which the name becomes.
fn check_name(name: &str) -> Result<(), String> {
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.len() <= 40;
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{name:?} cannot name a plugin: it becomes the tsuru service id, which is at most 40 lower-case letters, digits and '-', starting with a letter (like my-cache)"
        ))
    }
}

/// The SDK: the one given, or the checkout this binary was built from.
fn find_sdk(given: Option<&Path>) -> Option<PathBuf> {
    let candidate = match given {
        Some(path) => path.to_owned(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk"),
    };
    let sdk = std::fs::canonicalize(candidate).ok()?;
    sdk.join("wit/service.wit").is_file().then_some(sdk)
}
