//! A plugin compiled from a wasm component: each call instantiates it afresh
//! from the cached `InstancePre` and converts between the host's model and
//! the WIT types of `orizuru:service@0.1.0`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use wasmtime::{Engine, PoolConcurrencyLimitError, Store, Trap};

use super::call_log::{CallTags, Redactor};
use super::capabilities::HostState;
use super::sandbox::{DeadlineExceeded, Limits, Sandbox};
use super::threads::GuestThreads;
use super::{Failure, Outcome, Plugin, Stop};
use crate::metrics::Metrics;
use crate::model::{
    AppBinding, Context, Env, InfoItem, Instance, JobBinding, Plan, Provisioned, ProxyRequest,
    ProxyResponse, Refusal, Status,
};

pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../guest-sdk/wit",
        world: "plugin",
        exports: { default: async },
    });
}

use bindings::orizuru::service::types as wit;

// The contract's types interface has no functions for the host to provide.
impl wit::Host for Sandbox {}

/// How long past its deadline a call parked in a host function may take to be cut.
const HOST_MARGIN: Duration = Duration::from_millis(50);

type Call<'a, W> =
    Pin<Box<dyn Future<Output = wasmtime::Result<Result<W, wit::Error>>> + Send + 'a>>;

/// A loaded plugin, ready to serve calls.
pub struct WasmPlugin {
    engine: Engine,
    pre: bindings::PluginPre<Sandbox>,
    limits: Limits,
    threads: Arc<GuestThreads>,
    capabilities: Arc<HostState>,
    metrics: Arc<Metrics>,
}

