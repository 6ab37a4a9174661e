//! RFC 3339 time arguments (`from`, `to`).

use remora_core::Timestamp;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub fn parse(name: &str, s: &str) -> Result<Timestamp, String> {
    let t = OffsetDateTime::parse(s.trim(), &Rfc3339).map_err(|e| {
        format!("`{name}`: {s:?} is not an RFC 3339 time (like 2026-11-25T18:00:00Z): {e}")
    })?;
    let us = t.unix_timestamp_nanos() / 1000;
    Ok(Timestamp(
        i64::try_from(us).map_err(|_| format!("`{name}`: {s:?} is out of range"))?,
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_rfc3339_and_names_bad_values() {
        assert_eq!(
            super::parse("from", "1970-01-01T00:00:01.5Z").unwrap().0,
            1_500_000
        );
        let e = super::parse("to", "yesterday").unwrap_err();
        assert!(e.contains("`to`") && e.contains("\"yesterday\""), "{e}");
    }
}
