//! `--since` / `--until` bounds, normalized to the store's timestamp text
//! (`2026-11-27T04:40:21.123Z`) so that SQL compares them as text.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

use crate::ReportError;

/// A bound on message/request/session timestamps, in the store's format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeBound {
    /// What the user typed (echoed in the report's `filters`).
    pub given: String,
    /// The store-format timestamp compared against (`>=` since, `<` until).
    pub ts: String,
}

fn fmt(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse(what: &'static str, s: &str) -> Result<(DateTime<Utc>, bool), ReportError> {
    let s = s.trim();
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let t = d.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
        return Ok((t, true));
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| (t.with_timezone(&Utc), false))
        .map_err(|_| ReportError::BadTime {
            what,
            value: s.to_string(),
        })
}

/// `--since`: inclusive. A date means its 00:00:00 UTC.
pub fn parse_since(s: &str) -> Result<TimeBound, ReportError> {
    let (t, _) = parse("since", s)?;
    Ok(TimeBound {
        given: s.trim().to_string(),
        ts: fmt(t),
    })
}

/// `--until`: exclusive for a timestamp; a date includes that whole day
/// (the bound becomes the next day's 00:00:00 UTC).
pub fn parse_until(s: &str) -> Result<TimeBound, ReportError> {
    let (t, is_date) = parse("until", s)?;
    let t = if is_date {
        t + chrono::Duration::days(1)
    } else {
        t
    };
    Ok(TimeBound {
        given: s.trim().to_string(),
        ts: fmt(t),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert_eq!(
            parse_since("2026-02-01").unwrap().ts,
            "2026-02-01T00:00:00.000Z"
        );
        assert_eq!(
            parse_until("2026-02-15").unwrap().ts,
            "2026-02-16T00:00:00.000Z"
        );
        assert_eq!(
            parse_until("2026-01-30T02:00:05+02:00").unwrap().ts,
            "2026-01-30T00:00:05.000Z"
        );
        assert!(parse_since("yesterday").is_err());
    }
}
