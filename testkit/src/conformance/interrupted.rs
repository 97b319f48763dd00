//! A process stopped at each fault point of creating, migrating and deleting a tenant
//! ([`tenancy_core::plumbing::fault`]): the next run completes or cleans up, a half-built or
//! half-deleted tenant is never served, and no other tenant is touched.
//!
//! Each check re-runs itself in a child process (this test binary, filtered to this one
//! test) with `TENANCY_FAULT` naming the point and the parent's database named in
//! `TENANCY_TEST_PARENT_DATABASE`. The child does the one step and is aborted at the point;
//! the parent then looks at what it left and runs the step again, as the next run of an
//! application would.

use std::process::Command;

use anyhow::{Result, bail, ensure};
use tenancy_core::migration::TenantMigrations;
use tenancy_core::plumbing::StrategyDoor;
use tenancy_core::sea_orm::DbErr;
use tenancy_core::sea_orm_migration::prelude::*;
use tenancy_core::{Error, MigrateOptions, NewTenant, Strategy, Tenant, TenantState, TenantStore};

use super::support::{all_projects, new_project, rows_anywhere, slug, tenant};
use super::{Harness, StoreConfig};

const PARENT_DATABASE: &str = "TENANCY_TEST_PARENT_DATABASE";

/// In a child process: the parent's database.
pub(crate) fn parent_database() -> Option<String> {
    std::env::var(PARENT_DATABASE).ok()
}

/// In a child process: the fault point it must stop at.
pub(crate) fn child_point() -> Option<String> {
    parent_database().and(std::env::var("TENANCY_FAULT").ok())
}

/// The slug of the tenant the step at `point` works on.
pub(crate) fn slug_at(point: &str) -> String {
    format!("at-{}", point.replace(':', "-"))
}

/// Writes what a check saw at each point (`target/fault-reports/<test>-<strategy>.json`).
pub(crate) fn report(
    h: &Harness,
    strategy: Strategy,
    points: Vec<serde_json::Value>,
) -> Result<()> {
    let name = format!("{}-{strategy}", h.test.replace("::", "-"));
    crate::fault_report(&name, &serde_json::json!({ "points": points }))
}

/// Runs this test again in a child process with `point` armed, on this test's database, and
/// checks that the child was stopped there.
pub(crate) async fn stop_at(h: &Harness, point: &str) -> Result<()> {
    stop_at_nth(h, point, 1).await
}

/// [`stop_at`], the child stopped the `nth` time it meets `point`.
pub(crate) async fn stop_at_nth(h: &Harness, point: &str, nth: usize) -> Result<()> {
    let exe = std::env::current_exe()?;
    let (test, database, armed) = (h.test.clone(), h.db.name().to_owned(), point.to_owned());
    let admin = h.db.admin_url().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(exe)
            .args([
                test.as_str(),
                "--exact",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("TENANCY_FAULT", armed)
            .env("TENANCY_FAULT_AT", nth.to_string())
            .env(PARENT_DATABASE, database)
            .env(crate::database::PARENT_ADMIN_URL, admin)
            .output()
    })
    .await??;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        !out.status.success() && stderr.contains(&format!("stopped at fault point {point}")),
        "the child process was not stopped at {point} ({}):\n{stdout}\n{stderr}",
        out.status
    );
    Ok(())
}

/// The fault points a creation passes in the placement of `strategy`.
fn points_of(strategy: Strategy) -> &'static [&'static str] {
    match strategy {
        Strategy::SharedSchema | Strategy::Hybrid => &["create:registered"],
        Strategy::SeparateSchema => &["create:registered", "create:built"],
        Strategy::SeparateDb => &["create:registered", "create:built", "create:pinned"],
    }
}

/// The fault points of a creation in `store`: each point is tried on a slug of its own, so
/// a store over several placements is asked where that slug would go.
async fn creation_points(store: &dyn TenantStore) -> Result<Vec<&'static str>> {
    let mut points = Vec::new();
    for point in ["create:registered", "create:built", "create:pinned"] {
        let new = NewTenant::new(slug(&slug_at(point)), "interrupted");
        let placed = store
            .placements(StrategyDoor)
            .placement_for(&new)
            .await?
            .strategy();
        if points_of(placed).contains(&point) {
            points.push(point);
        }
    }
    Ok(points)
}

