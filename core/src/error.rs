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
    InvalidSlug { slug: String, reason: SlugError },

    /// A well-formed request carried a value the domain refuses (an empty name, a title that
    /// is too long); nothing was written.
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },

    /// No tenant with that id or slug is in the catalog.
    #[error("tenant not found")]
    TenantNotFound,

    /// A tenant with that slug exists already (used where "create" must not be idempotent).
    #[error("tenant {0:?} already exists")]
    TenantAlreadyExists(String),

    /// The tenant exists but is `provisioning` or `deleting`, so its data cannot be served.
    #[error("tenant {slug:?} is not ready (state: {state})")]
    TenantNotReady {
        slug: String,
        state: crate::TenantState,
    },

    /// The operation collides with the current state (a duplicate key, a concurrent change).
    #[error("conflict: {0}")]
    Conflict(String),

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

    /// Anything else from the database; the cause is kept for the log.
    #[error("database error")]
    Backend(#[source] DbErr),
}
// ANCHOR_END: error

impl Error {
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

/// Shorthand used across the workspace.
pub type Result<T, E = Error> = std::result::Result<T, E>;

// ANCHOR: from_db_err
impl From<DbErr> for Error {
    fn from(err: DbErr) -> Self {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(msg)) => return Error::Conflict(msg),
            Some(SqlErr::ForeignKeyConstraintViolation(msg)) => return Error::Conflict(msg),
            _ => {}
        }
        if is_unavailable(&err) {
            return Error::Unavailable(err.to_string());
        }
        if is_pool_timeout(&err) {
            return Error::PoolTimeout;
        }
        Error::Backend(err)
    }
}
// ANCHOR_END: from_db_err

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
pub fn sqlstate(err: &DbErr) -> Option<String> {
    match sqlx_error(err)? {
        sea_orm::sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

fn is_pool_timeout(err: &DbErr) -> bool {
    matches!(sqlx_error(err), Some(sea_orm::sqlx::Error::PoolTimedOut))
        || matches!(
            err,
            DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout)
        )
}

fn is_unavailable(err: &DbErr) -> bool {
    match sqlx_error(err) {
        Some(sea_orm::sqlx::Error::Io(_)) | Some(sea_orm::sqlx::Error::Tls(_)) => true,
        Some(sea_orm::sqlx::Error::PoolClosed) => true,
        // 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now,
        // 08xxx connection exceptions.
        Some(sea_orm::sqlx::Error::Database(db)) => db
            .code()
            .is_some_and(|c| c.starts_with("57P0") || c.starts_with("08")),
        _ => matches!(
            err,
            DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::ConnectionClosed)
        ),
    }
}
