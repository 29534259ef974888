//! The `orizuru` command.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

mod cli;

use clap::{Parser, Subcommand, ValueEnum};
use orizuru::config::{Config, Overrides, PasswordSource};
use tracing_subscriber::EnvFilter;

/// A WebAssembly plugin host for tsuru service APIs.
///
/// Orizuru serves tsuru's service API over HTTP and forwards each action
/// (create, bind, status, ...) to a sandboxed wasm component per service.
#[derive(Parser)]
#[command(version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the services of a config file until Ctrl-C or SIGTERM.
    Serve(ServeArgs),
    /// Start a plugin project in a new directory, in Rust, Python, JavaScript/TypeScript or C.
    ///
    /// The project builds with one command and comes with a test that runs
    /// the built plugin through `orizuru check` and `orizuru call`.
    New(cli::new::Args),
    /// Check that a wasm file is a plugin this host can serve.
    ///
    /// Prints the contract version it exports, the capabilities it imports
    /// (and the config key that grants each), its size and how long it took
    /// to compile. Exits 0 when it is a valid plugin, 1 when it is not.
    Check(cli::check::Args),
    /// Run one action of a plugin, without a server, and print what tsuru would see.
    ///
    /// The request goes through the same code as tsuru's would (routes,
    /// decoding, ledger, sandbox, limits), on a throw-away ledger unless
    /// --data-dir names one. On a throw-away ledger the instance an action
    /// names (and the app or job an unbind names) is recorded first, so
    /// any action can be tried alone. Exits 0 when the answer is a 2xx.
    ///
    /// Examples:
    ///
    ///   orizuru call plugin.wasm plans
    ///
    ///   orizuru call plugin.wasm create --instance db1 --plan small --param size=10
    ///
    ///   orizuru call plugin.wasm bind-app --instance db1 --app web
    Call(cli::call::Args),
    /// Print the tsuru manifest of a configured service, for `tsuru service-create`.
    ///
    /// Example:
    ///
    ///   orizuru template --service queue --config orizuru.toml --public-url https://orizuru.example.com > manifest.yaml
    ///
    ///   tsuru service-create manifest.yaml
    Template(cli::template::Args),
    /// List a service's instances, their bindings and recent events, from the ledger.
    Instances(cli::instances::Args),
    /// Work on the shared store: `orizuru store migrate` copies a host's data_dir into it.
    Store(cli::store::Args),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The TOML config file: listen, data_dir, admin_token_env and [[services]].
    /// It is watched: a change to it, or to a plugin file it names, is applied
    /// while serving (set `watch = false` to turn that off).
    #[arg(long, short, env = "ORIZURU_CONFIG", value_name = "FILE")]
    config: PathBuf,
    /// Listen here instead of the config's `listen`.
    #[arg(long, env = "ORIZURU_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Keep the ledger here instead of the config's `data_dir`.
    #[arg(long, env = "ORIZURU_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// How log lines are written.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "ORIZURU_LOG_FORMAT")]
    log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::New(args) => cli::new::run(args),
        Command::Check(args) => cli::check::run(args),
        Command::Call(args) => cli::call::run(args),
        Command::Template(args) => cli::template::run(args),
        Command::Instances(args) => cli::instances::run(args),
        Command::Store(args) => cli::store::run(args),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    init_tracing(args.log_format);
    let overrides = Overrides {
        listen: args.listen,
        data_dir: args.data_dir,
    };
    let config = match Config::load(&args.config, &overrides, |name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("orizuru: {err}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("orizuru: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(config));
    // Requests cut at the drain timeout may still hold threads; do not wait for them.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("orizuru: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let host = orizuru::Host::start(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|err| anyhow::anyhow!("cannot listen on {}: {err}", config.listen))?;
    let address = listener.local_addr()?;
    println!(
        "orizuru is serving {} service(s) at http://{address}",
        host.registry.all().len()
    );
    for service in host.registry.all() {
        let config = service.config();
        let password = match &config.password_source {
            PasswordSource::ConfigFile => format!("password \"{}\"", config.password.expose()),
            PasswordSource::Environment(name) => format!("password from ${name}"),
            PasswordSource::AdminApi => "password given when it was added".to_owned(),
        };
        println!(
            "  {:<12} endpoint http://{address}/services/{}  (username \"{}\", {password})",
            config.id, config.id, config.username
        );
    }
    match &config.admin {
        Some(admin) => {
            let token = match &admin.source {
                PasswordSource::Environment(name) => format!("token from ${name}"),
                _ => format!("token \"{}\"", admin.token.expose()),
            };
            println!("  admin API    http://{address}/admin/services  (bearer {token})");
        }
        None => println!(
            "  admin API    off: set admin_token_env (or admin_token) in the config to upload plugins and roll back"
        ),
    }
    match &config.store {
        Some(store) => println!(
            "  store        shared, PostgreSQL ([store] {}), as host \"{}\"",
            store.url_from, store.host_id
        ),
        None => println!("  store        embedded, in {}", config.data_dir.display()),
    }
    let drained = orizuru::serve(listener, host, shutdown_signal()).await?;
    if drained.cut.is_empty() {
        tracing::info!("stopped: every request in flight was answered");
    }
    Ok(())
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,cranelift_codegen=warn,wasmtime_cranelift=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {err}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!("cannot listen for SIGTERM: {err}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("Ctrl-C: finishing the requests in flight"),
        () = terminate => tracing::info!("SIGTERM: finishing the requests in flight"),
    }
}
