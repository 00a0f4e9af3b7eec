//! Key material: the master key and what is derived from it (sealing keys per pool and
//! purpose), password hashing, and pools' signing keys.

pub mod jwt;
mod master;
pub mod password;
mod seal;
pub mod secret;
pub mod signing;

pub use master::{MasterKey, MasterKeyError};
pub use seal::{SealError, Sealer};
