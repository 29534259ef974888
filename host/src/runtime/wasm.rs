//! A plugin compiled from a wasm component: each call instantiates it afresh
//! from the cached `InstancePre` in a fresh store (or takes an idle instance
//! of its own service, when the service opts in to reuse), under its
//! deadline, on a guest thread, and sorts out how it ended. What the call passes and
//! answers is in the model's words; the WIT version the plugin speaks is
//! [`super::wit`]'s business. The answer is then held to the service's
//! limits, and the text tsuru shows is cleaned of its secrets.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::{Engine, PoolConcurrencyLimitError, Store, Trap};

use super::sandbox::{DeadlineExceeded, Limits, Sandbox};
use super::threads::GuestThreads;
use super::wit::{self, Answer};
use super::{Failure, Outcome, Plugin, Stop};
use crate::call_log::CallTags;
use crate::capabilities::HostState;
use crate::config::Reuse;
use crate::metrics::Metrics;
use crate::model::{
    AppBinding, Context, Env, InfoItem, Instance, JobBinding, Plan, Provisioned, ProxyRequest,
    ProxyResponse, Refusal, Status,
};

/// How long past its deadline a call parked in a host function may take to be cut.
const HOST_MARGIN: Duration = Duration::from_millis(50);

type Call<'a, W> = Pin<Box<dyn Future<Output = Answer<W>> + Send + 'a>>;

/// A loaded plugin, ready to serve calls.
pub struct WasmPlugin {
    engine: Engine,
    pre: wit::PluginPre,
    limits: Limits,
    threads: Arc<GuestThreads>,
    capabilities: Arc<HostState>,
    metrics: Arc<Metrics>,
    /// The instances kept between calls, when the service opts in.
    warm: Option<Arc<Warm>>,
}

