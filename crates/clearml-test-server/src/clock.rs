//! Server time: epoch milliseconds and the ISO-8601 form (`…T10:54:27.123000+00:00`) used
//! on the wire.

use time::OffsetDateTime;

/// Now, in epoch milliseconds.
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Epoch milliseconds as ISO-8601 with millisecond precision and an explicit UTC offset.
pub fn iso(ms: i64) -> String {
    let dt = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}000+00:00",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.millisecond()
    )
}

/// Now, as ISO-8601.
pub fn now_iso() -> String {
    iso(now_ms())
}

/// Parses the ISO form written by [`iso`] (or any RFC 3339 time) back to epoch ms.
pub fn parse_iso(text: &str) -> Option<i64> {
    let dt = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some((dt.unix_timestamp_nanos() / 1_000_000) as i64)
}
