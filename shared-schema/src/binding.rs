//! Binding a scope to a tenant under row-level security: the pool of tenant traffic, the
//! connections kept warm for the tenant they were last bound to, and the two ways of setting
//! `tenancy.tenant_id` ([`RlsBinding`]).
//!
//! Where the time goes: a point read is one round trip on a plain table; the first design
//! sent four (`BEGIN`, the role and setting, the read, `COMMIT`). With the session binding a
//! read of a tenant whose connection is warm is one round trip again, and a read that takes a
//! connection from another tenant pays one more (the new setting). The transaction binding,
//! for poolers, pays two (`BEGIN` with the role and setting in one message, the read; the
//! `ROLLBACK` of a read goes out after the response).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tenancy_core::plumbing::sql::stmt;
use tenancy_core::plumbing::{ConnectionHome, ConnectionHooks, LentConnection, connect_sqlx_pool};
use tenancy_core::sea_orm::sqlx::pool::PoolConnection;
use tenancy_core::sea_orm::sqlx::{PgPool, Postgres};
use tenancy_core::sea_orm::{DatabaseConnection, SqlxPostgresConnector};
use tenancy_core::{
    Error, Result, ScopeMode, TableNamespace, Tenant, TenantId, TenantScope, quote_ident,
};
use tokio::sync::Semaphore;

use crate::options::{RlsBinding, SharedSchemaOptions};

/// A connection idle in the warm set longer than this goes back to the pool (whose own
/// lifetime and health checks then apply to it).
const WARM_FOR: Duration = Duration::from_secs(10);

/// The pool of tenant traffic under row-level security.
#[derive(Debug, Clone)]
pub(crate) struct TenantPool {
    pool: PgPool,
    binding: RlsBinding,
    /// One permit a scope: no more scopes than connections, so taking a connection from the
    /// pool never waits once a permit is held.
    permits: Arc<Semaphore>,
    warm: Arc<Warm>,
    acquire_timeout: Duration,
    /// `SET LOCAL ROLE "app"`, for the transaction binding.
    set_local_role: String,
    /// On a Citus coordinator: the setting is made with `SET LOCAL` and Citus is told to send
    /// it to every worker the transaction reaches (`set_config` never leaves the coordinator).
    citus: bool,
}

/// Connections that served a tenant, kept out of the pool with the tenant they are bound to.
#[derive(Debug, Default)]
struct Warm {
    idle: Mutex<VecDeque<(TenantId, PoolConnection<Postgres>, Instant)>>,
}

impl Warm {
    fn idle(&self) -> MutexGuard<'_, VecDeque<(TenantId, PoolConnection<Postgres>, Instant)>> {
        tenancy_core::plumbing::sync::lock(&self.idle, "the bound idle connections")
    }

    /// A connection for `tenant`: one still bound to it (`true`), else the least recently
    /// used one (`false`, to be bound again). Connections idle too long go back to the pool.
    fn take(&self, tenant: TenantId) -> Option<(bool, PoolConnection<Postgres>)> {
        let mut idle = self.idle();
        while idle
            .front()
            .is_some_and(|(_, _, since)| since.elapsed() > WARM_FOR)
        {
            // Back to the pool, whose release hook clears the binding.
            drop(idle.pop_front());
        }
        if let Some(i) = idle.iter().rposition(|(t, _, _)| *t == tenant) {
            return idle.remove(i).map(|(_, c, _)| (true, c));
        }
        idle.pop_front().map(|(_, c, _)| (false, c))
    }
}

impl ConnectionHome for Warm {
    fn give_back(&self, tenant: TenantId, conn: PoolConnection<Postgres>) {
        self.idle().push_back((tenant, conn, Instant::now()));
    }

    /// One connection broke (a restart, a terminated backend): the warm ones may be dead as
    /// well, so they all go back to the pool, which pings each before handing it out again.
    fn connection_broke(&self) {
        self.idle().clear();
    }
}

/// Transaction binding: connections go straight back to the pool.
#[derive(Debug)]
struct ToPool;

impl ConnectionHome for ToPool {
    fn give_back(&self, _tenant: TenantId, conn: PoolConnection<Postgres>) {
        drop(conn);
    }
}

impl TenantPool {
    /// Opens the pool of tenant traffic (lazily: connections open on first use).
    pub(crate) async fn open(
        url: &str,
        options: &SharedSchemaOptions,
        citus: bool,
    ) -> Result<Self> {
        Self::open_with(url, options, options.tenant_pool(), citus).await
    }

