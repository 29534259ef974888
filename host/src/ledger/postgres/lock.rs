//! One action at a time on an instance, across hosts: a session advisory
//! lock keyed by the service and the instance's name, held on a connection
//! kept for the lock's life.
//!
//! The lock is given back with `pg_advisory_unlock` before its connection
//! returns to the pool. A connection whose lock state is not known (the wait
//! was given up, the unlock failed) is closed instead of returned: closing
//! the session frees whatever it held or would have been granted. A host
//! that dies frees its locks the same way, when its sessions end.

use deadpool_postgres::Object;

use crate::ledger::LedgerLock;
use crate::store::postgres::{Postgres, postgres_error};

/// The advisory lock's key, hashed by PostgreSQL from this text.
fn key_text(service: &str, instance: &str) -> String {
    format!("{service}/{instance}")
}

/// Waits for the instance's lock on a connection of `locks`, then holds it.
pub(super) async fn lock(
    locks: &Postgres,
    service: &str,
    instance: &str,
) -> anyhow::Result<LedgerLock> {
    let mut session = Session {
        client: Some(locks.client().await?),
        key: key_text(service, instance),
        held: false,
    };
    if let Some(client) = &session.client {
        // Should this wait be given up (the request dropped), `session`'s
        // drop closes the connection, and with it the wait.
        client
            .execute(
                "SELECT pg_advisory_lock(hashtextextended($1, 0))",
                &[&session.key],
            )
            .await
            .map_err(postgres_error)?;
    }
    session.held = true;
    Ok(LedgerLock::holding(session))
}

/// A lock connection, and whether it holds its key's lock.
struct Session {
    client: Option<Object>,
    key: String,
    held: bool,
}

impl Drop for Session {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let runtime = tokio::runtime::Handle::try_current();
        match runtime {
            Ok(runtime) if self.held => {
                let key = std::mem::take(&mut self.key);
                runtime.spawn(async move {
                    let unlocked = client
                        .query_one(
                            "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
                            &[&key],
                        )
                        .await
                        .ok()
                        .and_then(|row| row.try_get::<_, bool>(0).ok());
                    if unlocked != Some(true) {
                        tracing::warn!(
                            lock = key,
                            "could not give back an instance's lock; its connection is closed instead, which frees it"
                        );
                        close(client);
                    }
                });
            }
            _ => close(client),
        }
    }
}

/// Closes a pooled connection rather than returning it.
fn close(client: Object) {
    drop(Object::take(client));
}
