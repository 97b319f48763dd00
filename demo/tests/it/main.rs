//! Integration tests of the demo: the real app on a free port, against a fresh database,
//! once per compiled strategy.

mod helpers;

mod api;
mod contract;
mod denial;
mod explorer;
mod faults;
mod input;
mod journal;
mod moves;
mod neighbours;
mod operations;
mod quota;
mod replicas;
mod security;
mod statics;
mod suspension;