impl WasmPlugin {
    pub(super) fn new(
        engine: Engine,
        pre: bindings::PluginPre<Sandbox>,
        limits: Limits,
        threads: Arc<GuestThreads>,
        capabilities: Arc<HostState>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            engine,
            pre,
            limits,
            threads,
            capabilities,
            metrics,
        }
    }

    /// Runs one export in a fresh store and sorts out how it ended.
    ///
    /// The guest runs on a thread of its own ([`GuestThreads`]), never on
    /// the threads that serve HTTP: a plugin burning its whole deadline then
    /// costs the other services a share of the CPU, which the kernel hands
    /// out fairly, instead of a place in a queue behind it. Dropping the
    /// returned future (the client went away) cuts the call, as before.
    async fn run<W: Send + 'static, T>(
        &self,
        context: &Context,
        instance: Option<&str>,
        call: impl for<'a> FnOnce(&'a bindings::Plugin, &'a mut Store<Sandbox>) -> Call<'a, W>
        + Send
        + 'static,
        convert: impl FnOnce(W) -> Outcome<T>,
    ) -> Outcome<T> {
        // A place on the guest threads first: the deadline starts once the
        // plugin can start, and no call waits longer than the queue wait.
        let Some(place) = self
            .threads
            .place(&self.metrics, &self.limits.service)
            .await
        else {
            tracing::warn!(
                service = %self.limits.service,
                "call refused: every plugin instance of the host was in use for the whole queue wait (max_instances, queue_wait_ms)"
            );
            self.metrics.stop(&self.limits.service, Stop::Busy.reason());
            return Err(Failure::Stopped(Stop::Busy));
        };
        let started = Instant::now();
        let (engine, pre, limits) = (self.engine.clone(), self.pre.clone(), self.limits.clone());
        let metrics = self.metrics.clone();
        let tags = CallTags {
            request_id: context.request_id.clone(),
            event_id: context.event_id.clone(),
            instance: instance.map(str::to_owned),
        };
        // Dropped with this future, which ends the guest's call.
        let (_cut_when_dropped, cut) = tokio::sync::oneshot::channel::<()>();
        let guest = self.threads.run(place, async move {
            let begun = Instant::now();
            let mut store = Sandbox::store(&engine, &limits, tags);
            let mut phases = Phases::default();
            let running = async {
                phases.store = begun.elapsed();
                let instantiated = pre.instantiate_async(&mut store).await;
                phases.instantiate = begun.elapsed() - phases.store;
                let result = match instantiated {
                    Ok(plugin) => call(&plugin, &mut store).await,
                    Err(err) => Err(err),
                };
                phases.call = begun.elapsed() - phases.store - phases.instantiate;
                result
            };
            // The epoch deadline stops guest code; this one also stops a
            // call parked in a host function (a sleep, a poll), which
            // epochs cannot reach.
            let timed = tokio::time::timeout(limits.timeout + HOST_MARGIN, running);
            let result = tokio::select! {
                result = timed => match result {
                    Ok(result) => result,
                    Err(_elapsed) => Err(DeadlineExceeded.into()),
                },
                _ = cut => Err(wasmtime::Error::msg("the request was dropped")),
            };
            store.data().finish();
            let memory_hit = store.data().memory.hit;
            let released = Instant::now();
            drop(store);
            metrics.phases(&limits.service, phases.instantiate, phases.call);
            tracing::debug!(
                target: "orizuru::timing",
                service = %limits.service,
                store_us = phases.store.as_micros(),
                instantiate_us = phases.instantiate.as_micros(),
                call_us = phases.call.as_micros(),
                release_us = released.elapsed().as_micros(),
                "plugin call phases"
            );
            (result, memory_hit)
        });
        let (result, memory_hit) = match guest.await {
            Ok(ran) => ran,
            Err(err) => (
                Err(wasmtime::Error::msg(format!(
                    "the call's thread failed: {err}"
                ))),
                false,
            ),
        };
        match result {
            Ok(Ok(answer)) => convert(answer),
            Ok(Err(error)) => Err(Failure::Refused(refusal(error, &self.limits.redactor))),
            Err(err) => Err(Failure::Stopped(self.stopped(err, memory_hit, started))),
        }
    }

    /// Names why a call ended without an answer, and logs the detail.
    fn stopped(&self, err: wasmtime::Error, memory_hit: bool, started: Instant) -> Stop {
        let stop = if memory_hit {
            Stop::Memory(self.limits.memory_bytes)
        } else if err.downcast_ref::<DeadlineExceeded>().is_some()
            || started.elapsed() >= self.limits.timeout
        {
            Stop::Deadline(self.limits.timeout)
        } else if err.downcast_ref::<PoolConcurrencyLimitError>().is_some() {
            Stop::Busy
        } else if let Some(trap) = err.downcast_ref::<Trap>() {
            Stop::Trap(
                trap.to_string()
                    .trim_start_matches("wasm trap: ")
                    .to_owned(),
            )
        } else {
            Stop::Host(anyhow::anyhow!("{err:#}"))
        };
        self.metrics.stop(&self.limits.service, stop.reason());
        tracing::error!(
            service = %self.limits.service,
            reason = %stop,
            detail = format!("{err:?}"),
            "plugin call stopped"
        );
        stop
    }

    /// Plugin text shown to whoever reads the service or the instance in
    /// tsuru (plans, info, status), with the service's secrets blanked out.
    /// Env vars and proxied bodies are left whole: handing credentials to
    /// an app, or answering its own API, is what they are for.
    fn clean(&self, text: String) -> String {
        match self.limits.redactor.redact(&text) {
            std::borrow::Cow::Borrowed(_) => text,
            std::borrow::Cow::Owned(clean) => clean,
        }
    }

    fn contract(&self, what: String) -> Failure {
        tracing::error!(service = %self.limits.service, "plugin broke the contract: {what}");
        Failure::Stopped(Stop::Contract(format!(
            "its answer broke the contract: {what}"
        )))
    }

    fn env(&self, vars: Vec<(String, String)>) -> Outcome<Env> {
        let limits = &self.limits.answers;
        if vars.len() > limits.env_vars as usize {
            return Err(self.contract(format!(
                "it returned {} env vars, more than the {} its service allows (max_env_vars)",
                vars.len(),
                limits.env_vars
            )));
        }
        let bytes: usize = vars
            .iter()
            .map(|(name, value)| name.len() + value.len())
            .sum();
        if bytes as u64 > limits.env_bytes {
            return Err(self.contract(format!(
                "it returned {} KiB of env vars, more than the {} KiB its service allows (max_env_kb)",
                bytes.div_ceil(1024),
                limits.env_bytes / 1024
            )));
        }
        let mut env = Env::new();
        for (name, value) in vars {
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(self.contract(format!("{name:?} is not an env var name")));
            }
            if env.insert(name.clone(), value).is_some() {
                return Err(self.contract(format!("env var {name:?} is given twice")));
            }
        }
        Ok(env)
    }
}

