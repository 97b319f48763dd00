//! [`TenantScope`]: the one door to tenant data.
//!
//! A scope is bound to one tenant when a strategy creates it, and every statement the domain
//! sends goes through it. The statement builders here put the tenant into each statement by
//! construction: `select`, `update` and `delete` start with `WHERE tenant_id = $tenant`, and
//! `insert` writes the scope's tenant id itself. Table names are resolved by the strategy's
//! [`TableNamespace`]: bare names for shared tables and per-tenant databases, schema-qualified
//! names for schema-per-tenant. No session state is set by the scope itself; a strategy that
//! needs some (row-level security's tenant setting) sets it transaction-locally before handing
//! the scope out.

mod render;

use sea_orm::sea_query::audit::AuditTrait;
use sea_orm::sea_query::{
    Alias, DeleteStatement, Expr, ExprTrait, InsertStatement, IntoIden, Query,
    QueryStatementWriter, SelectStatement, SimpleExpr, TableName, TableRef, UpdateStatement,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, FromQueryResult, Value};

use std::time::Instant;

use crate::error::{Error, Result};
use crate::plumbing::LentConnection;
use crate::tenant::TenantId;

/// The column every tenant table carries.
pub const TENANT_ID: &str = "tenant_id";

/// How a scope names tenant tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableNamespace {
    /// Bare table names: the connection's database or `search_path` decides.
    Unqualified,
    /// Every table name is qualified with this (validated) schema.
    Schema(String),
}

enum Executor {
    Transaction(DatabaseTransaction),
    Autocommit(DatabaseConnection),
    /// A connection the strategy lent the scope (with a transaction open on it, or not).
    Lent(LentConnection),
}

/// Whether a scope groups its statements into one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScopeMode {
    /// One transaction: statements commit together on [`TenantScope::commit`], and roll back
    /// when the scope is dropped without it. The safe default.
    #[default]
    Transaction,
    /// Each statement commits on its own, saving the `BEGIN`/`COMMIT` round trips for
    /// single-statement reads. A strategy whose isolation needs transaction-local settings
    /// (shared-schema with row-level security) still uses a transaction.
    Autocommit,
    /// One read-only transaction (`BEGIN READ ONLY`): the scope refuses every statement that
    /// is not a read with [`Error::ReadOnly`](crate::Error::ReadOnly) before it is sent, and
    /// PostgreSQL refuses what a read could still try (a function that writes). What a read
    /// replica can serve.
    ReadOnly,
}

impl ScopeMode {
    /// The message that opens this mode's transaction (`BEGIN`, or `BEGIN READ ONLY`), for a
    /// strategy that opens it itself.
    pub fn begin(self) -> &'static str {
        match self {
            ScopeMode::ReadOnly => "BEGIN READ ONLY",
            ScopeMode::Transaction | ScopeMode::Autocommit => "BEGIN",
        }
    }
}

/// Told every statement a scope sends, before it runs: what an application hangs on a scope
/// to show or log the SQL a request sent for its tenant ([`TenantScope::observed`]).
pub trait StatementObserver: Send + Sync {
    /// `sql` is about to run for `tenant` (its parameters are not shown).
    fn statement(&self, tenant: TenantId, sql: &str);
}

/// A handle bound to one tenant. The only way domain code reaches tenant tables.
pub struct TenantScope {
    tenant_id: TenantId,
    namespace: TableNamespace,
    executor: Executor,
    observer: Option<std::sync::Arc<dyn StatementObserver>>,
    /// Set by [`TenantScope::reading_only`]: every statement but a read is refused.
    read_only: bool,
    /// Set by [`TenantScope::from_replica`]: the scope's connection is to a read replica.
    on_replica: bool,
    /// For a scope on a replica: binds the same read-only scope on the primary, for a
    /// statement the standby cancels (a recovery conflict), which then runs there once.
    fallback: Option<Fallback>,
    /// The primary's scope, once a statement went there: the rest of the scope's statements
    /// follow it.
    on_primary: tokio::sync::OnceCell<Box<TenantScope>>,
}

/// Binds a read-only scope on the primary (see [`TenantScope::falling_back`]).
pub type Fallback = std::sync::Arc<
    dyn Fn() -> futures::future::BoxFuture<'static, Result<TenantScope>> + Send + Sync,
>;

impl std::fmt::Debug for TenantScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantScope")
            .field("tenant_id", &self.tenant_id)
            .field("namespace", &self.namespace)
            .field(
                "mode",
                &match &self.executor {
                    Executor::Transaction(_) => "transaction",
                    Executor::Autocommit(_) => "autocommit",
                    Executor::Lent(_) => "lent connection",
                },
            )
            .finish()
    }
}

