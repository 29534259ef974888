//! Uses the logging and config capabilities, for the tests: `create` logs
//! at every level (the secret too, which the host must blank out) and
//! `info` shows what the service's config holds. An instance named
//! `shown` puts the secret in every text tsuru shows (plans, info, status),
//! and creating `straddle` writes it across the places the host cuts a log
//! line (a long stdout line, the stdout budget, a long wasi:logging context).

use std::io::Write as _;

use orizuru_sdk::__private::bindings::wasi::logging::logging::{Level, log as log_with_context};
use orizuru_sdk::{
    Context, CreateRequest, Error, InfoItem, Instance, Plan, Provisioned, Result, Service, Status,
    config, log,
};

struct Configured;

/// What one call may write to a stream before the host drops the rest.
const STDOUT_BUDGET: usize = 64 * 1024;
/// Where the host cuts a long line.
const LINE_CUT: usize = 4 * 1024;

impl Service for Configured {
    fn plans(_context: Context) -> Result<Vec<Plan>> {
        let token = config::require("token")?;
        Ok(vec![Plan::new("standard", format!("uses token {token}"))])
    }

    fn status(instance: Instance, _context: Context) -> Result<Status> {
        if instance.name == "shown" {
            let token = config::require("token")?;
            return Ok(Status::Custom(format!("serving with token {token}")));
        }
        Ok(Status::Up)
    }

    fn create(request: CreateRequest) -> Result<Provisioned> {
        let name = &request.instance.name;
        let region = config::require("region")?;
        let token = config::require("token")?;
        log::debug(format!("creating {name}"));
        log::info(format!("creating {name} in {region} with token {token}"));
        log::warn(format!("{name} is a test instance"));
        if name == "straddle" {
            // Starts 5 bytes before the cut of a long line.
            let line = format!("{}{token}\n", "a".repeat(LINE_CUT - 5));
            // Starts 5 bytes before the end of the stream's budget.
            let cut = format!("{}{token}", "b".repeat(STDOUT_BUDGET - line.len() - 5));
            let mut stdout = std::io::stdout();
            stdout
                .write_all(line.as_bytes())
                .and_then(|()| stdout.write_all(cut.as_bytes()))
                .and_then(|()| stdout.flush())
                .map_err(|err| Error::failed(format!("cannot print: {err}")))?;
            log_with_context(
                Level::Info,
                &format!("{}{token}", "c".repeat(300)),
                "a line with a long context",
            );
        }
        if name == "leaky" {
            // A refusal that quotes the secret: tsuru's user must not see it.
            return Err(Error::failed(format!("the token {token} was refused")));
        }
        Ok(Provisioned::ready())
    }

    fn info(instance: Instance, _context: Context) -> Result<Vec<InfoItem>> {
        let all = config::all()?;
        let token = config::require("token")?;
        if instance.name == "shown" {
            return Ok(vec![InfoItem::new("Token", token)]);
        }
        Ok(vec![
            InfoItem::new("Region", config::require("region")?),
            InfoItem::new(
                "Tier",
                config::get("tier")?.unwrap_or_else(|| "standard".into()),
            ),
            InfoItem::new("Token length", token.len().to_string()),
            InfoItem::new("Keys", all.keys().cloned().collect::<Vec<_>>().join(",")),
        ])
    }
}

orizuru_sdk::export!(Configured);
