//! Citus, the PostgreSQL extension that spreads tables over a cluster: finding out whether a
//! store's database is a Citus coordinator, and refusing the stores that do not run on one.
//!
//! shared-schema distributes its tables by `tenant_id` on a coordinator, and separate-schema
//! makes each tenant schema a distributed schema; both decide it at connect, from the
//! extension in the database they are given. separate-db and the hybrid store refuse a
//! coordinator: separate-db's own placement across servers is its scale-out, and the hybrid
//! store moves tenants with triggers and copies Citus does not allow on distributed tables.

use sea_orm::ConnectionTrait;

use crate::error::{Error, Result};
use crate::plumbing::sql::stmt;

/// The version of the Citus extension installed in the connected database, or `None` when the
/// database is plain PostgreSQL.
pub async fn version(conn: &impl ConnectionTrait) -> Result<Option<String>> {
    let row = conn
        .query_one_raw(stmt(
            "SELECT extversion FROM pg_extension WHERE extname = 'citus'",
            [],
        ))
        .await?;
    Ok(row
        .map(|r| r.try_get::<String>("", "extversion"))
        .transpose()?)
}

/// Refuses a Citus coordinator for `store` (which names the store and what to use instead)
/// with [`Error::Unsupported`].
pub async fn refuse(conn: &impl ConnectionTrait, store: &str) -> Result<()> {
    match version(conn).await? {
        None => Ok(()),
        Some(v) => Err(Error::Unsupported(format!(
            "this database is a Citus {v} coordinator, and {store}"
        ))),
    }
}
