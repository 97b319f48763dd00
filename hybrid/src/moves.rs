//! Moving a live tenant between placements, driven by the catalog.
//!
//! The steps, each recorded before the next begins (the tenant's row holds the move: source,
//! target and step; `tenancy.jobs` reports on it):
//!
//! 1. **started**: the tenant becomes `moving` (still served from its placement) and the
//!    target's empty tables are built, at the tenant's schema version.
//! 2. **fenced**: a trigger on every source table refuses the tenant's writes
//!    (`Error::TenantMoving`, a 503 with `Retry-After` in the demo). Creating it waits for
//!    the writes in flight, so every write acknowledged before it is in the source. Then the
//!    rows are copied in one snapshot and the copy is checked (row counts and checksums).
//! 3. **flipped**: one catalog update points the tenant at the target; the commit is
//!    announced to every process on the catalog channel. The source stays fenced for
//!    [`MoveOptions::drain`](crate::MoveOptions::drain), so a process that has not heard
//!    yet can still read it, and cannot write to it; then it is purged.
//!
//! A move stopped before the flip is rolled back (fence lifted, target purged); one stopped
//! after is finished (source purged). Either way the tenant is served from exactly one copy.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tenancy_core::plumbing::Placements;
use tenancy_core::plumbing::catalog::{self, Job};
use tenancy_core::plumbing::fault;
use tenancy_core::plumbing::transfer::Progress;
use tenancy_core::sea_orm::sqlx::{self, Connection, PgConnection};
use tenancy_core::{
    Error, JobKind, Move, MoveStep, NewTenant, PlacementKind, Result, Tenant, TenantId,
    TenantState, TenantStore,
};

use crate::store::HybridStore;

/// The fault points of a move, in order (`TENANCY_FAULT=<point>` stops the process there).
pub use tenancy_core::plumbing::fault::MOVE_POINTS;

/// How long the steps of one move took (what the moves bench reports).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MoveTimes {
    /// Building the target's empty tables.
    pub build: Duration,
    /// The tenant's writes refused: from the fence's commit to the flip's.
    pub fenced: Duration,
    /// Of which the copy and its check.
    pub copy: Duration,
    /// The drain and the purge of the source, after the flip.
    pub finish: Duration,
}

/// What became of a move found half done by [`HybridStore::resume_moves`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resumed {
    /// It had not flipped: the tenant is back where it was.
    RolledBack(Tenant),
    /// It had flipped: the tenant is where it was going.
    Finished(Tenant),
    /// Another process is driving it.
    Busy(TenantId),
    /// It could not be resumed now (the error says why); the next run tries again.
    Failed {
        /// The tenant whose move could not be resumed.
        tenant: TenantId,
        /// Why.
        error: String,
    },
}

/// What [`HybridStore::roll_back`] found.
enum RolledBack {
    /// Rolled back (or ended already): the tenant as it is now.
    Done(Tenant),
    /// The move had flipped: nothing was undone; it must be finished.
    Flipped(Tenant),
}

impl HybridStore {
    // ANCHOR: start_move
    /// Records a move of tenant `id` to the placement of `to` (on `server`, for separate-db)
    /// and returns its job; [`HybridStore::run_move`] then drives it. The tenant must be
    /// `ready`, at the latest schema version, and somewhere else.
    pub async fn start_move(
        &self,
        id: TenantId,
        to: PlacementKind,
        server: Option<String>,
    ) -> Result<Job> {
        let tenant = self.tenant(id).await?;
        tenant.ensure_ready()?;
        if tenant.state != TenantState::Ready {
            return Err(Error::not_ready(&tenant));
        }
        if tenant.schema_version != Placements::tenant_version(self) {
            return Err(Error::Conflict(format!(
                "tenant {} is at schema version {} and new tables are built at {}: migrate first",
                tenant.slug,
                tenant.schema_version,
                Placements::tenant_version(self)
            )));
        }
        let new = NewTenant {
            server,
            ..NewTenant::new(tenant.slug.clone(), tenant.name.clone()).placed(to)
        };
        let target = self.placements_of(to).placement_for(&new).await?;
        if target == tenant.placement {
            return Err(Error::invalid(
                "to",
                format!("tenant {} is in {} already", tenant.slug, target),
            ));
        }
        let detail = serde_json::json!({ "from": tenant.placement, "to": target });
        let job = catalog::insert_job(self.catalog(), JobKind::Move, &tenant, detail).await?;
        let mv = Move {
            job: job.id,
            from: tenant.placement.clone(),
            to: target,
            step: MoveStep::Started,
            node: None,
        };
        if let Err(e) = catalog::begin_move(self.catalog(), id, &mv).await {
            catalog::end_job(self.catalog(), job.id, MoveStep::Failed, Some(&e.chain())).await?;
            return Err(e);
        }
        self.changed(tenant.slug.as_str());
        Ok(job)
    }
    // ANCHOR_END: start_move