/// A bystander tenant with one project, and a check that it still has exactly that.
async fn bystander(store: &dyn TenantStore) -> Result<Tenant> {
    let b = tenant(store, "bystander").await?;
    new_project(store, &b, "kept").await?;
    Ok(b)
}

async fn bystander_untouched(h: &Harness, store: &dyn TenantStore, b: &Tenant) -> Result<()> {
    let names: Vec<String> = all_projects(store, b)
        .await?
        .into_iter()
        .map(|p| p.name)
        .collect();
    ensure!(names == ["kept"], "the bystander's projects: {names:?}");
    ensure!(
        rows_anywhere(h, b.id).await? == 1,
        "the bystander has its one row"
    );
    Ok(())
}

/// A tenant that is not ready is refused a scope, whatever the cause.
async fn not_served(store: &dyn TenantStore, t: &Tenant, point: &str) -> Result<()> {
    match store.scope(t).await {
        Err(Error::TenantNotReady { .. }) => Ok(()),
        Err(e) => bail!("after {point}: a scope failed with {e} instead of TenantNotReady"),
        Ok(_) => bail!("after {point}: a half-done tenant got a scope"),
    }
}

/// Creation stopped after the catalog row, after the schema or database was built, after the
/// pins: the tenant stays `provisioning` and gets no scope; creating it again completes it.
pub async fn interrupted_creation_resumes(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig::default()).await?;
    if let Some(point) = child_point() {
        tenant(&*store, &slug_at(&point)).await?;
        bail!("the creation finished: fault point {point} was never reached");
    }
    let b = bystander(&*store).await?;
    let mut seen = Vec::new();
    for point in creation_points(&*store).await? {
        stop_at(h, point).await?;
        let left = store.tenant_by_slug(&slug(&slug_at(point))).await?;
        ensure!(
            left.state == TenantState::Provisioning,
            "after {point}: the tenant is {}",
            left.state
        );
        not_served(&*store, &left, point).await?;
        let done = store
            .create_tenant(NewTenant::new(slug(&slug_at(point)), "again"))
            .await?;
        ensure!(done.id == left.id && done.state == TenantState::Ready);
        new_project(&*store, &done, "after").await?;
        let names: Vec<String> = all_projects(&*store, &done)
            .await?
            .into_iter()
            .map(|p| p.name)
            .collect();
        ensure!(
            names == ["after"],
            "after {point}: the resumed tenant holds {names:?}"
        );
        bystander_untouched(h, &*store, &b).await?;
        seen.push(serde_json::json!({
            "point": point, "left": left.state.as_str(), "served_meanwhile": false,
            "after_retry": done.state.as_str(), "bystander_rows": 1,
        }));
    }
    report(h, store.strategy(), seen)
}

/// A migration that adds column `name` to `projects`.
struct AddColumn(&'static str, &'static str);

