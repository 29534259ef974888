//! The deployer's tables on the shared store (PostgreSQL): each service's
//! record with a revision, the plugin events, the kept wasm by sha256, and
//! the feed of changes that carries a swap made on one host to the others.
//!
//! Every write of a record takes the next revision and sends `NOTIFY
//! orizuru_deployments` in its transaction, so the notice goes out when, and
//! only when, the write is committed. A host follows the feed by `LISTEN`
//! and also polls the newest revision every [`POLL`] (a notice sent while
//! its listening connection was down is not lost): whatever it missed, it
//! reads by revision.

use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use serde_json::Value;

use crate::ledger::{Deployments, PluginEvent, PluginEventRecord};
use crate::store::postgres::{Postgres, postgres_error, utc_text};

/// The channel of the change feed.
pub const CHANNEL: &str = "orizuru_deployments";
/// How often a host looks for changes it was not told of.
pub const POLL: Duration = Duration::from_secs(2);

/// A change of a service's record: its new document, or `None` when the
/// service's record was deleted.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordChange {
    pub service: String,
    pub document: Option<Value>,
    pub revision: i64,
}

/// The deployer's tables on the shared store.
#[derive(Clone, Debug)]
pub struct SharedDeployments {
    store: Postgres,
}

impl SharedDeployments {
    pub fn new(store: Postgres) -> Self {
        Self { store }
    }

    pub fn store(&self) -> &Postgres {
        &self.store
    }

    /// The newest revision written, 0 for none.
    pub async fn revision(&self) -> anyhow::Result<i64> {
        let client = self.store.client().await?;
        let row = client
            .query_one(
                "SELECT greatest(
                     (SELECT coalesce(max(revision), 0) FROM deployments),
                     (SELECT coalesce(max(revision), 0) FROM deployment_removals))",
                &[],
            )
            .await
            .map_err(postgres_error)?;
        Ok(row.get(0))
    }

    /// The records written after `revision`, oldest first.
    pub async fn changes_since(&self, revision: i64) -> anyhow::Result<Vec<RecordChange>> {
        let client = self.store.client().await?;
        let rows = client
            .query(
                "SELECT service, document, revision FROM deployments WHERE revision > $1
                 UNION ALL
                 SELECT service, NULL, revision FROM deployment_removals WHERE revision > $1
                 ORDER BY revision",
                &[&revision],
            )
            .await
            .map_err(postgres_error)?;
        rows.into_iter()
            .map(|row| {
                let service: String = row.get(0);
                let document = row
                    .get::<_, Option<String>>(1)
                    .map(|text| {
                        serde_json::from_str(&text).with_context(|| {
                            format!("the plugin record of service {service} is damaged")
                        })
                    })
                    .transpose()?;
                Ok(RecordChange {
                    service,
                    document,
                    revision: row.get(2),
                })
            })
            .collect()
    }

    /// Keeps a version's wasm (whose sha256 is `sha256`), if not kept already.
    pub async fn put_plugin(&self, sha256: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let client = self.store.client().await?;
        client
            .execute(
                "INSERT INTO plugins (sha256, bytes) VALUES ($1, $2) ON CONFLICT (sha256) DO NOTHING",
                &[&sha256, &bytes],
            )
            .await
            .map_err(postgres_error)?;
        Ok(())
    }

    /// The wasm of a kept version, checked against its sha256.
    pub async fn read_plugin(&self, sha256: &str) -> anyhow::Result<Vec<u8>> {
        let client = self.store.client().await?;
        let row = client
            .query_opt("SELECT bytes FROM plugins WHERE sha256 = $1", &[&sha256])
            .await
            .map_err(postgres_error)?
            .with_context(|| format!("the shared store keeps no plugin {sha256}"))?;
        let bytes: Vec<u8> = row.get(0);
        if crate::runtime::sha256(&bytes) != sha256 {
            anyhow::bail!(
                "the plugin {sha256} in the shared store is damaged (its sha256 no longer matches)"
            );
        }
        Ok(bytes)
    }

    /// Forgets a version's wasm unless some service's record still names it.
    pub async fn remove_plugin(&self, sha256: &str) -> anyhow::Result<()> {
        let client = self.store.client().await?;
        client
            .execute(
                "DELETE FROM plugins WHERE sha256 = $1 AND NOT EXISTS (
                     SELECT 1 FROM deployments WHERE strpos(document, $1) > 0)",
                &[&sha256],
            )
            .await
            .map_err(postgres_error)?;
        Ok(())
    }
}

