//! The HTTP routes, by family.

pub mod admin;
pub mod ops;
pub mod tenant;
