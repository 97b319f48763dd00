//! Errors as `application/problem+json` (RFC 9457): `type`, `title`, `status`, `detail`.
//!
//! Every handler returns [`ApiError`]. Internal failures become an opaque 500 while their
//! cause chain goes to the log; nothing about another tenant ever reaches the body.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use tenancy_core::Error;

/// A problem document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

/// The error of every route.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No bearer token, or one that is not valid.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Not there, or not yours (the two are never told apart).
    #[error("{0}")]
    NotFound(String),
    /// The body is not JSON, or not the JSON expected.
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed, but a value is refused.
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Conflict(String),
    /// The tenant is suspended: understood, and refused until it is resumed (RFC 9110's 403:
    /// asking again will not help, and authorizing differently would not either).
    #[error("{0}")]
    Suspended(String),
    /// A write would take the tenant past its plan: 409 (RFC 9110: the request conflicts
    /// with the current state of the tenant's data, and the caller can resolve it, by deleting
    /// rows or by a plan that allows more, and send it again).
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    /// The route does not take the request's method; it takes these (the `Allow` header).
    #[error("this route does not take that method; it takes {0}")]
    MethodNotAllowed(&'static str),
    /// The database cannot be reached (or no connection came free in time).
    #[error("the database is unavailable; retry shortly")]
    Unavailable,
    /// A statement ran past the tenant statement timeout; nothing was written.
    #[error("the request took too long and was cancelled; nothing was written")]
    TooSlow,
    /// Too many requests for the tenant or the token; retry after the given seconds.
    #[error("too many requests; retry after {0} s")]
    TooMany(u64),
    /// Anything else; the cause is logged, not shown.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    fn kind(&self) -> &'static str {
        match self {
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::NotFound(_) => "not-found",
            ApiError::BadRequest(_) => "bad-request",
            ApiError::Unprocessable(_) => "invalid-value",
            ApiError::Conflict(_) => "conflict",
            ApiError::Suspended(_) => "suspended",
            ApiError::QuotaExceeded(_) => "quota-exceeded",
            ApiError::TooLarge(_) => "body-too-large",
            ApiError::MethodNotAllowed(_) => "method-not-allowed",
            ApiError::Unavailable => "unavailable",
            ApiError::TooSlow => "statement-timeout",
            ApiError::TooMany(_) => "rate-limited",
            ApiError::Internal(_) => "internal",
        }
    }
}

// ANCHOR: from_error
impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidSlug { .. } | Error::Invalid { .. } | Error::TenantMismatch { .. } => {
                ApiError::Unprocessable(e.to_string())
            }
            Error::TenantNotFound | Error::TenantNotReady { .. } => {
                ApiError::NotFound("tenant not found".into())
            }
            Error::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            Error::TenantAlreadyExists(slug) => {
                ApiError::Conflict(format!("tenant {slug:?} already exists"))
            }
            Error::TenantSuspended(slug) => {
                ApiError::Suspended(format!("tenant {slug:?} is suspended"))
            }
            Error::QuotaExceeded { .. } => ApiError::QuotaExceeded(e.to_string()),
            Error::Conflict(_)
            | Error::UniqueViolation { .. }
            | Error::ForeignKeyViolation { .. } => {
                ApiError::Conflict("the request conflicts with the current state".into())
            }
            Error::Unavailable(_) | Error::PoolTimeout => {
                tracing::warn!(error = %e, "database unavailable");
                ApiError::Unavailable
            }
            Error::StatementTimeout => {
                tracing::warn!("a statement ran past the statement timeout");
                ApiError::TooSlow
            }
            // A move's fence: the write is refused for a moment, then goes to the new copy.
            Error::TenantMoving => ApiError::Unavailable,
            Error::BadExport(reason) => ApiError::Unprocessable(reason),
            other => ApiError::Internal(other.into()),
        }
    }
}
// ANCHOR_END: from_error

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        match e.downcast::<Error>() {
            Ok(e) => e.into(),
            Err(e) => ApiError::Internal(e),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Suspended(_) => StatusCode::FORBIDDEN,
            ApiError::QuotaExceeded(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable | ApiError::TooSlow => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if let ApiError::Internal(cause) = self {
            tracing::error!(error = ?cause, "internal error");
        }
        let problem = Problem {
            kind: format!("/problems/{}", self.kind()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
        };
        let mut res = HttpResponse::build(status);
        res.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        match self {
            ApiError::Unauthorized(_) => {
                res.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            ApiError::Unavailable | ApiError::TooSlow => {
                res.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
            }
            ApiError::TooMany(secs) => {
                res.insert_header((header::RETRY_AFTER, HeaderValue::from(*secs)));
            }
            ApiError::MethodNotAllowed(allow) => {
                res.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
            }
            _ => {}
        }
        res.body(serde_json::to_string(&problem).unwrap_or_default())
    }
}

/// Maps actix's JSON extractor errors: syntax 400, wrong shape or unknown field 422, too big
/// 413, wrong content type 415 (as 400 with a clear detail).
pub fn json_error(err: actix_web::error::JsonPayloadError, limit: usize) -> ApiError {
    use actix_web::error::JsonPayloadError as J;
    match err {
        J::Overflow { .. } | J::OverflowKnownLength { .. } => ApiError::TooLarge(limit),
        J::Deserialize(e) if e.is_data() => ApiError::Unprocessable(e.to_string()),
        J::Deserialize(e) => ApiError::BadRequest(format!("malformed JSON: {e}")),
        J::ContentType => ApiError::BadRequest("send Content-Type: application/json".into()),
        other => ApiError::BadRequest(other.to_string()),
    }
}

// ANCHOR: allow
/// The answer of a route asked with a method it does not declare: 405 with `Allow` listing
/// `methods` (the methods the route's resource declares, as `"GET, POST"`), as problem+json.
/// Every resource's `default_service`.
pub fn allow(methods: &'static str) -> actix_web::Route {
    actix_web::web::to(move || async move {
        Err::<actix_web::HttpResponse, _>(ApiError::MethodNotAllowed(methods))
    })
}
// ANCHOR_END: allow
