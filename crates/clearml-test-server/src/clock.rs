//! Server time: epoch milliseconds and the ISO-8601 form (`…T10:54:27.123000+00:00`) used
//! on the wire.

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// Now, in epoch milliseconds.
pub(crate) fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

/// Epoch milliseconds as ISO-8601 with millisecond precision and an explicit UTC offset.
pub(crate) fn iso(ms: i64) -> String {
    let dt =
        TimeZone::UTC.to_datetime(Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}000+00:00",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.millisecond()
    )
}

/// Now, as ISO-8601.
pub(crate) fn now_iso() -> String {
    iso(now_ms())
}

/// Parses the ISO form written by [`iso`] (or any RFC 3339 time) back to epoch ms.
pub fn parse_iso(text: &str) -> Option<i64> {
    text.parse::<Timestamp>()
        .ok()
        .map(Timestamp::as_millisecond)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_round_trips() {
        assert_eq!(iso(0), "1970-01-01T00:00:00.000000+00:00");
        let ms = 1_764_842_067_123;
        assert_eq!(iso(ms), "2025-12-04T09:54:27.123000+00:00");
        assert_eq!(parse_iso(&iso(ms)), Some(ms));
        assert_eq!(parse_iso("2025-12-04T09:54:27Z"), Some(1_764_842_067_000));
        assert_eq!(parse_iso("not a time"), None);
    }
}
