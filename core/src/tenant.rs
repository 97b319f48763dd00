//! The tenant model: ids, validated slugs, where a tenant lives and what state it is in.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, SlugError};

/// A tenant's id: a UUID v7, so ids sort by creation time and index well.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(Uuid);

impl TenantId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        TenantId(Uuid::now_v7())
    }

    /// Wraps an existing UUID (read from the catalog, a URL, a test).
    pub fn from_uuid(id: Uuid) -> Self {
        TenantId(id)
    }

    /// The UUID inside.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for TenantId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A tenant's short name, used in URLs, schema names and database names.
///
/// Valid slugs start with a lowercase ASCII letter, continue with lowercase letters, digits
/// and `-`, are at most [`Slug::MAX_LEN`] characters long and are not reserved. A `Slug` can
/// only be built through [`Slug::parse`], so every identifier derived from one is safe to
/// quote into SQL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Slug(String);

// ANCHOR: reserved
/// Names PostgreSQL or this workspace already use for something else.
const RESERVED: &[&str] = &[
    "public",
    "admin",
    "api",
    "postgres",
    "template0",
    "template1",
    "information_schema",
    "tenancy",
    "template",
];
// ANCHOR_END: reserved

impl Slug {
    /// The longest slug accepted.
    pub const MAX_LEN: usize = 40;

    /// Validates `input` and returns it as a slug, or [`Error::InvalidSlug`] saying why not.
    pub fn parse(input: &str) -> Result<Self, Error> {
        Self::check(input)
            .map(|()| Slug(input.to_owned()))
            .map_err(|reason| Error::InvalidSlug {
                slug: input.chars().take(64).collect(),
                reason,
            })
    }

    // ANCHOR: slug_check
    fn check(input: &str) -> Result<(), SlugError> {
        let first = input.chars().next().ok_or(SlugError::Empty)?;
        if input.len() > Self::MAX_LEN {
            return Err(SlugError::TooLong);
        }
        if !first.is_ascii_lowercase() {
            return Err(SlugError::BadStart);
        }
        if !input
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(SlugError::BadCharacter);
        }
        if input.starts_with("pg_") || input.starts_with("pg-") || RESERVED.contains(&input) {
            return Err(SlugError::Reserved);
        }
        Ok(())
    }
    // ANCHOR_END: slug_check

    /// The same rule as [`Slug::parse`] as a JSON Schema `pattern` (ECMA-262, which Python's
    /// `re` reads the same), built from the same constants: for an HTTP layer's document.
    pub fn pattern() -> String {
        format!(
            "^(?!pg-)(?!(?:{})$)[a-z][a-z0-9-]{{0,{}}}$",
            RESERVED.join("|"),
            Self::MAX_LEN - 1
        )
    }

    /// The slug as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Slug {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Slug::parse(s)
    }
}

impl<'de> Deserialize<'de> for Slug {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Slug::parse(&raw).map_err(serde::de::Error::custom)
    }
}

// ANCHOR: quote_ident
/// Quotes an identifier for PostgreSQL: wraps it in double quotes and doubles any inside.
///
/// Identifiers in this workspace are derived from validated slugs, so the doubling never
/// triggers; it is here so that quoting is correct on its own, not only by luck of the input.
pub fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}
// ANCHOR_END: quote_ident

// ANCHOR: check_identifier
/// Checks a name a store puts into SQL as an identifier (a schema prefix, a role, a database
/// prefix, a server name): a lowercase ASCII letter or `_` first, then lowercase letters,
/// digits, `_` and `-`; not `pg_...` (reserved by PostgreSQL); and at most 63 bytes with
/// `room` bytes to spare (a prefix leaves room for the slug that follows it). The name is
/// quoted with [`quote_ident`] wherever it is used all the same.
pub fn check_identifier(field: &'static str, name: &str, room: usize) -> Result<(), Error> {
    let mut chars = name.chars();
    let well_formed = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && !name.starts_with("pg_");
    if well_formed && name.len() + room <= 63 {
        return Ok(());
    }
    Err(Error::invalid(
        field,
        format!(
            "{name:?} must be lowercase letters, digits, '_' and '-', start with a letter or '_', \
             not start with pg_, and be at most {} characters",
            63usize.saturating_sub(room)
        ),
    ))
}
// ANCHOR_END: check_identifier

/// Refuses text PostgreSQL cannot store: the NUL character (`\u0000` in JSON) is valid
/// UTF-8 but not allowed in a `text` value, and the server would refuse the whole statement.
/// For an application's own checks too.
pub fn storable(field: &'static str, value: &str) -> Result<(), Error> {
    if value.contains('\0') {
        return Err(Error::Invalid {
            field,
            reason: "must not contain the NUL character (\\u0000)".into(),
        });
    }
    Ok(())
}

// ANCHOR: placement_kind
/// The one word for where a tenant lives: shared tables, a schema of its own, or a database of
/// its own. Used by [`NewTenant::placement`], the catalog's [`Placement`] (as its `kind`), the
/// hybrid store, the demo's API and CLI and the benches. Parsed from and shown as `shared`,
/// `schema`, `database`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PlacementKind {
    /// Shared tables, told apart by `tenant_id` (served by the shared-schema strategy).
    Shared,
    /// A schema of its own in the one database (separate-schema).
    Schema,
    /// A database of its own on one of the configured servers (separate-db).
    Database,
}
// ANCHOR_END: placement_kind

impl PlacementKind {
    /// Every placement kind, in the order the book presents them.
    pub const ALL: [PlacementKind; 3] = [
        PlacementKind::Shared,
        PlacementKind::Schema,
        PlacementKind::Database,
    ];

