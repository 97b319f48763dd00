//! Citus, the PostgreSQL extension that spreads tables over a cluster: finding out whether a
//! store's database is a Citus coordinator, and refusing the stores that do not run on one.
//!
//! shared-schema distributes its tables by `tenant_id` on a coordinator, and separate-schema
//! makes each tenant schema a distributed schema; both decide it at connect, from the
//! extension in the database they are given. separate-db and the hybrid store refuse a
//! coordinator: separate-db's own placement across servers is its scale-out, and the hybrid
//! store moves tenants with triggers and copies Citus does not allow on distributed tables.
//!
//! On a cluster a tenant can also be moved to another worker, live, as a job in the catalog
//! ([`start_node_move`], [`run_node_move`]): the strategy says how ([`NodePlacement`]),
//! Citus moves the rows.

use sea_orm::ConnectionTrait;
use sea_orm::sqlx;

use crate::Job;
use crate::error::{Error, Result};
use crate::plumbing::sql::stmt;
use crate::plumbing::{catalog, fault};
use crate::tenant::{JobId, JobKind, Move, MoveStep, Tenant, TenantId, TenantState};

/// The version of the Citus extension installed in the connected database, or `None` when the
/// database is plain PostgreSQL.
pub async fn version(conn: &impl ConnectionTrait) -> Result<Option<String>> {
    let row = conn
        .query_one_raw(stmt(
            "SELECT extversion FROM pg_extension WHERE extname = 'citus'",
            [],
        ))
        .await?;
    Ok(row
        .map(|r| r.try_get::<String>("", "extversion"))
        .transpose()?)
}

/// Refuses a Citus coordinator for `store` (which names the store and what to use instead)
/// with [`Error::Unsupported`].
pub async fn refuse(conn: &impl ConnectionTrait, store: &str) -> Result<()> {
    match version(conn).await? {
        None => Ok(()),
        Some(v) => Err(Error::Unsupported(format!(
            "this database is a Citus {v} coordinator, and {store}"
        ))),
    }
}

// ANCHOR: node_move
/// A worker of a Citus cluster, as `host:port` (the name and port in `pg_dist_node`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Node {
    /// The worker's host name, as the coordinator reaches it.
    pub host: String,
    /// Its port.
    pub port: u16,
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl std::str::FromStr for Node {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::invalid("node", format!("{s:?} is not a worker's host:port"));
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Node {
            host: host.to_owned(),
            port: port.parse().map_err(|_| bad())?,
        })
    }
}

/// The active primary workers of the cluster, in the order the coordinator lists them.
pub async fn workers(conn: &impl ConnectionTrait) -> Result<Vec<Node>> {
    let rows = conn
        .query_all_raw(stmt(
            "SELECT nodename, nodeport FROM pg_dist_node \
             WHERE groupid <> 0 AND noderole = 'primary' AND isactive ORDER BY nodeid",
            [],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Node {
                host: r.try_get("", "nodename")?,
                port: u16::try_from(r.try_get::<i32>("", "nodeport")?)
                    .map_err(|e| Error::invalid("node", e.to_string()))?,
            })
        })
        .collect()
}

/// What a strategy does to put a tenant on another worker of a Citus cluster.
#[async_trait::async_trait]
pub trait NodePlacement: Send + Sync {
    /// The catalog's pool (on the coordinator).
    fn catalog(&self) -> &sea_orm::DatabaseConnection;

    /// The worker that holds `tenant`'s rows now.
    async fn node_of(&self, tenant: &Tenant) -> Result<Node>;

    /// Makes `tenant`'s rows movable on their own (shared tables: isolates the tenant into
    /// shards of its own). Idempotent. Nothing to do for a schema, which moves whole.
    async fn isolate(&self, tenant: &Tenant) -> Result<()>;

    /// Moves `tenant`'s rows from `from` to `to`, online (Citus' own move, by logical
    /// replication, with writes blocked only at the switch).
    async fn relocate(&self, tenant: &Tenant, from: &Node, to: &Node) -> Result<()>;
}