    /// The same, with these pool settings (a replica's).
    pub(crate) async fn open_with(
        url: &str,
        options: &SharedSchemaOptions,
        settings: tenancy_core::plumbing::PoolSettings,
        citus: bool,
    ) -> Result<Self> {
        let binding = if citus {
            RlsBinding::Transaction
        } else {
            options.binding()
        };
        let role = quote_ident(&options.app_role);
        let hooks = match binding {
            // Every connection runs as the application role for its whole life, and a
            // connection going back to the pool forgets its tenant.
            RlsBinding::Session => ConnectionHooks {
                after_connect: Some(format!("SET ROLE {role}")),
                after_release: Some("RESET tenancy.tenant_id".into()),
            },
            // Through a pooler a session setting means nothing: everything is per transaction.
            RlsBinding::Transaction => ConnectionHooks::default(),
        };
        let pool = connect_sqlx_pool(url, &settings, hooks).await?;
        Ok(TenantPool {
            pool,
            binding,
            permits: Arc::new(Semaphore::new(
                usize::try_from(options.max_connections.max(1)).unwrap_or(1),
            )),
            warm: Arc::default(),
            acquire_timeout: settings.acquire_timeout,
            set_local_role: format!("SET LOCAL ROLE {role}"),
            citus,
        })
    }

    /// The same pool seen through sea-orm, for the path that binds no tenant. The warm
    /// connections go back to the pool first (so the path can have one), and the pool's
    /// release hook clears their binding on the way.
    pub(crate) fn unbound(&self) -> DatabaseConnection {
        self.warm.idle().clear();
        SqlxPostgresConnector::from_sqlx_postgres_pool(self.pool.clone())
    }

    /// Closes the warm connections (each keeps its tenant bound, outside the pool): after
    /// the server behind them failed, they are dead, and the pool's own are checked before use.
    pub(crate) fn forget_warm(&self) {
        self.warm.idle().clear();
    }

    /// `SET LOCAL ROLE ...` when the pool's connections do not already run as the role.
    pub(crate) fn role_for_unbound(&self) -> Option<&str> {
        match self.binding {
            RlsBinding::Session => None,
            RlsBinding::Transaction => Some(&self.set_local_role),
        }
    }

    /// The pool's connections, for metrics (warm ones count as open and in use by sqlx).
    pub(crate) fn connections(&self) -> tenancy_core::Connections {
        let warm = u32::try_from(self.warm.idle().len()).unwrap_or(u32::MAX);
        tenancy_core::Connections {
            open: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle())
                .unwrap_or(u32::MAX)
                .saturating_add(warm),
        }
    }

    async fn connection(&self) -> Result<PoolConnection<Postgres>> {
        Ok(self.pool.acquire().await?)
    }

    // ANCHOR: bind
    /// A scope bound to `tenant` in `mode`.
    pub(crate) async fn scope(&self, tenant: &Tenant, mode: ScopeMode) -> Result<TenantScope> {
        let id = tenant.id;
        match self.binding {
            RlsBinding::Session => {
                let permit = tokio::time::timeout(
                    self.acquire_timeout,
                    self.permits.clone().acquire_owned(),
                )
                .await
                .map_err(|_| Error::PoolTimeout)?
                .map_err(|_| Error::PoolTimeout)?;
                let (bound, conn) = match self.warm.take(id) {
                    Some(found) => found,
                    None => (false, self.connection().await?),
                };
                let lent =
                    LentConnection::new(id, conn, self.warm.clone()).keep_until_given_back(permit);
                if !bound {
                    // The tenant as a bound parameter: user input never reaches SQL text.
                    lent.execute(stmt(
                        "SELECT set_config('tenancy.tenant_id', $1, false)",
                        [id.to_string().into()],
                    ))
                    .await?;
                }
                if mode != ScopeMode::Autocommit {
                    lent.begin_for(mode).await?;
                }
                Ok(read_only_if(
                    mode,
                    TenantScope::on_connection(id, TableNamespace::Unqualified, lent),
                ))
            }
            RlsBinding::Transaction => {
                let lent = LentConnection::new(id, self.connection().await?, Arc::new(ToPool));
                // The id is a UUID we formatted, so it is safe as a literal; role and
                // setting end with the transaction.
                if self.citus {
                    // Citus sends a transaction's SET LOCAL commands to each worker it opens
                    // in the transaction, when told to, as the text of the message that held
                    // them: so the tenant's setting goes in a message of its own. The role it
                    // connects there as is the application role (which may log in there).
                    lent.begin_with_then(
                        format!(
                            "{}; {}; SET LOCAL citus.propagate_set_commands TO 'local'",
                            mode.begin(),
                            self.set_local_role
                        ),
                        vec![format!("SET LOCAL tenancy.tenant_id TO '{}'", id.as_uuid())],
                    )
                    .await?;
                } else {
                    lent.begin_with(format!(
                        "{}; {}; SELECT set_config('tenancy.tenant_id', '{}', true)",
                        mode.begin(),
                        self.set_local_role,
                        id.as_uuid()
                    ))
                    .await?;
                }
                Ok(read_only_if(
                    mode,
                    TenantScope::on_connection(id, TableNamespace::Unqualified, lent),
                ))
            }
        }
    }
    // ANCHOR_END: bind
}

/// `scope`, refusing writes when it was opened for [`ScopeMode::ReadOnly`].
fn read_only_if(mode: ScopeMode, scope: TenantScope) -> TenantScope {
    match mode {
        ScopeMode::ReadOnly => scope.reading_only(),
        ScopeMode::Transaction | ScopeMode::Autocommit => scope,
    }
}
