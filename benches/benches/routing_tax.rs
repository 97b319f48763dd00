//! Run with `cargo bench -p tenancy-benches --bench routing_tax`.
//!
//! What it costs to reach one tenant's rows: a point read by primary key, an insert, and the
//! summary join (projects with their task counts), through each strategy's scope, beside the
//! baseline: the same statements, built by the same domain code, on plain tables in a
//! database of their own with no tenancy at all. Every variant runs its statements the way
//! the domain code would in production: reads in autocommit scopes (a strategy that needs a
//! transaction for isolation still opens one; that is its tax), inserts in a scope that
//! commits. Shared-schema appears four times: row-level security with the session binding
//! (the default on a direct connection), with the binding in the transaction (the one for
//! poolers), the first design (four round trips, kept to measure against), and the predicate
//! alone (one layer).
//!
//! The domain functions are written with sea-orm entities (`tenancy_core::entity`). A fourth
//! group, `routing_tax/entity`, runs the read and the insert twice per variant in one run:
//! with the scope's string builders (`/builder`, the statements the domain sent before it used
//! entities) and with entities (`/entity`), to show what the entity path costs beside them.
//!
//! Data: one tenant, 1,000 projects, the first 50 with three tasks each.

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use tenancy_core::PageRequest;
use tenancy_core::entity::{ActiveModelInTenant, SelectInTenant};
use tenancy_core::sea_orm::ActiveValue::Set;
use tenancy_core::sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use tenancy_core::sea_orm::{AccessMode, ConnectionTrait, DatabaseConnection, TransactionTrait};
use tenancy_core::sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use tenancy_core::{
    ScopeMode, Strategy, TableNamespace, Tenant, TenantId, TenantScope, TenantStore,
};
use tenancy_example::projects::{self, NewProject};
use tenancy_example::{project, seed};
use tenancy_shared_schema::{Isolation, RlsBinding, SharedSchemaOptions, SharedSchemaStore};
use tenancy_testkit::TestDatabase;
use uuid::Uuid;

const PROJECTS: usize = 1_000;

/// How one variant binds a scope.
#[derive(Clone)]
enum Target {
    Baseline(DatabaseConnection, TenantId),
    Store(Arc<dyn TenantStore>, Tenant),
    /// Shared-schema's first design, kept to measure against: a sea-orm transaction, then the
    /// role and the setting in one message, then the statement, then `COMMIT`.
    FourRoundTrips(DatabaseConnection, Tenant),
}

impl Target {
    async fn scope(&self, mode: ScopeMode) -> TenantScope {
        match self {
            Target::Baseline(conn, id) => match mode {
                ScopeMode::Autocommit => {
                    TenantScope::autocommit(*id, TableNamespace::Unqualified, conn.clone())
                }
                ScopeMode::Transaction => TenantScope::in_transaction(
                    *id,
                    TableNamespace::Unqualified,
                    conn.begin().await.expect("begin"),
                ),
                ScopeMode::ReadOnly => TenantScope::in_transaction(
                    *id,
                    TableNamespace::Unqualified,
                    conn.begin_with_config(None, Some(AccessMode::ReadOnly))
                        .await
                        .expect("begin"),
                )
                .reading_only(),
            },
            Target::Store(store, t) => store.scope_with(t, mode).await.expect("scope"),
            Target::FourRoundTrips(conn, t) => {
                let txn = conn.begin().await.expect("begin");
                txn.execute_unprepared(&format!(
                    "SET LOCAL ROLE tenancy_app; SELECT set_config('tenancy.tenant_id', '{}', true)",
                    t.id.as_uuid()
                ))
                .await
                .expect("bind");
                TenantScope::in_transaction(t.id, TableNamespace::Unqualified, txn)
            }
        }
    }
}

/// The data: `PROJECTS` projects, the first `WITH_TASKS` (and so the summary's first page)
/// with three tasks each.
async fn seed(target: &Target) -> anyhow::Result<Vec<Uuid>> {
    const WITH_TASKS: usize = 50;
    let scope = target.scope(ScopeMode::Transaction).await;
    let mut made = seed::projects_with_tasks(&scope, "p", WITH_TASKS, 3).await?;
    made.extend(seed::projects_with_tasks(&scope, "q", PROJECTS - WITH_TASKS, 0).await?);
    scope.commit().await?;
    Ok(made.into_iter().map(|p| p.id).collect())
}

