//! A connection a strategy lends a scope: held by the scope for its whole life, so session
//! state the strategy set on it (row-level security's tenant binding, kept between scopes of
//! one tenant) is the state every statement of the scope runs with, and given back to the
//! strategy when the scope ends cleanly.
//!
//! Statements run on the raw sqlx connection, bound the way sea-orm binds them, and come back
//! as sea-orm's own row and result types, so the domain code and its error kinds do not change.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sea_orm::sqlx::postgres::PgRow;
use sea_orm::sqlx::{self, AssertSqlSafe, Postgres, pool::PoolConnection};
use sea_orm::{DbErr, ExecResult, QueryResult, RuntimeErr, Statement};
use sea_query_sqlx::SqlxValues;
use tokio::sync::Mutex;

use crate::error::Result;
use crate::tenant::TenantId;

/// Where a lent connection goes when its scope ends. For strategy crates.
pub trait ConnectionHome: Send + Sync + 'static {
    /// Takes back `conn`, lent to a scope of `tenant` that ended with no transaction open and
    /// no error that could have broken the connection. The strategy decides whether to keep
    /// it (a tenant binding on it stays valid for `tenant`) or return it to its pool.
    fn give_back(&self, tenant: TenantId, conn: PoolConnection<Postgres>);

    /// Told when a lent connection failed in a way that may have broken it (the server
    /// restarted, its backend was terminated). Other connections the strategy keeps idle
    /// outside its pool may be dead too: it should stop handing them out unchecked (the
    /// pool's own checkout pings a connection before handing it out). The default does
    /// nothing.
    fn connection_broke(&self) {}
}

/// A pooled connection held by one scope. For strategy crates: build it with
/// [`LentConnection::new`], open a transaction with [`LentConnection::begin`] if the scope
/// needs one, and hand it to [`TenantScope::on_connection`](crate::TenantScope::on_connection).
///
/// When the scope ends without a commit or rollback while a transaction is open, or after an
/// error that may have broken the connection, the connection is closed rather than given
/// back: the server rolls back what was open, and nothing of it reaches another scope.
pub struct LentConnection {
    tenant: TenantId,
    conn: Mutex<Option<PoolConnection<Postgres>>>,
    in_transaction: AtomicBool,
    broken: AtomicBool,
    /// Set while a statement is on its way: still set when the scope is dropped means the
    /// statement's future was dropped halfway, and what the connection is in is unknown.
    pending: AtomicBool,
    home: Arc<dyn ConnectionHome>,
    /// The messages that opened the transaction in progress, and whether every statement run
    /// in it since was a plain read (no write, no row lock): what a statement that met a shard
    /// moved under it runs again after.
    opening: std::sync::Mutex<Vec<String>>,
    fresh: AtomicBool,
    /// Dropped only after the connection is given back (a strategy's permit, say, so the
    /// room a connection takes is not handed on before the connection is free).
    keep: Option<Box<dyn Send + Sync>>,
}

impl std::fmt::Debug for LentConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LentConnection")
            .field("tenant", &self.tenant)
            .field(
                "in_transaction",
                &self.in_transaction.load(Ordering::Relaxed),
            )
            .finish_non_exhaustive()
    }
}

fn query_err(err: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(Arc::new(err)))
}

/// Whether an error may have left the connection unusable (as opposed to a statement the
/// server refused, after which the connection is fine). A terminated backend answers with a
/// database error (57P01) before it closes the socket: that one breaks it too.
fn breaks_connection(err: &sqlx::Error) -> bool {
    crate::error::ends_session(err)
        || !matches!(
            err,
            sqlx::Error::Database(_) | sqlx::Error::RowNotFound | sqlx::Error::ColumnDecode { .. }
        )
}

impl LentConnection {
    /// Lends `conn` to a scope of `tenant`; `home` takes it back afterwards.
    pub fn new(
        tenant: TenantId,
        conn: PoolConnection<Postgres>,
        home: Arc<dyn ConnectionHome>,
    ) -> Self {
        LentConnection {
            tenant,
            conn: Mutex::new(Some(conn)),
            in_transaction: AtomicBool::new(false),
            broken: AtomicBool::new(false),
            pending: AtomicBool::new(false),
            home,
            opening: std::sync::Mutex::new(Vec::new()),
            fresh: AtomicBool::new(false),
            keep: None,
        }
    }

