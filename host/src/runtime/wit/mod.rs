//! The WIT versions this host serves, and the one dispatch over them.
//!
//! Each version of `orizuru:service` is a folder of `guest-sdk/wit`
//! (`since_v0.1.0/`), frozen once released, and a module here
//! (`since_v0_1_0`) holding its bindings and the conversions between its
//! types and [`crate::model`]. A component is served by the bindings of the
//! version its handler export names; the rest of the runtime sees only
//! [`PluginPre`] and [`Plugin`], in the model's words. Adding a version is a
//! folder, a module and a variant here (`guest-sdk/wit/PENDING.md`).

mod since_v0_1_0;

use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{Engine, Store};

use super::sandbox::Sandbox;
use crate::model::{
    AppBinding, Context, InfoItem, Instance, JobBinding, Plan, Provisioned, ProxyRequest,
    ProxyResponse, Refusal, Status,
};

/// The WIT package the host is built against: the newest version it serves.
pub const WIT_PACKAGE: &str = "orizuru:service@0.1.0";
/// The WIT versions the host serves.
pub const WIT_VERSIONS: &str = "orizuru:service 0.1.x";

/// How one call of a plugin's export ended: the plugin's answer or its
/// refusal, in the model's words; an error is a trap or a fault of the host.
pub type Answer<T> = wasmtime::Result<Result<T, Refusal>>;

/// The versions with bindings of their own, by the folder they come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WitVersion {
    /// `since_v0.1.0`, serving 0.1.x.
    V0_1_0,
}

/// Which bindings serve a component exporting the handler at `version`.
/// Each folder serves the versions semver lets its bindings call: 0.1.x
/// are compatible with 0.1.0, and 0.2.0 is not.
fn bindings_for(version: &str) -> Option<WitVersion> {
    let mut parts = version.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("0"), Some("1"), Some(patch), None)
            if !patch.is_empty() && patch.chars().all(|c| c.is_ascii_digit()) =>
        {
            Some(WitVersion::V0_1_0)
        }
        _ => None,
    }
}

/// Links what every served version's world imports from the host.
pub fn add_to_linker(linker: &mut Linker<Sandbox>) -> wasmtime::Result<()> {
    since_v0_1_0::add_to_linker(linker)
}

/// The version of `orizuru:service/handler` the component exports, if it
/// is one this host serves. `label` names the component in the sentence.
pub fn exported_version(
    engine: &Engine,
    component: &Component,
    label: &str,
) -> wasmtime::Result<String> {
    let exported: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let Some(handler) = exported
        .iter()
        .find(|name| name.starts_with("orizuru:service/handler"))
    else {
        let shown = if exported.is_empty() {
            "nothing".to_owned()
        } else {
            exported.join(", ")
        };
        wasmtime::bail!(
            "{label} does not export orizuru:service/handler (it exports {shown}); build it with the Orizuru SDK, whose world `plugin` exports the handler at {WIT_PACKAGE}"
        );
    };
    let version = handler
        .split_once('@')
        .map(|(_, version)| version.to_owned())
        .unwrap_or_default();
    if bindings_for(&version).is_none() {
        let shown = if version.is_empty() {
            "no version"
        } else {
            &version
        };
        wasmtime::bail!(
            "{label} exports orizuru:service/handler at {shown}, but this host serves {WIT_VERSIONS}; rebuild the plugin with an SDK for {WIT_VERSIONS}, or run an Orizuru that serves {shown}"
        );
    }
    Ok(version)
}

/// A linked component with the bindings of the version it exports, ready
/// to instantiate for each call.
#[derive(Clone)]
pub enum PluginPre {
    V0_1_0(since_v0_1_0::PluginPre<Sandbox>),
}

impl PluginPre {
    /// The bindings of `version` (as [`exported_version`] read it) over a
    /// linked component; an error when its exports do not match them.
    pub fn new(pre: InstancePre<Sandbox>, version: &str) -> wasmtime::Result<Self> {
        match bindings_for(version) {
            Some(WitVersion::V0_1_0) => Ok(Self::V0_1_0(since_v0_1_0::PluginPre::new(pre)?)),
            None => wasmtime::bail!("this host has no bindings for {version}"),
        }
    }

    pub fn component(&self) -> &Component {
        match self {
            Self::V0_1_0(pre) => pre.instance_pre().component(),
        }
    }

