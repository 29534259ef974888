//! What the host keeps of its services' plugins between starts, in the
//! ledger's file: one JSON document per service, and the log of plugin events.
//! A document and its event are saved by the writer, in one savepoint.

use anyhow::Context as _;
use async_trait::async_trait;
use rusqlite::params;
use serde_json::Value;

use super::SqliteLedger;
use crate::ledger::{Deployments, Ledger, PluginEvent, PluginEventRecord, now};

#[async_trait]
impl Deployments for SqliteLedger {
    async fn deployments(&self) -> anyhow::Result<Vec<(String, Value)>> {
        self.read(|connection| {
            let mut statement = connection
                .prepare_cached("SELECT service, document FROM deployments ORDER BY service")?;
            let rows = statement.query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })?;
            rows.map(|row| {
                let (service, document) = row?;
                let document = serde_json::from_str(&document).with_context(|| {
                    format!("the plugin record of service {service} is damaged")
                })?;
                Ok((service, document))
            })
            .collect()
        })
        .await
    }

    async fn save_deployment(
        &self,
        service: &str,
        document: Option<Value>,
        event: Option<PluginEvent>,
    ) -> anyhow::Result<()> {
        let service = service.to_owned();
        self.write(move |connection| {
            let at = now();
            match document {
                Some(document) => connection.execute(
                    "INSERT INTO deployments (service, document, updated_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (service) DO UPDATE SET document = ?2, updated_at = ?3",
                    params![service, document.to_string(), at],
                )?,
                None => connection.execute(
                    "DELETE FROM deployments WHERE service = ?1",
                    params![service],
                )?,
            };
            if let Some(event) = event {
                connection.execute(
                    "INSERT INTO plugin_events (service, kind, sha256, previous, source, detail, at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        service,
                        event.kind,
                        event.sha256,
                        event.previous,
                        event.source,
                        event.detail,
                        at
                    ],
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn plugin_events(
        &self,
        service: &str,
        limit: usize,
    ) -> anyhow::Result<Vec<PluginEventRecord>> {
        let service = service.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT kind, sha256, previous, source, detail, at FROM plugin_events
                 WHERE service = ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = statement.query_map(params![service, limit], |row| {
                Ok(PluginEventRecord {
                    event: PluginEvent {
                        kind: row.get(0)?,
                        sha256: row.get(1)?,
                        previous: row.get(2)?,
                        source: row.get(3)?,
                        detail: row.get(4)?,
                    },
                    at: row.get(5)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn count_instances(&self, service: &str) -> anyhow::Result<u64> {
        Ok(self.instance_count(service))
    }
}
