//! The catalog's templates (`tenancy.templates`): the schema version each template was built
//! at.

use sea_orm::ConnectionTrait;

use crate::error::Result;
use crate::sql::stmt;

/// The version recorded for a template (`0` when none is).
pub async fn template_version(conn: &impl ConnectionTrait, name: &str) -> Result<i32> {
    let row = conn
        .query_one_raw(stmt(
            "SELECT schema_version FROM tenancy.templates WHERE name = $1",
            [name.into()],
        ))
        .await?;
    Ok(match row {
        Some(r) => r.try_get::<i32>("", "schema_version")?,
        None => 0,
    })
}

/// Records a template's version.
pub async fn set_template_version(
    conn: &impl ConnectionTrait,
    name: &str,
    version: i32,
) -> Result<()> {
    conn.execute_raw(stmt(
        "INSERT INTO tenancy.templates (name, schema_version) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET schema_version = EXCLUDED.schema_version",
        [name.into(), version.into()],
    ))
    .await?;
    Ok(())
}