    /// Keeps `value` alive until the connection has been given back (or closed).
    pub fn keep_until_given_back(mut self, value: impl Send + Sync + 'static) -> Self {
        self.keep = Some(Box::new(value));
        self
    }

    /// Whether a transaction is open on the connection (from [`LentConnection::begin`] until
    /// it is finished).
    pub fn in_transaction(&self) -> bool {
        self.in_transaction.load(Ordering::Acquire)
    }

    /// Opens a transaction (one round trip); the scope's commit or rollback ends it.
    pub async fn begin(&self) -> Result<()> {
        self.begin_with("BEGIN".into()).await
    }

    /// Opens the transaction of a scope of `mode` (`BEGIN`, or `BEGIN READ ONLY`).
    pub async fn begin_for(&self, mode: crate::ScopeMode) -> Result<()> {
        self.begin_with(mode.begin().into()).await
    }

    /// Opens a transaction with `sql`, a simple-protocol message that starts with `BEGIN` and
    /// may go on with statements of the strategy's own (`SET LOCAL ...`), all in one round
    /// trip. Never for user input: nothing in it is a parameter.
    pub async fn begin_with(&self, sql: String) -> Result<()> {
        self.simple(sql.clone()).await?;
        self.in_transaction.store(true, Ordering::Release);
        self.opened(vec![sql]);
        Ok(())
    }

    fn opened(&self, messages: Vec<String>) {
        *crate::plumbing::sync::lock(&self.opening, "a lent connection's opening") = messages;
        self.fresh.store(true, Ordering::Release);
    }

    /// After a statement met a shard that Citus split or moved while its transaction was
    /// open (the coordinator's "could not find valid entry for shard"): whether it may run
    /// again, and the connection made ready for it. It may when there is no transaction (the
    /// statement had no effect), or when everything before it in its transaction was a plain
    /// read: the transaction is rolled back, which undoes nothing, and opened again with the
    /// same messages. At read committed, which the scopes run at, each statement reads a
    /// snapshot of its own anyway, so the caller cannot tell.
    async fn ready_to_retry(&self, err: &sqlx::Error) -> bool {
        let moved = err.as_database_error().is_some_and(|d| {
            d.message()
                .starts_with("could not find valid entry for shard")
        });
        if !moved {
            return false;
        }
        if !self.in_transaction.load(Ordering::Acquire) {
            return true;
        }
        if !self.fresh.load(Ordering::Acquire) {
            return false;
        }
        let opening =
            crate::plumbing::sync::lock(&self.opening, "a lent connection's opening").clone();
        if opening.is_empty() || self.simple("ROLLBACK".into()).await.is_err() {
            return false;
        }
        for message in &opening {
            if self.simple(message.clone()).await.is_err() {
                return false;
            }
        }
        true
    }

    /// [`LentConnection::begin_with`], then each of `more`, a message of its own: for a
    /// statement that must not share its message with others (Citus sends the text of a
    /// message holding a `SET LOCAL` on to its workers, `BEGIN` and all).
    pub async fn begin_with_then(&self, sql: String, more: Vec<String>) -> Result<()> {
        self.begin_with(sql.clone()).await?;
        for next in &more {
            self.simple(next.clone()).await?;
        }
        self.opened(std::iter::once(sql).chain(more).collect());
        Ok(())
    }