#[async_trait]
impl Plugin for WasmPlugin {
    fn with_limits(
        &self,
        service: &crate::config::ServiceConfig,
    ) -> anyhow::Result<Option<Arc<dyn Plugin>>> {
        let component = self.pre.instance_pre().component();
        super::capabilities::check(
            &self.engine,
            component,
            &service.grants,
            "the plugin",
            &service.id,
        )
        .map_err(anyhow::Error::from)?;
        Ok(Some(Arc::new(Self {
            engine: self.engine.clone(),
            pre: self.pre.clone(),
            limits: Limits::of(service, &self.capabilities),
            threads: self.threads.clone(),
            capabilities: self.capabilities.clone(),
            metrics: self.metrics.clone(),
        })))
    }

    async fn plans(&self, context: Context) -> Outcome<Vec<Plan>> {
        let ctx = to_context(&context);
        self.run(
            &context,
            None,
            |plugin, store| {
                Box::pin(async move {
                    plugin
                        .orizuru_service_handler()
                        .call_plans(store, &ctx)
                        .await
                })
            },
            |plans| {
                Ok(plans
                    .into_iter()
                    .map(|plan| Plan {
                        name: self.clean(plan.name),
                        description: self.clean(plan.description),
                    })
                    .collect())
            },
        )
        .await
    }

    async fn create(&self, instance: Instance, context: Context) -> Outcome<Provisioned> {
        let request = wit::CreateRequest {
            instance: to_instance(&instance),
            context: to_context(&context),
        };
        self.run(
            &context,
            Some(&instance.name),
            |plugin, store| {
                Box::pin(async move {
                    plugin
                        .orizuru_service_handler()
                        .call_create(store, &request)
                        .await
                })
            },
            |provisioned| Ok(from_provisioned(provisioned)),
        )
        .await
    }

    async fn update(
        &self,
        current: Instance,
        next: Instance,
        context: Context,
    ) -> Outcome<Provisioned> {
        let request = wit::UpdateRequest {
            current: to_instance(&current),
            next: to_instance(&next),
            context: to_context(&context),
        };
        self.run(
            &context,
            Some(&current.name),
            |plugin, store| {
                Box::pin(async move {
                    plugin
                        .orizuru_service_handler()
                        .call_update(store, &request)
                        .await
                })
            },
            |provisioned| Ok(from_provisioned(provisioned)),
        )
        .await
    }

    async fn remove(&self, instance: Instance, context: Context) -> Outcome<()> {
        let (inst, ctx) = (to_instance(&instance), to_context(&context));
        self.run(
            &context,
            Some(&instance.name),
            |plugin, store| {
                Box::pin(async move {
                    plugin
                        .orizuru_service_handler()
                        .call_remove(store, &inst, &ctx)
                        .await
                })
            },
            Ok,
        )
        .await
    }

    async fn info(&self, instance: Instance, context: Context) -> Outcome<Vec<InfoItem>> {
        let (inst, ctx) = (to_instance(&instance), to_context(&context));
        self.run(
            &context,
            Some(&instance.name),
            |plugin, store| {
                Box::pin(async move {
                    plugin
                        .orizuru_service_handler()
                        .call_info(store, &inst, &ctx)
                        .await
                })
            },
            |items| {
                let allowed = self.limits.answers.info_items;
                if items.len() > allowed as usize {
                    return Err(self.contract(format!(
                        "it returned {} info items, more than the {allowed} its service allows (max_info_items)",
                        items.len()
                    )));
                }
                Ok(items
                    .into_iter()
                    .map(|item| InfoItem {
                        label: self.clean(item.label),
                        value: self.clean(item.value),
                    })
                    .collect())
            },
        )
        .await
    }