impl TenantScope {
    /// For strategy crates: a scope whose statements run in `txn`. The strategy has already
    /// prepared the transaction (role, settings) for this tenant.
    pub fn in_transaction(
        tenant_id: TenantId,
        namespace: TableNamespace,
        txn: DatabaseTransaction,
    ) -> Self {
        TenantScope {
            tenant_id,
            namespace,
            executor: Executor::Transaction(txn),
            observer: None,
            read_only: false,
            on_replica: false,
            fallback: None,
            on_primary: tokio::sync::OnceCell::new(),
        }
    }

    /// For strategy crates: a scope whose statements each run on their own on `pool`. Only
    /// sound when the statements need no session state, which the namespace guarantees for
    /// schema-qualified names and per-tenant databases.
    pub fn autocommit(
        tenant_id: TenantId,
        namespace: TableNamespace,
        pool: DatabaseConnection,
    ) -> Self {
        TenantScope {
            tenant_id,
            namespace,
            executor: Executor::Autocommit(pool),
            observer: None,
            read_only: false,
            on_replica: false,
            fallback: None,
            on_primary: tokio::sync::OnceCell::new(),
        }
    }

    /// For strategy crates: a scope whose statements all run on `conn`, a connection the
    /// strategy prepared for this tenant (and on which it may have opened a transaction with
    /// [`LentConnection::begin`]). Commit and rollback end that transaction; the connection
    /// then goes back to the strategy.
    pub fn on_connection(
        tenant_id: TenantId,
        namespace: TableNamespace,
        conn: LentConnection,
    ) -> Self {
        TenantScope {
            tenant_id,
            namespace,
            executor: Executor::Lent(conn),
            observer: None,
            read_only: false,
            on_replica: false,
            fallback: None,
            on_primary: tokio::sync::OnceCell::new(),
        }
    }

    /// For strategy crates: the scope of a [`ScopeMode::ReadOnly`] request, whose transaction
    /// the strategy opened read-only: from now on it refuses every statement that is not a
    /// read ([`Error::ReadOnly`]), before sending it.
    pub fn reading_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// For strategy crates: the scope is on a read replica (and read-only).
    pub fn from_replica(mut self) -> Self {
        self.on_replica = true;
        self.reading_only()
    }

    /// For strategy crates: a scope on a replica sends a statement the standby cancels for a
    /// recovery conflict (SQLSTATE 40001) to the primary once, through a read-only scope
    /// `fallback` binds there; the scope's later statements go there too.
    pub fn falling_back(mut self, fallback: Fallback) -> Self {
        self.fallback = Some(fallback);
        self
    }

    /// The primary's scope a conflict moved this scope to, binding it on the first call.
    async fn primary(&self) -> Result<&TenantScope> {
        let fallback = self.fallback.as_ref().ok_or_else(|| {
            Error::Internal("a scope without a fallback asked for the primary".into())
        })?;
        tracing::info!(tenant = %self.tenant_id,
            "the replica cancelled a read (a recovery conflict): it runs on the primary");
        Ok(self
            .on_primary
            .get_or_try_init(|| async { fallback().await.map(Box::new) })
            .await?
            .as_ref())
    }

    /// Whether a failed statement goes to the primary.
    fn retries_on_primary(&self, e: &Error) -> bool {
        self.on_replica && self.fallback.is_some() && e.is_serialization_failure()
    }

    /// Whether a read replica serves the scope ([`crate::TenantStore::scope_read`]).
    pub fn is_on_replica(&self) -> bool {
        self.on_replica
    }

    /// Whether the scope refuses writes ([`ScopeMode::ReadOnly`]).
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The scope, telling `observer` every statement it sends from now on.
    pub fn observed(mut self, observer: std::sync::Arc<dyn StatementObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    fn observe(&self, stmt: &sea_orm::Statement) {
        if let Some(o) = &self.observer {
            o.statement(self.tenant_id, &stmt.sql);
        }
    }

    /// The tenant this scope is bound to.
    pub fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }

    /// How this scope resolves table names.
    pub fn namespace(&self) -> &TableNamespace {
        &self.namespace
    }

    // ANCHOR: table
    /// The table `name` as this tenant sees it.
    pub fn table(&self, name: &str) -> TableRef {
        let table = Alias::new(name).into_iden();
        match &self.namespace {
            TableNamespace::Unqualified => TableRef::Table(TableName(None, table), None),
            TableNamespace::Schema(schema) => TableRef::Table(
                TableName(Some(Alias::new(schema.as_str()).into()), table),
                None,
            ),
        }
    }
    // ANCHOR_END: table

    /// The table `name` under the alias `alias`, for joins.
    pub fn table_as(&self, name: &str, alias: &str) -> TableRef {
        self.table(name).alias(Alias::new(alias))
    }

