//! Work run for every tenant ([`tenancy_core::runner`]): a task that fails for three of 100
//! tenants, and a process stopped half-way through the run; the next run finishes the rest
//! without running a tenant recorded done again, and its report lists the three.

use std::collections::HashSet;
use std::sync::Mutex;

use anyhow::{Result, bail, ensure};
use tenancy_core::entity::ActiveModelInTenant;
use tenancy_core::runner::Outcome;
use tenancy_core::sea_orm::ActiveValue::Set;
use tenancy_core::{Error, RunOptions, Tenant, TenantScope, run_for_every_tenant};
use tenancy_example::project;

use super::interrupted::{child_point, stop_at_nth};
use super::support::{all_projects, tenant};
use super::{Harness, StoreConfig};

const TENANTS: usize = 100;
const FAILING: [&str; 3] = ["t007", "t042", "t099"];
const RUN: &str = "one-project-each";
const POINT: &str = "run:recorded";

/// The task: refused for the three failing tenants; for the others, the run's project, under
/// a key of the tenant's own (its id). Idempotent by that key, as a task of a run must be: one
/// stopped after its commit and before its outcome was recorded runs again, and the stopped
/// process's transaction may still commit while the next run works (a full CI run met it:
/// looking for the project first and then inserting it made two). A second insert meets the
/// first one's key and waits for it, so it finds the project there.
async fn one_project(tenant: Tenant, scope: TenantScope) -> tenancy_core::Result<()> {
    if FAILING.contains(&tenant.slug.as_str()) {
        return Err(Error::invalid(
            "task",
            format!("{} refuses the task", tenant.slug),
        ));
    }
    let made = project::ActiveModel {
        id: Set(tenant.id.as_uuid()),
        name: Set(RUN.into()),
        description: Set(String::new()),
        ..Default::default()
    }
    .insert_in(&scope)
    .await;
    match made {
        Ok(_) => scope.commit().await,
        Err(Error::UniqueViolation { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// 100 tenants; a child process runs the task for every tenant and is stopped after the 50th
/// outcome is recorded; the next run finishes the rest and reports 97 done, the three failed.
pub async fn every_tenant_run_finishes_after_a_crash(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig::default()).await?;
    let options = RunOptions::new(RUN);
    if child_point().as_deref() == Some(POINT) {
        run_for_every_tenant(&*store, &options, one_project, &|_| {}).await?;
        bail!("the run finished: fault point {POINT} was never reached");
    }
    let mut tenants = Vec::new();
    for i in 0..TENANTS {
        tenants.push(tenant(&*store, &format!("t{i:03}")).await?);
    }
    stop_at_nth(h, POINT, 50).await?;

    let catalog = store
        .placements(tenancy_core::plumbing::StrategyDoor)
        .catalog();
    let recorded = tenancy_core::plumbing::catalog::run_outcomes(catalog, RUN).await?;
    ensure!(
        (50..TENANTS).contains(&recorded.len()),
        "the stopped run recorded {} outcomes",
        recorded.len()
    );
    let done_before: HashSet<String> = tenants
        .iter()
        .filter(|t| recorded.get(&t.id).is_some_and(|(o, _)| o == "done"))
        .map(|t| t.slug.to_string())
        .collect();

    let ran = Mutex::new(Vec::new());
    let report = run_for_every_tenant(
        &*store,
        &options,
        |t: Tenant, scope: TenantScope| {
            if let Ok(mut ran) = ran.lock() {
                ran.push(t.slug.to_string());
            }
            one_project(t, scope)
        },
        &|_| {},
    )
    .await?;
    let ran = ran.into_inner().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let again: Vec<&String> = ran.iter().filter(|s| done_before.contains(*s)).collect();
    ensure!(
        again.is_empty(),
        "tenants recorded done ran again: {again:?}"
    );
    ensure!(
        report.tenants.len() == TENANTS,
        "the report has {} lines",
        report.tenants.len()
    );
    let failed: Vec<&str> = report.failed().map(|t| t.slug.as_str()).collect();
    ensure!(failed == FAILING, "the report lists {failed:?} as failed");
    let (done, _, skipped) = report.counts();
    ensure!(
        done == TENANTS - 3 && skipped == 0,
        "{done} done, {skipped} skipped"
    );
    ensure!(
        report.tenants.iter().filter(|t| t.earlier).count() == done_before.len(),
        "the report says which tenants the stopped run had done"
    );
    for line in report.failed() {
        let Outcome::Failed { error } = &line.outcome else {
            bail!("not a failure");
        };
        ensure!(error.contains("refuses the task"), "{}: {error}", line.slug);
    }
    // Each done tenant has the run's project once; the failed ones have none.
    for t in &tenants {
        let named = all_projects(&*store, t)
            .await?
            .into_iter()
            .filter(|p| p.name == RUN)
            .count();
        let want = usize::from(!FAILING.contains(&t.slug.as_str()));
        ensure!(named == want, "{}: {named} projects of the run", t.slug);
    }
    Ok(())
}
