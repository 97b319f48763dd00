//! What the demo's own request bodies accept, each rule written once: the check a route runs
//! and the schema the OpenAPI document publishes for the same field come from the constants
//! here (the tenant API's fields have theirs in `tenancy_example`), so that schemathesis'
//! positive and negative data meet the same rule the code applies.

use tenancy_core::{BLANK, Error, Result, Slug, TextRule};
use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaType, Type};

/// A tenant's display name: not blank, at most 200 characters; stored without the blank
/// characters around it.
pub const TENANT_NAME: TextRule = TextRule::required(200);
/// A user's name, the same rule.
pub const USER_NAME: TextRule = TextRule::required(200);
/// The longest email address accepted (RFC 5321's path limit).
pub const MAX_EMAIL: usize = 254;
/// The most tenants `POST /admin/migrate` migrates at once (its `concurrency`; the document's
/// `maximum`, which a test holds to this).
pub const MAX_MIGRATE_CONCURRENCY: usize = 64;
/// The longest expiry a token may be given: ten years.
pub const MAX_EXPIRY_SECS: u64 = 10 * 366 * 24 * 3600;

/// An email address as the demo takes it: one `@` with something on each side, no blank
/// character and no NUL, at most [`MAX_EMAIL`] characters. It is stored lowercased.
pub fn check_email(email: &str) -> Result<()> {
    let parts: Vec<&str> = email.split('@').collect();
    let well_formed = parts.len() == 2
        && parts.iter().all(|p| !p.is_empty())
        && !email.chars().any(|c| c == '\0' || BLANK.contains(&c));
    if !well_formed || email.chars().count() > MAX_EMAIL {
        return Err(Error::invalid(
            "email",
            format!(
                "must be one '@' with text on each side, no spaces, at most {MAX_EMAIL} characters"
            ),
        ));
    }
    Ok(())
}

/// A whole number of seconds, or null. JSON Schema's `integer` is any number without a
/// fractional part, `1.0` included, which serde's `u64` refuses: this reads either.
pub fn whole_seconds<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<u64>, D::Error> {
    use serde::Deserialize;
    use serde::de::Error as _;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(u) = n.as_u64() {
        return Ok(Some(u));
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(&f) => Ok(Some(f as u64)),
        _ => Err(D::Error::custom(format!(
            "{n} is not a whole number of seconds"
        ))),
    }
}

/// [`check_email`] as a JSON Schema pattern.
const EMAIL_PATTERN: &str =
    "^[^@\\u0000\\t\\n\\u000b\\u000c\\r ]+@[^@\\u0000\\t\\n\\u000b\\u000c\\r ]+$";

/// A name checked by `rule` and stored without blank characters around it.
pub fn trimmed(rule: TextRule, field: &'static str, value: &str) -> Result<String> {
    rule.check(field, value)?;
    Ok(value.trim_matches(BLANK).to_owned())
}

/// Each field's schema, for `#[schema(schema_with = ...)]`.
pub mod schema {
    use super::*;

    /// A tenant's slug: [`Slug::pattern`].
    pub fn slug() -> Object {
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::String))
            .description(Some(
                "Lowercase letters, digits and '-', a letter first, at most 40 characters; \
                 not a reserved name",
            ))
            .min_length(Some(1))
            .max_length(Some(Slug::MAX_LEN))
            .pattern(Some(Slug::pattern()))
            .build()
    }

    /// A tenant's display name.
    pub fn tenant_name() -> Object {
        TENANT_NAME.schema("The display name: not blank, at most 200 characters.")
    }

    /// A user's name.
    pub fn user_name() -> Object {
        USER_NAME.schema("The user's name: not blank, at most 200 characters.")
    }

    /// An email address: [`check_email`].
    pub fn email() -> Object {
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::String))
            .description(Some("An email address; stored lowercased."))
            .max_length(Some(MAX_EMAIL))
            .pattern(Some(EMAIL_PATTERN))
            .build()
    }

    /// A token's lifetime in seconds, or null.
    pub fn expires_in_secs() -> Object {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
            .description(Some(
                "The token stops working this many seconds from now (1 to 10 years' worth); \
                 left out, it works until revoked.",
            ))
            .minimum(Some(1))
            .maximum(Some(MAX_EXPIRY_SECS as f64))
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_and_names() {
        for ok in ["a@b", "Ann@Example.COM", "x.y+z@例え.jp"] {
            assert!(check_email(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "a", "@b", "a@", "a@@b", "a@b@c", " a@b", "a b@c", "a@b\u{0}",
        ] {
            assert!(check_email(bad).is_err(), "{bad:?}");
        }
        assert!(check_email(&format!("a@{}", "b".repeat(MAX_EMAIL - 2))).is_ok());
        assert!(check_email(&format!("a@{}", "b".repeat(MAX_EMAIL - 1))).is_err());
        assert_eq!(
            trimmed(TENANT_NAME, "name", " Acme\t").ok().as_deref(),
            Some("Acme")
        );
        assert!(trimmed(TENANT_NAME, "name", " \t").is_err());
    }

    #[test]
    fn the_document_states_the_migrate_concurrency_limit() {
        use utoipa::OpenApi;
        let doc = serde_json::to_value(crate::openapi::ApiDoc::openapi()).unwrap_or_default();
        let params = &doc["paths"]["/admin/migrate"]["post"]["parameters"];
        let concurrency = params
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == "concurrency"))
            .map(|p| p["schema"].clone())
            .unwrap_or_default();
        assert_eq!(concurrency["minimum"], 1, "{concurrency}");
        assert_eq!(
            concurrency["maximum"], MAX_MIGRATE_CONCURRENCY as u64,
            "{concurrency}"
        );
    }

    #[test]
    fn seconds_are_whole_numbers_written_either_way() {
        let read = |v: serde_json::Value| whole_seconds(v).ok();
        assert_eq!(read(serde_json::json!(60)), Some(Some(60)));
        assert_eq!(read(serde_json::json!(60.0)), Some(Some(60)));
        assert_eq!(read(serde_json::Value::Null), Some(None));
        assert_eq!(read(serde_json::json!(1.5)), None);
        assert_eq!(read(serde_json::json!(-1)), None);
    }
}