    async fn status(&self, instance: Instance, context: Context) -> Outcome<Status> {
        let (inst, ctx) = (to_instance(&instance), to_context(&context));
        self.run(
            &context,
            Some(&instance.name),
            |plugin, store| {
                Box::pin(async move {
                    plugin
                        .orizuru_service_handler()
                        .call_status(store, &inst, &ctx)
                        .await
                })
            },
            |status| {
                Ok(match status {
                    wit::InstanceStatus::Up => Status::Up,
                    wit::InstanceStatus::Pending(note) => Status::Pending(self.clean(note)),
                    wit::InstanceStatus::Down(reason) => Status::Down(self.clean(reason)),
                    wit::InstanceStatus::Custom(text) => Status::Custom(self.clean(text)),
                })
            },
        )
        .await
    }

    async fn bind_app(
        &self,
        instance: Instance,
        app: AppBinding,
        context: Context,
    ) -> Outcome<Env> {
        let (inst, app) = (to_instance(&instance), to_app(&app, &context));
        self.run(
            &context,
            Some(&instance.name),
            |plugin, store| {
                Box::pin(async move {
                    plugin
                        .orizuru_service_handler()
                        .call_bind_app(store, &inst, &app)
                        .await
                })
            },
            |vars| self.env(vars),
        )
        .await
    }

    async fn unbind_app(
        &self,
        instance: Instance,
        app: AppBinding,
        context: Context,
    ) -> Outcome<()> {
        let (inst, app) = (to_instance(&instance), to_app(&app, &context));
        self.run(
            &context,
            Some(&instance.name),
            |plugin, store| {
                Box::pin(async move {
                    plugin
                        .orizuru_service_handler()
                        .call_unbind_app(store, &inst, &app)
                        .await
                })
            },
            Ok,
        )
        .await
    }

    async fn bind_job(
        &self,
        instance: Instance,
        job: JobBinding,
        context: Context,
    ) -> Outcome<Env> {
        let (inst, job) = (to_instance(&instance), to_job(&job, &context));
        self.run(
            &context,
            Some(&instance.name),
            |plugin, store| {
                Box::pin(async move {
                    plugin
                        .orizuru_service_handler()
                        .call_bind_job(store, &inst, &job)
                        .await
                })
            },
            |vars| self.env(vars),
        )
        .await
    }

    async fn unbind_job(
        &self,
        instance: Instance,
        job: JobBinding,
        context: Context,
    ) -> Outcome<()> {
        let (inst, job) = (to_instance(&instance), to_job(&job, &context));
        self.run(
            &context,
            Some(&instance.name),
            |plugin, store| {
                Box::pin(async move {
                    plugin
                        .orizuru_service_handler()
                        .call_unbind_job(store, &inst, &job)
                        .await
                })
            },
            Ok,
        )
        .await
    }

    async fn proxy(
        &self,
        instance: Option<Instance>,
        request: ProxyRequest,
        context: Context,
    ) -> Outcome<ProxyResponse> {
        let inst = instance.as_ref().map(to_instance);
        let req = wit::ProxyRequest {
            method: request.method,
            path: request.path,
            query: request.query,
            headers: request.headers,
            body: request.body,
            context: to_context(&context),
        };
        self.run(
            &context,
            instance.as_ref().map(|instance| instance.name.as_str()),
            |plugin, store| {
                Box::pin(async move {
                    plugin
                        .orizuru_service_handler()
                        .call_proxy(store, inst.as_ref(), &req)
                        .await
                })
            },
            |response| {
                if !(100..=599).contains(&response.status) {
                    return Err(self.contract(format!("{} is not an HTTP status", response.status)));
                }
                let allowed = self.limits.answers.proxy_body_bytes;
                if response.body.len() as u64 > allowed {
                    return Err(self.contract(format!(
                        "it returned a body of {} KiB, more than the {} KiB its service allows (max_proxy_body_kb)",
                        response.body.len().div_ceil(1024),
                        allowed / 1024
                    )));
                }
                Ok(ProxyResponse {
                    status: response.status,
                    headers: response.headers,
                    body: response.body,
                })
            },
        )
        .await
    }
}

