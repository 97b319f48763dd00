//! The one error type of the workspace.
//!
//! Every strategy maps its driver errors into these portable kinds, so callers (the demo's
//! HTTP layer, the CLI, tests) can react to "the tenant does not exist" or "that row belongs to
//! nobody you can see" without knowing which strategy or driver sits underneath.

use sea_orm::{DbErr, SqlErr};

/// Why a slug was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlugError {
    /// The slug is empty.
    Empty,
    /// The slug is longer than [`crate::Slug::MAX_LEN`] characters.
    TooLong,
    /// The first character is not a lowercase ASCII letter.
    BadStart,
    /// A character other than `a-z`, `0-9` or `-` appears.
    BadCharacter,
    /// The slug is a reserved name (`public`, `postgres`, `pg_*`, ...).
    Reserved,
}

impl std::fmt::Display for SlugError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SlugError::Empty => "is empty",
            SlugError::TooLong => "is longer than 40 characters",
            SlugError::BadStart => "must start with a lowercase ASCII letter",
            SlugError::BadCharacter => "may contain only lowercase ASCII letters, digits and '-'",
            SlugError::Reserved => "is a reserved name",
        })
    }
}

// ANCHOR: error
/// The error of every fallible operation in the workspace.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A slug failed validation; nothing was written.
    #[error("invalid slug {slug:?}: {reason}")]
    InvalidSlug {
        /// The slug as given.
        slug: String,
        /// What is wrong with it.
        reason: SlugError,
    },

    /// A well-formed request carried a value the domain refuses (an empty name, a title that
    /// is too long); nothing was written.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field (or argument) refused.
        field: &'static str,
        /// Why.
        reason: String,
    },

    /// No tenant with that id or slug is in the catalog.
    #[error("tenant not found")]
    TenantNotFound,

    /// A tenant with that slug exists already (used where "create" must not be idempotent).
    #[error("tenant {0:?} already exists")]
    TenantAlreadyExists(String),

    /// The tenant exists but is `provisioning` or `deleting`, so its data cannot be served.
    #[error("tenant {slug:?} is not ready (state: {state})")]
    TenantNotReady {
        /// The tenant's slug.
        slug: String,
        /// The state it is in.
        state: crate::TenantState,
    },

    /// The tenant is suspended: its data is kept, but no scope is bound for it until it is
    /// resumed ([`TenantStore::resume`](crate::TenantStore::resume)).
    #[error("tenant {0:?} is suspended")]
    TenantSuspended(String),

    /// A row with the same key exists already (SQLSTATE 23505): a duplicate slug, email or
    /// id. `constraint` names the unique constraint or index when the server reported it.
    #[error("unique violation ({}): {message}", constraint.as_deref().unwrap_or("unnamed"))]
    UniqueViolation {
        /// The unique constraint or index, when the server named it.
        constraint: Option<String>,
        /// The server's message.
        message: String,
    },

    /// A row refers to one that does not exist, or one that others still refer to would be
    /// removed (SQLSTATE 23503): a row whose parent is gone. `constraint` names the foreign
    /// key when the server reported it.
    #[error("foreign key violation ({}): {message}", constraint.as_deref().unwrap_or("unnamed"))]
    ForeignKeyViolation {
        /// The foreign key, when the server named it.
        constraint: Option<String>,
        /// The server's message.
        message: String,
    },

    /// The operation collides with the current state, and may succeed once that changes: a
    /// tenant placed by another store, a move run or rolled back by another process, rows
    /// already there. Not for the library's own broken state: that is [`Error::Internal`].
    #[error("conflict: {0}")]
    Conflict(String),

    /// A read-only scope ([`ScopeMode::ReadOnly`](crate::ScopeMode::ReadOnly)) was asked to
    /// write: refused before anything was sent, so nothing was written. The message names the
    /// statement's kind and table.
    #[error("a read-only scope refused a write ({0})")]
    ReadOnly(String),

    /// A write would take the tenant past a limit of its plan
    /// ([`Plan::ensure_room`](crate::quota::Plan::ensure_room),
    /// [`Plan::ensure_storage`](crate::quota::Plan::ensure_storage)): refused before anything
    /// was written. The tenant's other requests are served as before.
    #[error("the {plan:?} plan allows {limit} {what}; the tenant has {used}")]
    QuotaExceeded {
        /// The plan's name.
        plan: String,
        /// What is limited: a table's name, or `storage bytes`.
        what: String,
        /// The plan's limit.
        limit: u64,
        /// What the tenant has now.
        used: u64,
    },

    /// The library found its own state broken, which no caller can fix by asking again: a
    /// catalog row it cannot read, a copy that does not match its source, a record it wrote
    /// and cannot find. The message says what, for the log (an HTTP layer answers 500).
    #[error("internal error: {0}")]
    Internal(String),

    /// A model or active model written through a tenant scope carried another tenant's
    /// `tenant_id` (or an `update_many` tried to set `tenant_id`); nothing was written. A row
    /// belongs to the tenant of the scope it is written through, and never changes tenant.
    #[error("a {table} row of another tenant cannot be written through this tenant's scope")]
    TenantMismatch {
        /// The entity's table.
        table: &'static str,
    },

    /// The row does not exist for this tenant. Rows of other tenants are reported the same
    /// way, so a caller cannot learn that they exist.
    #[error("{0} not found")]
    NotFound(&'static str),

    /// The server that holds the tenant (or the catalog) cannot be reached right now.
    #[error("database unavailable: {0}")]
    Unavailable(String),

    /// Waited for a connection longer than the configured limit.
    #[error("timed out waiting for a database connection")]
    PoolTimeout,

    /// A statement ran longer than the store's `statement_timeout` and the server cancelled
    /// it (SQLSTATE 57014); its transaction wrote nothing.
    #[error("a statement ran past the statement timeout and was cancelled")]
    StatementTimeout,

    /// The tenant is being moved to another placement and the copy this write reached takes
    /// no more writes (SQLSTATE `TNMOV`, raised by the move's fence); nothing was written.
    /// Retry in a moment: the catalog points at the new copy as soon as the move flips.
    #[error("the tenant is being moved and takes no writes for a moment")]
    TenantMoving,

    /// An export file (per-tenant backup) was refused before anything was written: it is
    /// truncated, a checksum does not match, or it was made at another schema version.
    #[error("export refused: {0}")]
    BadExport(String),

    /// A store refused to serve tenants because the database does not give the isolation it
    /// promises (row-level security not in force, say); the message says what to fix.
    #[error("refusing to serve tenants: {0}")]
    Insecure(String),

    /// A store was given tenant migrations that do not match the ones its catalog recorded
    /// (the list is append-only: a migration was removed, renamed or reordered), or none at
    /// all. Refused at connect, before anything is migrated; the message says what to do.
    #[error("tenant migrations do not match this database: {0}")]
    MigrationsMismatch(String),

    /// The database cannot do what was asked, and nothing was sent that would half do it: a
    /// store on a Citus cluster that does not run there (separate-db, hybrid), or a tenant
    /// migration that Citus refuses in a distributed tenant schema (found on a probe schema
    /// that is rolled back, before the template or any tenant is touched). The message names
    /// what was refused and why.
    #[error("not supported here: {0}")]
    Unsupported(String),

    /// Anything else from the database; the cause is kept for the log.
    #[error("database error")]
    Backend(#[source] DbErr),
}
// ANCHOR_END: error

impl Error {
    /// [`Error::TenantNotReady`] for `tenant` in its current state.
    pub fn not_ready(tenant: &crate::Tenant) -> Self {
        Error::TenantNotReady {
            slug: tenant.slug.to_string(),
            state: tenant.state,
        }
    }

    /// [`Error::Invalid`] for `field`.
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// [`Error::Conflict`]: `tenant` is placed somewhere this store does not serve (`where_`
    /// says what the store serves, "a schema of this store" say).
    pub fn misplaced(tenant: &crate::Tenant, where_: &str) -> Self {
        Error::Conflict(format!("tenant {} is not placed in {where_}", tenant.slug))
    }

    /// The error and its causes on one line (`a: b: c`), for reports and logs.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            out.push_str(": ");
            out.push_str(&s.to_string());
            source = s.source();
        }
        out
    }
}

