//! The tenant as the catalog records it: its state in its life cycle, the record itself, and
//! what creating a tenant needs.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::moves::Move;
use super::names::{Slug, TenantId};
use super::placement::{Placement, PlacementKind};
use crate::error::Error;

/// The life cycle of a tenant in the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantState {
    /// Being created; its data must not be served yet.
    Provisioning,
    /// Serving.
    Ready,
    /// Marked for deletion; its data is being purged.
    Deleting,
    /// Being moved to another placement (see [`Tenant::moving`]); served all along from
    /// [`Tenant::placement`], whose writes may be refused for a short window.
    Moving,
}

impl TenantState {
    /// The text stored in the catalog.
    pub fn as_str(&self) -> &'static str {
        match self {
            TenantState::Provisioning => "provisioning",
            TenantState::Ready => "ready",
            TenantState::Deleting => "deleting",
            TenantState::Moving => "moving",
        }
    }

    /// Parses the text stored in the catalog.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "provisioning" => Some(TenantState::Provisioning),
            "ready" => Some(TenantState::Ready),
            "deleting" => Some(TenantState::Deleting),
            "moving" => Some(TenantState::Moving),
            _ => None,
        }
    }
}

impl fmt::Display for TenantState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tenant as recorded in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// The tenant's id (UUID v7), which never changes, not even in a move.
    pub id: TenantId,
    /// Its slug, unique in the catalog.
    pub slug: Slug,
    /// Its display name.
    pub name: String,
    /// Where its rows live.
    pub placement: Placement,
    /// Whether it is served (`ready`, `moving`) or not yet or no longer.
    pub state: TenantState,
    /// How many tenant migrations have been applied to this tenant's tables.
    pub schema_version: i32,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// The move in progress, when the tenant is [`TenantState::Moving`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moving: Option<Move>,
    /// When the tenant was suspended, if it is: its data is kept (and can be exported) but no
    /// scope is bound for it ([`Error::TenantSuspended`]) until it is resumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended_at: Option<DateTime<Utc>>,
    /// The plan the tenant is on, by name (`None`: the application's default plan). What a plan
    /// allows is the application's to say ([`crate::quota::Plans`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// When its rows were last placed: its creation, or the flip of its last move. A read
    /// replica serves it only once it has surely replayed that.
    #[serde(default)]
    pub placed_at: DateTime<Utc>,
}

impl Tenant {
    // ANCHOR: ensure_ready
    /// The guard every store runs before it binds a scope: only a `ready` tenant (or one being
    /// moved, from where the catalog says it is) is served; a `provisioning` or `deleting`
    /// one is [`Error::TenantNotReady`].
    pub fn ensure_ready(&self) -> Result<(), Error> {
        match self.state {
            TenantState::Ready | TenantState::Moving => Ok(()),
            _ => Err(Error::not_ready(self)),
        }
    }
    // ANCHOR_END: ensure_ready

    // ANCHOR: ensure_servable
    /// The guard every store runs before it binds a scope: [`Tenant::ensure_ready`], and not
    /// suspended ([`Error::TenantSuspended`]). A store checks the tenant it is given: a caller
    /// that keeps tenants (the demo's cache) forgets one when the catalog announces its change.
    pub fn ensure_servable(&self) -> Result<(), Error> {
        self.ensure_ready()?;
        match self.suspended_at {
            Some(_) => Err(Error::TenantSuspended(self.slug.to_string())),
            None => Ok(()),
        }
    }
    // ANCHOR_END: ensure_servable
}

/// What [`crate::TenantStore::create_tenant`] needs.
#[derive(Debug, Clone)]
pub struct NewTenant {
    /// The slug the tenant will have.
    pub slug: Slug,
    /// Its display name.
    pub name: String,
    /// For separate-db: the server to place the tenant on. `None` picks the server with the
    /// fewest tenants. Other strategies ignore it.
    pub server: Option<String>,
    /// The placement asked for. `None` takes the store's own (or, for a store over several
    /// placements, its configured default); a store of one strategy refuses another.
    pub placement: Option<PlacementKind>,
    /// Refuse a slug the catalog already holds, in whatever state, with
    /// [`Error::TenantAlreadyExists`](crate::Error::TenantAlreadyExists): of two concurrent
    /// creations of one slug exactly one succeeds. `false` (the default) makes creating
    /// idempotent per slug: an existing tenant is returned, a half-built one completed.
    pub exclusive: bool,
}

impl NewTenant {
    /// A tenant with this slug and display name, placed by the store.
    pub fn new(slug: Slug, name: impl Into<String>) -> Self {
        NewTenant {
            slug,
            name: name.into(),
            server: None,
            placement: None,
            exclusive: false,
        }
    }

    /// The same, asking for `placement` (see [`NewTenant::placement`]).
    pub fn placed(mut self, placement: PlacementKind) -> Self {
        self.placement = Some(placement);
        self
    }

    /// Refuses a placement other than `kind`, for a store of one placement.
    pub fn check_placement(&self, kind: PlacementKind) -> Result<(), Error> {
        match self.placement {
            Some(asked) if asked != kind => Err(Error::invalid(
                "placement",
                format!(
                    "{asked} was asked for, but this store ({}) places tenants in {kind} only",
                    kind.strategy()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The same, refusing a slug that is taken (see [`NewTenant::exclusive`]).
    pub fn exclusive(mut self) -> Self {
        self.exclusive = true;
        self
    }
}
