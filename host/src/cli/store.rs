//! `orizuru store migrate`: from one host on the embedded store to several
//! on the shared one. The copying is `orizuru::store::migrate`; this file
//! reads where from and where to.
//!
//! The store's URL holds a password, so it is never a flag's value (that
//! would put it in `ps` and the shell's history): it is read from an
//! environment variable or a file, as `[store]` reads it.

use std::path::PathBuf;
use std::process::ExitCode;

use orizuru::config::Overrides;
use orizuru::setting::Secret;
use orizuru::store::StoreSettings;
use orizuru::store::postgres::Postgres;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Copy a host's data_dir (ledger, keys, kept plugins) into the shared PostgreSQL store.
    ///
    /// Stop the host first: a data_dir a host serves from is refused. The
    /// SQLite files are read, not changed, and stay in place. Everything is
    /// copied in one transaction; it prints, per table, the rows in the
    /// source, copied and already there, and exits 0 only when every row of
    /// the source is in the store.
    ///
    /// Running it again is safe: rows already there are left alone. A row the
    /// store has under the same key with other content (the store is in use,
    /// or changed since an earlier copy) is a conflict: all are listed,
    /// nothing is copied, and it exits 1. A kept plugin whose bytes do not
    /// match its sha256 is listed and left out; the rest is copied; exit 1.
    ///
    /// The URL is read from an environment variable or a file, never from a
    /// flag; with --config, from that file's [store] (and --from defaults to
    /// its data_dir).
    ///
    /// Examples:
    ///
    ///   orizuru store migrate --config orizuru.toml
    ///
    ///   read -rs ORIZURU_STORE_URL && export ORIZURU_STORE_URL
    ///
    ///   orizuru store migrate --from /var/lib/orizuru --to-env ORIZURU_STORE_URL
    Migrate(MigrateArgs),
}

#[derive(clap::Args)]
struct MigrateArgs {
    /// The data_dir to copy from; the config's `data_dir` unless given.
    #[arg(long, value_name = "DIR")]
    from: Option<PathBuf>,
    /// Read the store's URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE)
    /// from this environment variable.
    #[arg(long, value_name = "NAME", conflicts_with = "to_file")]
    to_env: Option<String>,
    /// Read the store's URL from this file (its first line).
    #[arg(long, value_name = "PATH")]
    to_file: Option<PathBuf>,
    /// The config file of the hosts: its [store] is where to copy to (unless
    /// --to-env or --to-file says), its data_dir where from (unless --from says).
    #[arg(long, short, env = "ORIZURU_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
}

pub fn run(args: Args) -> ExitCode {
    match args.command {
        Command::Migrate(args) => migrate(args),
    }
}

fn migrate(args: MigrateArgs) -> ExitCode {
    let (from, settings) = match where_from_and_to(args) {
        Ok(found) => found,
        Err(sentence) => return super::fail(sentence),
    };
    let runtime = match super::runtime() {
        Ok(runtime) => runtime,
        Err(sentence) => return super::fail(sentence),
    };
    let report = runtime.block_on(async {
        let store = Postgres::open(&settings).await?;
        orizuru::store::migrate::migrate(&from, &store).await
    });
    match report {
        Ok(report) => {
            print!("{report}");
            match report.failure() {
                None => ExitCode::SUCCESS,
                Some(sentence) => super::fail(sentence),
            }
        }
        Err(err) => super::fail(format!("{err:#}")),
    }
}

/// The data_dir and the store, from the flags and, for what they leave
/// out, the config file.
fn where_from_and_to(args: MigrateArgs) -> Result<(PathBuf, StoreSettings), String> {
    let flagged = match (&args.to_env, &args.to_file) {
        (Some(name), _) => Some(from_env(name)?),
        (None, Some(path)) => Some(from_file(path)?),
        (None, None) => None,
    };
    if let (Some(from), Some(settings)) = (&args.from, &flagged) {
        return Ok((from.clone(), settings.clone()));
    }
    let Some(path) = &args.config else {
        return Err(match flagged {
            None => "say where to copy to: --to-env NAME or --to-file PATH (a variable or file holding the store's URL), or --config FILE with a [store] table".into(),
            Some(_) => "say where to copy from: --from DIR (the host's data_dir), or --config FILE".into(),
        });
    };
    let overrides = Overrides {
        listen: None,
        data_dir: args.from.clone(),
    };
    let config = super::load_config(path, &overrides)?;
    let settings = match (flagged, config.store) {
        (Some(settings), _) | (None, Some(settings)) => settings,
        (None, None) => {
            return Err(format!(
                "{} has no [store] table; add one (url_env or url_file), or pass --to-env NAME or --to-file PATH",
                path.display()
            ));
        }
    };
    Ok((config.data_dir, settings))
}

fn from_env(name: &str) -> Result<StoreSettings, String> {
    let url = std::env::var(name)
        .ok()
        .filter(|url| !url.is_empty())
        .ok_or_else(|| {
            format!(
                "--to-env {name}: the environment variable {name} is not set or empty; set it to the store's URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE)"
            )
        })?;
    settings(url, format!("--to-env {name}"))
}

fn from_file(path: &std::path::Path) -> Result<StoreSettings, String> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        format!(
            "--to-file {}: the file cannot be read ({err}); write the store's URL in it",
            path.display()
        )
    })?;
    let url = text.lines().next().unwrap_or_default().trim().to_owned();
    settings(url, format!("--to-file {}", path.display()))
}

fn settings(url: String, from: String) -> Result<StoreSettings, String> {
    // The parser's message may quote a character of the password: not passed on.
    if url.parse::<tokio_postgres::Config>().is_err() {
        return Err(format!(
            "{from}: the URL is not one PostgreSQL reads; write it as postgres://USER:PASSWORD@HOST:PORT/DATABASE"
        ));
    }
    Ok(StoreSettings {
        url: Secret::new(url),
        url_from: from,
        pool_size: 2,
        host_id: "orizuru store migrate".into(),
    })
}
