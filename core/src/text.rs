//! Rules for text fields, written once: the check an application runs before it writes, and
//! the JSON Schema an HTTP layer publishes for the same field, come from one [`TextRule`], so
//! that every value the document allows is accepted and every value it refuses is refused.

use crate::error::Error;

/// The characters a "blank" value consists of: ASCII whitespace (space, tab, line feed,
/// vertical tab, form feed, carriage return). Spelled out, not `\s`, so that the rule means
/// the same in Rust, in ECMA-262 and in Python's `re` (their `\s` differ outside ASCII).
pub const BLANK: [char; 6] = [' ', '\t', '\n', '\u{b}', '\u{c}', '\r'];

/// A text field's rule: at most `max` characters (Unicode scalar values, as JSON Schema's
/// `maxLength` counts them), never the NUL character (PostgreSQL's `text` cannot hold it),
/// and, when `not_blank`, at least one character outside [`BLANK`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextRule {
    /// The most characters accepted.
    pub max: usize,
    /// Whether a value of [`BLANK`] characters only (the empty one included) is refused.
    pub not_blank: bool,
}

impl TextRule {
    /// A required text: not blank, at most `max` characters.
    pub const fn required(max: usize) -> Self {
        TextRule {
            max,
            not_blank: true,
        }
    }

    /// An optional text: may be empty or blank, at most `max` characters.
    pub const fn optional(max: usize) -> Self {
        TextRule {
            max,
            not_blank: false,
        }
    }

    /// Refuses `value` for field `field` with [`Error::Invalid`] saying which part of the
    /// rule it breaks.
    pub fn check(&self, field: &'static str, value: &str) -> Result<(), Error> {
        crate::storable(field, value)?;
        if self.not_blank && value.chars().all(|c| BLANK.contains(&c)) {
            return Err(Error::invalid(field, "must not be empty or blank"));
        }
        if value.chars().count() > self.max {
            return Err(Error::invalid(
                field,
                format!("must be at most {} characters", self.max),
            ));
        }
        Ok(())
    }

    /// The rule's `pattern` for JSON Schema (ECMA-262, which Python's `re` reads the same):
    /// no NUL anywhere and, when `not_blank`, one character outside [`BLANK`].
    pub fn pattern(&self) -> &'static str {
        if self.not_blank {
            "^[^\\u0000]*[^\\u0000\\t\\n\\u000b\\u000c\\r ][^\\u0000]*$"
        } else {
            "^[^\\u0000]*$"
        }
    }

    /// The rule as an OpenAPI schema of a string: `maxLength`, `minLength` (1 when
    /// `not_blank`), `pattern`.
    #[cfg(feature = "openapi")]
    pub fn schema(&self, description: &str) -> utoipa::openapi::schema::Object {
        self.object(description, false)
    }

    /// [`TextRule::schema`] with `null` allowed too: a patch's field that may be left out.
    #[cfg(feature = "openapi")]
    pub fn nullable_schema(&self, description: &str) -> utoipa::openapi::schema::Object {
        self.object(description, true)
    }

    #[cfg(feature = "openapi")]
    fn object(&self, description: &str, nullable: bool) -> utoipa::openapi::schema::Object {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        let kind = if nullable {
            SchemaType::from_iter([Type::String, Type::Null])
        } else {
            SchemaType::new(Type::String)
        };
        ObjectBuilder::new()
            .schema_type(kind)
            .description(Some(description))
            .max_length(Some(self.max))
            .min_length(self.not_blank.then_some(1))
            .pattern(Some(self.pattern()))
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_required_text_refuses_blank_nul_and_long_values() {
        let rule = TextRule::required(5);
        // U+001C and U+00A0 are whitespace to some regex engines, not to this rule.
        for ok in ["a", " a ", "\u{1c}", "\u{a0}", "abcde"] {
            assert!(rule.check("f", ok).is_ok(), "{ok:?}");
        }
        for bad in ["", " ", "\t\n\u{b}\u{c}\r ", "abcdef", "a\u{0}"] {
            assert!(rule.check("f", bad).is_err(), "{bad:?}");
        }
        let optional = TextRule::optional(3);
        assert!(optional.check("f", "").is_ok() && optional.check("f", "  ").is_ok());
        assert!(optional.check("f", "\u{0}").is_err() && optional.check("f", "abcd").is_err());
    }
}
