//! The HTTP routes, by family.

pub mod admin;
pub mod ops;
pub mod public;
pub mod tenant;
