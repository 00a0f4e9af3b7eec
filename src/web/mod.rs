//! What every page the gateway serves shares: the page templates and their branding, for
//! the portal's forms and the proxy's own answers alike (DESIGN.md §7, `web/`).

pub mod context;
pub mod forms;
pub mod hashing;
pub mod pages;
pub mod sealed;
pub mod state;
pub mod throttle;