/// The SQLSTATE a move's fence raises for a write that reaches the copy being moved away.
pub const FENCED: &str = "TNMOV";

/// Shorthand used across the workspace.
pub type Result<T, E = Error> = std::result::Result<T, E>;

// ANCHOR: from_db_err
impl From<DbErr> for Error {
    fn from(err: DbErr) -> Self {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(message)) => {
                return Error::UniqueViolation {
                    constraint: constraint_name(&err),
                    message,
                };
            }
            Some(SqlErr::ForeignKeyConstraintViolation(message)) => {
                return Error::ForeignKeyViolation {
                    constraint: constraint_name(&err),
                    message,
                };
            }
            _ => {}
        }
        if is_unavailable(&err) {
            return Error::Unavailable(err.to_string());
        }
        if is_pool_timeout(&err) {
            return Error::PoolTimeout;
        }
        match sqlstate(&err).as_deref() {
            Some("57014") => return Error::StatementTimeout,
            Some(FENCED) => return Error::TenantMoving,
            _ => {}
        }
        Error::Backend(err)
    }
}
// ANCHOR_END: from_db_err

impl From<sea_orm::sqlx::Error> for Error {
    /// A driver error from a connection a strategy holds itself, mapped like any other.
    fn from(err: sea_orm::sqlx::Error) -> Self {
        Error::from(DbErr::Conn(sea_orm::RuntimeErr::SqlxError(
            std::sync::Arc::new(err),
        )))
    }
}

