//! The admin API under `/admin`: tenants, migrations, users, tokens, memberships. Every route
//! needs the admin token.
//!
//! One family of routes a file, each registering its own: [`tenants`] (create, list, read,
//! delete, migrate every tenant), [`moves`] (a move and its job), [`suspension`] (suspend
//! and resume a tenant), [`plans`] (plans, a tenant's plan and its usage), [`explorer`] (what the
//! explorer page shows of a tenant) and [`users`] (users, their tokens, memberships). Here:
//! the lookups they share.

pub mod explorer;
pub mod moves;
pub mod plans;
pub mod suspension;
pub mod tenants;
pub mod users;

use actix_web::web;
use tenancy_core::{Slug, Tenant};

use crate::problem::ApiError;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    tenants::routes(cfg);
    explorer::routes(cfg);
    moves::routes(cfg);
    suspension::routes(cfg);
    plans::routes(cfg);
    users::routes(cfg);
}

/// Where tenants are placed on servers (separate-db, hybrid), a server must be one of the
/// configured ones, whatever the placement asked for (the document lists them); the other
/// strategies ignore `server`.
fn known_server(state: &AppState, server: Option<&str>) -> Result<(), ApiError> {
    match (server, state.placement_servers()) {
        (Some(s), Some(known)) if !known.iter().any(|k| k == s) => Err(ApiError::Unprocessable(
            format!("invalid server: {s:?} is not one of {}", known.join(", ")),
        )),
        _ => Ok(()),
    }
}

async fn find(state: &AppState, slug: &str) -> Result<Tenant, ApiError> {
    let slug = Slug::parse(slug).map_err(|_| ApiError::NotFound("tenant not found".into()))?;
    Ok(state.store.tenant_by_slug(&slug).await?)
}