impl MigrationName for AddColumn {
    fn name(&self) -> &str {
        self.0
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddColumn {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(&format!("ALTER TABLE projects ADD COLUMN {} text", self.1))
            .await?;
        Ok(())
    }
}

/// The example domain's tenant migrations and `added` more, each adding a column.
fn with_columns(added: usize) -> TenantMigrations {
    let more = [
        AddColumn("m0101_conformance_note", "note"),
        AddColumn("m0102_conformance_label", "label"),
    ];
    let mut list = tenancy_example::migration::Migrator::migrations();
    for m in more.into_iter().take(added) {
        list.push(Box::new(m));
    }
    TenantMigrations::new(list)
}

const MIGRATION_POINTS: [&str; 2] = ["migrate:applied", "migrate:committed"];

fn config_with_columns(added: usize) -> StoreConfig {
    StoreConfig {
        migrations: Some(with_columns(added)),
        ..StoreConfig::default()
    }
}

/// A migration run stopped inside a tenant's migration, and after it committed: every tenant
/// is still served (at the version it has), and the next run brings all of them to the latest
/// version.
pub async fn interrupted_migration_resumes(h: &Harness) -> Result<()> {
    if let Some(point) = child_point() {
        let added = MIGRATION_POINTS
            .iter()
            .position(|p| *p == point)
            .unwrap_or(0)
            + 1;
        let store = h.store(config_with_columns(added)).await?;
        store.migrate_all(MigrateOptions { concurrency: 1 }).await?;
        bail!("the migration finished: fault point {point} was never reached");
    }
    let store = h.store(StoreConfig::default()).await?;
    let b = bystander(&*store).await?;
    let others = [
        tenant(&*store, "first").await?,
        tenant(&*store, "second").await?,
    ];
    let mut seen = Vec::new();
    for (i, point) in MIGRATION_POINTS.iter().enumerate() {
        stop_at(h, point).await?;
        let resumed = h.store(config_with_columns(i + 1)).await?;
        let (mut served, mut at_latest) = (0, 0);
        for t in others.iter().chain([&b]) {
            let t = resumed.tenant(t.id).await?;
            ensure!(
                t.state == TenantState::Ready,
                "after {point}: {} is {}",
                t.slug,
                t.state
            );
            all_projects(&*resumed, &t).await?;
            served += 1;
        }
        bystander_untouched(h, &*resumed, &b).await?;
        let report = resumed.migrate_all(MigrateOptions::default()).await?;
        ensure!(
            report.failures().count() == 0,
            "after {point}: the next run failed: {report:?}"
        );
        let latest = with_columns(i + 1).latest();
        for t in others.iter().chain([&b]) {
            let t = resumed.tenant(t.id).await?;
            ensure!(
                t.schema_version == latest,
                "after {point}: {} is at version {}, not {latest}",
                t.slug,
                t.schema_version
            );
            at_latest += 1;
        }
        for t in &others {
            new_project(&*resumed, t, "migrated").await?;
        }
        bystander_untouched(h, &*resumed, &b).await?;
        seen.push(serde_json::json!({
            "point": point, "tenants_served_meanwhile": served,
            "tenants_at_latest_after_next_run": at_latest, "latest": latest, "bystander_rows": 1,
        }));
    }
    report(h, store.strategy(), seen)
}

const DELETION_POINTS: [&str; 2] = ["delete:marked", "delete:purged"];

/// A deletion stopped after the tenant was marked, and after it was purged: the tenant stays
/// `deleting`, is never served and its slug cannot be taken; deleting it again finishes, and
/// none of its rows is left.
pub async fn interrupted_deletion_finishes(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig::default()).await?;
    if let Some(point) = child_point() {
        let t = store.tenant_by_slug(&slug(&slug_at(&point))).await?;
        store.delete_tenant(t.id).await?;
        bail!("the deletion finished: fault point {point} was never reached");
    }
    let b = bystander(&*store).await?;
    let mut seen = Vec::new();
    for point in DELETION_POINTS {
        let doomed = tenant(&*store, &slug_at(point)).await?;
        new_project(&*store, &doomed, "doomed").await?;
        stop_at(h, point).await?;
        let left = store.tenant(doomed.id).await?;
        ensure!(
            left.state == TenantState::Deleting,
            "after {point}: the tenant is {}",
            left.state
        );
        not_served(&*store, &left, point).await?;
        let again = store
            .create_tenant(NewTenant::new(slug(&slug_at(point)), "again"))
            .await;
        ensure!(
            matches!(again, Err(Error::TenantNotReady { .. })),
            "after {point}: the slug of a tenant being deleted was taken again: {again:?}"
        );
        store.delete_tenant(doomed.id).await?;
        ensure!(
            matches!(store.tenant(doomed.id).await, Err(Error::TenantNotFound)),
            "after {point}: the tenant is still in the catalog"
        );
        ensure!(
            rows_anywhere(h, doomed.id).await? == 0,
            "after {point}: rows of the deleted tenant are left"
        );
        bystander_untouched(h, &*store, &b).await?;
        seen.push(serde_json::json!({
            "point": point, "left": left.state.as_str(), "served_meanwhile": false,
            "slug_taken_meanwhile": false, "rows_left_after_retry": 0, "bystander_rows": 1,
        }));
    }
    report(h, store.strategy(), seen)
}
