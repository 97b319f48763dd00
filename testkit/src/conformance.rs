//! The conformance suite: what every [`TenantStore`] must do, whatever its placement.
//!
//! A strategy crate runs it from its integration tests with
//!
//! ```ignore
//! tenancy_testkit::conformance_tests!(crate::store_factory);
//! ```
//!
//! where `store_factory(&TestDatabase, StoreConfig) -> anyhow::Result<Arc<dyn TenantStore>>`
//! is async. Each check becomes its own `#[tokio::test]` on its own fresh database.

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail, ensure};
use futures::future::BoxFuture;
use tenancy_core::domain::projects::{self, NewProject, ProjectPatch};
use tenancy_core::domain::tasks::{self, NewTask, TaskPatch};
use tenancy_core::domain::{Page, PageRequest};
use tenancy_core::sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use tenancy_core::sea_orm::{ConnectionTrait, DatabaseConnection};
use tenancy_core::{
    Error, NewTenant, ScopeMode, Slug, TENANT_TABLES, Tenant, TenantState, TenantStore,
    UnscopedView,
};
use uuid::Uuid;

use crate::TestDatabase;

/// What a test asks of the store it gets.
#[derive(Debug, Clone, Copy)]
pub struct StoreConfig {
    /// The most connections the store may hold to each server.
    pub max_connections: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { max_connections: 5 }
    }
}

/// Builds a store on a test database.
pub type StoreFactory = Arc<
    dyn for<'a> Fn(&'a TestDatabase, StoreConfig) -> BoxFuture<'a, Result<Arc<dyn TenantStore>>>
        + Send
        + Sync,
>;

/// What each conformance check gets: its database and a way to build stores on it.
pub struct Harness {
    pub db: TestDatabase,
    factory: StoreFactory,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl Harness {
    /// A store on this test's database.
    pub async fn store(&self, config: StoreConfig) -> Result<Arc<dyn TenantStore>> {
        (self.factory)(&self.db, config).await
    }
}

/// Runs one check on a fresh database; drops the database when the check passes.
pub async fn run<F>(check: F, factory: StoreFactory) -> Result<()>
where
    F: for<'a> FnOnce(&'a Harness) -> BoxFuture<'a, Result<()>>,
{
    let harness = Harness {
        db: TestDatabase::create().await?,
        factory,
    };
    match check(&harness).await {
        Ok(()) => harness.db.drop_database().await,
        Err(e) => {
            eprintln!("kept test database {} for inspection", harness.db.name());
            Err(e)
        }
    }
}

/// Generates one `#[tokio::test]` per conformance check for a store factory.
///
/// `conformance_tests!(factory)` generates every check; `conformance_tests!(factory; a, b)`
/// only the named ones.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:path) => {
        $crate::conformance_tests!($factory;
            lifecycle, projects_crud_and_paging, tasks_crud_and_paging, summary_join,
            invalid_slugs_write_nothing, unknown_ids_are_not_found, invalid_values_write_nothing,
            isolation_between_tenants, concurrent_tenants_see_only_their_own,
            no_state_survives_checkout, tenant_id_never_changes, delete_leaves_other_tenants,
        );
    };
    ($factory:path; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() -> ::anyhow::Result<()> {
                let factory: $crate::conformance::StoreFactory =
                    ::std::sync::Arc::new(|db, config| ::std::boxed::Box::pin($factory(db, config)));
                $crate::conformance::run(
                    |h| ::std::boxed::Box::pin($crate::conformance::$check(h)),
                    factory,
                ).await
            }
        )+
    };
}

fn slug(s: &str) -> Slug {
    Slug::parse(s).unwrap_or_else(|e| panic!("test slug {s:?} is invalid: {e}"))
}

async fn tenant(store: &dyn TenantStore, s: &str) -> Result<Tenant> {
    Ok(store
        .create_tenant(NewTenant::new(slug(s), format!("Tenant {s}")))
        .await?)
}

async fn new_project(store: &dyn TenantStore, t: &Tenant, name: &str) -> Result<projects::Project> {
    let scope = store.scope(t).await?;
    let p = projects::create(
        &scope,
        NewProject {
            name: name.into(),
            description: String::new(),
        },
    )
    .await?;
    scope.commit().await?;
    Ok(p)
}

