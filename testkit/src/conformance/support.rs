//! What the checks share: making tenants and projects, the few domain calls several checks
//! repeat, expecting a typed error, and counting what a store left on the server.

use anyhow::{Result, anyhow, bail};
use tenancy_core::plumbing::sql::stmt;
use tenancy_core::sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use tenancy_core::{
    Error, NewTenant, Page, PageRequest, ScopeMode, Slug, Tenant, TenantId, TenantScope,
    TenantStore,
};
use tenancy_example::projects::{self, NewProject, Project, ProjectPatch};
use tenancy_example::tasks::{self, Task, TaskPatch};
use uuid::Uuid;

use super::Harness;

pub(super) fn slug(s: &str) -> Slug {
    Slug::parse(s).unwrap_or_else(|e| panic!("test slug {s:?} is invalid: {e}"))
}

pub(super) async fn tenant(store: &dyn TenantStore, s: &str) -> Result<Tenant> {
    Ok(store
        .create_tenant(NewTenant::new(slug(s), format!("Tenant {s}")))
        .await?)
}

pub(super) async fn new_project(
    store: &dyn TenantStore,
    t: &Tenant,
    name: &str,
) -> Result<Project> {
    let scope = store.scope(t).await?;
    let p = projects::create(&scope, NewProject::named(name)).await?;
    scope.commit().await?;
    Ok(p)
}

pub(super) async fn all_projects(store: &dyn TenantStore, t: &Tenant) -> Result<Vec<Project>> {
    let scope = store.scope_with(t, ScopeMode::Autocommit).await?;
    let page = projects::list(&scope, PageRequest::first(PageRequest::MAX_LIMIT)).await?;
    scope.commit().await?;
    Ok(page.items)
}

/// Renames project `id`, leaving its description.
pub(super) async fn rename_project(
    scope: &TenantScope,
    id: Uuid,
    name: impl Into<String>,
) -> tenancy_core::Result<Project> {
    let patch = ProjectPatch {
        name: Some(name.into()),
        description: None,
    };
    projects::update(scope, id, patch).await
}

/// Marks task `id` done, leaving its title.
pub(super) async fn mark_done(scope: &TenantScope, id: Uuid) -> tenancy_core::Result<Task> {
    let patch = TaskPatch {
        title: None,
        done: Some(true),
    };
    tasks::update(scope, id, patch).await
}

/// How many tasks project `project` has on the first default page.
pub(super) async fn task_count(scope: &TenantScope, project: Uuid) -> Result<usize> {
    Ok(tasks::list(scope, project, PageRequest::default())
        .await?
        .items
        .len())
}

/// The items of two consecutive pages, each as `key` sees it.
pub(super) fn both_pages<T, K>(first: &Page<T>, second: &Page<T>, key: impl Fn(&T) -> K) -> Vec<K> {
    first.items.iter().chain(&second.items).map(key).collect()
}

pub(super) fn expect_err<T: std::fmt::Debug>(
    res: tenancy_core::Result<T>,
    what: &str,
    ok: impl Fn(&Error) -> bool,
) -> Result<()> {
    match res {
        Err(e) if ok(&e) => Ok(()),
        other => bail!("{what}: expected a specific error, got {other:?}"),
    }
}

pub(super) fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::NotFound(_))
}

async fn count(conn: &DatabaseConnection, sql: &str) -> Result<i64> {
    let row = conn
        .query_one_raw(stmt(sql, []))
        .await?
        .ok_or_else(|| anyhow!("no row from {sql}"))?;
    Ok(row.try_get_by_index::<i64>(0)?)
}

/// What exists on the server: catalog rows, schemas, databases.
pub(super) async fn footprint(h: &Harness) -> Result<(i64, i64, i64)> {
    let admin = h.db.admin().await?;
    let out = (
        i64::try_from(tenancy_core::plumbing::catalog::count(&admin).await?)?,
        count(&admin, "SELECT count(*) FROM pg_namespace").await?,
        // Only the databases of this test: other tests create theirs at the same time.
        count(
            &admin,
            &format!(
                "SELECT count(*) FROM pg_database WHERE starts_with(datname, '{}_')",
                h.db.name()
            ),
        )
        .await?,
    );
    admin.close().await.ok();
    Ok(out)
}

/// Counts the rows of `tenant` in every tenant table of every schema of the test database and
/// of every database the test created beside it (separate-db tenants), as a superuser.
pub async fn rows_anywhere(h: &Harness, tenant: TenantId) -> Result<i64> {
    rows_in(&h.db, tenant).await
}

/// [`rows_anywhere`] for a test database of a test of its own.
pub async fn rows_in(db: &crate::TestDatabase, tenant: TenantId) -> Result<i64> {
    counted_in(db, tenant, None).await
}

/// The rows of `tenant` in table `table` that satisfy `condition` (SQL), wherever the table
/// is, counted as a superuser.
pub(super) async fn rows_where(
    h: &Harness,
    tenant: TenantId,
    table: &str,
    condition: &str,
) -> Result<i64> {
    counted_in(&h.db, tenant, Some((table, condition))).await
}

async fn counted_in(
    db: &crate::TestDatabase,
    tenant: TenantId,
    only: Option<(&str, &str)>,
) -> Result<i64> {
    let mut total = 0;
    for (_, url) in db.with_tenant_databases().await? {
        let conn = Database::connect(url.as_str()).await?;
        let tables = conn
            .query_all_raw(stmt(
                "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) AS t FROM information_schema.columns \
                 WHERE column_name = 'tenant_id' AND table_schema NOT IN ('pg_catalog', 'information_schema', 'tenancy')",
                [],
            ))
            .await?;
        for row in tables {
            let table: String = row.try_get("", "t")?;
            let condition = match only {
                None => "true",
                Some((name, condition)) if table.ends_with(&format!(".{name}")) => condition,
                Some(_) => continue,
            };
            total += count(
                &conn,
                &format!(
                    "SELECT count(*) FROM {table} WHERE tenant_id = '{}' AND ({condition})",
                    tenant.as_uuid()
                ),
            )
            .await?;
        }
        conn.close().await.ok();
    }
    Ok(total)
}