    /// A fresh instance of the plugin in `store`.
    pub async fn instantiate(&self, store: &mut Store<Sandbox>) -> wasmtime::Result<Plugin> {
        Ok(match self {
            Self::V0_1_0(pre) => Plugin::V0_1_0(pre.instantiate_async(store).await?),
        })
    }
}

/// One instance of a plugin, called in the model's words.
pub enum Plugin {
    V0_1_0(since_v0_1_0::Plugin),
}

impl Plugin {
    pub async fn plans(&self, store: &mut Store<Sandbox>, context: Context) -> Answer<Vec<Plan>> {
        match self {
            Self::V0_1_0(plugin) => since_v0_1_0::plans(plugin, store, context).await,
        }
    }

    pub async fn create(
        &self,
        store: &mut Store<Sandbox>,
        instance: Instance,
        context: Context,
    ) -> Answer<Provisioned> {
        match self {
            Self::V0_1_0(plugin) => since_v0_1_0::create(plugin, store, instance, context).await,
        }
    }

    pub async fn update(
        &self,
        store: &mut Store<Sandbox>,
        current: Instance,
        next: Instance,
        context: Context,
    ) -> Answer<Provisioned> {
        match self {
            Self::V0_1_0(plugin) => {
                since_v0_1_0::update(plugin, store, current, next, context).await
            }
        }
    }

    pub async fn remove(
        &self,
        store: &mut Store<Sandbox>,
        instance: Instance,
        context: Context,
    ) -> Answer<()> {
        match self {
            Self::V0_1_0(plugin) => since_v0_1_0::remove(plugin, store, instance, context).await,
        }
    }

    pub async fn info(
        &self,
        store: &mut Store<Sandbox>,
        instance: Instance,
        context: Context,
    ) -> Answer<Vec<InfoItem>> {
        match self {
            Self::V0_1_0(plugin) => since_v0_1_0::info(plugin, store, instance, context).await,
        }
    }

    pub async fn status(
        &self,
        store: &mut Store<Sandbox>,
        instance: Instance,
        context: Context,
    ) -> Answer<Status> {
        match self {
            Self::V0_1_0(plugin) => since_v0_1_0::status(plugin, store, instance, context).await,
        }
    }

    /// The env vars as the plugin listed them; the caller checks them.
    pub async fn bind_app(
        &self,
        store: &mut Store<Sandbox>,
        instance: Instance,
        app: AppBinding,
        context: Context,
    ) -> Answer<Vec<(String, String)>> {
        match self {
            Self::V0_1_0(plugin) => {
                since_v0_1_0::bind_app(plugin, store, instance, app, context).await
            }
        }
    }

    pub async fn unbind_app(
        &self,
        store: &mut Store<Sandbox>,
        instance: Instance,
        app: AppBinding,
        context: Context,
    ) -> Answer<()> {
        match self {
            Self::V0_1_0(plugin) => {
                since_v0_1_0::unbind_app(plugin, store, instance, app, context).await
            }
        }
    }

    /// The env vars as the plugin listed them; the caller checks them.
    pub async fn bind_job(
        &self,
        store: &mut Store<Sandbox>,
        instance: Instance,
        job: JobBinding,
        context: Context,
    ) -> Answer<Vec<(String, String)>> {
        match self {
            Self::V0_1_0(plugin) => {
                since_v0_1_0::bind_job(plugin, store, instance, job, context).await
            }
        }
    }

    pub async fn unbind_job(
        &self,
        store: &mut Store<Sandbox>,
        instance: Instance,
        job: JobBinding,
        context: Context,
    ) -> Answer<()> {
        match self {
            Self::V0_1_0(plugin) => {
                since_v0_1_0::unbind_job(plugin, store, instance, job, context).await
            }
        }
    }

    pub async fn proxy(
        &self,
        store: &mut Store<Sandbox>,
        instance: Option<Instance>,
        request: ProxyRequest,
        context: Context,
    ) -> Answer<ProxyResponse> {
        match self {
            Self::V0_1_0(plugin) => {
                since_v0_1_0::proxy(plugin, store, instance, request, context).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{WitVersion, bindings_for};

    #[test]
    fn serves_the_0_1_line_only() {
        for version in ["0.1.0", "0.1.7", "0.1.12"] {
            assert_eq!(bindings_for(version), Some(WitVersion::V0_1_0), "{version}");
        }
        for version in ["", "0.2.0", "1.0.0", "0.1", "0.1.0.1", "0.1.x", "0.1.0-rc1"] {
            assert_eq!(bindings_for(version), None, "{version}");
        }
    }
}