async fn all_projects(store: &dyn TenantStore, t: &Tenant) -> Result<Vec<projects::Project>> {
    let scope = store.scope_with(t, ScopeMode::Autocommit).await?;
    let page = projects::list(&scope, PageRequest::first(PageRequest::MAX_LIMIT)).await?;
    scope.commit().await?;
    Ok(page.items)
}

fn expect_err<T: std::fmt::Debug>(
    res: tenancy_core::Result<T>,
    what: &str,
    ok: impl Fn(&Error) -> bool,
) -> Result<()> {
    match res {
        Err(e) if ok(&e) => Ok(()),
        other => bail!("{what}: expected a specific error, got {other:?}"),
    }
}

fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::NotFound(_))
}

async fn count(conn: &DatabaseConnection, sql: &str) -> Result<i64> {
    let row = conn
        .query_one_raw(tenancy_core::sea_orm::Statement::from_string(
            tenancy_core::sea_orm::DbBackend::Postgres,
            sql,
        ))
        .await?
        .ok_or_else(|| anyhow!("no row from {sql}"))?;
    Ok(row.try_get_by_index::<i64>(0)?)
}

/// What exists on the server: catalog rows, schemas, databases.
async fn footprint(h: &Harness) -> Result<(i64, i64, i64)> {
    let admin = h.db.admin().await?;
    let out = (
        count(&admin, "SELECT count(*) FROM tenancy.tenants").await?,
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
pub async fn rows_anywhere(h: &Harness, tenant: tenancy_core::TenantId) -> Result<i64> {
    let admin = h.db.admin().await?;
    let mut urls = vec![h.db.url().to_owned()];
    for row in admin
        .query_all_raw(tenancy_core::sea_orm::Statement::from_sql_and_values(
            tenancy_core::sea_orm::DbBackend::Postgres,
            "SELECT datname FROM pg_database WHERE starts_with(datname, $1 || '_')",
            [h.db.name().to_owned().into()],
        ))
        .await?
    {
        let name: String = row.try_get("", "datname")?;
        let mut u = url::Url::parse(h.db.url())?;
        u.set_path(&name);
        urls.push(u.to_string());
    }
    admin.close().await.ok();
    let mut total = 0;
    for url in urls {
        let conn = tenancy_core::sea_orm::Database::connect(url.as_str()).await?;
        let tables = conn
            .query_all_raw(tenancy_core::sea_orm::Statement::from_string(
                tenancy_core::sea_orm::DbBackend::Postgres,
                "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) AS t FROM information_schema.columns \
                 WHERE column_name = 'tenant_id' AND table_schema NOT IN ('pg_catalog', 'information_schema')",
            ))
            .await?;
        for row in tables {
            let table: String = row.try_get("", "t")?;
            total += count(
                &conn,
                &format!(
                    "SELECT count(*) FROM {table} WHERE tenant_id = '{}'",
                    tenant.as_uuid()
                ),
            )
            .await?;
        }
        conn.close().await.ok();
    }
    Ok(total)
}

/// Create, create again (same tenant back), look up, list, delete, create again.
pub async fn lifecycle(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig::default()).await?;
    let acme = tenant(&*store, "acme").await?;
    ensure!(
        acme.state == TenantState::Ready,
        "a created tenant is ready"
    );
    ensure!(acme.slug.as_str() == "acme");
    ensure!(
        acme.schema_version > 0,
        "a created tenant has the domain tables"
    );

    let again = store
        .create_tenant(NewTenant::new(slug("acme"), "Other name"))
        .await?;
    ensure!(
        again.id == acme.id,
        "creating the same slug twice gives the same tenant back"
    );
    let before = footprint(h).await?;
    store
        .create_tenant(NewTenant::new(slug("acme"), "Again"))
        .await?;
    ensure!(
        footprint(h).await? == before,
        "a repeated create builds nothing"
    );

    ensure!(store.tenant(acme.id).await? == acme);
    ensure!(store.tenant_by_slug(&slug("acme")).await? == acme);

    let globex = tenant(&*store, "globex").await?;
    let initech = tenant(&*store, "initech").await?;
    let first = store.list_tenants(PageRequest::first(2)).await?;
    ensure!(
        first.items.len() == 2 && first.next.is_some(),
        "the first page has 2 tenants and a next cursor: {first:?}"
    );
    let second = store
        .list_tenants(PageRequest {
            limit: 2,
            after: first.next,
        })
        .await?;
    ensure!(
        second.items.len() == 1 && second.next.is_none(),
        "the second page has the third tenant"
    );
    let listed: Vec<_> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|t| t.id)
        .collect();
    ensure!(
        listed == vec![acme.id, globex.id, initech.id],
        "tenants are listed in creation order"
    );

    new_project(&*store, &acme, "Rocket").await?;
    store.delete_tenant(acme.id).await?;
    expect_err(
        store.tenant(acme.id).await,
        "a deleted tenant is gone",
        |e| matches!(e, Error::TenantNotFound),
    )?;
    expect_err(
        store.tenant_by_slug(&slug("acme")).await,
        "its slug is gone",
        |e| matches!(e, Error::TenantNotFound),
    )?;
    // A deleted tenant is gone from the catalog, so no fresh lookup can hand it out for a
    // scope. (A `Tenant` value fetched before the delete is not re-checked by the stores.)
    expect_err(
        store.tenant(acme.id).await.map(|_| ()),
        "a deleted tenant is not found by id",
        |e| matches!(e, Error::TenantNotFound),
    )?;
    expect_err(
        store.tenant_by_slug(&acme.slug).await.map(|_| ()),
        "a deleted tenant is not found by slug",
        |e| matches!(e, Error::TenantNotFound),
    )?;

    let reborn = tenant(&*store, "acme").await?;
    ensure!(
        reborn.id != acme.id,
        "a slug can be used again after delete, as a new tenant"
    );
    ensure!(
        all_projects(&*store, &reborn).await?.is_empty(),
        "the new tenant starts empty"
    );
    expect_err(store.delete_tenant(acme.id).await, "deleting twice", |e| {
        matches!(e, Error::TenantNotFound)
    })?;
    Ok(())
}

