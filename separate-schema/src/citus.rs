//! Tenant schemas on a Citus coordinator: each tenant's schema is a distributed schema
//! (Citus' schema-based sharding), placed whole on one node, with all its tables together.
//! The control schema and the template stay local to the coordinator.
//!
//! Citus refuses some things inside a distributed schema that PostgreSQL allows (a foreign
//! key to a table of another schema, inheritance, several DDL statements in one message), and
//! it would refuse them tenant by tenant, half-way through a run. So before the template or any tenant is
//! migrated, the new migrations are tried on a probe: a distributed schema made inside a
//! transaction that is rolled back. What Citus refuses there is refused with
//! [`Error::Unsupported`], naming the migration, and nothing was changed.
//!
//! A tenant moves to another worker with its schema, whole (`citus_schema_move`, online): the
//! store's [`NodePlacement`](tenancy_core::plumbing::citus::NodePlacement) calls
//! [`node_of`] and [`move_schema`] here. Below the store and the template, which call in; the
//! functions take what they need (the pool, the options) as arguments.

use tenancy_core::plumbing::citus::Node;
use tenancy_core::plumbing::sql::stmt;
use tenancy_core::sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};
use tenancy_core::{Error, Result, quote_ident};

use crate::options::SeparateSchemaOptions;

/// Makes the next `CREATE SCHEMA` of the transaction a distributed schema.
pub(crate) const DISTRIBUTED_SCHEMAS: &str = "SET LOCAL citus.enable_schema_based_sharding TO on";
/// Keeps the schemas the transaction creates local (the template, the control schema), even
/// where the database's setting distributes new schemas.
pub(crate) const LOCAL_SCHEMAS: &str = "SET LOCAL citus.enable_schema_based_sharding TO off";

// ANCHOR: probe
/// On Citus (`citus`): runs the migrations after `from`, one at a time, in a distributed schema
/// that is rolled back, and refuses the first one Citus refuses. Nothing is kept either way.
pub(crate) async fn probe_migrations(
    control: &DatabaseConnection,
    options: &SeparateSchemaOptions,
    citus: bool,
    from: i32,
) -> Result<()> {
    let migrations = &options.migrations;
    if !citus || from >= migrations.latest() {
        return Ok(());
    }
    let names: Vec<String> = migrations.names().map(str::to_owned).collect();
    let probe = format!("{}probe", options.schema_prefix);
    let txn = control.begin().await?;
    txn.execute_unprepared(DISTRIBUTED_SCHEMAS).await?;
    txn.execute_unprepared(&format!("CREATE SCHEMA {}", quote_ident(&probe)))
        .await?;
    let mut at = 0;
    while at < migrations.latest() {
        let result = migrations.apply_until(&txn, Some(&probe), at, at + 1).await;
        if let Err(e) = result {
            txn.rollback().await.ok();
            let name = usize::try_from(at)
                .ok()
                .and_then(|i| names.get(i))
                .map_or("?", String::as_str);
            return Err(Error::Unsupported(format!(
                "tenant migration {name} fails in a distributed tenant schema on Citus, \
                 tried on a probe schema that was rolled back (the template and every \
                 tenant are unchanged): {}",
                cause(&e)
            )));
        }
        at += 1;
    }
    txn.rollback().await?;
    Ok(())
}
// ANCHOR_END: probe

/// The database's own words for an error, down its chain of causes.
fn cause(e: &Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

// ANCHOR: node_placement
/// The worker that holds `schema`, a distributed schema: the node of its first shard.
pub(crate) async fn node_of(control: &DatabaseConnection, schema: &str) -> Result<Node> {
    let row = control
        .query_one_raw(stmt(
            "SELECT s.nodename, s.nodeport FROM citus_shards s \
             JOIN pg_class c ON c.oid = s.table_name \
             WHERE c.relnamespace = to_regnamespace(quote_ident($1)) \
             ORDER BY s.shardid LIMIT 1",
            [schema.into()],
        ))
        .await?
        .ok_or_else(|| {
            Error::Unsupported(format!("schema {schema} is not a distributed schema"))
        })?;
    Ok(Node {
        host: row.try_get("", "nodename")?,
        port: u16::try_from(row.try_get::<i32>("", "nodeport")?)
            .map_err(|e| Error::invalid("node", e.to_string()))?,
    })
}

/// Moves `schema`, a distributed schema, whole to the worker `to` (`citus_schema_move`,
/// online).
pub(crate) async fn move_schema(
    control: &DatabaseConnection,
    schema: &str,
    to: &Node,
) -> Result<()> {
    control
        .execute_raw(stmt(
            "SELECT citus_schema_move(to_regnamespace(quote_ident($1)), $2, $3)",
            [
                schema.into(),
                to.host.clone().into(),
                i32::from(to.port).into(),
            ],
        ))
        .await?;
    Ok(())
}
// ANCHOR_END: node_placement
