//! On a Citus cluster: that the store really distributed its tenants. Every tenant table is
//! distributed by `tenant_id` (shared-schema) or every tenant schema is a distributed schema
//! (separate-schema), the tenants' rows sit on both workers, and a scoped read is planned as
//! one task on one node (a router query), not fanned out.

use std::collections::BTreeSet;

use anyhow::{Result, bail, ensure};
use tenancy_core::plumbing::sql::stmt;
use tenancy_core::sea_orm::sea_query::{Alias, Expr, ExprTrait, PostgresQueryBuilder};
use tenancy_core::sea_orm::{ConnectionTrait, DatabaseConnection};
use tenancy_core::{Placement, Strategy, Tenant};

use super::support::{new_project, tenant};
use super::{Harness, StoreConfig};

/// How many tenants the check spreads: enough that both workers get some.
const TENANTS: usize = 12;

/// Spreads tenants over the cluster and checks where they landed and how a read is planned.
pub async fn distributed_on_citus(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig::default()).await?;
    let mut tenants = Vec::new();
    for i in 0..TENANTS {
        let t = tenant(store.as_ref(), &format!("spread-{i}")).await?;
        new_project(store.as_ref(), &t, "on a worker").await?;
        tenants.push(t);
    }
    let admin = h.db.admin().await?;
    let workers = match store.strategy() {
        Strategy::SharedSchema => shared_tables_distributed(&admin, &tenants).await?,
        Strategy::SeparateSchema => schemas_distributed(&admin, &tenants).await?,
        other => bail!("{other} does not run on Citus"),
    };
    ensure!(
        workers.len() >= 2,
        "the tenants' rows are on {workers:?} only: not spread over both workers"
    );
    // A scoped read, as the scope builds it, planned by the coordinator.
    let scope = store.scope(&tenants[0]).await?;
    let (sql, values) = scope
        .select("projects", "p")
        .column((Alias::new("p"), Alias::new("name")))
        .and_where(Expr::col((Alias::new("p"), Alias::new("id"))).eq(uuid::Uuid::nil()))
        .build(PostgresQueryBuilder);
    scope.rollback().await?;
    let plan = admin
        .query_all_raw(stmt(&format!("EXPLAIN {sql}"), values.0))
        .await?
        .iter()
        .map(|r| r.try_get_by_index::<String>(0))
        .collect::<Result<Vec<_>, _>>()?
        .join("\n");
    ensure!(
        plan.contains("Citus Adaptive") && plan.contains("Task Count: 1\n"),
        "a scoped read is not a single-task router query:\n{plan}"
    );
    eprintln!(
        "distributed: {} tenants on workers {workers:?}; a scoped read is one task",
        tenants.len()
    );
    admin.close().await.ok();
    Ok(())
}

/// Every tenant table distributed by `tenant_id` in one co-location group; returns the ports
/// of the workers that hold the tenants' `projects` rows.
async fn shared_tables_distributed(
    admin: &DatabaseConnection,
    tenants: &[Tenant],
) -> Result<BTreeSet<i32>> {
    let rows = admin
        .query_all_raw(stmt(
            "SELECT c.relname::text AS name, t.citus_table_type AS kind, \
                    t.distribution_column::text AS column, t.colocation_id AS group \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' \
             LEFT JOIN citus_tables t ON t.table_name = c.oid::regclass \
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 1",
            [],
        ))
        .await?;
    ensure!(!rows.is_empty(), "no tenant tables in public");
    let mut groups = BTreeSet::new();
    for r in &rows {
        let name: String = r.try_get("", "name")?;
        let kind: Option<String> = r.try_get("", "kind")?;
        let column: Option<String> = r.try_get("", "column")?;
        ensure!(
            kind.as_deref() == Some("distributed") && column.as_deref() == Some("tenant_id"),
            "public.{name} is not distributed by tenant_id (citus_tables: {kind:?} by {column:?})"
        );
        groups.insert(r.try_get::<i32>("", "group")?);
    }
    ensure!(
        groups.len() == 1,
        "the tenant tables are in co-location groups {groups:?}, not one"
    );
    let mut ports = BTreeSet::new();
    for t in tenants {
        let row = admin
            .query_one_raw(stmt(
                "SELECT s.nodeport FROM citus_shards s \
                 WHERE s.shardid = get_shard_id_for_distribution_column('projects', $1::uuid)",
                [t.id.as_uuid().into()],
            ))
            .await?;
        match row {
            Some(r) => ports.insert(r.try_get::<i32>("", "nodeport")?),
            None => bail!("no shard of projects holds tenant {}", t.slug),
        };
    }
    Ok(ports)
}

/// Every tenant schema in `citus_schemas`; returns the ports of the workers that hold them.
async fn schemas_distributed(
    admin: &DatabaseConnection,
    tenants: &[Tenant],
) -> Result<BTreeSet<i32>> {
    let mut ports = BTreeSet::new();
    for t in tenants {
        let Placement::Schema { schema } = &t.placement else {
            bail!("tenant {} is not in a schema: {}", t.slug, t.placement);
        };
        let row = admin
            .query_one_raw(stmt(
                "SELECT (SELECT count(*) FROM citus_schemas s \
                         WHERE s.schema_name = to_regnamespace(quote_ident($1))) AS listed, \
                        (SELECT min(h.nodeport) FROM citus_shards h \
                         WHERE h.table_name = to_regclass(quote_ident($1) || '.projects')) AS port",
                [schema.as_str().into()],
            ))
            .await?;
        let Some(r) = row else { bail!("no answer") };
        ensure!(
            r.try_get::<i64>("", "listed")? == 1,
            "schema {schema} is not in citus_schemas"
        );
        match r.try_get::<Option<i32>>("", "port")? {
            Some(p) => ports.insert(p),
            None => bail!("no shard holds {schema}.projects"),
        };
    }
    let template = admin
        .query_one_raw(stmt(
            "SELECT count(*) AS n FROM citus_schemas \
             WHERE schema_name IN ('tenancy'::regnamespace, 'tenant_template'::regnamespace, \
                                   'public'::regnamespace)",
            [],
        ))
        .await?
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0);
    ensure!(
        template == 0,
        "the control, template or public schema was distributed"
    );
    Ok(ports)
}
