//! Live moves: in every direction under reads and writes from two store instances, and a
//! process stopped at every step of a move.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use tenancy_core::plumbing::catalog;
use tenancy_core::{
    Error, NewTenant, PageRequest, Placement, PlacementKind, ScopeMode, Slug, Tenant, TenantState,
    TenantStore,
};
use tenancy_example::projects::{self, NewProject};
use tenancy_example::seed;
use tenancy_hybrid::{DefaultPlacement, HybridStore, MOVE_POINTS, Resumed};
use tenancy_testkit::TestDatabase;
use tenancy_testkit::conformance::StoreConfig;

use crate::options;

async fn connect(db: &TestDatabase) -> Result<HybridStore> {
    let mut o = options(&StoreConfig {
        max_connections: 8,
        migrations: None,
    });
    o.default_placement = DefaultPlacement::Fixed(PlacementKind::Shared);
    Ok(HybridStore::connect(db.url(), o).await?)
}

async fn create(store: &HybridStore, slug: &str, at: PlacementKind) -> Result<Tenant> {
    Ok(store
        .create_tenant(NewTenant::new(Slug::parse(slug)?, slug).placed(at))
        .await?)
}

async fn names(store: &HybridStore, t: &Tenant) -> tenancy_core::Result<BTreeSet<String>> {
    let scope = store.scope_with(t, ScopeMode::Autocommit).await?;
    let mut out = BTreeSet::new();
    let mut page = PageRequest::first(PageRequest::MAX_LIMIT);
    loop {
        let got = projects::list(&scope, page).await?;
        out.extend(got.items.into_iter().map(|p| p.name));
        match got.next {
            Some(after) => page.after = Some(after),
            None => break,
        }
    }
    scope.commit().await?;
    Ok(out)
}

/// What the clients of one move saw.
#[derive(Debug, Default)]
struct Seen {
    acknowledged: std::sync::Mutex<BTreeSet<String>>,
    writes_refused: AtomicU64,
    writes_failed: AtomicU64,
    reads: AtomicU64,
    reads_failed: AtomicU64,
    reads_missing_rows: AtomicU64,
    first_refusal: std::sync::Mutex<Option<Instant>>,
    last_refusal: std::sync::Mutex<Option<Instant>>,
    errors: std::sync::Mutex<Vec<String>>,
}

impl Seen {
    fn acked(&self) -> BTreeSet<String> {
        self.acknowledged
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default()
    }
    fn error(&self, e: String) {
        if let Ok(mut errors) = self.errors.lock()
            && errors.len() < 10
        {
            errors.push(e);
        }
    }
}