fn to_context(context: &Context) -> wit::Context {
    wit::Context {
        user: context.user.clone(),
        event_id: context.event_id.clone(),
        request_id: context.request_id.clone(),
        pool_name: context.pool_name.clone(),
        pool_provisioner: context.pool_provisioner.clone(),
        cluster_name: context.cluster_name.clone(),
        cluster_provisioner: context.cluster_provisioner.clone(),
        cluster_addresses: context.cluster_addresses.clone(),
        cluster_kube_config: context.cluster_kube_config.clone(),
    }
}

fn to_instance(instance: &Instance) -> wit::Instance {
    wit::Instance {
        name: instance.name.clone(),
        plan: instance.plan.clone(),
        team: instance.team.clone(),
        description: instance.description.clone(),
        tags: instance.tags.clone(),
        parameters: serde_json::Value::Object(instance.parameters.clone()).to_string(),
        data: instance.data.clone(),
    }
}

fn to_app(app: &AppBinding, context: &Context) -> wit::AppBinding {
    wit::AppBinding {
        app_name: app.app_name.clone(),
        app_hosts: app.app_hosts.clone(),
        app_internal_hosts: app.app_internal_hosts.clone(),
        app_pool_name: app.app_pool_name.clone(),
        app_pool_provisioner: app.app_pool_provisioner.clone(),
        app_cluster_name: app.app_cluster_name.clone(),
        app_cluster_provisioner: app.app_cluster_provisioner.clone(),
        app_cluster_addresses: app.app_cluster_addresses.clone(),
        parameters: serde_json::Value::Object(app.parameters.clone()).to_string(),
        context: to_context(context),
    }
}

fn to_job(job: &JobBinding, context: &Context) -> wit::JobBinding {
    wit::JobBinding {
        job_name: job.job_name.clone(),
        job_pool_name: job.job_pool_name.clone(),
        job_cluster_name: job.job_cluster_name.clone(),
        context: to_context(context),
    }
}

fn from_provisioned(provisioned: wit::Provisioned) -> Provisioned {
    match provisioned {
        wit::Provisioned::Ready(data) => Provisioned::Ready(data),
        wit::Provisioned::Pending(data) => Provisioned::Pending(data),
    }
}

/// The plugin's refusal, with any of its service's secrets blanked out:
/// its sentence reaches tsuru's user, the ledger and the log.
fn refusal(error: wit::Error, redactor: &Redactor) -> Refusal {
    let clean = |sentence: String| redactor.redact(&sentence).into_owned();
    match error {
        wit::Error::Invalid(sentence) => Refusal::Invalid(clean(sentence)),
        wit::Error::NotFound(sentence) => Refusal::NotFound(clean(sentence)),
        wit::Error::Conflict(sentence) => Refusal::Conflict(clean(sentence)),
        wit::Error::NotReady(sentence) => Refusal::NotReady(clean(sentence)),
        wit::Error::Failed(sentence) => Refusal::Failed(clean(sentence)),
        wit::Error::Unsupported => Refusal::Unsupported,
        wit::Error::MissingParams(names) => Refusal::MissingParams(names),
    }
}

/// Where one call's time went, for the `orizuru::timing` debug line: making
/// its store, instantiating the plugin, the call itself, and releasing the
/// instance (its memory returned to the pool).
#[derive(Default)]
struct Phases {
    store: Duration,
    instantiate: Duration,
    call: Duration,
}
