//! Durations as people write them in config: `250ms`, `30s`, `5m`, `1h`, `30d`.

use std::time::Duration;

pub fn parse_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        "d" => Duration::from_secs(n.checked_mul(86_400)?),
        _ => return None,
    };
    (!d.is_zero()).then_some(d)
}

/// A duration kept with the text it was written as, so that what is echoed back (the
/// admin API) reads as the config file does: `60s` stays `60s`, never `60000ms`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Written {
    value: Duration,
    text: Box<str>,
}

impl Written {
    pub fn parse(s: &str) -> Option<Written> {
        Some(Written {
            value: parse_duration(s)?,
            text: s.into(),
        })
    }

    pub fn get(&self) -> Duration {
        self.value
    }
}

impl std::fmt::Display for Written {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_is_echoed_as_written() {
        let w = Written::parse("60s").unwrap();
        assert_eq!((w.get(), w.to_string()), (Duration::from_secs(60), "60s".to_string()));
        assert_eq!(Written::parse("5m").unwrap().get(), Duration::from_secs(300));
        assert!(Written::parse("0s").is_none() && Written::parse("5 m").is_none());
    }
}
