//! Secret rules. Every rule is gated on a literal trigger, so a prompt without `sk-`, `eyJ`,
//! `://`, `password`… never runs these regexes at all.

use crate::detect::{Need, RuleSpec};
use crate::validate::byte_at;
use crate::Kind;

/// Password value: printable ASCII except whitespace and quotes.
macro_rules! pw {
    () => {
        r#"([!#-&(-~]{4,128})"#
    };
}

pub(crate) static RULES: &[RuleSpec] = &[
    RuleSpec {
        name: "anthropic_key",
        kind: Kind::ApiKey,
        pattern: r"\bsk-ant-[A-Za-z0-9_-]{20,}",
        group: 0,
        score: 0.99,
        need: Need::Nothing,
        triggers: &["sk-ant-"],
        validate: None,
    },
    RuleSpec {
        name: "openai_key",
        kind: Kind::ApiKey,
        pattern: r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",
        group: 0,
        score: 0.96,
        need: Need::Nothing,
        triggers: &["sk-"],
        validate: Some(mixed_token),
    },
    RuleSpec {
        name: "aws_access_key_id",
        kind: Kind::ApiKey,
        pattern: r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b",
        group: 0,
        score: 0.97,
        need: Need::Nothing,
        triggers: &["AKIA", "ASIA", "AGPA", "AIDA", "AROA"],
        validate: None,
    },
    RuleSpec {
        name: "aws_secret_access_key",
        kind: Kind::ApiKey,
        pattern: r#"(?i)(?:aws[_ ]?secret[_ ]?access[_ ]?key|aws[_ ]?secret[_ ]?key|secret[_ ]?access[_ ]?key)["']?\s*[:=]\s*["']?([A-Za-z0-9/+]{40})\b"#,
        group: 1,
        score: 0.97,
        need: Need::Nothing,
        triggers: &["secret"],
        validate: Some(mixed_token),
    },
    RuleSpec {
        name: "github_token",
        kind: Kind::ApiKey,
        pattern: r"\b(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{22,255})\b",
        group: 0,
        score: 0.99,
        need: Need::Nothing,
        triggers: &["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"],
        validate: None,
    },
    RuleSpec {
        name: "slack_token",
        kind: Kind::ApiKey,
        pattern: r"\bxox[abprs]-[A-Za-z0-9-]{10,}",
        group: 0,
        score: 0.98,
        need: Need::Nothing,
        triggers: &["xoxa-", "xoxb-", "xoxp-", "xoxr-", "xoxs-"],
        validate: None,
    },
    RuleSpec {
        name: "google_api_key",
        kind: Kind::ApiKey,
        pattern: r"\bAIza[0-9A-Za-z_-]{35}",
        group: 0,
        score: 0.98,
        need: Need::Nothing,
        triggers: &["AIza"],
        validate: None,
    },
    RuleSpec {
        name: "stripe_key",
        kind: Kind::ApiKey,
        pattern: r"\b(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,}",
        group: 0,
        score: 0.98,
        need: Need::Nothing,
        triggers: &["_live_", "_test_"],
        validate: None,
    },
    RuleSpec {
        name: "generic_key_assignment",
        kind: Kind::ApiKey,
        pattern: r#"(?i)\b(?:api[_-]?key|secret[_-]?key|client[_-]?secret|access[_-]?token|auth[_-]?token)["']?\s*[:=]\s*["']?([A-Za-z0-9._~+/-]{16,})"#,
        group: 1,
        score: 0.85,
        need: Need::Nothing,
        triggers: &["key", "secret", "token"],
        validate: Some(mixed_token),
    },
    RuleSpec {
        name: "jwt",
        kind: Kind::Jwt,
        pattern: r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
        group: 0,
        score: 0.98,
        need: Need::Nothing,
        triggers: &["eyJ"],
        validate: None,
    },
    RuleSpec {
        name: "bearer_token",
        kind: Kind::BearerToken,
        pattern: r"(?i)\bbearer\s+([A-Za-z0-9._~+/-]{20,}=*)",
        group: 1,
        score: 0.9,
        need: Need::Nothing,
        triggers: &["bearer"],
        validate: None,
    },
    RuleSpec {
        name: "pem_private_key",
        kind: Kind::PrivateKey,
        pattern: r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[A-Za-z0-9+/=\s:,.-]*?-----END [A-Z0-9 ]*PRIVATE KEY-----",
        group: 0,
        score: 0.99,
        need: Need::Dashes,
        triggers: &["PRIVATE KEY-----"],
        validate: None,
    },
    RuleSpec {
        // A block cut off by a context window or a paste still leaks the key material.
        name: "pem_private_key_truncated",
        kind: Kind::PrivateKey,
        pattern: r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[A-Za-z0-9+/=\s]*",
        group: 0,
        score: 0.95,
        need: Need::Dashes,
        triggers: &["PRIVATE KEY-----"],
        validate: None,
    },
    RuleSpec {
        name: "connection_string_password",
        kind: Kind::Password,
        pattern: r"\b[A-Za-z][A-Za-z0-9+.-]{1,20}://[A-Za-z0-9._%~+-]*:([!-.0-9;-?A-~]{1,256})@[A-Za-z0-9\[]",
        group: 1,
        score: 0.96,
        need: Need::At,
        triggers: &["://"],
        validate: Some(password_value),
    },
    RuleSpec {
        name: "password_assignment",
        kind: Kind::Password,
        pattern: concat!(
            r#"(?i)\b(?:password|passwd|pwd|passphrase|db_pass|pass)["']?\s*[:=]\s*["']?"#,
            pw!()
        ),
        group: 1,
        score: 0.9,
        need: Need::Nothing,
        triggers: &["pass", "pwd"],
        validate: Some(password_value),
    },
];

