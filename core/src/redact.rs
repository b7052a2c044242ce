//! Credentials never reach a log: URLs are printed without their user-info.

/// `redis://user:secret@host:6379/0` → `redis://***@host:6379/0`; URLs without credentials
/// are returned unchanged.
pub fn url(s: &str) -> String {
    let Some((scheme, rest)) = s.split_once("://") else {
        return s.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn user_info_is_hidden_and_the_rest_kept() {
        assert_eq!(
            super::url("rediss://default:p%40ss@redis.ns:6380/0"),
            "rediss://***@redis.ns:6380/0"
        );
        assert_eq!(
            super::url("redis://127.0.0.1:6379/"),
            "redis://127.0.0.1:6379/"
        );
        assert_eq!(super::url("redis://h/0?x=a@b"), "redis://h/0?x=a@b");
        assert_eq!(super::url("not a url"), "not a url");
    }
}