/// Records a move of `tenant` to the worker `to` as a job in the catalog ([`JobKind::NodeMove`])
/// and returns the job; [`run_node_move`] then drives it. Its steps, as the job records them:
/// [`MoveStep::Started`], then [`MoveStep::Isolated`] (the tenant's rows movable on their own),
/// [`MoveStep::Moved`], and [`MoveStep::Done`] or [`MoveStep::Failed`]. The tenant's row stays at
/// `started` throughout.
///
/// The tenant must be `ready`; it is `moving` while the job runs (and served all along: Citus
/// moves the rows under it), so a second move or a placement move is refused. One process
/// drives a node move at a time (a session advisory lock, let go if the process dies). A
/// process stopped part-way leaves the tenant `moving`; [`resume_node_moves`] finishes it,
/// since every step can be done again: isolating is skipped when the tenant is isolated
/// already, and moving when it is on the target.
pub async fn start_node_move(
    placement: &dyn NodePlacement,
    tenant: &Tenant,
    to: &str,
) -> Result<Job> {
    let to = &to.parse::<Node>()?;
    let catalog = placement.catalog();
    if !workers(catalog).await?.contains(to) {
        return Err(Error::invalid(
            "node",
            format!("{to} is not an active worker of this cluster"),
        ));
    }
    if tenant.state != TenantState::Ready {
        return Err(Error::not_ready(tenant));
    }
    let from = placement.node_of(tenant).await?;
    if from == *to {
        return Err(Error::invalid(
            "node",
            format!("tenant {} is on {to} already", tenant.slug),
        ));
    }
    let detail = serde_json::json!({ "from_node": from.to_string(), "to_node": to.to_string() });
    let job = catalog::insert_job(catalog, JobKind::NodeMove, tenant, detail).await?;
    let record = Move {
        job: job.id,
        from: tenant.placement.clone(),
        to: tenant.placement.clone(),
        step: MoveStep::Started,
        node: Some(to.to_string()),
    };
    if let Err(e) = catalog::begin_move(catalog, tenant.id, &record).await {
        catalog::end_job(catalog, job.id, MoveStep::Failed, Some(&e.to_string())).await?;
        return Err(e);
    }
    fault::point("node-move:recorded");
    Ok(job)
}

/// `placement`, when its store's database is a Citus coordinator (`citus`); otherwise
/// [`Error::Unsupported`]: there are no workers to move tenants to.
pub fn on_coordinator(placement: &dyn NodePlacement, citus: bool) -> Result<&dyn NodePlacement> {
    if citus {
        Ok(placement)
    } else {
        Err(Error::Unsupported(
            "this store is not on a Citus coordinator: there are no workers to move tenants to"
                .into(),
        ))
    }
}

/// Drives the node move recorded on tenant `id` to its end and returns its job: `done`, or
/// `failed` with the error (the tenant then stays, served, where Citus left it). A move
/// another process drives is refused with [`Error::Conflict`].
pub async fn run_node_move(placement: &dyn NodePlacement, id: TenantId) -> Result<Job> {
    let tenant = catalog::get(placement.catalog(), id).await?;
    let Some(Move {
        job,
        node: Some(node),
        ..
    }) = tenant.moving.clone()
    else {
        return Err(Error::Conflict(format!(
            "tenant {} has no node move recorded",
            tenant.slug
        )));
    };
    drive(placement, &tenant, job, &node.parse()?).await
}

/// Finishes the node moves that a stopped process left (tenants `moving` with a node move
/// whose driver is gone); returns their jobs. Moves another process is driving are left to it.
pub async fn resume_node_moves(placement: &dyn NodePlacement) -> Result<Vec<Job>> {
    let catalog = placement.catalog();
    let mut resumed = Vec::new();
    for tenant in catalog::moving(catalog).await? {
        if tenant
            .moving
            .as_ref()
            .and_then(|m| m.node.as_ref())
            .is_none()
        {
            continue;
        }
        match run_node_move(placement, tenant.id).await {
            Ok(job) => resumed.push(job),
            Err(Error::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(resumed)
}

/// Runs (or runs again) the steps of node move `job` of `tenant` to `to`.
async fn drive(
    placement: &dyn NodePlacement,
    tenant: &Tenant,
    job: JobId,
    to: &Node,
) -> Result<Job> {
    let catalog = placement.catalog();
    let mut lock = catalog
        .get_postgres_connection_pool()
        .acquire()
        .await
        .map_err(Error::from)?;
    let held: bool = sqlx::query_scalar(
        "SELECT pg_try_advisory_lock(hashtextextended('tenancy:node-move:' || $1, 0))",
    )
    .bind(tenant.id.to_string())
    .fetch_one(&mut *lock)
    .await
    .map_err(Error::from)?;
    if !held {
        return Err(Error::Conflict(format!(
            "the node move of tenant {} is driven by another process",
            tenant.slug
        )));
    }
    let result = async {
        if placement.node_of(tenant).await? != *to {
            placement.isolate(tenant).await?;
            catalog::job_step(catalog, job, MoveStep::Isolated, None).await?;
            fault::point("node-move:isolated");
            let from = placement.node_of(tenant).await?;
            if from != *to {
                placement.relocate(tenant, &from, to).await?;
            }
        }
        catalog::job_step(catalog, job, MoveStep::Moved, None).await?;
        fault::point("node-move:moved");
        catalog::end_move(catalog, tenant.id, job).await?;
        catalog::end_job(catalog, job, MoveStep::Done, None).await
    }
    .await;
    if let Err(e) = &result {
        // The tenant stays where Citus left it, served; the move ends failed, and can be
        // asked for again.
        catalog::end_move(catalog, tenant.id, job).await?;
        catalog::end_job(catalog, job, MoveStep::Failed, Some(&e.to_string())).await?;
    }
    let _: std::result::Result<bool, _> = sqlx::query_scalar(
        "SELECT pg_advisory_unlock(hashtextextended('tenancy:node-move:' || $1, 0))",
    )
    .bind(tenant.id.to_string())
    .fetch_one(&mut *lock)
    .await;
    result?;
    catalog::job(catalog, job)
        .await?
        .ok_or(Error::NotFound("job"))
}
// ANCHOR_END: node_move