/// Writes a project at a time through `store` with the tenant as first looked up (a cache
/// that is never refreshed), until `stop`; a refusal by the fence is retried.
async fn writer(
    store: HybridStore,
    cached: Tenant,
    who: String,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
) {
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let name = format!("{who}-{i}");
        let result = async {
            let scope = store.scope(&cached).await?;
            projects::create(&scope, NewProject::named(name.clone())).await?;
            scope.commit().await
        }
        .await;
        match result {
            Ok(()) => {
                if let Ok(mut a) = seen.acknowledged.lock() {
                    a.insert(name);
                }
                i += 1;
            }
            Err(Error::TenantMoving) => {
                seen.writes_refused.fetch_add(1, Ordering::Relaxed);
                let now = Instant::now();
                if let Ok(mut f) = seen.first_refusal.lock() {
                    f.get_or_insert(now);
                }
                if let Ok(mut l) = seen.last_refusal.lock() {
                    *l = Some(now);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => {
                seen.writes_failed.fetch_add(1, Ordering::Relaxed);
                seen.error(format!("write {name}: {}", e.chain()));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Reads the tenant's projects through `store` (cached tenant, never refreshed) until `stop`;
/// every read must succeed and hold every write acknowledged before it began.
async fn reader(store: HybridStore, cached: Tenant, seen: Arc<Seen>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let before = seen.acked();
        match names(&store, &cached).await {
            Ok(got) => {
                seen.reads.fetch_add(1, Ordering::Relaxed);
                if !before.is_subset(&got) {
                    seen.reads_missing_rows.fetch_add(1, Ordering::Relaxed);
                    let missing: Vec<_> = before.difference(&got).take(3).cloned().collect();
                    seen.error(format!("a read missed acknowledged rows {missing:?}"));
                }
            }
            Err(e) => {
                seen.reads_failed.fetch_add(1, Ordering::Relaxed);
                seen.error(format!("read: {}", e.chain()));
            }
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
}

/// Rows of `tenant` per placement-independent count, for bystanders.
async fn bystanders(db: &TestDatabase, store: &HybridStore) -> Result<Vec<(Tenant, i64)>> {
    let mut out = Vec::new();
    for (i, at) in [
        PlacementKind::Shared,
        PlacementKind::Schema,
        PlacementKind::Database,
    ]
    .into_iter()
    .enumerate()
    {
        let t = create(store, &format!("bystander-{i}"), at).await?;
        let scope = store.scope(&t).await?;
        seed::projects_with_tasks(&scope, "b", 2, 3).await?;
        scope.commit().await?;
        out.push((t.clone(), rows_anywhere_db(db, &t).await?));
    }
    Ok(out)
}

async fn rows_anywhere_db(db: &TestDatabase, t: &Tenant) -> Result<i64> {
    tenancy_testkit::conformance::rows_in(db, t.id).await
}

/// A tenant walks all six directions (shared → schema → database → shared → database →
/// schema → shared) while two store instances (two processes, each with the tenant cached
/// from before the first move) write and read it. Counted against the database after each
/// move: every acknowledged write is there, the old copy holds nothing, no read failed or
/// missed an acknowledged row, and the bystanders in every placement are untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moves_in_every_direction_lose_nothing() -> Result<()> {
    let db = TestDatabase::create().await?;
    let a = connect(&db).await?;
    let b = connect(&db).await?;
    let others = bystanders(&db, &a).await?;
    let t = create(&a, "mover", PlacementKind::Shared).await?;
    {
        let scope = a.scope(&t).await?;
        seed::projects_with_tasks(&scope, "seed", 20, 10).await?;
        scope.commit().await?;
    }
    let cached_a = a.tenant(t.id).await?;
    let cached_b = b.tenant(t.id).await?;
    let path = [
        PlacementKind::Schema,
        PlacementKind::Database,
        PlacementKind::Shared,
        PlacementKind::Database,
        PlacementKind::Schema,
        PlacementKind::Shared,
    ];
    let mut report = Vec::new();
    for (n, to) in path.into_iter().enumerate() {
        let from = a.tenant(t.id).await?.placement;
        let seen = Arc::new(Seen::default());
        let stop = Arc::new(AtomicBool::new(false));
        let clients = vec![
            tokio::spawn(writer(
                a.clone(),
                cached_a.clone(),
                format!("a{n}"),
                seen.clone(),
                stop.clone(),
            )),
            tokio::spawn(writer(
                b.clone(),
                cached_b.clone(),
                format!("b{n}"),
                seen.clone(),
                stop.clone(),
            )),
            tokio::spawn(reader(
                a.clone(),
                cached_a.clone(),
                seen.clone(),
                stop.clone(),
            )),
            tokio::spawn(reader(
                b.clone(),
                cached_b.clone(),
                seen.clone(),
                stop.clone(),
            )),
        ];
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let moved = a.move_tenant(t.id, to, None).await?;
        let took = started.elapsed();
        tokio::time::sleep(Duration::from_millis(400)).await;
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.await?;
        }
        ensure!(moved.placement.kind() == to && moved.state == TenantState::Ready);
        let errors = seen.errors.lock().map(|e| e.clone()).unwrap_or_default();
        ensure!(
            seen.writes_failed.load(Ordering::Relaxed) == 0
                && seen.reads_failed.load(Ordering::Relaxed) == 0
                && seen.reads_missing_rows.load(Ordering::Relaxed) == 0,
            "{from} → {to}: {errors:?}"
        );
        let acked = seen.acked();
        let there = names(&a, &moved).await?;
        let lost: Vec<_> = acked.difference(&there).take(5).collect();
        ensure!(
            lost.is_empty(),
            "{from} → {to}: acknowledged writes lost: {lost:?}"
        );
        // Everything the tenant has, anywhere, is in its new copy: nothing reached the old
        // one after the fence (the old copy is purged and would hold it), nothing is doubled.
        let anywhere = rows_anywhere_db(&db, &moved).await?;
        let tasks = 200;
        ensure!(
            anywhere == i64::try_from(there.len())? + tasks,
            "{from} → {to}: {anywhere} rows anywhere, {} projects + {tasks} tasks in the new copy",
            there.len()
        );
        for (o, rows) in &others {
            ensure!(
                rows_anywhere_db(&db, o).await? == *rows,
                "bystander {} changed",
                o.slug
            );
        }
        let window = match (
            *seen
                .first_refusal
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?,
            *seen
                .last_refusal
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?,
        ) {
            (Some(f), Some(l)) => l.duration_since(f),
            _ => Duration::ZERO,
        };
        ensure!(
            window < Duration::from_secs(5),
            "{from} → {to}: writes refused for {window:?}"
        );
        report.push(serde_json::json!({
            "from": from.strategy().as_str(), "to": to.as_str(),
            "move_ms": took.as_millis(), "refused_window_ms": window.as_millis(),
            "acknowledged_writes": acked.len(), "acknowledged_found": acked.len() - lost.len(),
            "writes_refused": seen.writes_refused.load(Ordering::Relaxed),
            "writes_failed": seen.writes_failed.load(Ordering::Relaxed),
            "reads": seen.reads.load(Ordering::Relaxed),
            "reads_failed": seen.reads_failed.load(Ordering::Relaxed),
            "rows_anywhere": anywhere,
        }));
    }
    tenancy_testkit::fault_report(
        "moves_in_every_direction",
        &serde_json::json!({ "moves": report }),
    )?;
    drop((a, b));
    db.drop_database().await
}

/// A database tenant moved from the control server to a second server, under the same
/// load.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_moves_to_another_server() -> Result<()> {
    let server = tenancy_testkit::TestServer::start()?;
    let db = TestDatabase::create().await?;
    let mut o = options(&StoreConfig::default());
    o.default_placement = DefaultPlacement::Fixed(PlacementKind::Database);
    o.database.servers = vec![tenancy_separate_db::ServerConfig {
        name: "second".into(),
        url: server.url("postgres"),
        ..Default::default()
    }];
    let a = HybridStore::connect(db.url(), o.clone()).await?;
    let b = HybridStore::connect(db.url(), o).await?;
    let t = a
        .create_tenant(NewTenant {
            server: Some("main".into()),
            ..NewTenant::new(Slug::parse("mover")?, "Mover")
        })
        .await?;
    {
        let scope = a.scope(&t).await?;
        seed::projects_with_tasks(&scope, "seed", 10, 5).await?;
        scope.commit().await?;
    }
    let seen = Arc::new(Seen::default());
    let stop = Arc::new(AtomicBool::new(false));
    let clients = vec![
        tokio::spawn(writer(
            a.clone(),
            t.clone(),
            "a".into(),
            seen.clone(),
            stop.clone(),
        )),
        tokio::spawn(writer(
            b.clone(),
            t.clone(),
            "b".into(),
            seen.clone(),
            stop.clone(),
        )),
        tokio::spawn(reader(b.clone(), t.clone(), seen.clone(), stop.clone())),
    ];
    tokio::time::sleep(Duration::from_millis(300)).await;
    let moved = a
        .move_tenant(t.id, PlacementKind::Database, Some("second".into()))
        .await?;
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await?;
    }
    let errors = seen.errors.lock().map(|e| e.clone()).unwrap_or_default();
    ensure!(
        seen.writes_failed.load(Ordering::Relaxed) == 0
            && seen.reads_failed.load(Ordering::Relaxed) == 0,
        "{errors:?}"
    );
    ensure!(
        matches!(&moved.placement, Placement::Database { server, .. } if server == "second"),
        "{:?}",
        moved.placement
    );
    let there = names(&a, &moved).await?;
    ensure!(seen.acked().is_subset(&there), "acknowledged writes lost");
    ensure!(there.len() >= 10, "the projects are on the second server");
    ensure!(
        rows_anywhere_db(&db, &moved).await? == 0,
        "the old copy on the control server is gone"
    );
    drop((a, b));
    db.drop_database().await?;
    server.remove()
}

/// Refusals that write nothing: a tenant not ready, already where it would go, or behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moves_that_cannot_be_are_refused() -> Result<()> {
    let db = TestDatabase::create().await?;
    let a = connect(&db).await?;
    let t = create(&a, "stay", PlacementKind::Schema).await?;
    let same = a.move_tenant(t.id, PlacementKind::Schema, None).await;
    ensure!(
        matches!(same, Err(Error::Invalid { field: "to", .. })),
        "{same:?}"
    );
    // "hybrid" is no placement to move to: the one parser of placement names refuses it.
    let hybrid = "hybrid".parse::<PlacementKind>();
    ensure!(matches!(hybrid, Err(Error::Invalid { .. })), "{hybrid:?}");
    let nowhere = a
        .move_tenant(t.id, PlacementKind::Database, Some("nowhere".into()))
        .await;
    ensure!(
        matches!(
            nowhere,
            Err(Error::Invalid {
                field: "server",
                ..
            })
        ),
        "{nowhere:?}"
    );
    let now = a.tenant(t.id).await?;
    ensure!(
        now.state == TenantState::Ready && now.placement == t.placement && now.moving.is_none()
    );
    drop(a);
    db.drop_database().await
}

const CHILD_DATABASE: &str = "TENANCY_TEST_MOVE_DATABASE";

/// The directions tried at each fault point, in turn.
fn direction(i: usize) -> (PlacementKind, PlacementKind) {
    [
        (PlacementKind::Shared, PlacementKind::Database),
        (PlacementKind::Schema, PlacementKind::Shared),
        (PlacementKind::Database, PlacementKind::Schema),
    ][i % 3]
}

/// A process stopped at each step of a move (`TENANCY_FAULT=move:*`, a child process of this
/// test): the tenant is served from exactly one copy meanwhile (reads give all its rows),
/// and the next run rolls the move back (before the flip) or finishes it (from the flip
/// on); nothing is left at the other placement, and the bystanders are untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_move_resumes_or_rolls_back() -> Result<()> {
    if let Ok(name) = std::env::var(CHILD_DATABASE) {
        let db = TestDatabase::existing(&name).await?;
        let store = connect(&db).await?;
        let point = std::env::var("TENANCY_FAULT")?;
        let i = MOVE_POINTS.iter().position(|p| *p == point).unwrap_or(0);
        let t = store
            .tenant_by_slug(&Slug::parse(&format!("mv-{i}"))?)
            .await?;
        store.move_tenant(t.id, direction(i).1, None).await?;
        bail!("the move finished: fault point {point} was never reached");
    }
    let db = TestDatabase::create().await?;
    let store = connect(&db).await?;
    let others = bystanders(&db, &store).await?;
    let mut seen = Vec::new();
    for (i, point) in MOVE_POINTS.iter().enumerate() {
        let (from, to) = direction(i);
        let t = create(&store, &format!("mv-{i}"), from).await?;
        {
            let scope = store.scope(&t).await?;
            seed::projects_with_tasks(&scope, "p", 3, 2).await?;
            scope.commit().await?;
        }
        let exe = std::env::current_exe()?;
        let out = std::process::Command::new(exe)
            .args([
                "moves::interrupted_move_resumes_or_rolls_back",
                "--exact",
                "--nocapture",
            ])
            .env(CHILD_DATABASE, db.name())
            .env("TENANCY_FAULT", point)
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(
            !out.status.success() && stderr.contains(&format!("stopped at fault point {point}")),
            "the child was not stopped at {point}:\n{stderr}"
        );
        let left = store.tenant(t.id).await?;
        ensure!(
            left.state == TenantState::Moving,
            "after {point}: {}",
            left.state
        );
        // Served from one copy all along: every row is there, none twice.
        let read = names(&store, &left).await?;
        ensure!(read.len() == 3, "after {point}: read {read:?}");
        let flipped = MOVE_POINTS
            .iter()
            .position(|p| *p == "move:flipped")
            .unwrap_or(0);
        // The stopped child's session lock goes when the server has ended its backend, which
        // can take a moment on a loaded machine: until then the move is another driver's.
        let mut resumed = store.resume_moves().await?;
        for _ in 0..50 {
            if !matches!(resumed.as_slice(), [Resumed::Busy(_)]) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            resumed = store.resume_moves().await?;
        }
        ensure!(resumed.len() == 1, "after {point}: {resumed:?}");
        let now = store.tenant(t.id).await?;
        match &resumed[0] {
            Resumed::RolledBack(_) if i < flipped => {
                ensure!(
                    now.placement.kind() == from,
                    "after {point}: {}",
                    now.placement
                )
            }
            Resumed::Finished(_) if i >= flipped => {
                ensure!(
                    now.placement.kind() == to,
                    "after {point}: {}",
                    now.placement
                )
            }
            other => bail!("after {point}: {other:?}"),
        }
        ensure!(now.state == TenantState::Ready && now.moving.is_none());
        ensure!(
            names(&store, &now).await?.len() == 3,
            "after {point}: rows lost"
        );
        // Nothing left at the other placement: every row of the tenant anywhere is one of
        // its 3 projects and 6 tasks.
        let anywhere = rows_anywhere_db(&db, &now).await?;
        ensure!(anywhere == 9, "after {point}: {anywhere} rows anywhere");
        // And it takes writes where it is.
        let scope = store.scope(&now).await?;
        projects::create(&scope, NewProject::named("after")).await?;
        scope.commit().await?;
        let job = catalog::moving(
            store
                .shared()
                .connection(tenancy_core::plumbing::StrategyDoor),
        )
        .await?;
        ensure!(job.is_empty(), "a move is still recorded");
        seen.push(serde_json::json!({
            "point": point, "from": from.as_str(), "to": to.as_str(),
            "outcome": if i < flipped { "rolled_back" } else { "finished" },
            "rows_anywhere": anywhere,
        }));
    }
    for (o, rows) in &others {
        ensure!(
            rows_anywhere_db(&db, o).await? == *rows,
            "bystander {} changed",
            o.slug
        );
    }
    tenancy_testkit::fault_report("interrupted_move", &serde_json::json!({ "points": seen }))?;
    drop(store);
    db.drop_database().await
}

