//! A host in a process of its own, for the tests that kill one with
//! SIGKILL (`orizuru_tests::fleet::ProcessHost`): serves the config file
//! named by its one argument, as `orizuru serve --config` does, reading
//! `*_env` names from its environment, and prints
//! `test-host listening on http://ADDRESS` once it listens. Ends on Ctrl-C
//! or SIGTERM after its requests in flight, or at once on SIGKILL.

use std::path::PathBuf;
use std::process::ExitCode;

use orizuru::config::{Config, Overrides};
use orizuru_tests::fleet::LISTENING;

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("test-host: give the config file to serve: test-host CONFIG");
        return ExitCode::from(2);
    };
    let config = match Config::load(&path, &Overrides::default(), |name| {
        std::env::var(name).ok()
    }) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("test-host: {err}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("test-host: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("test-host: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let host = orizuru::Host::start(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|err| anyhow::anyhow!("cannot listen on {}: {err}", config.listen))?;
    // The harness reads this line to learn the port.
    println!("{LISTENING}http://{}", listener.local_addr()?);
    orizuru::serve(listener, host, async {
        tokio::signal::ctrl_c().await.ok();
    })
    .await?;
    Ok(())
}