/// Every project operation, with keyset paging.
pub async fn projects_crud_and_paging(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig::default()).await?;
    let t = tenant(&*store, "acme").await?;
    let scope = store.scope(&t).await?;
    let p = projects::create(
        &scope,
        NewProject {
            name: "Rocket".into(),
            description: "to the moon".into(),
        },
    )
    .await?;
    ensure!(p.tenant_id == t.id.as_uuid() && p.name == "Rocket" && p.description == "to the moon");
    ensure!(projects::get(&scope, p.id).await? == p);
    let renamed = projects::update(
        &scope,
        p.id,
        ProjectPatch {
            name: Some("Rocket 2".into()),
            description: None,
        },
    )
    .await?;
    ensure!(
        renamed.name == "Rocket 2" && renamed.description == "to the moon" && renamed.id == p.id
    );
    let mut ids = vec![p.id];
    for i in 0..6 {
        ids.push(
            projects::create(
                &scope,
                NewProject {
                    name: format!("P{i}"),
                    description: String::new(),
                },
            )
            .await?
            .id,
        );
    }
    scope.commit().await?;

    // Paging visits every project once, in creation order.
    let scope = store.scope(&t).await?;
    let mut seen = Vec::new();
    let mut page = PageRequest::first(3);
    let mut pages = 0;
    loop {
        let Page { items, next } = projects::list(&scope, page).await?;
        ensure!(items.len() <= 3);
        seen.extend(items.iter().map(|p| p.id));
        pages += 1;
        match next {
            Some(after) => {
                page = PageRequest {
                    limit: 3,
                    after: Some(after),
                }
            }
            None => break,
        }
    }
    ensure!(seen == ids, "paging returns each project once, in order");
    ensure!(
        pages == 3,
        "7 projects in pages of 3 make 3 pages, got {pages}"
    );
    expect_err(
        projects::list(&scope, PageRequest::first(0)).await,
        "limit 0",
        |e| matches!(e, Error::Invalid { .. }),
    )?;

    projects::delete(&scope, p.id).await?;
    expect_err(
        projects::get(&scope, p.id).await,
        "a deleted project",
        is_not_found,
    )?;
    expect_err(
        projects::delete(&scope, p.id).await,
        "deleting twice",
        is_not_found,
    )?;
    scope.commit().await?;

    // A scope dropped without commit writes nothing.
    let scope = store.scope(&t).await?;
    projects::create(
        &scope,
        NewProject {
            name: "Ghost".into(),
            description: String::new(),
        },
    )
    .await?;
    drop(scope);
    ensure!(
        all_projects(&*store, &t)
            .await?
            .iter()
            .all(|p| p.name != "Ghost"),
        "an uncommitted scope writes nothing"
    );
    ensure!(all_projects(&*store, &t).await?.len() == 6);
    Ok(())
}

