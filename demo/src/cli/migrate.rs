//! The `migrate` command: every tenant to the latest schema, a report per tenant.

use anyhow::Result;
use tenancy_core::MigrateOptions;

use super::progress::progress;
use crate::startup::Backend;

pub(super) async fn migrate(backend: &Backend, concurrency: usize) -> Result<()> {
    let spinner = progress(0, "migrating");
    if spinner.is_hidden() {
        eprintln!("migrating every tenant, {} at a time", concurrency.max(1));
    } else {
        spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    }
    let report = backend
        .store
        .migrate_all(MigrateOptions {
            concurrency: concurrency.max(1),
        })
        .await?;
    spinner.finish_and_clear();
    eprintln!(
        "migrated: {} tenants changed, {} already current, {} failed",
        report
            .tenants
            .iter()
            .filter(|t| t.tenant_id.is_some()
                && matches!(t.outcome, tenancy_core::MigrationOutcome::Migrated { .. }))
            .count(),
        report.up_to_date,
        report.failures().count()
    );
    println!("{}", serde_json::to_string_pretty(&report)?);
    if !report.is_success() {
        anyhow::bail!("{} tenants failed to migrate", report.failures().count());
    }
    Ok(())
}
