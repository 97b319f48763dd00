//! `tenants run TASK`: a task run for every tenant through the library's runner
//! ([`tenancy_core::runner`]), with a bar (or a line per tenant when standard error is not a
//! terminal) and the report's summary. The demo's one task is `purge-done-tasks`.

use std::io::IsTerminal;

use anyhow::{Result, bail};
use tenancy_core::runner::{Outcome, RunProgress};
use tenancy_core::{RunOptions, Slug, Tenant, TenantScope, run_for_every_tenant};
use tenancy_example::tasks;

use super::progress::progress;
use crate::startup::Backend;

/// The tasks the demo ships.
const TASKS: &[&str] = &["purge-done-tasks"];

pub(super) async fn run(
    backend: &Backend,
    task: &str,
    run: Option<String>,
    only: &[String],
    per_server: usize,
    days: u32,
) -> Result<()> {
    if !TASKS.contains(&task) {
        bail!("unknown task {task:?}: the demo ships {}", TASKS.join(", "));
    }
    let options = RunOptions {
        run: run.unwrap_or_else(|| format!("{task}-{}", chrono::Utc::now().format("%Y-%m-%d"))),
        per_server,
        only: match only {
            [] => None,
            slugs => Some(
                slugs
                    .iter()
                    .map(|s| Slug::parse(s))
                    .collect::<Result<_, _>>()?,
            ),
        },
    };
    let before = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
    let bar = progress(0, &options.run);
    let lines = !std::io::stderr().is_terminal();
    let tell = |p: RunProgress| {
        bar.set_length(p.total as u64);
        bar.set_position(p.finished as u64);
        if lines {
            eprintln!(
                "{}/{} {}: {}",
                p.finished,
                p.total,
                p.slug,
                describe(&p.outcome)
            );
        }
    };
    // ANCHOR: purge_task
    let purge = |_tenant: Tenant, scope: TenantScope| async move {
        tasks::purge_done(&scope, before).await?;
        scope.commit().await
    };
    let report = run_for_every_tenant(&*backend.store, &options, purge, &tell).await?;
    // ANCHOR_END: purge_task
    bar.finish_and_clear();
    let (done, failed, skipped) = report.counts();
    let earlier = report.tenants.iter().filter(|t| t.earlier).count();
    println!(
        "{}: {done} done ({earlier} by an earlier attempt), {failed} failed, {skipped} skipped",
        report.run
    );
    for t in report.tenants.iter().filter(|t| t.outcome != Outcome::Done) {
        println!("  {}\t{}", t.slug, describe(&t.outcome));
    }
    if failed > 0 {
        bail!(
            "{failed} tenants failed: run again with --run {} to retry them",
            report.run
        );
    }
    Ok(())
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Done => "done".into(),
        Outcome::Failed { error } => format!("failed: {error}"),
        Outcome::Skipped { reason } => format!("skipped: {reason}"),
    }
}
