//! What a plugin may import beyond WASI's clocks, random and stdio, each
//! granted per service in the config (deny by default).
//!
//! Each capability is one module that owns all of its parts (see
//! [`Capability`]): its keys in the service's entry, its state for the host,
//! for a plugin version and for a call, its host functions and its import
//! prefix. This module holds the one list of them (`capabilities!`), from
//! which the service's [`Grants`], the states, the linking and the import
//! check are made: adding a capability is one module and one line there.
//!
//! Every capability is linked once, in the engine's shared linker; what a
//! service may use is checked when its plugin is loaded, from the
//! component's imports, so a plugin that imports an interface its service
//! is not granted is refused with the config key that would grant it,
//! before it serves a single call.

mod capability;
pub mod config;
pub mod http;
pub mod keyvalue;
pub mod logging;
pub mod redis;
pub mod sql;

use std::sync::Arc;

use wasmtime::Engine;
use wasmtime::component::{Component, Linker, ResourceTable};

pub use capability::{CallInfo, Capability, Holds, Reading, Start};

use crate::setting::Secret;

/// The store of a call, as the capabilities reach their states in it.
pub trait CallStore: Send + 'static {
    /// Every capability's state for this call, and the resource table it
    /// shares with WASI.
    fn capabilities(&mut self) -> (&mut Calls, &mut ResourceTable);
}

/// Makes, from the one list of capabilities, everything that goes over all
/// of them; `$name` is the capability's field in each.
macro_rules! capabilities {
    ($($name:ident: $capability:ty,)*) => {
        /// What a service's plugin may import beyond WASI's clocks, random
        /// and stdio. Each capability is denied unless its keys are in the
        /// service's entry.
        #[derive(Clone, Default, PartialEq, Debug)]
        pub struct Grants {
            $(pub $name: <$capability as Capability>::Grant,)*
        }

        /// The keys of a service's entry that grant capabilities, as written.
        pub struct GrantsFile {
            $(pub $name: <$capability as Capability>::File,)*
        }

        /// What the capabilities keep for the whole host.
        pub struct HostState {
            $($name: <$capability as Capability>::Host,)*
        }

        /// A service's grants, as the calls of one plugin version share them.
        pub struct Granted {
            $($name: <$capability as Capability>::Granted,)*
        }

        /// Every capability's state in one call.
        pub struct Calls {
            $($name: <$capability as Capability>::Call,)*
        }

        $(
            impl<T: CallStore> Holds<$capability> for T {
                fn call_state(
                    &mut self,
                ) -> (&mut <$capability as Capability>::Call, &mut ResourceTable) {
                    let (calls, table) = self.capabilities();
                    (&mut calls.$name, table)
                }
            }
        )*

        impl Grants {
            /// Checks the capabilities' keys of one service entry.
            pub fn check(file: GrantsFile, reading: &Reading<'_>) -> Result<Self, String> {
                Ok(Self {
                    $($name: <$capability as Capability>::check(file.$name, reading)?,)*
                })
            }

            /// What the host blanks out of the plugin's text.
            pub fn secrets(&self) -> impl Iterator<Item = &Secret> {
                std::iter::empty()
                    $(.chain(<$capability as Capability>::secrets(&self.$name)))*
            }
        }

        impl HostState {
            /// Opens what the capabilities keep for the whole host.
            pub fn start(start: &Start<'_>) -> anyhow::Result<Self> {
                Ok(Self {
                    $($name: <$capability as Capability>::start(start)?,)*
                })
            }
        }

        impl Granted {
            pub fn of(grants: &Grants, host: &HostState, service: &Arc<str>) -> Self {
                Self {
                    $($name: <$capability as Capability>::granted(&grants.$name, &host.$name, service),)*
                }
            }
        }

        impl Calls {
            pub fn new(granted: &Granted, call: &CallInfo) -> Self {
                Self {
                    $($name: <$capability as Capability>::call(&granted.$name, call),)*
                }
            }

            /// Logs what is left of the call's use of each capability.
            pub fn finish(&self) {
                $(<$capability as Capability>::finish(&self.$name);)*
            }
        }

        /// Links every capability; [`check`] decides which a plugin may use.
        pub fn add_to_linker<T: CallStore>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
            $(<$capability as Capability>::add_to_linker(linker)?;)*
            Ok(())
        }

        /// Each capability's import prefix, the key that grants it, and
        /// whether a service's grants do.
        const IMPORTS: &[Import] = &[
            $(Import {
                prefix: <$capability as Capability>::PREFIX,
                key: <$capability as Capability>::KEY,
                granted: |grants| <$capability as Capability>::is_granted(&grants.$name),
            },)*
        ];
    };
}

capabilities! {
    logging: logging::Logging,
    keyvalue: keyvalue::KeyValue,
    config: config::Config,
    sql: sql::Sql,
    redis: self::redis::Redis,
    http: http::Http,
}

/// One capability, as the import check sees it.
struct Import {
    /// Import names start with this (`wasi:logging/`).
    prefix: &'static str,
    /// What an operator writes in the service's entry to grant it.
    key: &'static str,
    granted: fn(&Grants) -> bool,
}

/// The capability an import name belongs to, if any.
fn import(name: &str) -> Option<&'static Import> {
    IMPORTS
        .iter()
        .find(|import| name.starts_with(import.prefix))
}

/// The capabilities a component imports, each with the key that grants it.
pub fn requested(engine: &Engine, component: &Component) -> Vec<(String, &'static str)> {
    component
        .component_type()
        .imports(engine)
        .filter_map(|(name, _)| import(name).map(|import| (name.to_owned(), import.key)))
        .collect()
}

/// Refuses a component that imports a capability its service is not granted.
pub fn check(
    engine: &Engine,
    component: &Component,
    grants: &Grants,
    label: &str,
    service: &str,
) -> wasmtime::Result<()> {
    for (name, _) in component.component_type().imports(engine) {
        let Some(capability) = import(name) else {
            continue;
        };
        if !(capability.granted)(grants) {
            wasmtime::bail!(
                "{label} imports {name}, which service \"{service}\" is not granted; add {} to its [[services]] entry to grant it, or build the plugin without it",
                capability.key
            );
        }
    }
    Ok(())
}