/// A rollback and a flip exclude each other in the catalog, whichever processes run them: a
/// move marked `rolling_back` is never flipped nor fenced again, and resuming rolls it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_being_rolled_back_never_flips() -> Result<()> {
    use tenancy_core::MoveStep;
    let db = TestDatabase::create().await?;
    let a = connect(&db).await?;
    let t = create(&a, "torn", PlacementKind::Shared).await?;
    let job = a.start_move(t.id, PlacementKind::Schema, None).await?;
    let c = a.shared().connection(tenancy_core::plumbing::StrategyDoor);
    ensure!(
        catalog::set_move_step(c, t.id, job.id, &[MoveStep::Started], MoveStep::RollingBack)
            .await?
    );
    let flip = catalog::flip_move(c, t.id, job.id).await;
    ensure!(
        matches!(flip, Err(Error::Conflict(_))),
        "flipped while rolling back: {flip:?}"
    );
    ensure!(
        !catalog::set_move_step(c, t.id, job.id, &[MoveStep::Started], MoveStep::Fenced).await?,
        "fenced while rolling back"
    );
    let other = tenancy_core::JobId::new();
    ensure!(
        !catalog::set_move_step(c, t.id, other, &[MoveStep::RollingBack], MoveStep::Fenced).await?,
        "another job's step was changed"
    );
    let resumed = a.resume_moves().await?;
    ensure!(
        matches!(resumed.as_slice(), [Resumed::RolledBack(_)]),
        "{resumed:?}"
    );
    let now = a.tenant(t.id).await?;
    ensure!(now.state == TenantState::Ready && now.placement == Placement::Shared);
    ensure!(a.job(job.id).await?.step == MoveStep::RolledBack);
    drop(a);
    db.drop_database().await
}
