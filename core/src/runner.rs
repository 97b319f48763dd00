//! Work run for every tenant: an application's task in each tenant's scope, a few tenants at
//! a time on each server, in a fair order, with each tenant's outcome recorded (done, failed
//! with its error, skipped with its reason), and resumable after a crash.
//!
//! [`run_for_every_tenant`] takes the tenants from the catalog (or the ones asked for), skips
//! those a scope cannot be bound for (suspended, being created or deleted), and runs the task
//! with each remaining tenant's own scope. Tenants are taken in turn from each server (the
//! control server for shared tables and schemas, each server of separate-db), and at most
//! [`RunOptions::per_server`] at once on one server, so one server's tenants never wait for
//! another's. Each outcome is written to `tenancy.task_runs` under the run's name as the
//! tenant finishes: a run stopped part-way (a crash, a deploy) is finished by running it again
//! with the same name, and a tenant recorded done is not run again. A task that committed and
//! was stopped before its outcome was written runs again, so a task must be idempotent, as a
//! migration is: at least once, never silently skipped.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::error::{Error, Result};
use crate::page::PageRequest;
use crate::plumbing::{StrategyDoor, catalog, fault};
use crate::scope::TenantScope;
use crate::store::TenantStore;
use crate::tenant::{Placement, Slug, Tenant, TenantId};

/// How a run for every tenant proceeds.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The run's name. Running again under the same name finishes a run stopped part-way: a
    /// tenant recorded done in it is not run again; a failed or skipped one is.
    pub run: String,
    /// Tenants run at once on each server (at least one).
    pub per_server: usize,
    /// Only these tenants (`None`: every tenant in the catalog).
    pub only: Option<Vec<Slug>>,
}

impl RunOptions {
    /// A run named `run` over every tenant, four at a time on each server.
    pub fn new(run: impl Into<String>) -> Self {
        RunOptions {
            run: run.into(),
            per_server: 4,
            only: None,
        }
    }
}

/// What came of one tenant's task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The task returned `Ok`.
    Done,
    /// The task (or binding its scope) failed; the error and its causes.
    Failed {
        /// Why.
        error: String,
    },
    /// No scope could be bound: the tenant is suspended, or being created or deleted.
    Skipped {
        /// Why.
        reason: String,
    },
}

impl Outcome {
    fn stored(&self) -> (&'static str, Option<&str>) {
        match self {
            Outcome::Done => ("done", None),
            Outcome::Failed { error } => ("failed", Some(error)),
            Outcome::Skipped { reason } => ("skipped", Some(reason)),
        }
    }
}

/// One tenant's line of a [`RunReport`].
#[derive(Debug, Clone, Serialize)]
pub struct TenantOutcome {
    /// The tenant.
    pub tenant_id: TenantId,
    /// Its slug.
    pub slug: String,
    /// What came of its task.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Recorded done by an earlier attempt of this run, so not run this time.
    pub earlier: bool,
}

/// Every tenant's outcome in a run, by slug.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The run's name.
    pub run: String,
    /// One line per tenant of the run, in slug order.
    pub tenants: Vec<TenantOutcome>,
}

impl RunReport {
    /// The tenants whose task failed.
    pub fn failed(&self) -> impl Iterator<Item = &TenantOutcome> {
        self.tenants
            .iter()
            .filter(|t| matches!(t.outcome, Outcome::Failed { .. }))
    }

    /// How many tenants are done (in this attempt or an earlier one), failed and skipped.
    pub fn counts(&self) -> (usize, usize, usize) {
        self.tenants
            .iter()
            .fold((0, 0, 0), |(d, f, s), t| match t.outcome {
                Outcome::Done => (d + 1, f, s),
                Outcome::Failed { .. } => (d, f + 1, s),
                Outcome::Skipped { .. } => (d, f, s + 1),
            })
    }
}

/// Where a run stands, after each tenant.
#[derive(Debug, Clone)]
pub struct RunProgress {
    /// Tenants finished so far in this attempt.
    pub finished: usize,
    /// Tenants this attempt runs.
    pub total: usize,
    /// The tenant that just finished, and how.
    pub slug: String,
    /// Its outcome.
    pub outcome: Outcome,
}

/// The server a tenant's scope reaches: the control server unless it has a database of its
/// own on a named one.
fn server_of(tenant: &Tenant) -> String {
    match &tenant.placement {
        Placement::Database { server, .. } => server.clone(),
        _ => String::new(),
    }
}