    /// `tenant_id = <this tenant>` on the column of `alias` (or of the only table).
    pub fn tenant_predicate(&self, alias: Option<&str>) -> SimpleExpr {
        let value = Expr::val(self.tenant_id.as_uuid());
        match alias {
            Some(a) => Expr::col((Alias::new(a), Alias::new(TENANT_ID))).eq(value),
            None => Expr::col(Alias::new(TENANT_ID)).eq(value),
        }
    }

    // ANCHOR: select
    /// `SELECT ... FROM <table> AS <alias> WHERE <alias>.tenant_id = <this tenant>`; add
    /// columns, joins and further conditions to it.
    pub fn select(&self, table: &str, alias: &str) -> SelectStatement {
        let mut q = Query::select();
        q.from(self.table_as(table, alias))
            .and_where(self.tenant_predicate(Some(alias)));
        q
    }
    // ANCHOR_END: select

    /// `INSERT INTO <table> (tenant_id, columns...) VALUES (<this tenant>, values...)`.
    ///
    /// Refuses a `tenant_id` among `columns`: the scope alone decides it.
    pub fn insert(
        &self,
        table: &str,
        columns: &[&str],
        values: Vec<Value>,
    ) -> Result<InsertStatement> {
        if columns.contains(&TENANT_ID) {
            return Err(tenant_id_is_fixed());
        }
        let mut q = Query::insert();
        q.into_table(self.table(table)).columns(
            std::iter::once(TENANT_ID)
                .chain(columns.iter().copied())
                .map(Alias::new),
        );
        let row: Vec<SimpleExpr> = std::iter::once(Value::from(self.tenant_id.as_uuid()))
            .chain(values)
            .map(Expr::val)
            .collect();
        q.values(row).map_err(|e| Error::Invalid {
            field: "insert",
            reason: e.to_string(),
        })?;
        Ok(q)
    }

    // ANCHOR: update
    /// `UPDATE <table> SET ... WHERE tenant_id = <this tenant>`; the changes are given as
    /// pairs, and a `tenant_id` among them is refused: a row never changes tenant.
    pub fn update(&self, table: &str, changes: Vec<(&str, Value)>) -> Result<UpdateStatement> {
        let mut q = Query::update();
        q.table(self.table(table))
            .and_where(self.tenant_predicate(None));
        for (column, value) in changes {
            if column == TENANT_ID {
                return Err(tenant_id_is_fixed());
            }
            q.value(Alias::new(column), value);
        }
        Ok(q)
    }
    // ANCHOR_END: update

    /// `DELETE FROM <table> WHERE tenant_id = <this tenant>`; add conditions to it.
    pub fn delete(&self, table: &str) -> DeleteStatement {
        let mut q = Query::delete();
        q.from_table(self.table(table))
            .and_where(self.tenant_predicate(None));
        q
    }

    /// Runs a statement written with the scope's builders and returns how many rows it
    /// touched. Like every statement a scope sends, it is audited first (no control table, no
    /// schema but the tenant's) and told to the scope's observer.
    pub async fn execute<S: QueryStatementWriter + AuditTrait + Sync>(
        &self,
        stmt: &S,
    ) -> Result<u64> {
        self.execute_rendered(self.built(stmt)?).await
    }

    /// Runs a query written with the scope's builders and maps every row (audited and
    /// observed as [`TenantScope::execute`]).
    pub async fn fetch_all<T: FromQueryResult, S: QueryStatementWriter + AuditTrait + Sync>(
        &self,
        stmt: &S,
    ) -> Result<Vec<T>> {
        self.fetch_rendered(self.built(stmt)?).await
    }

    /// Runs a query written with the scope's builders and maps the first row, if any
    /// (audited and observed as [`TenantScope::execute`]).
    pub async fn fetch_optional<T: FromQueryResult, S: QueryStatementWriter + AuditTrait + Sync>(
        &self,
        stmt: &S,
    ) -> Result<Option<T>> {
        self.query_one_rendered(self.built(stmt)?)
            .await?
            .map(|r| T::from_query_result(&r, "").map_err(Error::from))
            .transpose()
    }

    // ANCHOR: fetch_optional
    /// Runs a statement already rendered for this scope and returns its first row, if any.
    /// Every query path of the scope ends here or in the two below, which tell the observer.
    pub(crate) async fn query_one_rendered(
        &self,
        stmt: sea_orm::Statement,
    ) -> Result<Option<sea_orm::QueryResult>> {
        if let Some(primary) = self.on_primary.get() {
            return Box::pin(primary.query_one_rendered(stmt)).await;
        }
        self.observe(&stmt);
        let again = self.fallback.is_some().then(|| stmt.clone());
        let started = Instant::now();
        let row = match &self.executor {
            Executor::Transaction(t) => t.query_one_raw(stmt).await.map_err(Error::from),
            Executor::Autocommit(c) => c.query_one_raw(stmt).await.map_err(Error::from),
            Executor::Lent(c) => c
                .query_all(stmt)
                .await
                .map(|r| r.into_iter().next())
                .map_err(Error::from),
        };
        let row = match (row, again) {
            (Err(e), Some(stmt)) if self.retries_on_primary(&e) => {
                return Box::pin(self.primary().await?.query_one_rendered(stmt)).await;
            }
            (row, _) => row?,
        };
        crate::usage::record(self.tenant_id, started.elapsed(), u64::from(row.is_some()));
        Ok(row)
    }
    // ANCHOR_END: fetch_optional