    /// Moves tenant `id` to the placement of `to` and waits until it is there: the
    /// [`HybridStore::start_move`] and [`HybridStore::run_move`] of one call.
    pub async fn move_tenant(
        &self,
        id: TenantId,
        to: PlacementKind,
        server: Option<String>,
    ) -> Result<Tenant> {
        self.start_move(id, to, server).await?;
        self.run_move(id, &|_| {}).await
    }

    /// Drives the move recorded on tenant `id` from its step to the end, telling `progress`
    /// of the copy. Only one process drives a move at a time (a session lock on the catalog
    /// database, which a process that dies lets go). A failure before the flip rolls the move
    /// back and is returned; after the flip the move is always finished.
    pub async fn run_move(
        &self,
        id: TenantId,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<Tenant> {
        Ok(self.run_move_timed(id, progress).await?.0)
    }

    /// [`HybridStore::run_move`], with how long its steps took.
    pub async fn run_move_timed(
        &self,
        id: TenantId,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<(Tenant, MoveTimes)> {
        let mut lock = self.move_lock(id).await?;
        if !lock.held {
            return Err(Error::Conflict(format!(
                "the move of tenant {id} is run by another process"
            )));
        }
        let result = self.drive(id, progress).await;
        lock.release().await;
        result
    }

    // ANCHOR: drive
    async fn drive(
        &self,
        id: TenantId,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<(Tenant, MoveTimes)> {
        let tenant = self.tenant(id).await?;
        let Some(mv) = tenant.moving.clone() else {
            return Ok((tenant, MoveTimes::default()));
        };
        if mv.step == MoveStep::Flipped {
            return Ok((self.finish(&tenant, &mv).await?, MoveTimes::default()));
        }
        match self.copy_and_flip(&tenant, &mv, progress).await {
            Ok(mut times) => {
                let flipped = self.tenant(id).await?;
                let started = Instant::now();
                let done = self.finish(&flipped, &mv).await?;
                times.finish = started.elapsed();
                Ok((done, times))
            }
            Err(e) => {
                // The flip may have committed before the error (its answer lost, or a later
                // statement failed): then the target is the live copy, and the move is
                // finished, never rolled back. `roll_back` checks the step in the catalog.
                tracing::warn!(tenant = %tenant.slug, error = %e.chain(), "move failed");
                match self.roll_back(&tenant, &mv, Some(&e)).await? {
                    RolledBack::Done(_) => Err(e),
                    RolledBack::Flipped(now) => {
                        let done = self.finish(&now, &mv).await?;
                        Ok((done, MoveTimes::default()))
                    }
                }
            }
        }
    }

    async fn copy_and_flip(
        &self,
        tenant: &Tenant,
        mv: &Move,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<MoveTimes> {
        let c = self.catalog();
        let mut times = MoveTimes::default();
        let started = Instant::now();
        fault::point("move:started");
        let source = self.placements_of(mv.from.kind());
        let target = self.placements_of(mv.to.kind());
        let version = target.build_at(tenant, &mv.to).await?;
        if version != tenant.schema_version {
            return Err(Error::Conflict(format!(
                "the target was built at schema version {version} and tenant {} is at {}",
                tenant.slug, tenant.schema_version
            )));
        }
        fault::point("move:built");
        times.build = started.elapsed();
        let mut from = source.tables_at(tenant, &mv.from).await?;
        from.fence(tenant.id, self.inner.options.moves.lock_timeout)
            .await?;
        let fenced = Instant::now();
        if !catalog::set_move_step(c, tenant.id, mv.job, &[MoveStep::Started], MoveStep::Fenced)
            .await?
        {
            return Err(Error::Conflict(format!(
                "the move of tenant {} was taken over by another process",
                tenant.slug
            )));
        }
        catalog::job_step(c, mv.job, MoveStep::Fenced, None).await?;
        fault::point("move:fenced");
        let mut to = target.tables_at(tenant, &mv.to).await?;
        let done = Arc::new(AtomicU64::new(0));
        let total = Arc::new(AtomicU64::new(0));
        let ticker = {
            let (done, total, c, job) = (done.clone(), total.clone(), c.clone(), mv.job);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    let rows = (
                        i64::try_from(done.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
                        i64::try_from(total.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
                    );
                    let _ = catalog::job_step(&c, job, MoveStep::Fenced, Some(rows)).await;
                }
            })
        };
        let copying = Instant::now();
        let copied = from
            .copy_to(&mut to, tenant, &|p: Progress| {
                done.store(p.rows_done, Ordering::Relaxed);
                total.store(p.rows_total, Ordering::Relaxed);
                progress(p);
            })
            .await;
        ticker.abort();
        times.copy = copying.elapsed();
        let manifest = copied?;
        let rows: u64 = manifest.iter().map(|t| t.rows).sum();
        let rows = i64::try_from(rows).unwrap_or(i64::MAX);
        catalog::job_step(c, mv.job, MoveStep::Copied, Some((rows, rows))).await?;
        fault::point("move:copied");
        catalog::flip_move(c, tenant.id, mv.job).await?;
        times.fenced = fenced.elapsed();
        self.changed(tenant.slug.as_str());
        catalog::job_step(c, mv.job, MoveStep::Flipped, None).await?;
        fault::point("move:flipped");
        Ok(times)
    }
    // ANCHOR_END: drive

    /// After the flip: waits for other processes to see it, purges the source, ends the move.
    async fn finish(&self, tenant: &Tenant, mv: &Move) -> Result<Tenant> {
        tokio::time::sleep(self.inner.options.moves.drain).await;
        self.placements_of(mv.from.kind())
            .purge_at(tenant, &mv.from)
            .await?;
        fault::point("move:purged");
        // The job first: a stop in between leaves a move that resuming ends again.
        catalog::end_job(self.catalog(), mv.job, MoveStep::Done, None).await?;
        catalog::end_move(self.catalog(), tenant.id, mv.job).await?;
        self.changed(tenant.slug.as_str());
        self.tenant(tenant.id).await
    }

    /// Before the flip: marks the move `rolling_back` (from then on it can never flip), lifts
    /// the fence, purges what the target got, ends the move. When the catalog says the move
    /// flipped already, touches nothing and returns the tenant as it is now.
    async fn roll_back(
        &self,
        tenant: &Tenant,
        mv: &Move,
        error: Option<&Error>,
    ) -> Result<RolledBack> {
        let rolling = catalog::set_move_step(
            self.catalog(),
            tenant.id,
            mv.job,
            &[MoveStep::Started, MoveStep::Fenced, MoveStep::RollingBack],
            MoveStep::RollingBack,
        )
        .await?;
        if !rolling {
            let now = self.tenant(tenant.id).await?;
            return match &now.moving {
                Some(m) if m.job == mv.job && m.step == MoveStep::Flipped => {
                    Ok(RolledBack::Flipped(now))
                }
                // Ended already (by another process): nothing to undo.
                _ => Ok(RolledBack::Done(now)),
            };
        }
        self.placements_of(mv.from.kind())
            .tables_at(tenant, &mv.from)
            .await?
            .unfence(tenant.id)
            .await?;
        self.placements_of(mv.to.kind())
            .purge_at(tenant, &mv.to)
            .await?;
        let why = error.map(Error::chain);
        catalog::end_job(self.catalog(), mv.job, MoveStep::RolledBack, why.as_deref()).await?;
        catalog::end_move(self.catalog(), tenant.id, mv.job).await?;
        self.changed(tenant.slug.as_str());
        Ok(RolledBack::Done(self.tenant(tenant.id).await?))
    }

    // ANCHOR: resume_moves
    /// Every move left half done (a process stopped in the middle): rolled back when it had
    /// not flipped, finished when it had. Moves another process is driving are left to it.
    pub async fn resume_moves(&self) -> Result<Vec<Resumed>> {
        let mut out = Vec::new();
        for tenant in catalog::moving(self.catalog()).await? {
            let mut lock = self.move_lock(tenant.id).await?;
            if !lock.held {
                out.push(Resumed::Busy(tenant.id));
                continue;
            }
            let result: Result<Resumed> = async {
                let now = self.tenant(tenant.id).await?;
                let Some(mv) = now.moving.clone() else {
                    return Ok(Resumed::Finished(now));
                };
                if mv.step == MoveStep::Flipped {
                    return Ok(Resumed::Finished(self.finish(&now, &mv).await?));
                }
                let e = Error::Conflict("the process moving it stopped before the flip".into());
                match self.roll_back(&now, &mv, Some(&e)).await? {
                    RolledBack::Done(t) => Ok(Resumed::RolledBack(t)),
                    RolledBack::Flipped(t) => Ok(Resumed::Finished(self.finish(&t, &mv).await?)),
                }
            }
            .await;
            lock.release().await;
            // One move that cannot be resumed now does not keep the others fenced.
            out.push(result.unwrap_or_else(|e| {
                tracing::error!(tenant = %tenant.slug, error = %e.chain(), "could not resume a move");
                Resumed::Failed {
                    tenant: tenant.id,
                    error: e.chain(),
                }
            }));
        }
        let abandoned = catalog::abandon_orphan_jobs(self.catalog()).await?;
        if abandoned > 0 {
            tracing::warn!(
                jobs = abandoned,
                "jobs whose move never began were marked failed"
            );
        }
        Ok(out)
    }
    // ANCHOR_END: resume_moves

    async fn move_lock(&self, id: TenantId) -> Result<MoveLock> {
        let mut conn = PgConnection::connect(&self.inner.url)
            .await
            .map_err(Error::from)?;
        let held: bool = sqlx::query_scalar(
            "SELECT pg_try_advisory_lock(hashtextextended('tenancy:move:' || $1, 0))",
        )
        .bind(id.to_string())
        .fetch_one(&mut conn)
        .await
        .map_err(Error::from)?;
        Ok(MoveLock {
            conn: Some(conn),
            held,
        })
    }
}

/// A session advisory lock on one tenant's move, held by its own connection: closing the
/// connection (or the process dying) lets it go.
struct MoveLock {
    conn: Option<PgConnection>,
    held: bool,
}

impl MoveLock {
    async fn release(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = conn.close().await;
        }
    }
}
