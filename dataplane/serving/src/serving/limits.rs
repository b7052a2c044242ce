//! Bounds on what one request may ask of a serving process, so that no caller can make it
//! search, allocate or remember without limit. Each is a documented default (docs/security.md
//! lists them) and a flag of `serve` and `route` ([`configure`]d once at start); a request
//! beyond one gets INVALID_ARGUMENT naming the bound.

use std::sync::OnceLock;

/// Longest user, item or request id accepted, in bytes.
pub const MAX_ID_BYTES: usize = 256;
/// Most items one Recommend may exclude (each widens the ANN search).
pub const MAX_EXCLUDED_ITEMS: usize = 1000;
/// Most categories in one Recommend's filter.
pub const MAX_CATEGORIES: usize = 64;
/// Most events in one Feedback call.
pub const MAX_FEEDBACK_EVENTS: usize = 1000;

/// The request bounds of this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    pub max_id_bytes: usize,
    pub max_excluded_items: usize,
    pub max_categories: usize,
    pub max_feedback_events: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            max_id_bytes: MAX_ID_BYTES,
            max_excluded_items: MAX_EXCLUDED_ITEMS,
            max_categories: MAX_CATEGORIES,
            max_feedback_events: MAX_FEEDBACK_EVENTS,
        }
    }
}

static LIMITS: OnceLock<RequestLimits> = OnceLock::new();

/// Sets this process's bounds, once, before serving; a second call (or one after a request
/// was checked) is refused, so every request is checked against the same bounds.
pub fn configure(limits: RequestLimits) -> Result<(), String> {
    if [
        limits.max_id_bytes,
        limits.max_excluded_items,
        limits.max_categories,
        limits.max_feedback_events,
    ]
    .contains(&0)
    {
        return Err(format!(
            "every request bound must be at least 1: {limits:?}"
        ));
    }
    LIMITS
        .set(limits)
        .map_err(|_| "request bounds are already set".to_owned())
}

/// The bounds in force: the configured ones, else the defaults.
pub fn current() -> &'static RequestLimits {
    LIMITS.get_or_init(RequestLimits::default)
}

/// Largest gRPC message accepted (a maximal Feedback batch is about 1 MB).
pub const MAX_MESSAGE_BYTES: usize = 2 << 20;
/// HTTP/2 streams one gRPC connection may have open at once.
pub const MAX_CONCURRENT_STREAMS: u32 = 256;
/// How long an HTTP client has to send its request headers.
pub const HTTP_HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A `grpc-timeout` header value (`<at most 8 digits><H|M|S|m|u|n>`); `None` when malformed,
/// which the protocol says to treat as no deadline.
pub fn grpc_timeout(value: &str) -> Option<std::time::Duration> {
    use std::time::Duration;
    // ASCII only: splitting off the unit by bytes must not cut a character in two.
    if value.len() < 2 || value.len() > 9 || !value.is_ascii() {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// `what` must be at most `max_id_bytes` long.
pub fn check_id(what: &str, id: &str) -> Result<(), String> {
    let max = current().max_id_bytes;
    if id.len() > max {
        return Err(format!(
            "{what} is {} bytes; at most {max} are accepted",
            id.len()
        ));
    }
    Ok(())
}

/// `what` may hold at most `max` entries.
pub fn check_count(what: &str, n: usize, max: usize) -> Result<(), String> {
    if n > max {
        return Err(format!(
            "{what} has {n} entries; at most {max} are accepted"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_name_what_was_too_large() {
        assert!(check_id("user_id", &"u".repeat(MAX_ID_BYTES)).is_ok());
        let e = check_id("user_id", &"u".repeat(MAX_ID_BYTES + 1)).unwrap_err();
        assert!(e.contains("user_id is 257 bytes"), "{e}");
        assert!(check_count("exclude_item_ids", 1001, MAX_EXCLUDED_ITEMS).is_err());
        assert!(check_count("exclude_item_ids", 1000, MAX_EXCLUDED_ITEMS).is_ok());
    }

    #[test]
    fn grpc_timeouts_parse_per_the_protocol() {
        use std::time::Duration;
        assert_eq!(grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(
            grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        // "1é": found by tests/it/fuzz_inputs.rs; splitting off the unit cut the é in two.
        for bad in [
            "",
            "m",
            "123456789m",
            "-1S",
            "1.5S",
            "10x",
            "1 S",
            "1é",
            "é",
        ] {
            assert_eq!(grpc_timeout(bad), None, "{bad:?}");
        }
    }
}
