//! What travels in HTTP headers that several rooms read the same way (DESIGN.md §7, a
//! leaf: it imports nothing of the crate).

use http::HeaderMap;

/// The credentials of an `Authorization` header of `scheme` (`Bearer`, `Basic`): the
/// scheme compared without case (RFC 7235 §2.1), the credentials trimmed.
pub fn credentials<'h>(headers: &'h HeaderMap, scheme: &str) -> Option<&'h str> {
    let (given, credentials) = headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then(|| credentials.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_is_compared_without_case() {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, "bEaReR  abc ".parse().unwrap());
        assert_eq!(credentials(&h, "Bearer"), Some("abc"));
        assert_eq!(credentials(&h, "Basic"), None);
        assert_eq!(credentials(&HeaderMap::new(), "Bearer"), None);
    }
}