async fn variant(name: &str, db: &TestDatabase) -> anyhow::Result<Target> {
    let store: Arc<dyn TenantStore> = match name {
        "baseline" => {
            let conn = tenancy_benches::plain_database(db).await?;
            return Ok(Target::Baseline(conn, TenantId::new()));
        }
        "shared-schema-predicate-only" => Arc::new(
            SharedSchemaStore::connect(
                db.url(),
                SharedSchemaOptions {
                    migrations: tenancy_example::migrations(),
                    isolation: Isolation::PredicateOnly,
                    ..SharedSchemaOptions::default()
                },
            )
            .await?,
        ),
        "shared-schema" => {
            tenancy_benches::open_store(Strategy::SharedSchema, db, tenancy_example::migrations())
                .await?
        }
        "shared-schema-rls-in-transaction" => Arc::new(
            SharedSchemaStore::connect(
                db.url(),
                SharedSchemaOptions {
                    migrations: tenancy_example::migrations(),
                    rls_binding: Some(RlsBinding::Transaction),
                    ..SharedSchemaOptions::default()
                },
            )
            .await?,
        ),
        "shared-schema-rls-four-round-trips" => {
            let store = SharedSchemaStore::connect(
                db.url(),
                SharedSchemaOptions {
                    migrations: tenancy_example::migrations(),
                    ..SharedSchemaOptions::default()
                },
            )
            .await?;
            let t = tenancy_benches::tenant(&store, "bench").await?;
            return Ok(Target::FourRoundTrips(
                store
                    .connection(tenancy_core::plumbing::StrategyDoor)
                    .clone(),
                t,
            ));
        }
        "separate-schema" => {
            tenancy_benches::open_store(Strategy::SeparateSchema, db, tenancy_example::migrations())
                .await?
        }
        "separate-db" => {
            tenancy_benches::open_store(Strategy::SeparateDb, db, tenancy_example::migrations())
                .await?
        }
        other => anyhow::bail!("unknown variant {other}"),
    };
    let t = tenancy_benches::tenant(store.as_ref(), "bench").await?;
    Ok(Target::Store(store, t))
}

const VARIANTS: &[&str] = &[
    "baseline",
    "shared-schema",
    "shared-schema-rls-in-transaction",
    "shared-schema-rls-four-round-trips",
    "shared-schema-predicate-only",
    "separate-schema",
    "separate-db",
];

const COLUMNS: [&str; 5] = ["tenant_id", "id", "name", "description", "created_at"];

/// A point read with the scope's string builders, as the domain wrote it before entities.
async fn builder_get(scope: &TenantScope, id: Uuid) -> tenancy_core::Result<project::Model> {
    let mut q = scope.select("projects", "p");
    for c in COLUMNS {
        q.column((Alias::new("p"), Alias::new(c)));
    }
    q.and_where(Expr::col((Alias::new("p"), Alias::new("id"))).eq(id));
    scope
        .fetch_optional(&q)
        .await?
        .ok_or(tenancy_core::Error::NotFound("project"))
}

/// An insert with the scope's string builders, returning the row.
async fn builder_create(scope: &TenantScope) -> tenancy_core::Result<project::Model> {
    let mut insert = scope.insert(
        "projects",
        &["id", "name", "description"],
        vec![Uuid::now_v7().into(), "new".into(), String::new().into()],
    )?;
    insert.returning(Query::returning().columns(COLUMNS.map(Alias::new)));
    scope
        .fetch_optional(&insert)
        .await?
        .ok_or(tenancy_core::Error::NotFound("project"))
}

/// The variants the entity group runs: the baseline and each strategy's default.
const ENTITY_VARIANTS: &[&str] = &[
    "baseline",
    "shared-schema",
    "separate-schema",
    "separate-db",
];

