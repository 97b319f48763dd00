//! Run with `cargo bench -p tenancy-benches --bench separate_schema_routing`.
//!
//! How should a handle bound to one tenant reach that tenant's schema? A point read by primary
//! key through each candidate, beside the baseline: the same statement, built by the same
//! code, on a plain table in a database of its own.
//!
//! - `baseline`: unqualified `projects` in a single-tenant database, autocommit;
//! - `qualified`: `"tenant_x".projects`, autocommit (the chosen mode);
//! - `qualified_txn`: the same inside `BEGIN ... COMMIT` (the default, transactional scope);
//! - `set_local_search_path`: `BEGIN; SET LOCAL search_path ...; SELECT; COMMIT`, what
//!   schema-per-tenant libraries usually do, with unqualified names.

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use tenancy_core::sea_orm::{ConnectionTrait, TransactionTrait};
use tenancy_core::{TableNamespace, TenantId, TenantScope, TenantStore, quote_ident};
use tenancy_example::projects;
use tenancy_separate_schema::{SeparateSchemaOptions, SeparateSchemaStore};
use tenancy_testkit::TestDatabase;

fn routing(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let setup = rt.block_on(async {
        let schema_db = TestDatabase::create().await?;
        let plain_db = TestDatabase::create().await?;
        let store = SeparateSchemaStore::connect(
            schema_db.url(),
            SeparateSchemaOptions {
                migrations: tenancy_example::migrations(),
                ..SeparateSchemaOptions::default()
            },
        )
        .await?;
        let t = tenancy_benches::tenant(&store, "bench").await?;
        let rows = tenancy_benches::seed_projects(store.scope(&t).await?, 1_000).await?;

        // The baseline: the domain's tables in a plain database, read through the same code.
        let plain = tenancy_benches::plain_database(&plain_db).await?;
        let plain_id = TenantId::from_uuid(t.id.as_uuid());
        let plain_rows = tenancy_benches::seed_projects(
            TenantScope::in_transaction(
                plain_id,
                TableNamespace::Unqualified,
                plain.begin().await?,
            ),
            1_000,
        )
        .await?;
        anyhow::Ok((
            schema_db,
            plain_db,
            Arc::new(store),
            t,
            rows,
            plain,
            plain_rows,
        ))
    });
    let (schema_db, plain_db, store, t, rows, plain, plain_rows) = match setup {
        Ok(s) => s,
        Err(e) => panic!("bench set-up failed (is DATABASE_URL set?): {e:#}"),
    };
    let schema = quote_ident(&store.schema_for(&t.slug));
    let pick = |i: usize| rows[i % rows.len()].id;

    let mut group = c.benchmark_group("separate_schema_routing");
    group.bench_function(BenchmarkId::new("baseline", 1), |b| {
        let mut i = 0;
        b.to_async(&rt).iter(|| {
            i += 1;
            let id = plain_rows[i % plain_rows.len()].id;
            let scope = TenantScope::autocommit(
                TenantId::from_uuid(t.id.as_uuid()),
                TableNamespace::Unqualified,
                plain.clone(),
            );
            async move { projects::get(&scope, id).await.expect("baseline read") }
        })
    });
    group.bench_function(BenchmarkId::new("qualified", 1), |b| {
        let mut i = 0;
        b.to_async(&rt).iter(|| {
            i += 1;
            let (store, t, id) = (store.clone(), t.clone(), pick(i));
            async move { tenancy_benches::read_project(store.as_ref(), &t, id).await }
        })
    });
    group.bench_function(BenchmarkId::new("qualified_txn", 1), |b| {
        let mut i = 0;
        b.to_async(&rt).iter(|| {
            i += 1;
            let (store, t, id) = (store.clone(), t.clone(), pick(i));
            async move {
                let scope = store.scope(&t).await.expect("scope");
                let p = projects::get(&scope, id).await.expect("read");
                scope.commit().await.expect("commit");
                p
            }
        })
    });
    group.bench_function(BenchmarkId::new("set_local_search_path", 1), |b| {
        let mut i = 0;
        b.to_async(&rt).iter(|| {
            i += 1;
            let (store, schema, id) = (store.clone(), schema.clone(), pick(i));
            let tenant = TenantId::from_uuid(t.id.as_uuid());
            async move {
                let txn = store
                    .connection(tenancy_core::plumbing::StrategyDoor)
                    .begin()
                    .await
                    .expect("begin");
                txn.execute_unprepared(&format!("SET LOCAL search_path TO {schema}"))
                    .await
                    .expect("set");
                let scope = TenantScope::in_transaction(tenant, TableNamespace::Unqualified, txn);
                let p = projects::get(&scope, id).await.expect("read");
                scope.commit().await.expect("commit");
                p
            }
        })
    });
    group.finish();

    rt.block_on(async {
        plain.close().await.ok();
        drop(store);
        schema_db.drop_database().await.ok();
        plain_db.drop_database().await.ok();
    });
}

criterion_group!(benches, routing);
criterion_main!(benches);
