//! poolgate: a federation gateway. It maps each request's host to a user pool, signs
//! people in, and forwards requests upstream with identity headers the app can trust.
//! See DESIGN.md for the picture; each module below is one room of it.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::panic))]

pub mod admin;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod federation;
pub mod forward_auth;
pub mod gate;
pub mod ids;
pub mod logging;
pub mod metrics;
pub mod op;
pub mod outbound;
pub mod portal;
pub mod proxy;
pub mod registry;
pub mod server;
pub mod session;
pub mod store;
pub mod tls;
pub mod web;
pub mod whoami;
pub mod wire;
