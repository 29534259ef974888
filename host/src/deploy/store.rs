//! What the host keeps of its plugins between starts.
//!
//! - The wasm of every kept version, content-addressed in
//!   `data_dir/plugins/<sha256>.wasm`, shared by the services that use it.
//! - Per service, a record in the ledger: the versions kept for rollback
//!   (newest first), the active one, the sha256 of the config's plugin file
//!   when it was last loaded, the last failed load, and the settings of a
//!   service added through the admin API.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::added::AddedService;
use super::shared::SharedDeployments;
use crate::runtime::{PluginVersion, sha256};
use crate::service::Source;

/// A service's record, as kept in the ledger.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// The settings of a service added through the admin API; `None` for
    /// a service of the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added: Option<AddedService>,
    /// The sha256 of the version serving.
    pub active: Option<String>,
    /// The versions kept for rollback, newest first, the active one among them.
    #[serde(default)]
    pub versions: Vec<KeptVersion>,
    /// The sha256 of the config's plugin file when it was last loaded: a
    /// file that still has it was not changed since, so a version uploaded
    /// or rolled back to after it keeps serving across a restart.
    #[serde(default)]
    pub file_sha256: Option<String>,
    /// The sha256 of every config plugin file loaded before, newest last
    /// (at most [`FILES_SEEN`]). On a shared store each file is applied to the
    /// fleet once, by the first host that reads it: a host that starts with,
    /// or changes back to, a file seen before serves the fleet's version, so
    /// hosts with different files never flip a service back and forth.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files_seen: Vec<String>,
    #[serde(default)]
    pub last_failure: Option<FailedLoad>,
}

/// Config plugin files a record remembers having loaded.
pub const FILES_SEEN: usize = 32;

/// A version kept for rollback: which component, and when and how it first
/// served this service. Its JSON is the version's fields and these, flat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeptVersion {
    #[serde(flatten)]
    pub version: PluginVersion,
    /// When it first served this service, RFC 3339.
    pub added_at: String,
    pub source: Source,
}

/// A load that failed. The admin API shows it as it is serialised, so its
/// fields are in the order the admin API has always given them (by name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedLoad {
    pub at: String,
    pub reason: String,
    /// The sha256 of the wasm that failed, when it was wasm at all.
    pub sha256: Option<String>,
    pub source: Source,
}

impl Deployment {
    /// Makes `version` the active one, at the head of the kept versions
    /// (moved there if it is kept already);
    /// gives back the versions that no longer fit in `keep`.
    pub fn activate(&mut self, version: KeptVersion, keep: usize) -> Vec<KeptVersion> {
        self.active = Some(version.version.sha256.clone());
        // A version kept already keeps when and how it first came.
        let version = match self
            .versions
            .iter()
            .position(|kept| kept.version.sha256 == version.version.sha256)
        {
            Some(index) => self.versions.remove(index),
            None => version,
        };
        self.versions.insert(0, version);
        if self.versions.len() > keep {
            self.versions.split_off(keep)
        } else {
            Vec::new()
        }
    }

    /// Notes that the config's plugin file, with this sha256, was loaded (or tried).
    pub fn saw_file(&mut self, sha256: &str) {
        self.file_sha256 = Some(sha256.to_owned());
        self.files_seen.retain(|seen| seen != sha256);
        self.files_seen.push(sha256.to_owned());
        if self.files_seen.len() > FILES_SEEN {
            self.files_seen.remove(0);
        }
    }

    /// Whether a config plugin file with this sha256 was loaded before:
    /// the last one on an embedded store, any remembered on a shared one.
    pub fn seen_file(&self, sha256: &str, shared: bool) -> bool {
        self.file_sha256.as_deref() == Some(sha256)
            || (shared && self.files_seen.iter().any(|seen| seen == sha256))
    }

    pub fn kept(&self, sha256: &str) -> Option<&KeptVersion> {
        self.versions
            .iter()
            .find(|kept| kept.version.sha256 == sha256)
    }
}

/// The wasm of every kept version, by sha256: files under `data_dir`, or
/// the shared store's `plugins` table when hosts share one.
pub enum VersionStore {
    Files(PluginFiles),
    Shared(SharedDeployments),
}

impl VersionStore {
    /// Keeps `bytes` (whose sha256 is `sha256`), whole or not at all.
    pub async fn put(&self, sha256: &str, bytes: Vec<u8>) -> anyhow::Result<Vec<u8>> {
        match self {
            VersionStore::Files(files) => {
                let files = files.clone();
                let sha256 = sha256.to_owned();
                tokio::task::spawn_blocking(move || files.put(&sha256, &bytes).map(|()| bytes))
                    .await
                    .context("the plugin store's worker thread stopped")?
            }
            VersionStore::Shared(shared) => {
                shared.put_plugin(sha256, &bytes).await?;
                Ok(bytes)
            }
        }
    }

    /// The bytes of a kept version, checked against its sha256.
    pub async fn read(&self, sha256: &str) -> anyhow::Result<Vec<u8>> {
        match self {
            VersionStore::Files(files) => {
                let files = files.clone();
                let sha256 = sha256.to_owned();
                tokio::task::spawn_blocking(move || files.read(&sha256))
                    .await
                    .context("the plugin store's worker thread stopped")?
            }
            VersionStore::Shared(shared) => shared.read_plugin(sha256).await,
        }
    }

    /// Forgets a version no service keeps.
    pub async fn remove(&self, sha256: &str) {
        match self {
            VersionStore::Files(files) => files.remove(sha256),
            VersionStore::Shared(shared) => {
                if let Err(err) = shared.remove_plugin(sha256).await {
                    tracing::warn!(sha256, "cannot remove a plugin no longer kept: {err:#}");
                }
            }
        }
    }
}

