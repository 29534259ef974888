//! The "fake api" of tsuru's "Building your service" guide: every instance
//! is accepted, and every app bound to one gets `SOMEVAR=somevalue`.

use orizuru_sdk::{AppBinding, Env, Instance, Result, Service};

struct Fake;

impl Service for Fake {
    fn bind_app(_instance: Instance, _app: AppBinding) -> Result<Env> {
        Ok(Env::from([("SOMEVAR".to_owned(), "somevalue".to_owned())]))
    }
}

orizuru_sdk::export!(Fake);
