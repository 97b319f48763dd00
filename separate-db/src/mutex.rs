//! The locks of the router and its servers, under the workspace's one policy for a lock a
//! panic poisoned ([`tenancy_core::plumbing::sync`]): a leaf both share.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`; a poisoned lock gives its data, with an error in the log.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    tenancy_core::plumbing::sync::lock(m, "the router of separate-db")
}
