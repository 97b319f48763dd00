//! Request bodies: a JSON object, read into the route's type, or a problem.
//!
//! serde reads a struct from a JSON array as well as from an object (`[null, null]` is a
//! `ProjectPatch` of two absent fields), which the OpenAPI document does not allow: a body
//! that is not an object is refused with 422 before the route runs, and writes nothing. The
//! body's size, syntax and content type are checked first by actix's JSON extractor, with the
//! app's `JsonConfig` (413, 400).

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use serde::de::DeserializeOwned;

use crate::problem::ApiError;

/// A JSON request body that must be an object, read into `T`.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T> Body<T> {
    /// The value read.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Body<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Body<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = web::Json::<serde_json::Value>::from_request(req, payload);
        Box::pin(async move {
            let value = json.await?.into_inner();
            Ok(Body(read(value)?))
        })
    }
}

/// `value` as a `T` when it is a JSON object; 422 otherwise.
pub fn read<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::Unprocessable(format!(
            "the body must be a JSON object, not {}",
            match value {
                serde_json::Value::Array(_) => "an array",
                serde_json::Value::String(_) => "a string",
                serde_json::Value::Number(_) => "a number",
                serde_json::Value::Bool(_) => "a boolean",
                _ => "null",
            }
        )));
    }
    serde_json::from_value(value).map_err(|e| ApiError::Unprocessable(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::read;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Patch {
        name: Option<String>,
        done: Option<bool>,
    }

    #[test]
    fn only_an_object_is_read() {
        assert!(read::<Patch>(serde_json::json!({"name": "x"})).is_ok());
        for not_an_object in [
            serde_json::json!([null, null]),
            serde_json::json!(["x", true]),
            serde_json::json!("x"),
            serde_json::json!(1),
            serde_json::json!(null),
        ] {
            assert!(
                read::<Patch>(not_an_object.clone()).is_err(),
                "{not_an_object} was read"
            );
        }
    }
}
