//! The account writes: users, their memberships in tenants, and API tokens, kept in the
//! control database beside the catalog, in tables the demo's own [`migration`] creates.
//!
//! Users are global: a user exists outside any tenant and is granted tenants through
//! memberships with a role. Tokens are 32 random bytes, shown once, and stored as their
//! SHA-256 hash, so a leaked catalog does not leak working tokens. Reading them back on a
//! request (token to user, membership to role) is [`crate::identity`]'s job.

pub mod migration;

use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tenancy_core::plumbing::sql::stmt;
use tenancy_core::sea_orm::ConnectionTrait;
use tenancy_core::{Error, Result, TenantId};
use uuid::Uuid;

/// What a member may do in a tenant. The demo's routes treat both alike; the role is kept to
/// show where authorisation would look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Member,
}

impl Role {
    /// The name stored in `tenancy.memberships.role`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Member => "member",
        }
    }

    /// The role a stored name stands for (anything but `owner` is a plain member).
    pub fn from_stored(name: &str) -> Role {
        match name {
            "owner" => Role::Owner,
            _ => Role::Member,
        }
    }
}

/// A user, global to the application.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
}

/// What creating a user needs.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    #[schema(schema_with = crate::rules::schema::email)]
    pub email: String,
    #[schema(schema_with = crate::rules::schema::user_name)]
    pub name: String,
}

/// A token as shown once, at creation.
#[derive(Clone, Serialize, utoipa::ToSchema)]
pub struct IssuedToken {
    /// The token's id, to list or revoke it by.
    pub id: Uuid,
    pub user_id: Uuid,
    /// Send as `Authorization: Bearer <token>`. It is not stored and cannot be shown again.
    pub token: String,
    /// When it stops working; `null`: never (until revoked).
    pub expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// A token as listed: never the token itself, which is not stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    pub id: Uuid,
    pub user_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

// ANCHOR: tokens
/// The hash a token is stored and looked up by.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Lowercase hex, as PostgreSQL's `encode(..., 'hex')` writes it.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random token.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("tnc_{}", hex(&bytes))
}
// ANCHOR_END: tokens

/// Creates a user; `Invalid` for a bad email or name, `UniqueViolation` when the email is
/// taken.
pub async fn create_user(db: &impl ConnectionTrait, new: NewUser) -> Result<User> {
    crate::rules::check_email(&new.email)?;
    let email = new.email.to_lowercase();
    let name = crate::rules::trimmed(crate::rules::USER_NAME, "name", &new.name)?;
    let id = Uuid::now_v7();
    db.execute_raw(stmt(
        "INSERT INTO tenancy.users (id, email, name) VALUES ($1, $2, $3)",
        [id.into(), email.clone().into(), name.clone().into()],
    ))
    .await?;
    Ok(User { id, email, name })
}

/// Whether any user exists (the first run creates a sample one when none does).
pub async fn any_user(db: &impl ConnectionTrait) -> Result<bool> {
    Ok(db
        .query_one_raw(stmt("SELECT 1 AS one FROM tenancy.users LIMIT 1", []))
        .await?
        .is_some())
}

/// Issues a token for `user`, valid until `expires_at` when given; `NotFound` when there is
/// no such user.
pub async fn create_token(
    db: &impl ConnectionTrait,
    user: Uuid,
    expires_at: Option<DateTime<Utc>>,
) -> Result<IssuedToken> {
    let token = new_token();
    let id = Uuid::now_v7();
    let inserted = db
        .execute_raw(stmt(
            "INSERT INTO tenancy.api_tokens (id, user_id, token_hash, expires_at) \
             SELECT $1, id, $3, $4 FROM tenancy.users WHERE id = $2",
            [
                id.into(),
                user.into(),
                token_hash(&token).into(),
                expires_at.into(),
            ],
        ))
        .await?;
    if inserted.rows_affected() == 0 {
        return Err(Error::NotFound("user"));
    }
    Ok(IssuedToken {
        id,
        user_id: user,
        token,
        expires_at,
    })
}

/// The tokens of `user`, oldest first; `NotFound` when there is no such user.
pub async fn list_tokens(db: &impl ConnectionTrait, user: Uuid) -> Result<Vec<TokenInfo>> {
    let exists = db
        .query_one_raw(stmt(
            "SELECT 1 AS one FROM tenancy.users WHERE id = $1",
            [user.into()],
        ))
        .await?;
    if exists.is_none() {
        return Err(Error::NotFound("user"));
    }
    let rows = db
        .query_all_raw(stmt(
            "SELECT id, user_id, created_at, expires_at FROM tenancy.api_tokens \
             WHERE user_id = $1 ORDER BY created_at, id",
            [user.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(TokenInfo {
                id: r.try_get("", "id")?,
                user_id: r.try_get("", "user_id")?,
                created_at: r.try_get("", "created_at")?,
                expires_at: r.try_get("", "expires_at")?,
            })
        })
        .collect()
}

/// Revokes token `id` (deletes it: every process forgets it at once, see the migration's
/// notices); `NotFound` when there is none.
pub async fn revoke_token(db: &impl ConnectionTrait, id: Uuid) -> Result<()> {
    let done = db
        .execute_raw(stmt(
            "DELETE FROM tenancy.api_tokens WHERE id = $1",
            [id.into()],
        ))
        .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound("token"));
    }
    Ok(())
}

/// Grants (or changes) a membership; `NotFound` when the user does not exist.
pub async fn set_membership(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    user: Uuid,
    role: Role,
) -> Result<()> {
    let done = db
        .execute_raw(stmt(
            "INSERT INTO tenancy.memberships (tenant_id, user_id, role) \
             SELECT $1, id, $3 FROM tenancy.users WHERE id = $2 \
             ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = EXCLUDED.role",
            [tenant.as_uuid().into(), user.into(), role.as_str().into()],
        ))
        .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound("user"));
    }
    Ok(())
}

/// Revokes a membership; `NotFound` when there was none.
pub async fn remove_membership(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    user: Uuid,
) -> Result<()> {
    let done = db
        .execute_raw(stmt(
            "DELETE FROM tenancy.memberships WHERE tenant_id = $1 AND user_id = $2",
            [tenant.as_uuid().into(), user.into()],
        ))
        .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound("membership"));
    }
    Ok(())
}
