//! Errors, and the scrubbing that keeps a Redis password out of them.
//!
//! Errors end up in logs and sometimes in admin responses; the Redis URL may carry a password, so
//! every message built here is redacted and the underlying `redis::RedisError` is not kept as a
//! `source` (its `Display` is outside our control).

/// Why a state operation failed. Messages never contain the password of a Redis URL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The state URL is malformed or names an unsupported scheme.
    #[error("invalid state backend URL {url}: {reason}")]
    InvalidUrl {
        /// The URL with its credentials replaced by `***`.
        url: String,
        reason: String,
    },
    /// The caller passed an argument no backend accepts (zero period, non-finite amount, …).
    #[error("invalid state argument: {0}")]
    InvalidArgument(String),
    /// Redis could not be reached, timed out, or refused the command.
    #[error("redis: {0}")]
    Redis(String),
    /// Redis answered with something the scripts never return.
    #[error("unexpected reply from redis: {0}")]
    UnexpectedReply(String),
}

/// Secrets taken from a URL, used to scrub messages that might echo them back.
#[derive(Clone, Default)]
pub(crate) struct Secrets {
    words: Vec<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} redacted)", self.words.len())
    }
}

impl Secrets {
    /// Collects the password of `url`, raw and percent-decoded (the client decodes it, so a
    /// server or client message could echo either form).
    pub(crate) fn from_url(url: &str) -> Self {
        let mut words = Vec::new();
        if let Some(password) = password(url) {
            // Very short strings would turn every message into asterisks; a password that short
            // protects nothing anyway.
            if password.len() >= 3 {
                let decoded = percent_decode(password);
                if decoded != password {
                    words.push(decoded);
                }
                words.push(password.to_owned());
            }
        }
        Self { words }
    }

    pub(crate) fn scrub(&self, message: &str) -> String {
        let mut out = message.to_owned();
        for word in &self.words {
            out = out.replace(word.as_str(), "***");
        }
        out
    }

    pub(crate) fn redis_error(&self, err: &redis::RedisError) -> StateError {
        StateError::Redis(self.scrub(&err.to_string()))
    }
}

/// `url` with any userinfo's password replaced by `***` (`redis://user:***@host:6379/0`).
pub(crate) fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return if url.contains('@') {
            "***".to_owned()
        } else {
            url.to_owned()
        };
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let shown = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => "***".to_owned(),
    };
    format!("{}{shown}{}", &url[..scheme_end + 3], &rest[at..])
}

/// The password of `url`; a userinfo without `:` is a bare token, treated as a password.
fn password(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    Some(
        userinfo
            .split_once(':')
            .map_or(userinfo, |(_, password)| password),
    )
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_password_but_keeps_host() {
        assert_eq!(
            redact_url("redis://app:s3cr%40t@cache:6379/0"),
            "redis://app:***@cache:6379/0"
        );
        assert_eq!(
            redact_url("rediss://:hunter22@cache"),
            "rediss://:***@cache"
        );
        assert_eq!(redact_url("redis://tokenonly@cache"), "redis://***@cache");
        assert_eq!(redact_url("redis://cache:6379"), "redis://cache:6379");
    }

    #[test]
    fn scrubs_raw_and_decoded_password() {
        let secrets = Secrets::from_url("redis://app:s3cr%40t@cache:6379");
        assert_eq!(secrets.scrub("bad s3cr@t and s3cr%40t"), "bad *** and ***");
        let none = Secrets::from_url("redis://cache:6379");
        assert_eq!(none.scrub("plain"), "plain");
    }
}