    /// The name it is parsed from and shown as.
    pub fn as_str(&self) -> &'static str {
        match self {
            PlacementKind::Shared => "shared",
            PlacementKind::Schema => "schema",
            PlacementKind::Database => "database",
        }
    }

    /// The strategy whose store serves tenants placed so.
    pub fn strategy(&self) -> crate::Strategy {
        match self {
            PlacementKind::Shared => crate::Strategy::SharedSchema,
            PlacementKind::Schema => crate::Strategy::SeparateSchema,
            PlacementKind::Database => crate::Strategy::SeparateDb,
        }
    }
}

impl fmt::Display for PlacementKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PlacementKind {
    type Err = Error;
    /// Parses `shared`, `schema` or `database`; anything else is [`Error::Invalid`] naming
    /// the three.
    fn from_str(s: &str) -> Result<Self, Error> {
        PlacementKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "placement",
                    format!("{s:?} is not a placement: use one of shared, schema, database"),
                )
            })
    }
}

/// Where a tenant's rows live. Recorded in the catalog when the tenant is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Placement {
    /// Shared tables, told apart by `tenant_id`.
    Shared,
    /// A schema of its own in the one database.
    Schema {
        /// The schema's name.
        schema: String,
    },
    /// A database of its own on one of the configured servers.
    Database {
        /// The configured server's name.
        server: String,
        /// The database's name on it.
        database: String,
    },
}

impl Placement {
    /// Which of the three placements this is.
    pub fn kind(&self) -> PlacementKind {
        match self {
            Placement::Shared => PlacementKind::Shared,
            Placement::Schema { .. } => PlacementKind::Schema,
            Placement::Database { .. } => PlacementKind::Database,
        }
    }

    /// The strategy that serves tenants placed here.
    pub fn strategy(&self) -> crate::Strategy {
        self.kind().strategy()
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placement::Shared => f.write_str("shared tables"),
            Placement::Schema { schema } => write!(f, "schema {schema}"),
            Placement::Database { server, database } => {
                write!(f, "database {database} on server {server}")
            }
        }
    }
}

/// A move in progress, recorded on the tenant's catalog row while it is
/// [`TenantState::Moving`]: where the rows come from and go to, and how far the move got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    /// The job that drives the move (`tenancy.jobs`).
    pub job: uuid::Uuid,
    /// Where the tenant's rows are served from until the flip.
    pub from: Placement,
    /// Where they are going.
    pub to: Placement,
    /// How far the move got.
    pub step: MoveStep,
    /// For a move between the workers of a Citus cluster (`from` and `to` are then the same
    /// placement): the worker it goes to, `host:port`. `None` for a placement move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// How far a move got. Before [`MoveStep::Flipped`] the tenant is served from `from`, and
/// an interrupted move is rolled back; from it on, from `to`, and an interrupted move is
/// finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveStep {
    /// Recorded; the target is being built.
    Started,
    /// Writes to the source are refused; its rows are being copied.
    Fenced,
    /// The catalog points at the target; the source is being purged.
    Flipped,
    /// The move failed or was found stopped before the flip: the target is being purged and
    /// the source's fence lifted. Never flipped from here.
    RollingBack,
}

impl MoveStep {
    /// The text stored in the catalog and in job reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            MoveStep::Started => "started",
            MoveStep::Fenced => "fenced",
            MoveStep::Flipped => "flipped",
            MoveStep::RollingBack => "rolling_back",
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_accept_the_documented_alphabet() {
        for ok in ["a", "acme", "acme-corp", "a1", &"a".repeat(40)] {
            assert!(Slug::parse(ok).is_ok(), "{ok} should be valid");
        }
    }

    #[test]
    fn slugs_refuse_everything_else_with_a_reason() {
        let cases: &[(&str, SlugError)] = &[
            ("", SlugError::Empty),
            (&"a".repeat(41), SlugError::TooLong),
            ("Acme", SlugError::BadStart),
            ("1acme", SlugError::BadStart),
            ("-acme", SlugError::BadStart),
            ("acMe", SlugError::BadCharacter),
            ("acme_corp", SlugError::BadCharacter),
            ("café", SlugError::BadCharacter),
            ("a\"; drop schema public; --", SlugError::BadCharacter),
            ("pg_x", SlugError::BadCharacter),
            ("pg-x", SlugError::Reserved),
            ("public", SlugError::Reserved),
            ("postgres", SlugError::Reserved),
            ("template0", SlugError::Reserved),
            ("admin", SlugError::Reserved),
        ];
        for (input, want) in cases {
            match Slug::parse(input) {
                Err(Error::InvalidSlug { reason, .. }) => assert_eq!(reason, *want, "{input:?}"),
                other => panic!("{input:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn placement_kinds_parse_what_they_show_and_nothing_else() {
        for kind in PlacementKind::ALL {
            assert_eq!(kind.as_str().parse::<PlacementKind>().ok(), Some(kind));
            assert_eq!(
                serde_json::to_value(kind).ok(),
                Some(serde_json::Value::String(kind.to_string()))
            );
        }
        for bad in ["separate-db", "hybrid", "Shared", ""] {
            assert!(bad.parse::<PlacementKind>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_pattern_is_the_rule() {
        let pattern = Slug::pattern();
        assert!(
            pattern.contains("template1") && pattern.contains("{0,39}"),
            "{pattern}"
        );
    }

    #[test]
    fn quoting_doubles_embedded_quotes() {
        assert_eq!(quote_ident("t_acme"), "\"t_acme\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
