//! Which plugin serves a service: the active plugin, the wasm component's
//! version, and what put that version in service.

use std::sync::Arc;

use serde::Serialize;

use crate::runtime::{CompiledFrom, Plugin, PluginVersion};

/// The plugin serving a service, replaced as one piece by a swap.
pub struct Active {
    pub plugin: Arc<dyn Plugin>,
    /// `None` for a plugin that is not a wasm component.
    pub version: Option<ActiveVersion>,
}

impl Drop for Active {
    fn drop(&mut self) {
        if let Some(active) = &self.version {
            tracing::debug!(
                sha256 = %active.version.sha256,
                "plugin version released: no request runs on it any more"
            );
        }
    }
}

/// Which wasm component serves a service, and how it came to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveVersion {
    pub version: PluginVersion,
    pub compiled_from: CompiledFrom,
    /// How long loading took (reading, compiling or loading from the cache, checking).
    pub took: std::time::Duration,
    /// When it started serving.
    pub loaded_at: jiff::Timestamp,
    /// Why it is serving.
    pub source: Source,
}

/// What put a plugin version in service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// The plugin file named in the config, at start.
    ConfigFile,
    /// A change to the plugin file or the config file, seen while running.
    FileChange,
    /// An upload through the admin API.
    Upload,
    /// A rollback through the admin API.
    Rollback,
    /// The version that served before the restart, kept in `data_dir`.
    Kept,
    /// Written by another host of the fleet, on the shared store.
    Fleet,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::ConfigFile => "config-file",
            Source::FileChange => "file-change",
            Source::Upload => "upload",
            Source::Rollback => "rollback",
            Source::Kept => "kept",
            Source::Fleet => "fleet",
        }
    }
}
