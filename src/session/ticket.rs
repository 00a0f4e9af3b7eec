//! Session cookies: a compact binary ticket sealed with the pool's cookie key, with the
//! pool and app bound in as associated data. A ticket of one pool or app does not open on
//! another; any change to a byte is detected.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use http::HeaderMap;

use super::cookie::Cookie;
use crate::crypto::Sealer;

/// 16 random bytes naming a session; stored as 32 hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(pub [u8; 16]);

impl SessionId {
    pub fn random() -> SessionId {
        let mut b = [0u8; 16];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
        SessionId(b)
    }

    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(s: &str) -> Option<SessionId> {
        if s.len() != 32 {
            return None;
        }
        let mut b = [0u8; 16];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            b[i] = u8::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
        }
        Some(SessionId(b))
    }
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Ids are bearer secrets inside a cookie: show a prefix only.
        write!(f, "SessionId({}…)", &self.hex()[..6])
    }
}

/// What a session cookie carries. An SSO ticket has `sid == sso`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub sid: SessionId,
    pub sso: SessionId,
    /// The user's id (a UUID) in the pool.
    pub uid: uuid::Uuid,
    pub issued: i64,
    /// Absolute end of the session.
    pub expires: i64,
    /// End unless used again (sliding).
    pub idle_until: i64,
    /// Signed in with a second factor.
    pub mfa: bool,
    /// `local`, or the identity source the user came through.
    pub source: String,
}

const VERSION: u8 = 1;

impl Ticket {
    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(66 + self.source.len());
        b.push(VERSION);
        b.extend_from_slice(&self.sid.0);
        b.extend_from_slice(&self.sso.0);
        b.extend_from_slice(self.uid.as_bytes());
        for t in [self.issued, self.expires, self.idle_until] {
            b.extend_from_slice(&(t.max(0) as u32).to_be_bytes());
        }
        b.push(self.mfa as u8);
        let source = if self.source == "local" {
            ""
        } else {
            self.source.as_str()
        };
        b.push(source.len().min(63) as u8);
        b.extend_from_slice(&source.as_bytes()[..source.len().min(63)]);
        b
    }

    fn decode(b: &[u8]) -> Option<Ticket> {
        if b.len() < 63 || b[0] != VERSION {
            return None;
        }
        let id = |at: usize| -> Option<[u8; 16]> { b.get(at..at + 16)?.try_into().ok() };
        let time = |at: usize| -> Option<i64> { Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?) as i64) };
        let source_len = *b.get(62)? as usize;
        let source = std::str::from_utf8(b.get(63..63 + source_len)?).ok()?;
        Some(Ticket {
            sid: SessionId(id(1)?),
            sso: SessionId(id(17)?),
            uid: uuid::Uuid::from_bytes(id(33)?),
            issued: time(49)?,
            expires: time(53)?,
            idle_until: time(57)?,
            mfa: *b.get(61)? == 1,
            source: if source.is_empty() {
                "local".into()
            } else {
                source.into()
            },
        })
    }

    /// Live at `now`: neither past its absolute end nor idle too long.
    pub fn live_at(&self, now: i64) -> bool {
        now < self.expires && now < self.idle_until
    }

    pub fn seal(&self, sealer: &Sealer, binding: &str) -> Option<String> {
        let sealed = sealer.seal(&self.encode(), binding.as_bytes()).ok()?;
        Some(URL_SAFE_NO_PAD.encode(sealed))
    }

    pub fn open(value: &str, sealer: &Sealer, binding: &str) -> Option<Ticket> {
        let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
        Ticket::decode(&sealer.open(&bytes, binding.as_bytes()).ok()?)
    }

    /// The tickets a request's `cookie`s hold that open with this key and binding, in the
    /// order sent: a cookie planted beside the real one opens nowhere and is passed over.
    pub fn in_cookies<'a>(
        cookie: Cookie,
        headers: &'a HeaderMap,
        tls: bool,
        sealer: &'a Sealer,
        binding: &'a str,
    ) -> impl Iterator<Item = Ticket> + 'a {
        cookie
            .values(headers, tls)
            .filter_map(move |v| Ticket::open(v, sealer, binding))
    }
}

/// What a ticket is bound to: one app of one pool, or one pool's portal.
pub fn app_binding(pool: &str, app: &str) -> String {
    format!("app\0{pool}\0{app}")
}

pub fn sso_binding(pool: &str) -> String {
    format!("sso\0{pool}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;

    fn ticket() -> Ticket {
        Ticket {
            sid: SessionId::random(),
            sso: SessionId::random(),
            uid: uuid::Uuid::new_v4(),
            issued: 1_800_000_000,
            expires: 1_800_036_000,
            idle_until: 1_800_001_800,
            mfa: true,
            source: "suppliers".into(),
        }
    }

    #[test]
    fn a_ticket_opens_only_where_it_was_issued() {
        let master = MasterKey::generate().unwrap();
        let employees = Sealer::new(&master, "cookie", "employees");
        let suppliers = Sealer::new(&master, "cookie", "suppliers");
        let t = ticket();
        let cookie = t.seal(&employees, &app_binding("employees", "wiki")).unwrap();
        assert!(cookie.len() < 160, "cookie value is small: {} bytes", cookie.len());
        assert_eq!(
            Ticket::open(&cookie, &employees, &app_binding("employees", "wiki")),
            Some(t.clone())
        );
        assert_eq!(
            Ticket::open(&cookie, &employees, &app_binding("employees", "crm")),
            None,
            "another app"
        );
        assert_eq!(
            Ticket::open(&cookie, &suppliers, &app_binding("employees", "wiki")),
            None,
            "another pool's key"
        );
        assert_eq!(
            Ticket::open(&cookie, &employees, &sso_binding("employees")),
            None,
            "not an SSO ticket"
        );
        let mut tampered = cookie.into_bytes();
        tampered[40] = if tampered[40] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            Ticket::open(
                std::str::from_utf8(&tampered).unwrap(),
                &employees,
                &app_binding("employees", "wiki")
            ),
            None
        );
    }

    #[test]
    fn idle_and_absolute_ends() {
        let t = ticket();
        assert!(t.live_at(t.issued));
        assert!(!t.live_at(t.idle_until));
        assert!(!t.live_at(t.expires));
        assert_eq!(SessionId::from_hex(&t.sid.hex()), Some(t.sid));
    }
}
