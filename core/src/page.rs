//! Keyset paging, for every list the workspace serves: the catalog's tenants and
//! every table of an application's alike.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

/// A page request for keyset paging: rows after `after` (exclusive), at most `limit` of them.
///
/// Ids are UUID v7, so ordering by id is ordering by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    /// At most this many rows (1 to [`PageRequest::MAX_LIMIT`]).
    pub limit: u32,
    /// Only rows whose id comes after this one; `None` for the first page.
    pub after: Option<Uuid>,
}

impl PageRequest {
    /// The largest page served.
    pub const MAX_LIMIT: u32 = 500;

    /// The first page of `limit` rows.
    pub fn first(limit: u32) -> Self {
        PageRequest { limit, after: None }
    }

    /// The limit as a row count, or [`Error::Invalid`] when it is 0 or above
    /// [`PageRequest::MAX_LIMIT`]. Fetch one row more than this to learn whether a next page
    /// exists ([`Page::from_overfetch`]).
    pub fn checked_limit(&self) -> Result<u64> {
        if self.limit == 0 || self.limit > Self::MAX_LIMIT {
            return Err(Error::Invalid {
                field: "limit",
                reason: format!("must be between 1 and {}", Self::MAX_LIMIT),
            });
        }
        Ok(u64::from(self.limit))
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest::first(50)
    }
}

/// One page of results and the cursor for the next, `None` on the last page.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The rows of this page, in id order.
    pub items: Vec<T>,
    /// The `after` of the next page; `None` on the last.
    pub next: Option<Uuid>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` fetched rows: the extra row, if present, only
    /// proves there is a next page.
    pub fn from_overfetch(mut items: Vec<T>, limit: u64, id: impl Fn(&T) -> Uuid) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(&id)
        } else {
            None
        };
        Page { items, next }
    }
}