/// Every task operation, with paging, and tasks that go with their project.
pub async fn tasks_crud_and_paging(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig::default()).await?;
    let t = tenant(&*store, "acme").await?;
    let scope = store.scope(&t).await?;
    let p = projects::create(
        &scope,
        NewProject {
            name: "Rocket".into(),
            description: String::new(),
        },
    )
    .await?;
    let task = tasks::create(
        &scope,
        p.id,
        NewTask {
            title: "Fuel".into(),
        },
    )
    .await?;
    ensure!(
        task.project_id == p.id
            && !task.done
            && task.title == "Fuel"
            && task.tenant_id == t.id.as_uuid()
    );
    ensure!(tasks::get(&scope, task.id).await? == task);
    let done = tasks::update(
        &scope,
        task.id,
        TaskPatch {
            title: None,
            done: Some(true),
        },
    )
    .await?;
    ensure!(done.done && done.title == "Fuel");
    let retitled = tasks::update(
        &scope,
        task.id,
        TaskPatch {
            title: Some("Refuel".into()),
            done: None,
        },
    )
    .await?;
    ensure!(retitled.done && retitled.title == "Refuel");
    let mut ids = vec![task.id];
    for i in 0..4 {
        ids.push(
            tasks::create(
                &scope,
                p.id,
                NewTask {
                    title: format!("T{i}"),
                },
            )
            .await?
            .id,
        );
    }
    let first = tasks::list(&scope, p.id, PageRequest::first(3)).await?;
    let second = tasks::list(
        &scope,
        p.id,
        PageRequest {
            limit: 3,
            after: first.next,
        },
    )
    .await?;
    ensure!(first.next.is_some() && second.next.is_none());
    let seen: Vec<_> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|t| t.id)
        .collect();
    ensure!(seen == ids, "task paging returns each task once, in order");

    expect_err(
        tasks::create(
            &scope,
            Uuid::now_v7(),
            NewTask {
                title: "Lost".into(),
            },
        )
        .await,
        "a task in an unknown project",
        is_not_found,
    )?;
    tasks::delete(&scope, task.id).await?;
    expect_err(
        tasks::get(&scope, task.id).await,
        "a deleted task",
        is_not_found,
    )?;
    // Deleting the project takes its tasks with it.
    projects::delete(&scope, p.id).await?;
    expect_err(
        tasks::get(&scope, ids[1]).await,
        "a task of a deleted project",
        is_not_found,
    )?;
    expect_err(
        tasks::list(&scope, p.id, PageRequest::default()).await,
        "tasks of a deleted project",
        is_not_found,
    )?;
    scope.commit().await?;
    Ok(())
}

