//! A tenant's names: its id, its validated slug, and the quoting and checks of the names a
//! store puts into SQL (identifiers, stored text).

use std::fmt;
use std::str::FromStr;

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

/// A job's id (`tenancy.jobs`, and the `job` of a [`Move`](crate::Move) on the tenant's row): a
/// UUID v7, as in `GET /admin/jobs/{id}`. Shown and parsed as the UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobId(Uuid);

impl JobId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        JobId(Uuid::now_v7())
    }

    /// Wraps an existing UUID (read from the catalog, a URL, a test).
    pub fn from_uuid(id: Uuid) -> Self {
        JobId(id)
    }

    /// The UUID inside.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for JobId {
    type Err = Error;
    /// Parses a UUID; anything else is [`Error::Invalid`].
    fn from_str(s: &str) -> Result<Self, Error> {
        Uuid::parse_str(s)
            .map(JobId)
            .map_err(|_| Error::invalid("job", format!("{s:?} is not a job id (a UUID)")))
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
