//! Keeps its own record of what it provisioned, in the host's key-value
//! store, for the tests that check the ledger against the plugin's view:
//! `instance:NAME` for every instance it created and has not removed,
//! `binding:NAME:APP` for every app bound to one. Each change takes
//! `delay_ms` (an instance parameter), half before its record and half
//! after, so a client cutting its connection can land in the middle.
//! A service-level proxied `GET` answers every key it holds, as JSON.

use std::time::Duration;

use orizuru_sdk::kv::Bucket;
use orizuru_sdk::{
    AppBinding, Context, CreateRequest, Env, Error, Instance, Provisioned, ProxyRequest,
    ProxyResponse, Result, Service,
};

struct Bookkeeper;

#[derive(serde::Deserialize, Default)]
struct Parameters {
    delay_ms: Option<u64>,
    /// Refuses the create after its first half, having recorded nothing.
    fail: Option<bool>,
}

fn parameters(instance: &Instance) -> Result<Parameters> {
    instance.parameters_as()
}

fn books() -> Result<Bucket> {
    Bucket::open("books")
}

/// Half of the instance's delay.
fn pause(instance: &Instance) -> Result<()> {
    let delay = parameters(instance)?.delay_ms.unwrap_or(0);
    std::thread::sleep(Duration::from_millis(delay / 2));
    Ok(())
}

impl Service for Bookkeeper {
    fn create(request: CreateRequest) -> Result<Provisioned> {
        let instance = &request.instance;
        let asked = parameters(instance)?;
        pause(instance)?;
        if asked.fail == Some(true) {
            return Err(Error::invalid(format!(
                "instance \"{}\" was asked to fail",
                instance.name
            )));
        }
        let key = format!("instance:{}", instance.name);
        if books()?.exists(&key)? {
            return Err(Error::conflict(format!(
                "the bookkeeper already holds instance \"{}\"",
                instance.name
            )));
        }
        books()?.set(&key, "created")?;
        pause(instance)?;
        Ok(Provisioned::ready())
    }

    fn remove(instance: Instance, _context: Context) -> Result<()> {
        pause(&instance)?;
        let books = books()?;
        let prefix = format!("binding:{}:", instance.name);
        for key in books.keys()? {
            if key.starts_with(&prefix) {
                books.delete(&key)?;
            }
        }
        books.delete(&format!("instance:{}", instance.name))?;
        pause(&instance)
    }

    fn bind_app(instance: Instance, app: AppBinding) -> Result<Env> {
        pause(&instance)?;
        if !books()?.exists(&format!("instance:{}", instance.name))? {
            return Err(Error::failed(format!(
                "the bookkeeper holds no instance \"{}\" to bind",
                instance.name
            )));
        }
        books()?.set(
            &format!("binding:{}:{}", instance.name, app.app_name),
            "bound",
        )?;
        pause(&instance)?;
        Ok(Env::from([("BOOK".to_owned(), instance.name)]))
    }

    fn unbind_app(instance: Instance, app: AppBinding) -> Result<()> {
        pause(&instance)?;
        books()?.delete(&format!("binding:{}:{}", instance.name, app.app_name))?;
        pause(&instance)
    }

    fn proxy(instance: Option<Instance>, _request: ProxyRequest) -> Result<ProxyResponse> {
        if instance.is_some() {
            return Err(Error::Unsupported);
        }
        let keys = books()?.keys()?;
        let body = serde_json::to_vec(&keys)
            .map_err(|err| Error::failed(format!("cannot write the books: {err}")))?;
        Ok(ProxyResponse::new(200, body))
    }
}

orizuru_sdk::export!(Bookkeeper);