/// The join: projects with their open and done task counts.
pub async fn summary_join(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig::default()).await?;
    let t = tenant(&*store, "acme").await?;
    let other = tenant(&*store, "globex").await?;
    let scope = store.scope(&t).await?;
    let a = projects::create(
        &scope,
        NewProject {
            name: "A".into(),
            description: String::new(),
        },
    )
    .await?;
    let b = projects::create(
        &scope,
        NewProject {
            name: "B".into(),
            description: String::new(),
        },
    )
    .await?;
    let c = projects::create(
        &scope,
        NewProject {
            name: "C".into(),
            description: String::new(),
        },
    )
    .await?;
    for i in 0..3 {
        let task = tasks::create(
            &scope,
            a.id,
            NewTask {
                title: format!("a{i}"),
            },
        )
        .await?;
        if i == 0 {
            tasks::update(
                &scope,
                task.id,
                TaskPatch {
                    title: None,
                    done: Some(true),
                },
            )
            .await?;
        }
    }
    let task = tasks::create(&scope, b.id, NewTask { title: "b".into() }).await?;
    tasks::update(
        &scope,
        task.id,
        TaskPatch {
            title: None,
            done: Some(true),
        },
    )
    .await?;
    scope.commit().await?;
    // Another tenant's tasks must not count.
    let oscope = store.scope(&other).await?;
    let op = projects::create(
        &oscope,
        NewProject {
            name: "A".into(),
            description: String::new(),
        },
    )
    .await?;
    tasks::create(&oscope, op.id, NewTask { title: "x".into() }).await?;
    oscope.commit().await?;

    let scope = store.scope(&t).await?;
    let page = projects::summary(&scope, PageRequest::first(2)).await?;
    let rest = projects::summary(
        &scope,
        PageRequest {
            limit: 2,
            after: page.next,
        },
    )
    .await?;
    let all: Vec<_> = page
        .items
        .iter()
        .chain(&rest.items)
        .map(|s| (s.id, s.open_tasks, s.done_tasks))
        .collect();
    ensure!(
        all == vec![(a.id, 2, 1), (b.id, 0, 1), (c.id, 0, 0)],
        "summary counts: {all:?}"
    );
    ensure!(rest.next.is_none());
    Ok(())
}

/// Invalid slugs give the typed error and create nothing, in the catalog or the database.
pub async fn invalid_slugs_write_nothing(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig::default()).await?;
    tenant(&*store, "acme").await?;
    let before = footprint(h).await?;
    let too_long = "a".repeat(41);
    for bad in [
        "",
        too_long.as_str(),
        "Acme",
        "ACME",
        "acmé",
        "ünicode",
        "a\"; drop schema public; --",
        "pg_x",
        "public",
        "postgres",
        "template0",
    ] {
        match Slug::parse(bad) {
            Err(Error::InvalidSlug { .. }) => {}
            other => bail!("slug {bad:?} should be refused, got {other:?}"),
        }
    }
    // The only way to name a tenant is a Slug, so a store cannot be handed a bad one; a
    // lookup by a valid but unknown slug is simply not found.
    expect_err(
        store.tenant_by_slug(&slug("nobody")).await,
        "unknown slug",
        |e| matches!(e, Error::TenantNotFound),
    )?;
    ensure!(footprint(h).await? == before, "refused slugs wrote nothing");
    Ok(())
}

/// Unknown ids give not found, for tenants and for rows.
pub async fn unknown_ids_are_not_found(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig::default()).await?;
    expect_err(
        store.tenant(tenancy_core::TenantId::new()).await,
        "unknown tenant",
        |e| matches!(e, Error::TenantNotFound),
    )?;
    expect_err(
        store.delete_tenant(tenancy_core::TenantId::new()).await,
        "deleting an unknown tenant",
        |e| matches!(e, Error::TenantNotFound),
    )?;
    let t = tenant(&*store, "acme").await?;
    let scope = store.scope(&t).await?;
    let id = Uuid::now_v7();
    expect_err(projects::get(&scope, id).await, "project get", is_not_found)?;
    expect_err(
        projects::update(
            &scope,
            id,
            ProjectPatch {
                name: Some("x".into()),
                description: None,
            },
        )
        .await,
        "project update",
        is_not_found,
    )?;
    expect_err(
        projects::delete(&scope, id).await,
        "project delete",
        is_not_found,
    )?;
    expect_err(tasks::get(&scope, id).await, "task get", is_not_found)?;
    expect_err(
        tasks::update(
            &scope,
            id,
            TaskPatch {
                title: None,
                done: Some(true),
            },
        )
        .await,
        "task update",
        is_not_found,
    )?;
    expect_err(tasks::delete(&scope, id).await, "task delete", is_not_found)?;
    expect_err(
        tasks::list(&scope, id, PageRequest::default()).await,
        "task list",
        is_not_found,
    )?;
    Ok(())
}