impl WasmPlugin {
    pub(super) fn new(
        engine: Engine,
        pre: wit::PluginPre,
        limits: Limits,
        threads: Arc<GuestThreads>,
        capabilities: Arc<HostState>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            warm: Warm::of(&limits, &threads),
            engine,
            pre,
            limits,
            threads,
            capabilities,
            metrics,
        }
    }

    /// Runs one export in a fresh store (or, for a service that reuses
    /// instances, in an idle instance's) and sorts out how it ended.
    ///
    /// The guest runs on a thread of its own ([`GuestThreads`]), never on
    /// the threads that serve HTTP: a plugin burning its whole deadline then
    /// costs the other services a share of the CPU, which the kernel hands
    /// out fairly, instead of a place in a queue behind it. Dropping the
    /// returned future (the client went away) cuts the call, as before.
    async fn run<W: Send + 'static>(
        &self,
        tags: CallTags,
        call: impl for<'a> FnOnce(&'a wit::Plugin, &'a mut Store<Sandbox>) -> Call<'a, W>
        + Send
        + 'static,
    ) -> Outcome<W> {
        // A place on the guest threads first: the deadline starts once the
        // plugin can start, and no call waits longer than the queue wait.
        let Some(place) = self
            .threads
            .place(&self.metrics, &self.limits.service)
            .await
        else {
            tracing::warn!(
                service = %self.limits.service,
                "call refused: every plugin instance of the host was in use for the whole queue wait (max_concurrent_calls, queue_wait_ms)"
            );
            self.metrics.stop(&self.limits.service, Stop::Busy.reason());
            return Err(Failure::Stopped(Stop::Busy));
        };
        let started = Instant::now();
        let (engine, pre, limits) = (self.engine.clone(), self.pre.clone(), self.limits.clone());
        let (metrics, warm) = (self.metrics.clone(), self.warm.clone());
        // Dropped with this future, which ends the guest's call.
        let (_cut_when_dropped, cut) = tokio::sync::oneshot::channel::<()>();
        let guest = self.threads.run(place, async move {
            let begun = Instant::now();
            let kept = warm.as_ref().and_then(|warm| warm.take());
            let (mut store, kept) = match kept {
                Some(Idle {
                    mut store,
                    plugin,
                    served,
                    born,
                    ..
                }) => {
                    Sandbox::renew(&mut store, &limits, tags);
                    (store, Some((plugin, served, born)))
                }
                None => (Sandbox::store(&engine, &limits, tags), None),
            };
            let mut phases = Phases::default();
            let running = async {
                phases.store = begun.elapsed();
                let (plugin, served, born) = match kept {
                    Some(kept) => kept,
                    None => match pre.instantiate(&mut store).await {
                        Ok(plugin) => (plugin, 0, Instant::now()),
                        Err(err) => return (Err(err), None),
                    },
                };
                phases.instantiate = begun.elapsed() - phases.store;
                let result = call(&plugin, &mut store).await;
                phases.call = begun.elapsed() - phases.store - phases.instantiate;
                (result, Some((plugin, served + 1, born)))
            };
            // The epoch deadline stops guest code; this one also stops a
            // call parked in a host function (a sleep, a poll), which
            // epochs cannot reach.
            let timed = tokio::time::timeout(limits.timeout + HOST_MARGIN, running);
            let (result, instance) = tokio::select! {
                result = timed => match result {
                    Ok(ran) => ran,
                    Err(_elapsed) => (Err(DeadlineExceeded.into()), None),
                },
                _ = cut => (Err(wasmtime::Error::msg("the request was dropped")), None),
            };
            store.data().finish();
            let memory_hit = store.data().memory.hit;
            let released = Instant::now();
            // Only an instance whose call ended with an answer (or a
            // refusal) is kept: after a trap, a deadline, the memory limit
            // or a cut request its state is not one to serve from.
            match (warm, instance) {
                (Some(warm), Some((plugin, served, born))) if result.is_ok() && !memory_hit => {
                    warm.keep(Idle::new(store, plugin, served, born));
                }
                _ => drop(store),
            }
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
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(refusal)) => Err(Failure::Refused(self.clean_refusal(refusal))),
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

    /// The plugin's refusal, with any of its service's secrets blanked out:
    /// its sentence reaches tsuru's user, the ledger and the log.
    fn clean_refusal(&self, refusal: Refusal) -> Refusal {
        match refusal {
            Refusal::Invalid(sentence) => Refusal::Invalid(self.clean(sentence)),
            Refusal::NotFound(sentence) => Refusal::NotFound(self.clean(sentence)),
            Refusal::Conflict(sentence) => Refusal::Conflict(self.clean(sentence)),
            Refusal::NotReady(sentence) => Refusal::NotReady(self.clean(sentence)),
            Refusal::Failed(sentence) => Refusal::Failed(self.clean(sentence)),
            Refusal::Unsupported => Refusal::Unsupported,
            Refusal::MissingParams(names) => Refusal::MissingParams(names),
        }
    }

    /// An answer the host cannot use: a fault of the plugin, logged and
    /// answered as one.
    fn broken(&self, what: String) -> Failure {
        tracing::error!(service = %self.limits.service, "plugin broke the contract: {what}");
        Failure::Stopped(Stop::BrokenAnswer(format!(
            "its answer broke the contract: {what}"
        )))
    }

    fn env(&self, vars: Vec<(String, String)>) -> Outcome<Env> {
        let limits = &self.limits.answers;
        if vars.len() > limits.env_vars as usize {
            return Err(self.broken(format!(
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
            return Err(self.broken(format!(
                "it returned {} KiB of env vars, more than the {} KiB its service allows (max_env_kb)",
                bytes.div_ceil(1024),
                limits.env_bytes / 1024
            )));
        }
        let mut env = Env::new();
        for (name, value) in vars {
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(self.broken(format!("{name:?} is not an env var name")));
            }
            if env.insert(name.clone(), value).is_some() {
                return Err(self.broken(format!("env var {name:?} is given twice")));
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
        crate::capabilities::check(
            &self.engine,
            self.pre.component(),
            &service.grants,
            "the plugin",
            &service.id,
        )
        .map_err(anyhow::Error::from)?;
        Ok(Some(Arc::new(Self::new(
            self.engine.clone(),
            self.pre.clone(),
            Limits::of(service, &self.capabilities),
            self.threads.clone(),
            self.capabilities.clone(),
            self.metrics.clone(),
        ))))
    }

    async fn plans(&self, context: Context) -> Outcome<Vec<Plan>> {
        let tags = tags(&context, None);
        let plans = self
            .run(tags, |plugin, store| Box::pin(plugin.plans(store, context)))
            .await?;
        Ok(plans
            .into_iter()
            .map(|plan| Plan {
                name: self.clean(plan.name),
                description: self.clean(plan.description),
            })
            .collect())
    }

    async fn create(&self, instance: Instance, context: Context) -> Outcome<Provisioned> {
        let tags = tags(&context, Some(&instance.name));
        self.run(tags, |plugin, store| {
            Box::pin(plugin.create(store, instance, context))
        })
        .await
    }

    async fn update(
        &self,
        current: Instance,
        next: Instance,
        context: Context,
    ) -> Outcome<Provisioned> {
        let tags = tags(&context, Some(&current.name));
        self.run(tags, |plugin, store| {
            Box::pin(plugin.update(store, current, next, context))
        })
        .await
    }

    async fn remove(&self, instance: Instance, context: Context) -> Outcome<()> {
        let tags = tags(&context, Some(&instance.name));
        self.run(tags, |plugin, store| {
            Box::pin(plugin.remove(store, instance, context))
        })
        .await
    }

    async fn info(&self, instance: Instance, context: Context) -> Outcome<Vec<InfoItem>> {
        let tags = tags(&context, Some(&instance.name));
        let items = self
            .run(tags, |plugin, store| {
                Box::pin(plugin.info(store, instance, context))
            })
            .await?;
        let allowed = self.limits.answers.info_items;
        if items.len() > allowed as usize {
            return Err(self.broken(format!(
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
    }

    async fn status(&self, instance: Instance, context: Context) -> Outcome<Status> {
        let tags = tags(&context, Some(&instance.name));
        let status = self
            .run(tags, |plugin, store| {
                Box::pin(plugin.status(store, instance, context))
            })
            .await?;
        Ok(match status {
            Status::Up => Status::Up,
            Status::Pending(note) => Status::Pending(self.clean(note)),
            Status::Down(reason) => Status::Down(self.clean(reason)),
            Status::Custom(text) => Status::Custom(self.clean(text)),
        })
    }

    async fn bind_app(
        &self,
        instance: Instance,
        app: AppBinding,
        context: Context,
    ) -> Outcome<Env> {
        let tags = tags(&context, Some(&instance.name));
        let vars = self
            .run(tags, |plugin, store| {
                Box::pin(plugin.bind_app(store, instance, app, context))
            })
            .await?;
        self.env(vars)
    }

    async fn unbind_app(
        &self,
        instance: Instance,
        app: AppBinding,
        context: Context,
    ) -> Outcome<()> {
        let tags = tags(&context, Some(&instance.name));
        self.run(tags, |plugin, store| {
            Box::pin(plugin.unbind_app(store, instance, app, context))
        })
        .await
    }

    async fn bind_job(
        &self,
        instance: Instance,
        job: JobBinding,
        context: Context,
    ) -> Outcome<Env> {
        let tags = tags(&context, Some(&instance.name));
        let vars = self
            .run(tags, |plugin, store| {
                Box::pin(plugin.bind_job(store, instance, job, context))
            })
            .await?;
        self.env(vars)
    }

    async fn unbind_job(
        &self,
        instance: Instance,
        job: JobBinding,
        context: Context,
    ) -> Outcome<()> {
        let tags = tags(&context, Some(&instance.name));
        self.run(tags, |plugin, store| {
            Box::pin(plugin.unbind_job(store, instance, job, context))
        })
        .await
    }

    async fn proxy(
        &self,
        instance: Option<Instance>,
        request: ProxyRequest,
        context: Context,
    ) -> Outcome<ProxyResponse> {
        let tags = tags(
            &context,
            instance.as_ref().map(|instance| instance.name.as_str()),
        );
        let response = self
            .run(tags, |plugin, store| {
                Box::pin(plugin.proxy(store, instance, request, context))
            })
            .await?;
        if !(100..=599).contains(&response.status) {
            return Err(self.broken(format!("{} is not an HTTP status", response.status)));
        }
        let allowed = self.limits.answers.proxy_body_bytes;
        if response.body.len() as u64 > allowed {
            return Err(self.broken(format!(
                "it returned a body of {} KiB, more than the {} KiB its service allows (max_proxy_body_kb)",
                response.body.len().div_ceil(1024),
                allowed / 1024
            )));
        }
        Ok(response)
    }
}

/// What a call is about, for the lines its plugin logs.
fn tags(context: &Context, instance: Option<&str>) -> CallTags {
    CallTags {
        request_id: context.request_id.clone(),
        event_id: context.event_id.clone(),
        instance: instance.map(str::to_owned),
    }
}

/// The instances of a service that opted in to reuse (`reuse_calls`),
/// idle between calls. Each is the service's own: it never serves another
/// service's call, nor another version of the plugin (a swap or new limits
/// make a new [`WasmPlugin`], with none kept). One serves at most
/// `reuse.calls` calls, and none after `reuse.age`.
struct Warm {
    reuse: Reuse,
    idle: Mutex<Vec<Idle>>,
    /// The host's places for idle instances, which the instance pool was
    /// sized for beside the running ones.
    places: Arc<Semaphore>,
}

/// An instance between two calls, holding a place for idle instances.
struct Idle {
    store: Store<Sandbox>,
    plugin: wit::Plugin,
    /// Calls it has served.
    served: u32,
    born: Instant,
    place: Option<OwnedSemaphorePermit>,
}

impl Idle {
    fn new(store: Store<Sandbox>, plugin: wit::Plugin, served: u32, born: Instant) -> Self {
        Self {
            store,
            plugin,
            served,
            born,
            place: None,
        }
    }
}

impl Warm {
    fn of(limits: &Limits, threads: &GuestThreads) -> Option<Arc<Self>> {
        let reuse = limits.reuse?;
        Some(Arc::new(Self {
            reuse,
            idle: Mutex::new(Vec::new()),
            places: threads.idle_places(),
        }))
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // A panic while holding the lock leaves a list of whole instances.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The instance used last, if one is idle and young enough.
    fn take(&self) -> Option<Idle> {
        let mut expired = Vec::new();
        let found = {
            let mut idle = self.idle();
            loop {
                match idle.pop() {
                    Some(one) if one.born.elapsed() < self.reuse.age => break Some(one),
                    Some(one) => expired.push(one),
                    None => break None,
                }
            }
        };
        drop(expired);
        found
    }

    /// Keeps an instance that served a call for the next, unless it has
    /// served its calls or its time, holds a handle that could reach the
    /// next call, or the host has no place for another idle instance.
    fn keep(&self, mut one: Idle) {
        if one.served >= self.reuse.calls
            || one.born.elapsed() >= self.reuse.age
            || !one.store.data_mut().reusable()
        {
            return;
        }
        if one.place.is_none() {
            match self.places.clone().try_acquire_owned() {
                Ok(place) => one.place = Some(place),
                Err(_) => return,
            }
        }
        let age = self.reuse.age;
        let expired: Vec<Idle> = {
            let mut idle = self.idle();
            let (young, old) = std::mem::take(&mut *idle)
                .into_iter()
                .partition(|other| other.born.elapsed() < age);
            *idle = young;
            idle.push(one);
            old
        };
        drop(expired);
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
