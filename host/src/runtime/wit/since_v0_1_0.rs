//! `orizuru:service@0.1.0` (`guest-sdk/wit/since_v0.1.0`): its bindings, the
//! host side of what its world imports, and one call per tsuru action that
//! converts the host's model into this version's types and the plugin's
//! answer back.
//!
//! The version is frozen, so this module only changes when the model does:
//! a plugin built against 0.1.0 must keep getting what 0.1.0 says.

use wasmtime::Store;
use wasmtime::component::{HasSelf, Linker};

use super::Answer;
use crate::model::{
    AppBinding, Context, InfoItem, Instance, JobBinding, Plan, Provisioned, ProxyRequest,
    ProxyResponse, Refusal, Status,
};
use crate::runtime::sandbox::Sandbox;

wasmtime::component::bindgen!({
    path: "../guest-sdk/wit/since_v0.1.0",
    world: "plugin",
    exports: { default: async },
});

use self::orizuru::service::types as wit;

// The types interface has no functions for the host to provide.
impl wit::Host for Sandbox {}

/// Links what this version's world imports from the host.
pub(super) fn add_to_linker(linker: &mut Linker<Sandbox>) -> wasmtime::Result<()> {
    Plugin::add_to_linker::<Sandbox, HasSelf<Sandbox>>(linker, |sandbox| sandbox)
}

pub(super) async fn plans(
    plugin: &Plugin,
    store: &mut Store<Sandbox>,
    context: Context,
) -> Answer<Vec<Plan>> {
    let ctx = to_context(context);
    let answer = handler(plugin).call_plans(store, &ctx).await;
    answered(answer, |plans| {
        plans
            .into_iter()
            .map(|plan| Plan {
                name: plan.name,
                description: plan.description,
            })
            .collect()
    })
}

pub(super) async fn create(
    plugin: &Plugin,
    store: &mut Store<Sandbox>,
    instance: Instance,
    context: Context,
) -> Answer<Provisioned> {
    let request = wit::CreateRequest {
        instance: to_instance(instance),
        context: to_context(context),
    };
    let answer = handler(plugin).call_create(store, &request).await;
    answered(answer, from_provisioned)
}

pub(super) async fn update(
    plugin: &Plugin,
    store: &mut Store<Sandbox>,
    current: Instance,
    next: Instance,
    context: Context,
) -> Answer<Provisioned> {
    let request = wit::UpdateRequest {
        current: to_instance(current),
        next: to_instance(next),
        context: to_context(context),
    };
    let answer = handler(plugin).call_update(store, &request).await;
    answered(answer, from_provisioned)
}

pub(super) async fn remove(
    plugin: &Plugin,
    store: &mut Store<Sandbox>,
    instance: Instance,
    context: Context,
) -> Answer<()> {
    let (inst, ctx) = (to_instance(instance), to_context(context));
    let answer = handler(plugin).call_remove(store, &inst, &ctx).await;
    answered(answer, |()| ())
}

pub(super) async fn info(
    plugin: &Plugin,
    store: &mut Store<Sandbox>,
    instance: Instance,
    context: Context,
) -> Answer<Vec<InfoItem>> {
    let (inst, ctx) = (to_instance(instance), to_context(context));
    let answer = handler(plugin).call_info(store, &inst, &ctx).await;
    answered(answer, |items| {
        items
            .into_iter()
            .map(|item| InfoItem {
                label: item.label,
                value: item.value,
            })
            .collect()
    })
}

pub(super) async fn status(
    plugin: &Plugin,
    store: &mut Store<Sandbox>,
    instance: Instance,
    context: Context,
) -> Answer<Status> {
    let (inst, ctx) = (to_instance(instance), to_context(context));
    let answer = handler(plugin).call_status(store, &inst, &ctx).await;
    answered(answer, |status| match status {
        wit::InstanceStatus::Up => Status::Up,
        wit::InstanceStatus::Pending(note) => Status::Pending(note),
        wit::InstanceStatus::Down(reason) => Status::Down(reason),
        wit::InstanceStatus::Custom(text) => Status::Custom(text),
    })
}

pub(super) async fn bind_app(
    plugin: &Plugin,
    store: &mut Store<Sandbox>,
    instance: Instance,
    app: AppBinding,
    context: Context,
) -> Answer<Vec<(String, String)>> {
    let (inst, app) = (to_instance(instance), to_app(app, context));
    let answer = handler(plugin).call_bind_app(store, &inst, &app).await;
    answered(answer, |vars| vars)
}