/// Values the domain refuses give a typed error and write nothing.
pub async fn invalid_values_write_nothing(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig::default()).await?;
    let t = tenant(&*store, "acme").await?;
    let p = new_project(&*store, &t, "Rocket").await?;
    let scope = store.scope(&t).await?;
    let invalid = |e: &Error| matches!(e, Error::Invalid { .. });
    expect_err(
        projects::create(
            &scope,
            NewProject {
                name: "  ".into(),
                description: String::new(),
            },
        )
        .await,
        "blank name",
        invalid,
    )?;
    expect_err(
        projects::create(
            &scope,
            NewProject {
                name: "x".repeat(10_000),
                description: String::new(),
            },
        )
        .await,
        "10k name",
        invalid,
    )?;
    expect_err(
        projects::update(
            &scope,
            p.id,
            ProjectPatch {
                name: Some(String::new()),
                description: None,
            },
        )
        .await,
        "empty rename",
        invalid,
    )?;
    expect_err(
        tasks::create(
            &scope,
            p.id,
            NewTask {
                title: String::new(),
            },
        )
        .await,
        "empty title",
        invalid,
    )?;
    expect_err(
        tasks::create(
            &scope,
            p.id,
            NewTask {
                title: "t".repeat(10_000),
            },
        )
        .await,
        "10k title",
        invalid,
    )?;
    scope.commit().await?;
    let projects = all_projects(&*store, &t).await?;
    ensure!(
        projects.len() == 1 && projects[0].name == "Rocket",
        "nothing was written: {projects:?}"
    );
    let scope = store.scope(&t).await?;
    ensure!(
        tasks::list(&scope, p.id, PageRequest::default())
            .await?
            .items
            .is_empty(),
        "no task was written"
    );
    Ok(())
}

/// Tenant A can never read, update or delete B's rows through any domain operation, even
/// when given B's ids.
pub async fn isolation_between_tenants(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig::default()).await?;
    let a = tenant(&*store, "alpha").await?;
    let b = tenant(&*store, "bravo").await?;
    let bs = store.scope(&b).await?;
    let bp = projects::create(
        &bs,
        NewProject {
            name: "B secret".into(),
            description: "b only".into(),
        },
    )
    .await?;
    let bt = tasks::create(
        &bs,
        bp.id,
        NewTask {
            title: "B task".into(),
        },
    )
    .await?;
    bs.commit().await?;
    let ap = new_project(&*store, &a, "A project").await?;

    let s = store.scope(&a).await?;
    expect_err(
        projects::get(&s, bp.id).await,
        "A reads B's project",
        is_not_found,
    )?;
    expect_err(
        projects::update(
            &s,
            bp.id,
            ProjectPatch {
                name: Some("pwned".into()),
                description: None,
            },
        )
        .await,
        "A renames B's project",
        is_not_found,
    )?;
    expect_err(
        projects::delete(&s, bp.id).await,
        "A deletes B's project",
        is_not_found,
    )?;
    expect_err(
        tasks::get(&s, bt.id).await,
        "A reads B's task",
        is_not_found,
    )?;
    expect_err(
        tasks::update(
            &s,
            bt.id,
            TaskPatch {
                title: Some("pwned".into()),
                done: Some(true),
            },
        )
        .await,
        "A updates B's task",
        is_not_found,
    )?;
    expect_err(
        tasks::delete(&s, bt.id).await,
        "A deletes B's task",
        is_not_found,
    )?;
    expect_err(
        tasks::list(&s, bp.id, PageRequest::default()).await,
        "A lists B's tasks",
        is_not_found,
    )?;
    expect_err(
        tasks::create(
            &s,
            bp.id,
            NewTask {
                title: "intruder".into(),
            },
        )
        .await,
        "A adds a task to B's project",
        is_not_found,
    )?;
    let listed = projects::list(&s, PageRequest::first(100)).await?;
    ensure!(
        listed.items.iter().map(|p| p.id).collect::<Vec<_>>() == vec![ap.id],
        "A lists only its own projects: {listed:?}"
    );
    let summary = projects::summary(&s, PageRequest::first(100)).await?;
    ensure!(
        summary.items.iter().map(|p| p.id).collect::<Vec<_>>() == vec![ap.id],
        "A's summary has only its own projects"
    );
    s.commit().await?;

    // B's rows are exactly as B left them.
    let bs = store.scope(&b).await?;
    ensure!(
        projects::get(&bs, bp.id).await? == bp,
        "B's project is untouched"
    );
    ensure!(tasks::get(&bs, bt.id).await? == bt, "B's task is untouched");
    ensure!(
        tasks::list(&bs, bp.id, PageRequest::default())
            .await?
            .items
            .len()
            == 1,
        "no task was added to B"
    );
    Ok(())
}

