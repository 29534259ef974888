//! Uses the logging and config capabilities, for the tests: `create` logs
//! at every level (the secret too, which the host must blank out) and
//! `info` shows what the service's config holds.

use orizuru_sdk::{
    CreateRequest, Error, InfoItem, Instance, Provisioned, Result, Service, config, log,
};

struct Configured;

impl Service for Configured {
    fn create(request: CreateRequest) -> Result<Provisioned> {
        let name = &request.instance.name;
        let region = config::require("region")?;
        let token = config::require("token")?;
        log::debug(format!("creating {name}"));
        log::info(format!("creating {name} in {region} with token {token}"));
        log::warn(format!("{name} is a test instance"));
        if name == "leaky" {
            // A refusal that quotes the secret: tsuru's user must not see it.
            return Err(Error::failed(format!("the token {token} was refused")));
        }
        Ok(Provisioned::ready())
    }

    fn info(_instance: Instance, _context: orizuru_sdk::Context) -> Result<Vec<InfoItem>> {
        let all = config::all()?;
        let token = config::require("token")?;
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
