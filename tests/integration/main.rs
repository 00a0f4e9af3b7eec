//! Integration tests: real gateway processes (the `poolgate` binary) in front of real
//! whoami upstreams, all on loopback ephemeral ports. One test binary, so Pingora links once.

mod browser;
mod support;

mod admin;
mod attacks;
mod check;
mod cli;
mod console;
mod demo;
mod federation;
mod forward_auth;
mod op;
mod ops;
mod proxying;
mod reload;
mod rogue_issuer;
mod routing;
mod signin;
mod store;
mod tls;
mod upgrade;
