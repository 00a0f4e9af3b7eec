//! Domain identifiers: a `PoolId` is not a `String`, and a `Host` is always normalised.

use std::fmt;

use serde::Serialize;

/// Why a string is not a valid identifier or host name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("`{0}` is not a valid id: use 1-63 characters of a-z, 0-9, `-` and `_`, starting with a letter or digit")]
    BadId(String),
    #[error("`{0}` is not a valid host name")]
    BadHost(String),
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, IdError> {
                if is_valid_id(s) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(IdError::BadId(s.to_owned()))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        // Maps keyed by id can be searched with a `&str`.
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A user pool: the unit of isolation.
    PoolId
);
id_type!(
    /// An app, unique within its pool.
    AppId
);
id_type!(
    /// An identity source of a pool.
    SourceId
);
id_type!(
    /// An OAuth client registered with a pool that is not one of its apps; its id shares
    /// the pool's `client_id` space with the apps.
    ClientId
);

/// A number unique within this process, drawn when an instance is made. It tells one
/// instance's cache entries from another's: a principal fetched again, an app reloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Serial(u64);

impl Serial {
    pub fn next() -> Serial {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Serial(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// Ids appear in URLs, metric labels and log lines, so they are kept plain.
fn is_valid_id(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
}

/// A host name as routing sees it: lower-case, no port, no trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Host(String);

impl Host {
    /// Normalises a bare host name (no port): lower-cases it and drops one trailing dot.
    /// Accepts DNS names and IPv4 literals; IPv6 literals in brackets (`[::1]`).
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let bad = || IdError::BadHost(s.to_owned());
        let trimmed = s.strip_suffix('.').unwrap_or(s);
        if let Some(inner) = trimmed.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            let ip: std::net::Ipv6Addr = inner.parse().map_err(|_| bad())?;
            return Ok(Self(format!("[{ip}]")));
        }
        if trimmed.is_empty() || trimmed.len() > 253 {
            return Err(bad());
        }
        let lower = trimmed.to_ascii_lowercase();
        let labels_ok = lower.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
        });
        if labels_ok { Ok(Self(lower)) } else { Err(bad()) }
    }

    /// Parses the authority of a request (`Host` header, `:authority`, SNI): a host with
    /// an optional port, which is dropped.
    pub fn from_authority(authority: &str) -> Result<Self, IdError> {
        let host = if authority.starts_with('[') {
            match authority.find(']') {
                Some(end) => {
                    let rest = &authority[end + 1..];
                    if !rest.is_empty() && !is_port_suffix(rest) {
                        return Err(IdError::BadHost(authority.to_owned()));
                    }
                    &authority[..=end]
                }
                None => return Err(IdError::BadHost(authority.to_owned())),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) if is_port(port) => host,
                Some(_) => return Err(IdError::BadHost(authority.to_owned())),
                None => authority,
            }
        };
        Self::parse(host)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// `Borrow<str>` lets a `HashMap<Host, _>` be searched with a `&str`.
impl std::borrow::Borrow<str> for Host {
    fn borrow(&self) -> &str {
        &self.0
    }
}

fn is_port_suffix(s: &str) -> bool {
    s.strip_prefix(':').is_some_and(is_port)
}

/// A TCP port as an authority may name one: 1 to 65535, in decimal digits.
fn is_port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|c| c.is_ascii_digit()) && p.parse::<u16>().is_ok_and(|n| n != 0)
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_normalised() {
        let h = |s| Host::from_authority(s).map(|h| h.0);
        assert_eq!(
            h("Wiki.Employees.LOCALHOST:8080."),
            Err(IdError::BadHost("Wiki.Employees.LOCALHOST:8080.".into()))
        );
        assert_eq!(h("Wiki.Employees.LOCALHOST.:8080").unwrap(), "wiki.employees.localhost");
        assert_eq!(h("wiki.localhost.").unwrap(), "wiki.localhost");
        assert_eq!(h("[::1]:443").unwrap(), "[::1]");
        assert_eq!(h("127.0.0.1:80").unwrap(), "127.0.0.1");
        assert!(h("").is_err());
        assert!(h("a b").is_err());
        assert!(h("host:port").is_err());
        assert!(h("host:").is_err());
        assert!(h("host:0").is_err(), "port 0");
        assert!(h("host:99999").is_err(), "past 65535");
        assert!(h("host:65536").is_err());
        assert!(h("[::1]:0").is_err());
        assert_eq!(h("host:65535").unwrap(), "host");
        assert!(h("evil.com/x").is_err());
        assert!(h("-bad.localhost").is_err());
    }

    #[test]
    fn ids_are_plain() {
        assert!(PoolId::parse("employees").is_ok());
        assert!(PoolId::parse("Employees").is_err());
        assert!(PoolId::parse("").is_err());
        assert!(AppId::parse("wiki-2").is_ok());
        assert!(AppId::parse("../etc").is_err());
    }
}
