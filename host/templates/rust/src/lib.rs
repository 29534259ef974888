//! The tsuru service "{{name}}", as an Orizuru plugin.
//!
//! A starting point: tsuru's fake API, made slightly useful. It offers one
//! plan, takes one parameter, accepts every instance and tells each bound app
//! which instance it got. Every action not written here answers what the SDK
//! defaults to (see the `Service` trait); the capabilities a plugin may be
//! granted (logging, config and secrets, key-value, SQL, outbound HTTP) are
//! in the Orizuru README, "Writing a plugin" and "Capabilities".

use orizuru_sdk::{
    AppBinding, Context, CreateRequest, Env, Error, Instance, Plan, Provisioned, Result, Service,
};
use serde::{Deserialize, Serialize};

struct Plugin;

/// What `tsuru service instance add {{name}} NAME -p KEY=VALUE` may set.
/// tsuru sends every value as text; the SDK reads `-p size_mb=256` as a
/// number, and refuses `-p size_mb=lots` or an unknown key with a sentence
/// naming the parameter.
#[derive(Deserialize)]
struct Parameters {
    /// The size of the instance, in megabytes.
    #[serde(default = "default_size_mb")]
    size_mb: u64,
}

fn default_size_mb() -> u64 {
    64
}

/// What the plugin keeps with each instance; later calls get it back.
#[derive(Serialize, Deserialize)]
struct Data {
    size_mb: u64,
}

impl Service for Plugin {
    /// The plans `tsuru service info {{name}}` lists.
    fn plans(_context: Context) -> Result<Vec<Plan>> {
        Ok(vec![Plan::new("default", "The only plan, for now")])
    }

    /// A new instance: provision it here. Answer `Provisioned::pending()` when
    /// that finishes later.
    fn create(request: CreateRequest) -> Result<Provisioned> {
        let parameters: Parameters = request.instance.parameters_as()?;
        if !(1..=4096).contains(&parameters.size_mb) {
            return Err(Error::invalid(format!(
                "size_mb is {}; give a size from 1 to 4096 megabytes",
                parameters.size_mb
            )));
        }
        Provisioned::ready().with_data(&Data {
            size_mb: parameters.size_mb,
        })
    }

    /// The env vars an app bound to the instance gets.
    fn bind_app(instance: Instance, app: AppBinding) -> Result<Env> {
        Ok(Env::from([
            ("{{env}}_INSTANCE".to_owned(), instance.name),
            ("{{env}}_APP".to_owned(), app.app_name),
        ]))
    }
}

orizuru_sdk::export!(Plugin);
