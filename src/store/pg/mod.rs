//! The PostgreSQL engine of the store (cluster mode): the same operations and semantics as the
//! SQLite one, on a database several dialgate instances share.
//!
//! Statements of a fixed shape go through deadpool-postgres's per-connection statement cache
//! (`prepare_cached`): each is parsed and planned once per pooled connection, and every later
//! use is one Bind/Execute round trip instead of a Parse/Describe round trip before it.
//!
//! Every method runs on a pooled connection (deadpool-postgres); a write is acknowledged only
//! after its transaction committed. Outbox claims take rows with `FOR UPDATE SKIP LOCKED`, so
//! two instances never hold the same item. Times are unix milliseconds (`BIGINT`), as in SQLite.

mod calls;
mod finish;
mod instances;
mod legs;
mod outbox;
mod schema;

use super::StoreError;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use std::time::Duration;

/// Connections kept by one instance: the API, the outbox worker and the calls' writes share them.
const POOL_SIZE: usize = 16;
/// How long an operation waits for a connection (or for one to be made) before it fails as
/// "PostgreSQL unavailable" instead of hanging a request.
const CONNECT_WAIT: Duration = Duration::from_secs(5);

/// A pool of connections to the shared database.
pub(crate) struct PgStore {
    pool: Pool,
    /// This instance (`cluster.instance_id`): the owner written on the calls it accepts, so
    /// its restart recovery ends its own calls, never another live instance's.
    instance_id: String,
}

impl PgStore {
    /// Connects to `url` and brings the schema to the newest version.
    pub(crate) async fn open(url: &str, instance_id: &str) -> Result<PgStore, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| StoreError::PostgresConfig(e.to_string()))?;
        let mgr = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig {
                // Fast: a broken connection shows itself on its next use and is replaced then.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(CONNECT_WAIT))
            .create_timeout(Some(CONNECT_WAIT))
            .recycle_timeout(Some(CONNECT_WAIT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::PostgresConfig(e.to_string()))?;
        let store = PgStore {
            pool,
            instance_id: instance_id.to_owned(),
        };
        let mut conn = store.conn().await?;
        schema::apply(&mut conn).await?;
        Ok(store)
    }

    /// A pooled connection; the pool's failure (PostgreSQL down or unreachable) is a
    /// [`StoreError::PostgresUnavailable`].
    pub(crate) async fn conn(&self) -> Result<Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::PostgresUnavailable(e.to_string()))
    }
}

/// Whether a PostgreSQL error means the database cannot be reached (as opposed to a statement
/// it refused): the connection closed, an I/O error, or a server in shutdown or starting up.
pub(crate) fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // Class 08: connection exception; 57P01..57P03: shutting down, crashed, starting.
        Some(code) => {
            let c = code.code();
            c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03")
        }
        // No SQLSTATE: the error happened on the socket, not in the server.
        None => e.as_db_error().is_none(),
    }
}
