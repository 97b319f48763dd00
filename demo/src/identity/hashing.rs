//! A bearer token hashed once per request: what the catalog stores, and the key the caches
//! and the token's rate are kept under.

use crate::accounts::{hex, token_hash};

/// A bearer token, hashed once per request: the hash is what the catalog stores, its hex the
/// key of the caches and of the token's rate.
pub struct HashedToken {
    pub(super) hash: Vec<u8>,
    pub(super) hex: String,
}

impl std::fmt::Debug for HashedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashedToken(<redacted>)")
    }
}

impl HashedToken {
    pub fn of(token: &str) -> Self {
        let hash = token_hash(token);
        HashedToken {
            hex: hex(&hash),
            hash,
        }
    }
}