    async fn simple(&self, sql: String) -> Result<(), DbErr> {
        let mut guard = self.conn.lock().await;
        let conn = guard.as_mut().ok_or_else(gone_db)?;
        self.pending.store(true, Ordering::Release);
        let res = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut **conn).await;
        self.checked(res).map(drop)
    }

    /// Ends a statement (the `pending` set before it was sent) and sorts its error.
    fn checked<T>(&self, res: std::result::Result<T, sqlx::Error>) -> Result<T, DbErr> {
        self.pending.store(false, Ordering::Release);
        res.map_err(|e| {
            if breaks_connection(&e) {
                self.broken.store(true, Ordering::Release);
            }
            query_err(e)
        })
    }

    /// Runs a built statement (its values bound as parameters) and reports rows affected.
    pub async fn execute(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        let res = match self.execute_once(stmt.clone()).await {
            Err(e) if self.ready_to_retry(&e).await => self.execute_once(stmt).await,
            res => res,
        };
        self.fresh.store(false, Ordering::Release);
        self.checked(res).map(ExecResult::from)
    }

    async fn execute_once(
        &self,
        stmt: Statement,
    ) -> std::result::Result<sqlx::postgres::PgQueryResult, sqlx::Error> {
        let mut guard = self.conn.lock().await;
        let conn = guard
            .as_mut()
            .ok_or_else(|| sqlx::Error::Protocol(gone_db().to_string()))?;
        let values = SqlxValues(stmt.values.unwrap_or(sea_orm::Values(Vec::new())));
        self.pending.store(true, Ordering::Release);
        sqlx::query_with(AssertSqlSafe(stmt.sql), values)
            .execute(&mut **conn)
            .await
    }

    /// Runs a built query and returns its rows.
    pub(crate) async fn query_all(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let stmt_sql = stmt.sql.clone();
        let res = match self.query_once(stmt.clone()).await {
            Err(e) if self.ready_to_retry(&e).await => self.query_once(stmt).await,
            res => res,
        };
        if !plain_read(&stmt_sql) {
            self.fresh.store(false, Ordering::Release);
        }
        Ok(self
            .checked(res)?
            .into_iter()
            .map(QueryResult::from)
            .collect())
    }

    async fn query_once(&self, stmt: Statement) -> std::result::Result<Vec<PgRow>, sqlx::Error> {
        let mut guard = self.conn.lock().await;
        let conn = guard
            .as_mut()
            .ok_or_else(|| sqlx::Error::Protocol(gone_db().to_string()))?;
        let values = SqlxValues(stmt.values.unwrap_or(sea_orm::Values(Vec::new())));
        self.pending.store(true, Ordering::Release);
        sqlx::query_with(AssertSqlSafe(stmt.sql), values)
            .fetch_all(&mut **conn)
            .await
    }

    /// Ends the scope: `COMMIT` (or `ROLLBACK`) if a transaction is open, then gives the
    /// connection back.
    pub(crate) async fn finish(mut self, commit: bool) -> Result<()> {
        if self.in_transaction.load(Ordering::Acquire) {
            let end = if commit { "COMMIT" } else { "ROLLBACK" };
            self.simple(end.into()).await?;
            self.in_transaction.store(false, Ordering::Release);
        }
        self.release();
        Ok(())
    }

    fn release(&mut self) {
        let Some(conn) = self.conn.get_mut().take() else {
            return;
        };
        let keep = self.keep.take();
        if self.pending.load(Ordering::Acquire) {
            // A statement's future was dropped halfway (the request went away): the server
            // may have run it, or be running it. Closing the socket is the only safe end.
            drop(conn.detach());
        } else if self.broken.load(Ordering::Acquire) {
            // Closing the socket ends the session: the server rolls back what was open and
            // forgets every setting. Nothing of this scope reaches another one.
            drop(conn.detach());
            self.home.connection_broke();
        } else if self.in_transaction.load(Ordering::Acquire) {
            // Dropped with a transaction open (an error path, or a read that needed no
            // commit): roll back off the request's path, then give the connection back.
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                drop(conn.detach());
                return;
            };
            let (tenant, home) = (self.tenant, self.home.clone());
            runtime.spawn(async move {
                let mut conn = conn;
                match sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await {
                    Ok(_) => home.give_back(tenant, conn),
                    Err(_) => drop(conn.detach()),
                }
                drop(keep);
            });
        } else {
            self.home.give_back(self.tenant, conn);
            drop(keep);
        }
    }
}

impl Drop for LentConnection {
    fn drop(&mut self) {
        self.release();
    }
}

/// A `SELECT` that takes no row lock: rolling its transaction back undoes nothing of it.
fn plain_read(sql: &str) -> bool {
    let upper = sql.trim_start().to_ascii_uppercase();
    upper.starts_with("SELECT")
        && ![
            "FOR UPDATE",
            "FOR NO KEY UPDATE",
            "FOR SHARE",
            "FOR KEY SHARE",
        ]
        .iter()
        .any(|lock| upper.contains(lock))
}

fn gone_db() -> DbErr {
    DbErr::Custom("the scope's connection was already given back".into())
}