/// At least 32 tasks over 8 tenants on a pool smaller than the number of tasks, each writing
/// markers and checking it sees only its own.
pub async fn concurrent_tenants_see_only_their_own(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig { max_connections: 4 }).await?;
    let mut tenants = Vec::new();
    for i in 0..8 {
        tenants.push(tenant(&*store, &format!("tenant-{i}")).await?);
    }
    let mut workers = Vec::new();
    for w in 0..32usize {
        let store = store.clone();
        let t = tenants[w % tenants.len()].clone();
        workers.push(tokio::spawn(async move {
            let mut mine = HashSet::new();
            for round in 0..6 {
                let mode = if round % 2 == 0 {
                    ScopeMode::Transaction
                } else {
                    ScopeMode::Autocommit
                };
                let scope = store.scope_with(&t, mode).await?;
                let marker = format!("{}|w{w}|r{round}", t.slug);
                let p = projects::create(
                    &scope,
                    NewProject {
                        name: marker,
                        description: String::new(),
                    },
                )
                .await?;
                mine.insert(p.id);
                tokio::task::yield_now().await;
                let seen =
                    projects::list(&scope, PageRequest::first(PageRequest::MAX_LIMIT)).await?;
                for p in &seen.items {
                    ensure!(
                        p.tenant_id == t.id.as_uuid(),
                        "worker {w} of {} saw a row of tenant {}",
                        t.slug,
                        p.tenant_id
                    );
                    ensure!(
                        p.name.starts_with(&format!("{}|", t.slug)),
                        "worker {w} of {} saw marker {}",
                        t.slug,
                        p.name
                    );
                }
                scope.commit().await?;
            }
            anyhow::Ok((t.id, mine))
        }));
    }
    let mut written: std::collections::HashMap<_, HashSet<Uuid>> = Default::default();
    for w in workers {
        let (tid, mine) = w.await.context("worker panicked")??;
        written.entry(tid).or_default().extend(mine);
    }
    for t in &tenants {
        let seen: HashSet<Uuid> = all_projects(&*store, t)
            .await?
            .into_iter()
            .map(|p| p.id)
            .collect();
        ensure!(
            seen == written[&t.id],
            "tenant {} holds exactly the rows its workers wrote",
            t.slug
        );
    }
    Ok(())
}

// ANCHOR: no_state_survives_checkout
/// On a pool of exactly one connection: work as A, then as B, then unscoped. B sees nothing
/// of A, and the unscoped path sees no tenant rows.
pub async fn no_state_survives_checkout(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig { max_connections: 1 }).await?;
    let a = tenant(&*store, "alpha").await?;
    let b = tenant(&*store, "bravo").await?;
    for mode in [ScopeMode::Transaction, ScopeMode::Autocommit] {
        let sa = store.scope_with(&a, mode).await?;
        let ap = projects::create(
            &sa,
            NewProject {
                name: "A".into(),
                description: String::new(),
            },
        )
        .await?;
        sa.commit().await?;
        // A scope abandoned mid-work must not leave its binding on the connection either.
        let abandoned = store.scope_with(&a, mode).await?;
        projects::get(&abandoned, ap.id).await?;
        drop(abandoned);

        let sb = store.scope_with(&b, mode).await?;
        expect_err(
            projects::get(&sb, ap.id).await,
            "B reads A's project on the same connection",
            is_not_found,
        )?;
        let seen = projects::list(&sb, PageRequest::first(PageRequest::MAX_LIMIT)).await?;
        ensure!(
            seen.items.iter().all(|p| p.tenant_id == b.id.as_uuid()),
            "B sees only B's rows on A's old connection"
        );
        // B writes too, so a binding to B left on the connection would show on the unscoped path.
        projects::create(
            &sb,
            NewProject {
                name: "B".into(),
                description: String::new(),
            },
        )
        .await?;
        sb.commit().await?;
    }
    for table in TENANT_TABLES {
        match store.unscoped_view(table).await? {
            UnscopedView::NoSuchTable | UnscopedView::Rows(0) => {}
            other => bail!("the unscoped path sees {other:?} in {table}"),
        }
    }
    Ok(())
}
// ANCHOR_END: no_state_survives_checkout

