//! zlib's C API under the name flate2's zlib-ng backend links against.
//! flate2 only uses the classic zlib entry points (`deflateInit2_`, `inflate`, …),
//! which plain zlib provides with identical signatures.
#![no_std]
pub use libz_sys::*;
