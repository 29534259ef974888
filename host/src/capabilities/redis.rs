//! `orizuru:redis/client`: commands on the Redis connections the operator
//! declared for a service (`[services.redis.NAME]`).
//!
//! A plugin names a connection; the host holds its URL and password and
//! never hands them over. Each connection has a pool (deadpool-redis, the
//! SQL capability's pool family: a fixed number of connections each used
//! by one call at a time, and a connection the host no longer trusts taken
//! out of it), made when the plugin is loaded and shared by every call of
//! that plugin version; it connects when a call first needs it. redis-rs's
//! own `ConnectionManager` was not chosen: it multiplexes every call on one
//! connection, so one blocking command (`BLPOP`) would stall them all, and
//! it has no bound on connections.
//!
//! The interface is a package of its own (`orizuru:redis@0.1.0`), not a
//! part of the frozen `orizuru:service@0.1.0`: it is linked for every
//! plugin, whichever service world the plugin was built from, and the
//! import check refuses it to a service without a `[services.redis.NAME]`.
//!
//! Every command is bounded by the connection's `timeout_ms` (waiting for a
//! connection included) and its reply by `max_reply_kb`. A connection goes
//! back to the pool as it was taken: the commands that would change it for
//! the next call (a transaction, a subscription, `SELECT`, `AUTH`, ...)
//! are refused, and one that failed or ran past its timeout is closed.

mod command;
mod grant;

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::error::Context as _;

use super::capability::{CallInfo, Capability, Holds, Reading, Start};
use crate::call_log::Redactor;
use crate::setting::Secret;
use command::bindings::orizuru::redis::client::{self, RedisError, Reply};
use command::{Connections, run};
pub use grant::{RedisConnection, RedisFile, RedisGrant};

/// `orizuru:redis/client`, granted by `[services.redis.NAME]` tables.
pub struct Redis;

/// One call's `orizuru:redis/client`: its service's pools, and what its
/// warnings carry.
pub struct RedisCall {
    connections: Arc<Connections>,
    service: Arc<str>,
    request_id: Option<String>,
    redactor: Redactor,
}

impl Capability for Redis {
    const PREFIX: &'static str = "orizuru:redis/";
    const KEY: &'static str = "a [services.redis.NAME] table";

    type File = Option<std::collections::BTreeMap<String, RedisFile>>;
    type Grant = RedisGrant;
    type Host = ();
    /// The pools of `[services.redis.NAME]`, shared by every call of this plugin version.
    type Granted = Arc<Connections>;
    type Call = RedisCall;

    fn check(file: Self::File, reading: &Reading<'_>) -> Result<RedisGrant, String> {
        grant::redis_connections(file, reading).map(|connections| RedisGrant { connections })
    }

    fn is_granted(grant: &RedisGrant) -> bool {
        !grant.connections.is_empty()
    }

    fn secrets(grant: &RedisGrant) -> Vec<&Secret> {
        grant
            .connections
            .values()
            .flat_map(RedisConnection::secrets)
            .collect()
    }

    fn start(_start: &Start<'_>) -> anyhow::Result<()> {
        Ok(())
    }

    fn granted(grant: &RedisGrant, _host: &(), _service: &Arc<str>) -> Arc<Connections> {
        Arc::new(Connections::of(&grant.connections))
    }

    fn call(granted: &Arc<Connections>, call: &CallInfo) -> RedisCall {
        RedisCall {
            connections: granted.clone(),
            service: call.service.clone(),
            request_id: call.tags.request_id.clone(),
            redactor: call.redactor.clone(),
        }
    }

    fn add_to_linker<T: Holds<Self>>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        client::add_to_linker::<T, HasSelf<RedisCall>>(linker, |store| {
            <T as Holds<Redis>>::call_state(store).0
        })
        .context("cannot link orizuru:redis/client for plugins")
    }
}

impl client::Host for RedisCall {
    async fn command(
        &mut self,
        connection: String,
        args: Vec<Vec<u8>>,
    ) -> Result<Reply, RedisError> {
        let connections = self.connections.clone();
        let answer = run(&connections, &connection, args).await;
        // What the operator must fix (a server the host cannot reach) is
        // logged; what the plugin's own commands get wrong is its to say.
        if let Err(RedisError::ConnectionFailed(why) | RedisError::Timeout(why)) = &answer {
            tracing::warn!(
                service = %self.service,
                connection,
                request_id = self.request_id.as_deref(),
                "{}",
                self.redactor.redact(why)
            );
        }
        answer
    }
}
