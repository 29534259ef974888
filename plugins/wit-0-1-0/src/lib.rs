//! A plugin built against `orizuru:service@0.1.0` itself: its bindings are
//! generated straight from `guest-sdk/wit/since_v0.1.0`, not through the
//! SDK, which moves on to later versions. The tests serve it to show that a
//! plugin built against 0.1.0 keeps loading and is answered as 0.1.0 says.
//!
//! The instance's name picks the answer, so one plugin shows each of the
//! version's answers: `taken` is refused as a conflict, `asks` for a
//! parameter, `slow` is pending, `odd` has a status of its own words.

wit_bindgen::generate!({
    path: "../../guest-sdk/wit/since_v0.1.0",
    world: "plugin",
});

use exports::orizuru::service::handler::Guest;
use orizuru::service::types::{
    AppBinding, Context, CreateRequest, Env, Error, InfoItem, Instance, InstanceStatus, JobBinding,
    Plan, Provisioned, ProxyRequest, ProxyResponse, UpdateRequest,
};

struct Frozen;

impl Guest for Frozen {
    fn plans(_ctx: Context) -> Result<Vec<Plan>, Error> {
        Ok(vec![Plan {
            name: "single".to_owned(),
            description: "the one plan of version 0.1.0".to_owned(),
        }])
    }

    fn create(req: CreateRequest) -> Result<Provisioned, Error> {
        let data = Some(format!("made by {}", req.context.user.unwrap_or_default()));
        match req.instance.name.as_str() {
            "taken" => Err(Error::Conflict(
                "instance \"taken\" is held by another team; pick another name".to_owned(),
            )),
            "asks" => Err(Error::MissingParams(vec!["size".to_owned()])),
            "slow" => Ok(Provisioned::Pending(data)),
            _ => Ok(Provisioned::Ready(data)),
        }
    }

    fn update(_req: UpdateRequest) -> Result<Provisioned, Error> {
        Err(Error::Unsupported)
    }

    fn remove(_inst: Instance, _ctx: Context) -> Result<(), Error> {
        Ok(())
    }

    fn info(inst: Instance, _ctx: Context) -> Result<Vec<InfoItem>, Error> {
        Ok(vec![
            InfoItem {
                label: "Data".to_owned(),
                value: inst.data.unwrap_or_default(),
            },
            InfoItem {
                label: "Parameters".to_owned(),
                value: inst.parameters,
            },
        ])
    }

    fn status(inst: Instance, _ctx: Context) -> Result<InstanceStatus, Error> {
        Ok(match inst.name.as_str() {
            "slow" => InstanceStatus::Pending("still provisioning".to_owned()),
            "odd" => InstanceStatus::Custom("in its own words".to_owned()),
            _ => InstanceStatus::Up,
        })
    }

    fn bind_app(inst: Instance, app: AppBinding) -> Result<Env, Error> {
        Ok(vec![
            ("FROZEN_INSTANCE".to_owned(), inst.name),
            ("FROZEN_APP".to_owned(), app.app_name),
            ("FROZEN_HOSTS".to_owned(), app.app_hosts.join(",")),
        ])
    }

    fn unbind_app(_inst: Instance, _app: AppBinding) -> Result<(), Error> {
        Ok(())
    }

    fn bind_job(inst: Instance, job: JobBinding) -> Result<Env, Error> {
        Ok(vec![
            ("FROZEN_INSTANCE".to_owned(), inst.name),
            ("FROZEN_JOB".to_owned(), job.job_name),
        ])
    }

    fn unbind_job(_inst: Instance, _job: JobBinding) -> Result<(), Error> {
        Ok(())
    }

    fn proxy(inst: Option<Instance>, req: ProxyRequest) -> Result<ProxyResponse, Error> {
        let whom = inst.map_or_else(|| "the service".to_owned(), |inst| inst.name);
        Ok(ProxyResponse {
            status: 200,
            headers: vec![("content-type".to_owned(), "text/plain".to_owned())],
            body: format!("{} {} reached {whom}", req.method, req.path).into_bytes(),
        })
    }
}

export!(Frozen);