/// The wasm of every kept version, content-addressed in `data_dir/plugins/<sha256>.wasm`.
#[derive(Clone)]
pub struct PluginFiles {
    dir: PathBuf,
}

impl PluginFiles {
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        let dir = data_dir.join("plugins");
        crate::private::dir(&dir)
            .with_context(|| format!("cannot create the plugin store {}", dir.display()))?;
        Ok(Self { dir })
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.wasm"))
    }

    pub fn contains(&self, sha256: &str) -> bool {
        self.path(sha256).is_file()
    }

    /// The sha256 of every kept version, from the files' names.
    pub fn list(&self) -> anyhow::Result<Vec<String>> {
        let mut kept = Vec::new();
        for entry in std::fs::read_dir(&self.dir)
            .with_context(|| format!("cannot list the plugin store {}", self.dir.display()))?
        {
            let name = entry?.file_name();
            if let Some(sha256) = name.to_str().and_then(|name| name.strip_suffix(".wasm")) {
                kept.push(sha256.to_owned());
            }
        }
        kept.sort();
        Ok(kept)
    }

    /// Keeps `bytes` (whose sha256 is `sha256`), whole or not at all.
    pub fn put(&self, sha256: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let path = self.path(sha256);
        if std::fs::metadata(&path).is_ok_and(|meta| meta.len() == bytes.len() as u64) {
            return Ok(());
        }
        let mut file = tempfile::NamedTempFile::new_in(&self.dir)
            .with_context(|| format!("cannot write to the plugin store {}", self.dir.display()))?;
        file.write_all(bytes)
            .and_then(|()| file.as_file().sync_all())
            .with_context(|| format!("cannot write to the plugin store {}", self.dir.display()))?;
        file.persist(&path)
            .map_err(|err| err.error)
            .with_context(|| format!("cannot move a plugin into place at {}", path.display()))?;
        Ok(())
    }

    /// The bytes of a kept version, checked against its sha256.
    pub fn read(&self, sha256: &str) -> anyhow::Result<Vec<u8>> {
        let path = self.path(sha256);
        let bytes = std::fs::read(&path)
            .with_context(|| format!("the kept plugin {} cannot be read", path.display()))?;
        if crate::runtime::sha256(&bytes) != sha256 {
            anyhow::bail!(
                "the kept plugin {} is damaged (its sha256 no longer matches its name)",
                path.display()
            );
        }
        Ok(bytes)
    }

    pub fn remove(&self, sha256: &str) {
        let path = self.path(sha256);
        if let Err(err) = std::fs::remove_file(&path)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(file = %path.display(), "cannot remove a plugin no longer kept: {err}");
        }
    }
}

/// The sha256 of a file's bytes, and the bytes.
pub fn read_plugin_file(path: &Path) -> anyhow::Result<(String, Vec<u8>)> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the plugin file {}", path.display()))?;
    Ok((sha256(&bytes), bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(sha256: &str) -> KeptVersion {
        KeptVersion {
            version: PluginVersion {
                sha256: sha256.into(),
                size: 1,
                wit: "0.1.0".into(),
            },
            added_at: String::new(),
            source: Source::Upload,
        }
    }

    #[test]
    fn activating_moves_a_version_to_the_head_and_drops_the_oldest() {
        let mut deployment = Deployment::default();
        for sha in ["a", "b", "c"] {
            assert!(deployment.activate(version(sha), 3).is_empty());
        }
        // A rollback to a kept version moves it, as it first came; nothing is dropped.
        let rollback = KeptVersion {
            source: Source::Rollback,
            ..version("a")
        };
        assert!(deployment.activate(rollback, 3).is_empty());
        assert_eq!(deployment.versions[0].source, Source::Upload);
        assert_eq!(deployment.active.as_deref(), Some("a"));
        let order: Vec<_> = deployment
            .versions
            .iter()
            .map(|kept| kept.version.sha256.as_str())
            .collect();
        assert_eq!(order, ["a", "c", "b"]);
        let dropped = deployment.activate(version("d"), 3);
        assert_eq!(dropped, [version("b")]);
        assert!(deployment.kept("b").is_none());
    }

    /// A record written by an earlier host, field for field.
    const RECORD: &str = r#"{"active":"a","added":{"added_at":"2026-01-02T03:04:05.000Z","max_instances":4,"memory_mb":64,"password":"p","timeout_ms":900,"username":"u"},"file_sha256":null,"last_failure":{"at":"2026-01-02T03:04:06.000Z","reason":"it broke","sha256":"b","source":"upload"},"versions":[{"added_at":"2026-01-02T03:04:05.000Z","sha256":"a","size":12,"source":"config-file","wit":"0.1.0"}]}"#;

    #[test]
    fn records_of_earlier_hosts_read_and_write_back_the_same_but_the_password() {
        let value: serde_json::Value = serde_json::from_str(RECORD).expect("json");
        let record: Deployment = serde_json::from_value(value.clone()).expect("a record");
        // The plain password of an older host is written back as its digest.
        let sha_of_p = crate::runtime::sha256(b"p");
        let value: serde_json::Value = serde_json::from_str(&RECORD.replace(
            r#""password":"p""#,
            &format!(r#""password_sha256":"{sha_of_p}""#),
        ))
        .expect("json");
        assert_eq!(record.versions[0].version.size, 12);
        assert_eq!(record.versions[0].source, Source::ConfigFile);
        assert_eq!(
            record
                .added
                .as_ref()
                .map(|added| added.max_concurrent_calls),
            Some(4)
        );
        let written = serde_json::to_value(&record).expect("serialisable");
        assert_eq!(written, value);
        assert_eq!(written.to_string(), value.to_string());
    }
}
