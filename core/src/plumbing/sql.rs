//! Small pieces every SQL-sending module needs: a raw statement, and advisory locks by name.

use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};

use crate::error::Result;

/// A PostgreSQL statement with positional parameters (`$1`, `$2`, ...).
pub fn stmt(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

// ANCHOR: advisory_lock
/// A transaction-level advisory lock named by a string, in the manner of sqlx's
/// `PgAdvisoryLock`: the key is derived from the name (`hashtextextended(name, 0)`), so
/// callers pick readable names (`tenancy:install`) rather than hand-picked numbers, and two
/// names collide only by a 64-bit hash accident.
///
/// The lock is held until the transaction ends; nothing survives a pool checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvisoryLock {
    name: String,
}

impl AdvisoryLock {
    /// The lock called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        AdvisoryLock { name: name.into() }
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits for the lock exclusively, until `txn` ends.
    pub async fn lock(&self, txn: &impl ConnectionTrait) -> Result<()> {
        self.run(txn, "pg_advisory_xact_lock").await
    }

    /// Waits for the lock shared with other shared holders (an exclusive holder waits for
    /// all of them), until `txn` ends.
    pub async fn lock_shared(&self, txn: &impl ConnectionTrait) -> Result<()> {
        self.run(txn, "pg_advisory_xact_lock_shared").await
    }

    /// The statement that waits for the lock exclusively, for a caller that sends statements
    /// its own way (a tenant scope).
    pub fn statement(&self) -> Statement {
        self.statement_of("pg_advisory_xact_lock")
    }

    fn statement_of(&self, function: &str) -> Statement {
        stmt(
            &format!("SELECT {function}(hashtextextended($1, 0))"),
            [self.name.as_str().into()],
        )
    }

    async fn run(&self, txn: &impl ConnectionTrait, function: &str) -> Result<()> {
        txn.execute_raw(self.statement_of(function)).await?;
        Ok(())
    }
}
// ANCHOR_END: advisory_lock