#[async_trait]
impl Deployments for SharedDeployments {
    async fn deployments(&self) -> anyhow::Result<Vec<(String, Value)>> {
        let mut records = Vec::new();
        for change in self.changes_since(0).await? {
            if let Some(document) = change.document {
                records.push((change.service, document));
            }
        }
        records.sort_by(|one, other| one.0.cmp(&other.0));
        Ok(records)
    }

    async fn save_deployment(
        &self,
        service: &str,
        document: Option<Value>,
        event: Option<PluginEvent>,
    ) -> anyhow::Result<()> {
        let mut client = self.store.client().await?;
        let transaction = client.transaction().await.map_err(postgres_error)?;
        let revision: i64 = transaction
            .query_one("SELECT nextval('deployment_revisions')", &[])
            .await
            .map_err(postgres_error)?
            .get(0);
        match document {
            Some(document) => {
                transaction
                    .execute(
                        "INSERT INTO deployments (service, document, revision) VALUES ($1, $2, $3)
                         ON CONFLICT (service) DO UPDATE
                         SET document = excluded.document, revision = excluded.revision, updated_at = now()",
                        &[&service, &document.to_string(), &revision],
                    )
                    .await
                    .map_err(postgres_error)?;
                transaction
                    .execute(
                        "DELETE FROM deployment_removals WHERE service = $1",
                        &[&service],
                    )
                    .await
                    .map_err(postgres_error)?;
            }
            None => {
                transaction
                    .execute("DELETE FROM deployments WHERE service = $1", &[&service])
                    .await
                    .map_err(postgres_error)?;
                transaction
                    .execute(
                        "INSERT INTO deployment_removals (service, revision) VALUES ($1, $2)
                         ON CONFLICT (service) DO UPDATE SET revision = excluded.revision",
                        &[&service, &revision],
                    )
                    .await
                    .map_err(postgres_error)?;
            }
        }
        if let Some(event) = event {
            transaction
                .execute(
                    "INSERT INTO plugin_events (service, kind, sha256, previous, source, detail)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    &[
                        &service,
                        &event.kind,
                        &event.sha256,
                        &event.previous,
                        &event.source,
                        &event.detail,
                    ],
                )
                .await
                .map_err(postgres_error)?;
        }
        transaction
            .execute(
                "SELECT pg_notify($1, $2)",
                &[&CHANNEL, &format!("{revision} {service}")],
            )
            .await
            .map_err(postgres_error)?;
        transaction.commit().await.map_err(postgres_error)?;
        Ok(())
    }

    async fn plugin_events(
        &self,
        service: &str,
        limit: usize,
    ) -> anyhow::Result<Vec<PluginEventRecord>> {
        let client = self.store.client().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                &format!(
                    "SELECT kind, sha256, previous, source, detail, {} FROM plugin_events
                     WHERE service = $1 ORDER BY id DESC LIMIT $2",
                    utc_text("at")
                ),
                &[&service, &limit],
            )
            .await
            .map_err(postgres_error)?;
        Ok(rows
            .into_iter()
            .map(|row| PluginEventRecord {
                event: PluginEvent {
                    kind: row.get(0),
                    sha256: row.get(1),
                    previous: row.get(2),
                    source: row.get(3),
                    detail: row.get(4),
                },
                at: row.get(5),
            })
            .collect())
    }

    async fn count_instances(&self, service: &str) -> anyhow::Result<u64> {
        let client = self.store.client().await?;
        let count: i64 = client
            .query_one(
                "SELECT count(*) FROM instances WHERE service = $1 AND state != 'creating'",
                &[&service],
            )
            .await
            .map_err(postgres_error)?
            .get(0);
        Ok(u64::try_from(count).unwrap_or(0))
    }
}