    /// Runs a statement already rendered for this scope and returns its rows.
    pub(crate) async fn query_rendered(
        &self,
        stmt: sea_orm::Statement,
    ) -> Result<Vec<sea_orm::QueryResult>> {
        if let Some(primary) = self.on_primary.get() {
            return Box::pin(primary.query_rendered(stmt)).await;
        }
        self.observe(&stmt);
        let again = self.fallback.is_some().then(|| stmt.clone());
        let started = Instant::now();
        let rows = match &self.executor {
            Executor::Transaction(t) => t.query_all_raw(stmt).await.map_err(Error::from),
            Executor::Autocommit(c) => c.query_all_raw(stmt).await.map_err(Error::from),
            Executor::Lent(c) => c.query_all(stmt).await.map_err(Error::from),
        };
        let rows = match (rows, again) {
            (Err(e), Some(stmt)) if self.retries_on_primary(&e) => {
                return Box::pin(self.primary().await?.query_rendered(stmt)).await;
            }
            (rows, _) => rows?,
        };
        crate::usage::record(self.tenant_id, started.elapsed(), rows.len() as u64);
        Ok(rows)
    }

    /// Runs a query already rendered for this scope and maps every row.
    pub(crate) async fn fetch_rendered<T: FromQueryResult>(
        &self,
        stmt: sea_orm::Statement,
    ) -> Result<Vec<T>> {
        self.query_rendered(stmt)
            .await?
            .iter()
            .map(|row| T::from_query_result(row, "").map_err(Error::from))
            .collect()
    }

    /// Runs a statement already rendered for this scope; returns how many rows it touched.
    pub(crate) async fn execute_rendered(&self, stmt: sea_orm::Statement) -> Result<u64> {
        self.observe(&stmt);
        let started = Instant::now();
        let res = match &self.executor {
            Executor::Transaction(t) => t.execute_raw(stmt).await?,
            Executor::Autocommit(c) => c.execute_raw(stmt).await?,
            Executor::Lent(c) => c.execute(stmt).await?,
        };
        crate::usage::record(self.tenant_id, started.elapsed(), res.rows_affected());
        Ok(res.rows_affected())
    }

    /// For [`Plan::ensure_room`](crate::quota::Plan::ensure_room): takes this tenant's quota
    /// lock on `table` until the scope's transaction ends. Refused on a read-only scope and
    /// on a scope with no transaction to hold the lock.
    pub(crate) async fn lock_for_quota(&self, table: &str) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly(format!(
                "a quota check before adding to {table}"
            )));
        }
        let in_transaction = match &self.executor {
            Executor::Transaction(_) => true,
            Executor::Autocommit(_) => false,
            Executor::Lent(c) => c.in_transaction(),
        };
        if !in_transaction {
            return Err(Error::invalid(
                "scope",
                "a quota check needs a transaction to hold its lock until the rows are in: \
                 use ScopeMode::Transaction",
            ));
        }
        let lock = crate::plumbing::sql::AdvisoryLock::new(format!(
            "tenancy:quota:{}:{table}",
            self.tenant_id
        ));
        self.execute_rendered(lock.statement()).await?;
        Ok(())
    }

    // ANCHOR: commit
    /// Makes the scope's writes durable. In autocommit mode every statement already was.
    pub async fn commit(self) -> Result<()> {
        if let Some(primary) = self.on_primary.into_inner() {
            Box::pin(primary.commit()).await?;
        }
        match self.executor {
            Executor::Transaction(t) => t.commit().await?,
            Executor::Lent(c) => c.finish(true).await?,
            Executor::Autocommit(_) => {}
        }
        Ok(())
    }
    // ANCHOR_END: commit

    /// Discards the scope's writes (dropping the scope does the same).
    pub async fn rollback(self) -> Result<()> {
        if let Some(primary) = self.on_primary.into_inner() {
            Box::pin(primary.rollback()).await?;
        }
        match self.executor {
            Executor::Transaction(t) => t.rollback().await?,
            Executor::Lent(c) => c.finish(false).await?,
            Executor::Autocommit(_) => {}
        }
        Ok(())
    }
}

fn tenant_id_is_fixed() -> Error {
    Error::Invalid {
        field: TENANT_ID,
        reason: "is set by the tenant scope and can never change".into(),
    }
}