/// Tenants in turn from each server (the first of each, then the second of each, ...), each
/// server's in slug order: no server's tenants all go first.
fn fair_order(mut tenants: Vec<Tenant>) -> Vec<Tenant> {
    tenants.sort_by(|a, b| a.slug.as_str().cmp(b.slug.as_str()));
    let mut by_server: Vec<(String, VecDeque<Tenant>)> = Vec::new();
    for t in tenants {
        let server = server_of(&t);
        match by_server.iter_mut().find(|(s, _)| *s == server) {
            Some((_, q)) => q.push_back(t),
            None => by_server.push((server, VecDeque::from([t]))),
        }
    }
    let mut out = Vec::new();
    while by_server.iter().any(|(_, q)| !q.is_empty()) {
        for (_, q) in &mut by_server {
            out.extend(q.pop_front());
        }
    }
    out
}

// ANCHOR: run_for_every_tenant
/// Runs `task` with each tenant's scope (see the module's documentation): the task gets the
/// tenant and a transactional scope, commits it when its work is done, and returns `Ok`.
/// Returns every tenant's outcome; an error only when the catalog cannot be read or written.
pub async fn run_for_every_tenant<F, Fut>(
    store: &dyn TenantStore,
    options: &RunOptions,
    task: F,
    progress: &(dyn Fn(RunProgress) + Send + Sync),
) -> Result<RunReport>
where
    F: Fn(Tenant, TenantScope) -> Fut + Send + Sync,
    Fut: Future<Output = Result<()>> + Send,
{
    if options.per_server == 0 {
        return Err(Error::invalid("per_server", "must be at least one"));
    }
    let catalog = store.placements(StrategyDoor).catalog();
    let tenants = match &options.only {
        Some(slugs) => {
            let mut found = Vec::with_capacity(slugs.len());
            for slug in slugs {
                found.push(store.tenant_by_slug(slug).await?);
            }
            found
        }
        None => {
            let mut all = Vec::new();
            let mut page = PageRequest::first(500);
            loop {
                let got = store.list_tenants(page).await?;
                all.extend(got.items);
                match got.next {
                    Some(next) => page.after = Some(next),
                    None => break,
                }
            }
            all
        }
    };
    let earlier = catalog::run_outcomes(catalog, &options.run).await?;
    let (done_before, to_run): (Vec<Tenant>, Vec<Tenant>) = tenants
        .into_iter()
        .partition(|t| earlier.get(&t.id).is_some_and(|(o, _)| o == "done"));
    let to_run = fair_order(to_run);
    let total = to_run.len();
    let servers: HashMap<String, Arc<Semaphore>> = to_run
        .iter()
        .map(|t| (server_of(t), Arc::new(Semaphore::new(options.per_server))))
        .collect();
    let finished = std::sync::atomic::AtomicUsize::new(0);
    let width = options.per_server * servers.len().max(1);
    let results: Vec<Result<TenantOutcome>> = futures::stream::iter(to_run)
        .map(|tenant| {
            let (servers, task, finished) = (&servers, &task, &finished);
            async move {
                let permit = servers[&server_of(&tenant)]
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| Error::Internal("a run's server permits were closed".into()))?;
                // The store's guard before a scope (`Tenant::ensure_servable`) says who is skipped.
                let outcome = match store.scope(&tenant).await {
                    Err(e @ (Error::TenantSuspended(_) | Error::TenantNotReady { .. })) => {
                        Outcome::Skipped {
                            reason: e.to_string(),
                        }
                    }
                    Err(e) => Outcome::Failed { error: e.chain() },
                    Ok(scope) => match task(tenant.clone(), scope).await {
                        Ok(()) => Outcome::Done,
                        Err(e) => Outcome::Failed { error: e.chain() },
                    },
                };
                drop(permit);
                let (stored, error) = outcome.stored();
                catalog::record_outcome(catalog, &options.run, tenant.id, stored, error).await?;
                fault::point("run:recorded");
                let n = finished.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                progress(RunProgress {
                    finished: n,
                    total,
                    slug: tenant.slug.to_string(),
                    outcome: outcome.clone(),
                });
                Ok(TenantOutcome {
                    tenant_id: tenant.id,
                    slug: tenant.slug.to_string(),
                    outcome,
                    earlier: false,
                })
            }
        })
        .buffer_unordered(width)
        .collect()
        .await;
    let mut lines = done_before
        .into_iter()
        .map(|t| TenantOutcome {
            tenant_id: t.id,
            slug: t.slug.to_string(),
            outcome: Outcome::Done,
            earlier: true,
        })
        .collect::<Vec<_>>();
    for r in results {
        lines.push(r?);
    }
    lines.sort_by(|a, b| a.slug.cmp(&b.slug));
    Ok(RunReport {
        run: options.run.clone(),
        tenants: lines,
    })
}
// ANCHOR_END: run_for_every_tenant