fn sqlx_error(err: &DbErr) -> Option<&sea_orm::sqlx::Error> {
    use sea_orm::RuntimeErr;
    match err {
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => Some(e.as_ref()),
        _ => None,
    }
}

/// The SQLSTATE of a database error, when the server sent one.
fn sqlstate(err: &DbErr) -> Option<String> {
    match sqlx_error(err)? {
        sea_orm::sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// The constraint a violation names, when the server sent one.
fn constraint_name(err: &DbErr) -> Option<String> {
    match sqlx_error(err)? {
        sea_orm::sqlx::Error::Database(db) => db.constraint().map(str::to_owned),
        _ => None,
    }
}

impl Error {
    /// Whether the server cancelled the statement as a serialization failure (SQLSTATE
    /// 40001): on a read replica, a recovery conflict (the standby needed to replay what the
    /// statement was reading).
    pub(crate) fn is_serialization_failure(&self) -> bool {
        matches!(self, Error::Backend(e) if sqlstate(e).as_deref() == Some("40001"))
    }
}

/// Whether the database refused a statement because a relation it names does not exist
/// (SQLSTATE 42P01, `undefined_table`).
pub fn is_undefined_table(err: &DbErr) -> bool {
    sqlstate(err).as_deref() == Some("42P01")
}

fn is_pool_timeout(err: &DbErr) -> bool {
    matches!(sqlx_error(err), Some(sea_orm::sqlx::Error::PoolTimedOut))
        || matches!(
            err,
            DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout)
        )
}

/// Whether a driver error says the server cannot be reached or ended the session: the
/// socket failed, or the server sent 57P01 admin_shutdown (a restart, `pg_terminate_backend`),
/// 57P02 crash_shutdown, 57P03 cannot_connect_now or an 08xxx connection exception. After
/// one of these the connection is gone.
pub(crate) fn ends_session(err: &sea_orm::sqlx::Error) -> bool {
    match err {
        sea_orm::sqlx::Error::Io(_) | sea_orm::sqlx::Error::Tls(_) => true,
        sea_orm::sqlx::Error::PoolClosed => true,
        sea_orm::sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("57P0") || c.starts_with("08")),
        _ => false,
    }
}

fn is_unavailable(err: &DbErr) -> bool {
    match sqlx_error(err) {
        Some(e) => ends_session(e),
        None => matches!(
            err,
            DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::ConnectionClosed)
        ),
    }
}
