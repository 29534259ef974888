//! The tsuru service "{{name}}", as an Orizuru plugin.
//!
//! A starting point: tsuru's fake API, made slightly useful. It offers one
//! plan, accepts every instance and tells each bound app which instance it
//! got. Every action not written here answers what the SDK defaults to (see
//! the `Service` trait); the capabilities a plugin may be granted (logging,
//! config and secrets, key-value, SQL, outbound HTTP) are in the Orizuru
//! README, "Writing a plugin" and "Capabilities".

use orizuru_sdk::{
    AppBinding, Context, CreateRequest, Env, Instance, Plan, Provisioned, Result, Service,
};

struct Plugin;

impl Service for Plugin {
    /// The plans `tsuru service info {{name}}` lists.
    fn plans(_context: Context) -> Result<Vec<Plan>> {
        Ok(vec![Plan::new("default", "The only plan, for now")])
    }

    /// A new instance: provision it here. Answer `Provisioned::pending()` when
    /// that finishes later, and `.with_data(&state)` for what later calls need.
    fn create(_request: CreateRequest) -> Result<Provisioned> {
        Ok(Provisioned::ready())
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
