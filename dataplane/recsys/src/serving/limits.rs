//! Bounds on what one request may ask of a serving process, so that no caller can make it
//! search, allocate or remember without limit. Each is a documented default (docs/security.md
//! lists them); a request beyond one gets INVALID_ARGUMENT naming the bound.

/// Longest user, item or request id accepted, in bytes.
pub const MAX_ID_BYTES: usize = 256;
/// Most items one Recommend may exclude (each widens the ANN search).
pub const MAX_EXCLUDED_ITEMS: usize = 1000;
/// Most categories in one Recommend's filter.
pub const MAX_CATEGORIES: usize = 64;
/// Most events in one Feedback call.
pub const MAX_FEEDBACK_EVENTS: usize = 1000;

/// `what` must be at most [`MAX_ID_BYTES`] long.
pub fn check_id(what: &str, id: &str) -> Result<(), String> {
    if id.len() > MAX_ID_BYTES {
        return Err(format!(
            "{what} is {} bytes; at most {MAX_ID_BYTES} are accepted",
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
}
