//! regentd as a library: the agent's modules, for the `regentd` binary, its
//! in-process tests and the fuzzers. Nothing here is a stable API; talk to
//! the agent over its socket. ARCHITECTURE.md draws the layers.

pub mod agent;
pub mod api;
pub mod atomic_file;
pub mod auth;
pub mod clients;
pub mod clock;
pub mod config;
pub mod ctx;
pub mod error;
pub mod grant;
pub mod instance;
pub mod log;
pub mod login;
pub mod oauth;
pub mod resource;
pub mod security;
pub mod server;
pub mod socket;
pub mod store;
pub mod strict;
pub mod systemd;
pub mod token;
