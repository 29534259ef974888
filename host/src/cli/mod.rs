//! The commands beside `serve`: what a plugin's author and an operator run
//! by hand or from scripts. Each prints what it found on stdout, a sentence
//! on stderr when it cannot, and exits 0 only when all went well.

pub mod call;
pub mod check;
pub mod instances;
pub mod new;
pub mod store;
pub mod template;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use orizuru::config::{Config, Overrides};

/// The configured service an operator's command is about.
#[derive(clap::Args)]
pub struct ConfiguredService {
    /// The service, by its id.
    #[arg(long, value_name = "ID")]
    pub service: String,
    /// The config file the host serves.
    #[arg(
        long,
        short,
        env = "ORIZURU_CONFIG",
        value_name = "FILE",
        default_value = "orizuru.toml"
    )]
    pub config: PathBuf,
}

/// Prints `orizuru: <sentence>` on stderr; exit code 1.
pub fn fail(sentence: impl std::fmt::Display) -> ExitCode {
    eprintln!("orizuru: {sentence}");
    ExitCode::FAILURE
}

/// A runtime for a command's async work.
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| format!("cannot start the async runtime: {err}"))
}

/// Reads a config file as `serve` does, looking passwords up in the environment.
pub fn load_config(path: &Path, overrides: &Overrides) -> Result<Config, String> {
    Config::load(path, overrides, |name| std::env::var(name).ok()).map_err(|err| err.to_string())
}

/// The one service of `config` named `id`, or its only one when no id is given.
pub fn pick_service<'a>(
    config: &'a Config,
    id: Option<&str>,
    path: &Path,
) -> Result<&'a orizuru::config::ServiceConfig, String> {
    let ids = || {
        config
            .services
            .iter()
            .map(|service| format!("\"{}\"", service.id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match id {
        Some(id) => config
            .services
            .iter()
            .find(|service| service.id == id)
            .ok_or_else(|| {
                if config.services.is_empty() {
                    format!(
                        "{} has no [[services]]; add one with id = \"{id}\"",
                        path.display()
                    )
                } else {
                    format!(
                        "{} has no service \"{id}\" (it has {}); pass one of those to --service",
                        path.display(),
                        ids()
                    )
                }
            }),
        None => match config.services.as_slice() {
            [only] => Ok(only),
            [] => Err(format!(
                "{} has no [[services]]; add one, or leave out --config",
                path.display()
            )),
            _ => Err(format!(
                "{} has several services ({}); pass the one you mean with --service",
                path.display(),
                ids()
            )),
        },
    }
}