/// A row's `tenant_id` cannot be changed by an update, and the scope refuses to write another
/// tenant's id.
pub async fn tenant_id_never_changes(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig::default()).await?;
    let a = tenant(&*store, "alpha").await?;
    let b = tenant(&*store, "bravo").await?;
    let p = new_project(&*store, &a, "A").await?;

    let s = store.scope(&a).await?;
    let invalid = |e: &Error| matches!(e, Error::Invalid { .. });
    expect_err(
        s.update("projects", vec![("tenant_id", b.id.as_uuid().into())])
            .map(|_| ()),
        "update builder with tenant_id",
        invalid,
    )?;
    expect_err(
        s.insert(
            "projects",
            &["tenant_id", "id", "name"],
            vec![b.id.as_uuid().into(), Uuid::now_v7().into(), "x".into()],
        )
        .map(|_| ()),
        "insert builder with tenant_id",
        invalid,
    )?;
    drop(s);

    // A hand-written UPDATE through the scope that tries to move the row to B is refused by
    // the database.
    let s = store.scope(&a).await?;
    let mut raw = Query::update();
    raw.table(s.table("projects"))
        .value(Alias::new("tenant_id"), b.id.as_uuid())
        .and_where(Expr::col(Alias::new("id")).eq(p.id));
    let moved = s.execute(&raw).await;
    ensure!(
        moved.is_err(),
        "moving a row to another tenant must fail, got {moved:?}"
    );
    drop(s);

    let rows = all_projects(&*store, &a).await?;
    ensure!(
        rows.len() == 1 && rows[0].tenant_id == a.id.as_uuid(),
        "the row still belongs to A"
    );
    ensure!(
        all_projects(&*store, &b).await?.is_empty(),
        "B gained nothing"
    );
    Ok(())
}

/// Deleting A purges A and leaves B's rows intact.
pub async fn delete_leaves_other_tenants(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig::default()).await?;
    let a = tenant(&*store, "alpha").await?;
    let b = tenant(&*store, "bravo").await?;
    for t in [&a, &b] {
        let s = store.scope(t).await?;
        for i in 0..5 {
            let p = projects::create(
                &s,
                NewProject {
                    name: format!("p{i}"),
                    description: String::new(),
                },
            )
            .await?;
            tasks::create(&s, p.id, NewTask { title: "t".into() }).await?;
        }
        s.commit().await?;
    }
    let b_before = all_projects(&*store, &b).await?;
    store.delete_tenant(a.id).await?;
    ensure!(
        all_projects(&*store, &b).await? == b_before,
        "B's projects are intact"
    );
    let s = store.scope(&b).await?;
    for p in &b_before {
        ensure!(
            tasks::list(&s, p.id, PageRequest::default())
                .await?
                .items
                .len()
                == 1,
            "B's tasks are intact"
        );
    }
    ensure!(
        rows_anywhere(h, a.id).await? == 0,
        "A's rows are purged from every database and schema"
    );
    ensure!(
        rows_anywhere(h, b.id).await? == 10,
        "B's 5 projects and 5 tasks remain"
    );
    // A new tenant with A's slug starts empty.
    let a2 = tenant(&*store, "alpha").await?;
    ensure!(
        all_projects(&*store, &a2).await?.is_empty(),
        "nothing of A's survives"
    );
    Ok(())
}
