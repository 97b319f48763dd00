//! Usage and quotas ([`tenancy_core::usage`], [`tenancy_core::quota`]): each tenant's
//! statements counted by its scopes and its storage read from its tables, never another's;
//! a plan's row limit exact under concurrent writers, and refused where no transaction could
//! hold its lock; on a Citus cluster that tracks tenants, Citus' own statistics beside ours.

use std::collections::BTreeMap;

use anyhow::{Result, ensure};
use tenancy_core::sea_orm::{ConnectionTrait, Database};
use tenancy_core::{Error, Limits, PlacementKind, Plan, ScopeMode, Tenant, TenantStore};
use tenancy_example::projects::{self, NewProject};

use super::support::{all_projects, expect_err, new_project, tenant};
use super::{Harness, StoreConfig};

fn projects_row(usage: &tenancy_core::TenantUsage) -> Option<&tenancy_core::usage::TableStorage> {
    usage.storage.tables.iter().find(|t| t.table == "projects")
}

/// Adds a project after `plan`'s check, in one transaction scope; `Ok(false)` when refused.
async fn add_checked(
    store: &dyn TenantStore,
    t: &Tenant,
    plan: &Plan,
    name: String,
) -> Result<bool> {
    let scope = store.scope(t).await?;
    match plan.ensure_room(&scope, "projects", 1).await {
        Ok(()) => {}
        Err(Error::QuotaExceeded { .. }) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    projects::create(&scope, NewProject::named(name)).await?;
    scope.commit().await?;
    Ok(true)
}

/// A's three projects show in A's usage (its statements, its rows, bytes) and not in B's; 12
/// writers at once at a limit of 5 leave exactly 5; a check through an autocommit or a
/// read-only scope is refused; on Citus with tenant tracking, Citus counted A's queries.
pub async fn usage_and_quota_per_tenant(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig::default()).await?;
    let a = tenant(&*store, "alpha").await?;
    let b = tenant(&*store, "bravo").await?;
    let before = tenancy_core::usage::statements_of(a.id);
    for i in 0..3 {
        new_project(&*store, &a, &format!("p{i}")).await?;
    }
    ensure!(all_projects(&*store, &a).await?.len() == 3);
    let usage = store.usage(&a).await?;
    let sent = usage.statements.statements - before.statements;
    ensure!(sent >= 4, "3 inserts and a read counted for A: {usage:?}");
    ensure!(usage.statements.rows - before.rows >= 6, "{usage:?}");
    let mine = projects_row(&usage).ok_or_else(|| anyhow::anyhow!("no projects: {usage:?}"))?;
    ensure!(mine.rows == 3 && mine.bytes > 0, "A's projects: {usage:?}");
    ensure!(
        usage.storage.estimated == (a.placement.kind() == PlacementKind::Shared),
        "estimated exactly on shared tables: {usage:?}"
    );
    let theirs = store.usage(&b).await?;
    ensure!(
        theirs.statements.statements == 0,
        "B sent nothing: {theirs:?}"
    );
    ensure!(
        projects_row(&theirs).is_some_and(|t| t.rows == 0),
        "none of A's rows in B's usage: {theirs:?}"
    );

    let plan = Plan {
        name: "five".into(),
        limits: Limits {
            rows: BTreeMap::from([("projects".to_owned(), 5)]),
            storage_bytes: None,
        },
    };
    let writers = (0..12).map(|i| add_checked(&*store, &a, &plan, format!("w{i}")));
    let added = futures::future::join_all(writers)
        .await
        .into_iter()
        .collect::<Result<Vec<bool>>>()?;
    let added = added.iter().filter(|&&x| x).count();
    let now = all_projects(&*store, &a).await?.len();
    ensure!(
        added == 2 && now == 5,
        "{added} added, {now} projects: the limit is 5"
    );
    ensure!(
        add_checked(&*store, &b, &plan, "b".into()).await?,
        "B has room of its own"
    );

    let auto = store.scope_with(&a, ScopeMode::Autocommit).await?;
    let refused = plan.ensure_room(&auto, "projects", 1).await;
    // shared-schema binds its tenant in a transaction whatever the mode: there the lock holds.
    if a.placement.kind() != PlacementKind::Shared {
        expect_err(refused, "a quota check in autocommit", |e| {
            matches!(e, Error::Invalid { .. })
        })?;
    }
    drop(auto);
    let read = store.scope_with(&a, ScopeMode::ReadOnly).await?;
    expect_err(
        plan.ensure_room(&read, "projects", 1).await,
        "a quota check in a read-only scope",
        |e| matches!(e, Error::ReadOnly(_)),
    )?;
    drop(read);

    // Citus' own statistics, where the cluster tracks tenants.
    let admin = Database::connect(tenancy_core::plumbing::loopback_without_tls(
        h.db.admin_url(),
    ))
    .await?;
    let tracked = admin
        .query_one_raw(tenancy_core::plumbing::sql::stmt(
            "SELECT current_setting('citus.stat_tenants_track', true) = 'all'",
            [],
        ))
        .await?
        .and_then(|r| r.try_get_by_index::<Option<bool>>(0).ok().flatten())
        .unwrap_or(false);
    let usage = store.usage(&a).await?;
    if tracked {
        let citus = usage
            .citus
            .ok_or_else(|| anyhow::anyhow!("Citus tracks tenants but has none for A"))?;
        // Citus counts in periods (a minute by default): A's queries may fall in the last one.
        ensure!(
            citus.query_count_in_this_period + citus.query_count_in_last_period > 0,
            "{citus:?}"
        );
    } else {
        ensure!(usage.citus.is_none(), "{usage:?}");
    }
    Ok(())
}
