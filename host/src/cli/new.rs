//! `orizuru new NAME --lang rust|python|js|c`: a plugin project that builds
//! with one command and tests itself through `orizuru check` and `call`.
//!
//! The templates are in `host/templates/<lang>/`, compiled into the binary.
//! A project depends on the SDK by name and version, as its ecosystem does
//! (`orizuru-sdk` on crates.io, PyPI and npm; `orizuru` in pkg-config); until
//! the SDKs are published it builds on a local checkout's, through the one
//! override its `.local` template files write.

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
    /// Build on the SDK of a local Orizuru checkout: its guest-sdk folder
    /// (default: the checkout this orizuru was built from, if it is still
    /// there). The project gets one override pointing at it, in its
    /// ecosystem's own way; its README says how to drop it.
    #[arg(
        long,
        env = "ORIZURU_SDK",
        value_name = "DIR",
        conflicts_with = "published_sdk"
    )]
    sdk: Option<PathBuf>,
    /// Depend on the published SDK only, with no override pointing at a checkout.
    #[arg(long)]
    published_sdk: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Lang {
    Rust,
    Python,
    Js,
    C,
}

/// The project templates, one folder per language. Every file is written,
/// with `{{name}}`, `{{crate}}`, `{{env}}`, `{{version}}` and `{{sdk}}`
/// filled in; a name ending in `.tmpl` loses that suffix (so the repository
/// never sees a second `Cargo.toml`), one ending in `.local` is written only
/// for a project on a local SDK checkout (it holds the ecosystem's override
/// that points at it, and replaces a file of the same name without the
/// suffix), and a file starting with `#!` is made executable.
static TEMPLATES: include_dir::Dir = include_dir::include_dir!("$CARGO_MANIFEST_DIR/templates");

/// The SDK version a new project depends on: the host's own, since the
/// host and the SDKs are released together.
const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn run(args: Args) -> ExitCode {
    match create(&args) {
        Ok((dir, sdk)) => {
            let shown = dir.display();
            let build = match args.lang {
                Lang::Rust => "cargo build --release",
                Lang::Python | Lang::Js | Lang::C => "./build",
            };
            println!(
                "made {shown}: a {} plugin for service \"{}\", on orizuru-sdk {SDK_VERSION}",
                lang_name(args.lang),
                args.name
            );
            match &sdk {
                Some(sdk) => println!("(from the local checkout {})", sdk.display()),
                None => println!("(as published; pass --sdk DIR to build on a local checkout)"),
            }
            println!();
            println!("  cd {shown}");
            println!("  {build}");
            println!(
                "  ./test         # builds, then runs it through orizuru check and orizuru call"
            );
            println!("  orizuru serve --config orizuru.toml");
            println!();
            println!(
                "{shown}/README.md tells the rest: what to install once, actions, capabilities, deploying."
            );
            ExitCode::SUCCESS
        }
        Err(sentence) => super::fail(sentence),
    }
}

fn lang_name(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "Rust",
        Lang::Python => "Python",
        Lang::Js => "TypeScript",
        Lang::C => "C",
    }
}

/// Writes the project; its directory, and the local SDK it builds on.
fn create(args: &Args) -> Result<(PathBuf, Option<PathBuf>), String> {
    check_name(&args.name)?;
    let sdk = if args.published_sdk {
        None
    } else {
        match &args.sdk {
            Some(given) => Some(local_sdk(given).ok_or_else(|| {
                format!(
                    "{} is not the guest-sdk folder of an Orizuru checkout (it has no {SDK_MARK}); pass --sdk with that folder's path, or --published-sdk",
                    given.display()
                )
            })?),
            None => local_sdk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk")),
        }
    };
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
    let template = TEMPLATES
        .get_dir(lang_folder(args.lang))
        .ok_or_else(|| format!("this orizuru carries no {} template", lang_name(args.lang)))?;
    let crate_name = args.name.replace('-', "_");
    let env = crate_name.to_uppercase();
    let sdk_text = sdk
        .as_ref()
        .map(|sdk| sdk.display().to_string())
        .unwrap_or_default();
    // Where each file goes; a `.local` file replaces the published variant
    // of the same file.
    let mut chosen = std::collections::BTreeMap::new();
    for file in files(template) {
        let Some((target, local)) = target_path(file.path(), template.path(), sdk.is_some()) else {
            continue;
        };
        if local || !chosen.contains_key(&target) {
            chosen.insert(target, file);
        }
    }
    for (target, file) in &chosen {
        let text = file.contents_utf8().ok_or_else(|| {
            format!(
                "the template file {} is not text; this orizuru was built wrong",
                file.path().display()
            )
        })?;
        let text = text
            .replace("{{name}}", &args.name)
            .replace("{{crate}}", &crate_name)
            .replace("{{env}}", &env)
            .replace("{{version}}", SDK_VERSION)
            .replace("{{sdk}}", &sdk_text);
        let path = dir.join(target);
        write(&path, &text, text.starts_with("#!"))
            .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
    }
    Ok((dir, sdk))
}

fn lang_folder(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "rust",
        Lang::Python => "python",
        Lang::Js => "js",
        Lang::C => "c",
    }
}

/// Every file of a template folder, however deep.
fn files<'a>(dir: &'a include_dir::Dir<'a>) -> Vec<&'a include_dir::File<'a>> {
    let mut found: Vec<_> = dir.files().collect();
    for sub in dir.dirs() {
        found.extend(files(sub));
    }
    found
}

/// Where a template file goes in the project, and whether it is an override
/// (`.local`); `None` when it is one and the project is on the published SDK.
fn target_path(path: &Path, template: &Path, local: bool) -> Option<(PathBuf, bool)> {
    let relative = path.strip_prefix(template).unwrap_or(path);
    let name = relative.file_name()?.to_str()?;
    let (name, is_override) = match name.strip_suffix(".local") {
        Some(stem) => (stem, true),
        None => (name, false),
    };
    let name = name.strip_suffix(".tmpl").unwrap_or(name);
    (local || !is_override).then(|| (relative.with_file_name(name), is_override))
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

/// What only the guest-sdk folder of a checkout holds: the first WIT version.
const SDK_MARK: &str = "wit/since_v0.1.0/service.wit";

/// `candidate` as the guest-sdk folder of a checkout, if it is one.
fn local_sdk(candidate: &Path) -> Option<PathBuf> {
    let sdk = std::fs::canonicalize(candidate).ok()?;
    sdk.join(SDK_MARK).is_file().then_some(sdk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_are_written_only_for_a_local_sdk() {
        let template = Path::new("rust");
        let config = Path::new("rust/.cargo/config.toml.local");
        assert_eq!(
            target_path(config, template, true),
            Some((PathBuf::from(".cargo/config.toml"), true))
        );
        assert_eq!(target_path(config, template, false), None);
        assert_eq!(
            target_path(Path::new("rust/Cargo.toml.tmpl"), template, false),
            Some((PathBuf::from("Cargo.toml"), false))
        );
        assert_eq!(
            target_path(Path::new("rust/src/lib.rs"), template, true),
            Some((PathBuf::from("src/lib.rs"), false))
        );
    }

    #[test]
    fn every_language_has_a_template_with_a_test() {
        for lang in [Lang::Rust, Lang::Python, Lang::Js, Lang::C] {
            let template = TEMPLATES.get_dir(lang_folder(lang)).expect("a template");
            let test = files(template)
                .into_iter()
                .find(|file| file.path().ends_with("test"))
                .expect("a ./test");
            assert!(
                test.contents_utf8()
                    .is_some_and(|text| text.starts_with("#!"))
            );
        }
    }
}