/// Rejects hyphenated prose (`sk-this-is-not-a-key-just-words`) and all-letter identifiers:
/// real keys mix letters and digits.
fn mixed_token(text: &str, s: usize, e: usize, score: f32) -> Option<(usize, usize, f32)> {
    let t = &text[s..e];
    let digit = t.bytes().any(|b| b.is_ascii_digit());
    let alpha = t.bytes().any(|b| b.is_ascii_alphabetic());
    (digit && alpha).then_some((s, e, score))
}

/// Placeholders and template variables are documentation, not leaked credentials.
fn password_value(text: &str, s: usize, e: usize, score: f32) -> Option<(usize, usize, f32)> {
    // Trailing punctuation usually belongs to the sentence, except in the URL form where the
    // value ends exactly at `@`.
    let url_form = byte_at(text, e) == Some(b'@');
    let t = if url_form {
        &text[s..e]
    } else {
        text[s..e].trim_end_matches(['.', ',', ';', ')', '}', ']'])
    };
    let first = t.bytes().next()?;
    if t.len() < 3
        || matches!(first, b'$' | b'{' | b'<' | b'%')
        || t.bytes().all(|b| b == b'*' || b == b'x' || b == b'X')
        || [
            "null", "none", "required", "changeme", "password", "secret", "redacted",
        ]
        .iter()
        .any(|p| t.eq_ignore_ascii_case(p))
        || (t.starts_with('[') && t.ends_with(']'))
    {
        return None;
    }
    // `password: click the link` is prose; a `:`-introduced value must look like a credential.
    let sep = text[..s]
        .bytes()
        .rev()
        .find(|b| !matches!(b, b' ' | b'\t' | b'"' | b'\''));
    if !url_form && sep == Some(b':') && t.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    Some((s, s + t.len(), score))
}

#[cfg(test)]
mod tests {
    use crate::detect::test_util::{found, kinds};
    use crate::Kind;

    fn one(text: &str, kind: Kind, expect: &str) {
        assert_eq!(found(text), vec![(kind, expect)], "in {text:?}");
    }

    #[test]
    fn provider_keys() {
        let oa = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z";
        one(&format!("key={oa} ok"), Kind::ApiKey, oa);
        let an = "sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe";
        one(&format!("use {an}"), Kind::ApiKey, an);
        one("AKIAIOSFODNN7EXAMPLE", Kind::ApiKey, "AKIAIOSFODNN7EXAMPLE");
        one(
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            Kind::ApiKey,
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        );
        let gh = "ghp_1A2b3C4d5E6f7G8h9I0j1K2l3M4n5O6p7Q8r";
        one(gh, Kind::ApiKey, gh);
        let gp = "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz";
        one(gp, Kind::ApiKey, gp);
        one(
            "xoxb-1234567890-abcdefghij",
            Kind::ApiKey,
            "xoxb-1234567890-abcdefghij",
        );
        let g = "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q";
        one(g, Kind::ApiKey, g);
        let st = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";
        one(st, Kind::ApiKey, st);
    }

    #[test]
    fn key_negatives() {
        for t in [
            "sk-this-is-not-a-real-key-just-prose",
            "task-force-members-meeting-tomorrow",
            "the sk- prefix marks OpenAI keys",
            "Bearer sk-demo-local-only",
            "AKIA is the prefix of access key ids",
        ] {
            assert!(kinds(t).is_empty(), "{t:?} -> {:?}", found(t));
        }
    }

    #[test]
    fn jwt_and_bearer() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        one(&format!("Authorization: Bearer {jwt}"), Kind::Jwt, jwt);
        one(
            "Authorization: Bearer 3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c",
            Kind::BearerToken,
            "3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c",
        );
    }

    #[test]
    fn pem_blocks() {
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nabcDEF+/==\n-----END RSA PRIVATE KEY-----";
        one(&format!("here:\n{pem}\nthanks"), Kind::PrivateKey, pem);
        let cut = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC";
        one(cut, Kind::PrivateKey, cut);
        assert!(
            kinds("-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkq\n-----END PUBLIC KEY-----").is_empty()
        );
    }

    #[test]
    fn passwords() {
        one(
            "postgres://app:s3cr3t!Pw@db.internal:5432/app",
            Kind::Password,
            "s3cr3t!Pw",
        );
        one("redis://:hunter22@cache:6379", Kind::Password, "hunter22");
        one("password=Tr0ub4dor&3 next", Kind::Password, "Tr0ub4dor&3");
        one(
            r#"{"password": "correct-horse-battery"}"#,
            Kind::Password,
            "correct-horse-battery",
        );
        for t in [
            "password=${DB_PASSWORD}",
            "password: ********",
            "postgres://app@db/app",
            "https://example.com/path",
            "password=<your password>",
            "reset your password: click the link",
        ] {
            assert!(
                !kinds(t).contains(&Kind::Password),
                "{t:?} -> {:?}",
                found(t)
            );
        }
    }
}
