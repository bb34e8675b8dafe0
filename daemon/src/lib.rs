//! regentd as a library: the agent's modules, for the `regentd` binary and
//! for fuzzing. Nothing here is a stable API; talk to the agent over its socket.

pub mod agent;
pub mod api;
pub mod atomic_file;
pub mod config;
pub mod error;
pub mod login;
pub mod oauth;
pub mod registry;
pub mod security;
pub mod server;
pub mod socket;
pub mod store;
pub mod strict;
pub mod systemd;
pub mod token_cache;
pub mod tokens;