pub(super) async fn unbind_app(
    plugin: &Plugin,
    store: &mut Store<Sandbox>,
    instance: Instance,
    app: AppBinding,
    context: Context,
) -> Answer<()> {
    let (inst, app) = (to_instance(instance), to_app(app, context));
    let answer = handler(plugin).call_unbind_app(store, &inst, &app).await;
    answered(answer, |()| ())
}

pub(super) async fn bind_job(
    plugin: &Plugin,
    store: &mut Store<Sandbox>,
    instance: Instance,
    job: JobBinding,
    context: Context,
) -> Answer<Vec<(String, String)>> {
    let (inst, job) = (to_instance(instance), to_job(job, context));
    let answer = handler(plugin).call_bind_job(store, &inst, &job).await;
    answered(answer, |vars| vars)
}

pub(super) async fn unbind_job(
    plugin: &Plugin,
    store: &mut Store<Sandbox>,
    instance: Instance,
    job: JobBinding,
    context: Context,
) -> Answer<()> {
    let (inst, job) = (to_instance(instance), to_job(job, context));
    let answer = handler(plugin).call_unbind_job(store, &inst, &job).await;
    answered(answer, |()| ())
}

pub(super) async fn proxy(
    plugin: &Plugin,
    store: &mut Store<Sandbox>,
    instance: Option<Instance>,
    request: ProxyRequest,
    context: Context,
) -> Answer<ProxyResponse> {
    let inst = instance.map(to_instance);
    let req = wit::ProxyRequest {
        method: request.method,
        path: request.path,
        query: request.query,
        headers: request.headers,
        body: request.body,
        context: to_context(context),
    };
    let answer = handler(plugin).call_proxy(store, inst.as_ref(), &req).await;
    answered(answer, |response| ProxyResponse {
        status: response.status,
        headers: response.headers,
        body: response.body,
    })
}

fn handler(plugin: &Plugin) -> &exports::orizuru::service::handler::Guest {
    plugin.orizuru_service_handler()
}

/// The plugin's answer in the host's words: a trap stays the call's error,
/// a refusal becomes the host's [`Refusal`].
fn answered<W, T>(
    answer: wasmtime::Result<Result<W, wit::Error>>,
    convert: impl FnOnce(W) -> T,
) -> Answer<T> {
    Ok(answer?.map(convert).map_err(refusal))
}

fn to_context(context: Context) -> wit::Context {
    wit::Context {
        user: context.user,
        event_id: context.event_id,
        request_id: context.request_id,
        pool_name: context.pool_name,
        pool_provisioner: context.pool_provisioner,
        cluster_name: context.cluster_name,
        cluster_provisioner: context.cluster_provisioner,
        cluster_addresses: context.cluster_addresses,
        cluster_kube_config: context.cluster_kube_config,
    }
}

fn to_instance(instance: Instance) -> wit::Instance {
    wit::Instance {
        parameters: serde_json::Value::Object(instance.parameters).to_string(),
        name: instance.name,
        plan: instance.plan,
        team: instance.team,
        description: instance.description,
        tags: instance.tags,
        data: instance.data,
    }
}

fn to_app(app: AppBinding, context: Context) -> wit::AppBinding {
    wit::AppBinding {
        parameters: serde_json::Value::Object(app.parameters).to_string(),
        app_name: app.app_name,
        app_hosts: app.app_hosts,
        app_internal_hosts: app.app_internal_hosts,
        app_pool_name: app.app_pool_name,
        app_pool_provisioner: app.app_pool_provisioner,
        app_cluster_name: app.app_cluster_name,
        app_cluster_provisioner: app.app_cluster_provisioner,
        app_cluster_addresses: app.app_cluster_addresses,
        context: to_context(context),
    }
}

fn to_job(job: JobBinding, context: Context) -> wit::JobBinding {
    wit::JobBinding {
        job_name: job.job_name,
        job_pool_name: job.job_pool_name,
        job_cluster_name: job.job_cluster_name,
        context: to_context(context),
    }
}

fn from_provisioned(provisioned: wit::Provisioned) -> Provisioned {
    match provisioned {
        wit::Provisioned::Ready(data) => Provisioned::Ready(data),
        wit::Provisioned::Pending(data) => Provisioned::Pending(data),
    }
}

fn refusal(error: wit::Error) -> Refusal {
    match error {
        wit::Error::Invalid(sentence) => Refusal::Invalid(sentence),
        wit::Error::NotFound(sentence) => Refusal::NotFound(sentence),
        wit::Error::Conflict(sentence) => Refusal::Conflict(sentence),
        wit::Error::NotReady(sentence) => Refusal::NotReady(sentence),
        wit::Error::Failed(sentence) => Refusal::Failed(sentence),
        wit::Error::Unsupported => Refusal::Unsupported,
        wit::Error::MissingParams(names) => Refusal::MissingParams(names),
    }
}
