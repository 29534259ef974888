//! The key-value store on the shared store's PostgreSQL (tables `kv` and
//! `kv_usage`, see `store::postgres`), so every host of a fleet sees the
//! same keys.
//!
//! Every write locks its service's `kv_usage` row first (inserting it when
//! the service has none yet), and decides under that lock: writes of one
//! service, from any host, take turns, so a quota holds across hosts and an
//! increment never loses another's. Writes of different services never
//! wait for each other. Because every writer takes the service's row
//! before any `kv` row, two writers never wait for each other in a circle.

use deadpool_postgres::GenericClient as _;

use super::store::{Failure, Usage, Write};
use crate::store::postgres::{Postgres, postgres_error};

/// Every service's keys, in the shared store.
pub struct PostgresKv {
    store: Postgres,
}

impl PostgresKv {
    /// The key-value store in `store`, whose schema is already migrated.
    pub fn new(store: Postgres) -> Self {
        Self { store }
    }

    /// The value of `key` in `bucket` of `service`, if it has one.
    pub async fn get(
        &self,
        service: &str,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, Failure> {
        let work = async {
            let client = self.store.client().await?;
            let statement = client
                .prepare_cached(
                    "SELECT value FROM kv WHERE service = $1 AND bucket = $2 AND key = $3",
                )
                .await
                .map_err(postgres_error)?;
            let row = client
                .query_opt(&statement, &[&service, &bucket, &key])
                .await
                .map_err(postgres_error)?;
            Ok(row.map(|row| row.get(0)))
        };
        logged(service, work.await)
    }

    /// Keeps `value` under the write's key, unless that takes its service past its quota.
    pub async fn set(&self, write: &Write<'_>, value: &[u8]) -> Result<(), Failure> {
        let work = async {
            let mut client = self.store.client().await?;
            let transaction = client.transaction().await.map_err(postgres_error)?;
            let usage = lock_usage(&transaction, write.service).await?;
            let statement = transaction
                .prepare_cached(
                    "SELECT octet_length(value) FROM kv WHERE service = $1 AND bucket = $2 AND key = $3",
                )
                .await
                .map_err(postgres_error)?;
            let old = transaction
                .query_opt(&statement, &[&write.service, &write.bucket, &write.key])
                .await
                .map_err(postgres_error)?
                .map(|row| count(row.get::<_, i32>(0).into()));
            if let Err(refusal) = write.admit(usage, old, value.len()) {
                return Ok(Err(refusal));
            }
            put(&transaction, write, value).await?;
            transaction.commit().await.map_err(postgres_error)?;
            Ok(Ok(()))
        };
        logged(write.service, work.await)?
    }

    /// Forgets `key`; a key that has no value is no error.
    pub async fn delete(&self, service: &str, bucket: &str, key: &str) -> Result<(), Failure> {
        let work = async {
            let mut client = self.store.client().await?;
            let transaction = client.transaction().await.map_err(postgres_error)?;
            // The service's row before the key's, as every write takes them;
            // made if missing, since a row that does not exist yet (its
            // first write is still running) cannot be locked.
            lock_usage(&transaction, service).await?;
            let statement = transaction
                .prepare_cached("DELETE FROM kv WHERE service = $1 AND bucket = $2 AND key = $3")
                .await
                .map_err(postgres_error)?;
            transaction
                .execute(&statement, &[&service, &bucket, &key])
                .await
                .map_err(postgres_error)?;
            transaction.commit().await.map_err(postgres_error)
        };
        logged(service, work.await)
    }

    /// Up to `limit` keys of `bucket` in byte order (the column's collation
    /// is "C", as SQLite compares), past the first `offset`.
    pub async fn keys(
        &self,
        service: &str,
        bucket: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<String>, Failure> {
        let work = async {
            let client = self.store.client().await?;
            let statement = client
                .prepare_cached(
                    "SELECT key FROM kv WHERE service = $1 AND bucket = $2 ORDER BY key LIMIT $3 OFFSET $4",
                )
                .await
                .map_err(postgres_error)?;
            let rows = client
                .query(
                    &statement,
                    &[&service, &bucket, &sql_count(limit), &sql_count(offset)],
                )
                .await
                .map_err(postgres_error)?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        };
        logged(service, work.await)
    }

    /// Adds `delta` to the whole number under the write's key and keeps the sum.
    pub async fn increment(&self, write: &Write<'_>, delta: u64) -> Result<u64, Failure> {
        let work = async {
            let mut client = self.store.client().await?;
            let transaction = client.transaction().await.map_err(postgres_error)?;
            let usage = lock_usage(&transaction, write.service).await?;
            let statement = transaction
                .prepare_cached(
                    "SELECT value FROM kv WHERE service = $1 AND bucket = $2 AND key = $3",
                )
                .await
                .map_err(postgres_error)?;
            let old: Option<Vec<u8>> = transaction
                .query_opt(&statement, &[&write.service, &write.bucket, &write.key])
                .await
                .map_err(postgres_error)?
                .map(|row| row.get(0));
            let next = match write.incremented(old.as_deref(), delta) {
                Ok(next) => next,
                Err(refusal) => return Ok(Err(refusal)),
            };
            let value = next.to_string().into_bytes();
            let old = old.map(|old| old.len() as u64);
            if let Err(refusal) = write.admit(usage, old, value.len()) {
                return Ok(Err(refusal));
            }
            put(&transaction, write, &value).await?;
            transaction.commit().await.map_err(postgres_error)?;
            Ok(Ok(next))
        };
        logged(write.service, work.await)?
    }
}

/// Locks what `service` keeps (its `kv_usage` row, made if it has none) for
/// the rest of the transaction, and reads it: one statement, as the row
/// may be made by another host at the same moment.
async fn lock_usage(
    transaction: &deadpool_postgres::Transaction<'_>,
    service: &str,
) -> anyhow::Result<Usage> {
    let statement = transaction
        .prepare_cached(
            "INSERT INTO kv_usage (service, keys, bytes) VALUES ($1, 0, 0)
             ON CONFLICT (service) DO UPDATE SET keys = kv_usage.keys
             RETURNING keys, bytes",
        )
        .await
        .map_err(postgres_error)?;
    let row = transaction
        .query_one(&statement, &[&service])
        .await
        .map_err(postgres_error)?;
    Ok(Usage {
        keys: count(row.get(0)),
        bytes: count(row.get(1)),
    })
}

async fn put(
    transaction: &deadpool_postgres::Transaction<'_>,
    write: &Write<'_>,
    value: &[u8],
) -> anyhow::Result<()> {
    let statement = transaction
        .prepare_cached(
            "INSERT INTO kv (service, bucket, key, value) VALUES ($1, $2, $3, $4)
             ON CONFLICT (service, bucket, key) DO UPDATE SET value = excluded.value",
        )
        .await
        .map_err(postgres_error)?;
    transaction
        .execute(
            &statement,
            &[&write.service, &write.bucket, &write.key, &value],
        )
        .await
        .map_err(postgres_error)?;
    Ok(())
}

/// PostgreSQL counts in i64; a count is never negative.
fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A count as PostgreSQL takes it; past its range, its greatest.
fn sql_count(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// The store's failure logged for the operator (an unreachable store says
/// so); the plugin is told only that the store failed.
fn logged<T>(service: &str, result: anyhow::Result<T>) -> Result<T, Failure> {
    result.map_err(|err| {
        tracing::error!(service, "key-value store failure: {err:#}");
        Failure::Unavailable
    })
}