fn routing_tax(c: &mut Criterion) {
    let rt = tenancy_benches::runtime();
    // `-- separate-db` (criterion's filter) sets up only the variants it names and the baseline.
    let variants = tenancy_benches::selected(VARIANTS, &["baseline"]);
    let mut set_up = Vec::new();
    for name in &variants {
        let made = rt.block_on(async {
            let db = TestDatabase::create().await?;
            let target = variant(name, &db).await?;
            let ids = seed(&target).await?;
            anyhow::Ok((db, target, ids))
        });
        set_up.push(made.unwrap_or_else(|e| {
            panic!("bench set-up of {name} failed (is DATABASE_URL set?): {e:#}")
        }));
    }

    let mut read = c.benchmark_group("routing_tax/read");
    for (name, (_, target, ids)) in variants.iter().zip(&set_up) {
        read.bench_function(BenchmarkId::new(*name, 1), |b| {
            let mut i = 0;
            b.to_async(&rt).iter(|| {
                i += 1;
                let (target, id) = (target.clone(), ids[(i * 7919) % ids.len()]);
                async move {
                    let scope = target.scope(ScopeMode::Autocommit).await;
                    projects::get(&scope, id).await.expect("read")
                }
            })
        });
    }
    read.finish();

    let mut insert = c.benchmark_group("routing_tax/insert");
    for (name, (_, target, _)) in variants.iter().zip(&set_up) {
        insert.bench_function(BenchmarkId::new(*name, 1), |b| {
            b.to_async(&rt).iter(|| {
                let target = target.clone();
                async move {
                    let scope = target.scope(ScopeMode::Autocommit).await;
                    let p = projects::create(&scope, NewProject::named("new"))
                        .await
                        .expect("insert");
                    scope.commit().await.expect("commit");
                    p
                }
            })
        });
    }
    insert.finish();

    let mut join = c.benchmark_group("routing_tax/join");
    for (name, (_, target, _)) in variants.iter().zip(&set_up) {
        join.bench_function(BenchmarkId::new(*name, 1), |b| {
            b.to_async(&rt).iter(|| {
                let target = target.clone();
                async move {
                    let scope = target.scope(ScopeMode::Autocommit).await;
                    projects::summary(
                        &scope,
                        PageRequest {
                            limit: 20,
                            after: None,
                        },
                    )
                    .await
                    .expect("summary")
                }
            })
        });
    }
    join.finish();

    // The same read and insert, through the builders and through entities, in one run.
    let mut entity = c.benchmark_group("routing_tax/entity");
    for (name, (_, target, ids)) in variants.iter().zip(&set_up) {
        if !ENTITY_VARIANTS.contains(name) {
            continue;
        }
        for path in ["builder", "entity"] {
            entity.bench_function(BenchmarkId::new(format!("read/{name}/{path}"), 1), |b| {
                let mut i = 0;
                b.to_async(&rt).iter(|| {
                    i += 1;
                    let (target, id) = (target.clone(), ids[(i * 7919) % ids.len()]);
                    async move {
                        let scope = target.scope(ScopeMode::Autocommit).await;
                        if path == "builder" {
                            builder_get(&scope, id).await.expect("read").id
                        } else {
                            project::Entity::find()
                                .filter(project::Column::Id.eq(id))
                                .one_in(&scope)
                                .await
                                .expect("read")
                                .expect("found")
                                .id
                        }
                    }
                })
            });
        }
        for path in ["builder", "entity"] {
            entity.bench_function(BenchmarkId::new(format!("insert/{name}/{path}"), 1), |b| {
                b.to_async(&rt).iter(|| {
                    let target = target.clone();
                    async move {
                        let scope = target.scope(ScopeMode::Autocommit).await;
                        let id = if path == "builder" {
                            builder_create(&scope).await.expect("insert").id
                        } else {
                            project::ActiveModel {
                                id: Set(Uuid::now_v7()),
                                name: Set("new".into()),
                                description: Set(String::new()),
                                ..Default::default()
                            }
                            .insert_in(&scope)
                            .await
                            .expect("insert")
                            .id
                        };
                        scope.commit().await.expect("commit");
                        id
                    }
                })
            });
        }
    }
    entity.finish();

    rt.block_on(async {
        for (db, target, _) in set_up {
            drop(target);
            db.drop_database().await.ok();
        }
    });
}

criterion_group!(benches, routing_tax);
criterion_main!(benches);
