use std::path::Path;

use serde::Deserialize;
use switchyard_api::{ChatMessage, Role};

use crate::RouterError;

/// One labeled conversation.
#[derive(Debug, Clone)]
pub struct Example {
    pub messages: Vec<ChatMessage>,
    /// 1, 2 or 3.
    pub tier: u8,
    /// Paraphrases of one request share a group, so that they always land in the same
    /// cross-validation fold and on the same side of the held-out split.
    pub group: String,
}

#[derive(Deserialize)]
struct Row {
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    messages: Option<Vec<ChatMessage>>,
    #[serde(default)]
    tier: Option<u8>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    group: Option<String>,
}

/// Reads labeled JSONL.
///
/// Each non-blank line is an object with either `"prompt": "..."` (optionally with
/// `"system": "..."`) or `"messages": [...]` in OpenAI chat format, plus the label as
/// `"tier": 1|2|3` or `"label": "simple"|"medium"|"complex"`, and optionally `"group"`. Rows
/// without a group get one derived from their text. Other fields (source, licence, notes) are
/// ignored. Errors name the file and line.
pub fn read_examples(path: &Path) -> Result<Vec<Example>, RouterError> {
    let text = std::fs::read_to_string(path).map_err(|source| RouterError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for (idx, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fail = |message: String| RouterError::Data {
            path: path.to_path_buf(),
            line: idx + 1,
            message,
        };
        let row: Row = serde_json::from_str(line).map_err(|e| fail(e.to_string()))?;
        out.push(parse_row(row).map_err(fail)?);
    }
    Ok(out)
}

fn parse_row(row: Row) -> Result<Example, String> {
    let tier = match (row.tier, row.label.as_deref()) {
        (Some(t @ 1..=3), _) => t,
        (Some(t), _) => return Err(format!("tier must be 1, 2 or 3, got {t}")),
        (None, Some(label)) => label_tier(label)
            .ok_or_else(|| format!("label must be simple, medium or complex, got {label:?}"))?,
        (None, None) => return Err("missing \"tier\" (or \"label\")".to_string()),
    };
    let messages = match (row.prompt, row.messages) {
        (Some(_), Some(_)) => return Err("give either \"prompt\" or \"messages\", not both".into()),
        (Some(prompt), None) => {
            let mut m = Vec::with_capacity(2);
            if let Some(system) = row.system {
                m.push(ChatMessage::new(Role::System, system));
            }
            m.push(ChatMessage::new(Role::User, prompt));
            m
        }
        (None, Some(messages)) if !messages.is_empty() => messages,
        (None, Some(_)) => return Err("\"messages\" is empty".to_string()),
        (None, None) => return Err("missing \"prompt\" or \"messages\"".to_string()),
    };
    let group = match row.group {
        Some(g) if !g.is_empty() => g,
        _ => {
            let joined: String = messages.iter().map(ChatMessage::text).collect();
            format!("text:{:016x}", fnv1a(&joined))
        }
    };
    Ok(Example {
        messages,
        tier,
        group,
    })
}

fn label_tier(label: &str) -> Option<u8> {
    match label.to_ascii_lowercase().as_str() {
        "simple" | "easy" | "low" => Some(1),
        "medium" | "moderate" | "mid" => Some(2),
        "complex" | "hard" | "high" => Some(3),
        _ => None,
    }
}

/// 64-bit FNV-1a: tiny, stable across platforms and Rust versions (unlike `DefaultHasher`),
/// which keeps data splits reproducible.
pub fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The project's held-out rule: a group is held out when `fnv1a(group) % 10 < 3` (about 30%).
/// Applied before anything is fitted; the embedded model never sees held-out rows.
pub fn is_held_out(group: &str) -> bool {
    fnv1a(group) % 10 < 3
}

/// Splits examples into (train, held_out) by [`is_held_out`].
pub fn split_held_out(examples: &[Example]) -> (Vec<Example>, Vec<Example>) {
    examples
        .iter()
        .cloned()
        .partition(|e| !is_held_out(&e.group))
}

/// Cross-validation fold of a group. The hash is re-mixed so that folds are independent of the
/// held-out split, which already used `fnv1a % 10`.
pub(crate) fn fold_of(group: &str, folds: usize) -> usize {
    let mut z = fnv1a(group).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z % folds.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, body: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("router-data-{}-{name}", std::process::id()));
        std::fs::write(&path, body).unwrap();
        path
    }

    #[test]
    fn reads_both_row_shapes_and_labels() {
        let path = write(
            "ok.jsonl",
            concat!(
                r#"{"prompt": "hi", "tier": 1, "group": "g1"}"#,
                "\n\n",
                r#"{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "prove it"}], "label": "complex"}"#,
                "\n",
                r#"{"prompt": "sum", "system": "s", "label": "medium", "source": "x"}"#,
                "\n"
            ),
        );
        let ex = read_examples(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(ex.len(), 3);
        assert_eq!((ex[0].tier, ex[0].group.as_str()), (1, "g1"));
        assert_eq!((ex[1].tier, ex[1].messages.len()), (3, 2));
        assert!(ex[1].group.starts_with("text:"));
        assert_eq!((ex[2].tier, ex[2].messages.len()), (2, 2));
    }

    #[test]
    fn errors_name_the_line() {
        for (body, needle) in [
            (
                "{\"prompt\": \"a\", \"tier\": 1}\n{\"prompt\": \"b\"}\n",
                ":2: missing",
            ),
            ("{\"prompt\": \"a\", \"tier\": 4}\n", ":1: tier must be"),
            (
                "{\"prompt\": \"a\", \"label\": \"huge\"}\n",
                ":1: label must be",
            ),
            ("not json\n", ":1: "),
        ] {
            let path = write("bad.jsonl", body);
            let err = read_examples(&path).unwrap_err().to_string();
            std::fs::remove_file(&path).unwrap();
            assert!(err.contains(needle), "{err} lacks {needle}");
            assert!(err.contains("bad.jsonl"), "{err}");
        }
    }

    #[test]
    fn fnv1a_is_stable() {
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
        let spread: std::collections::HashSet<usize> =
            (0..100).map(|i| fold_of(&format!("g{i}"), 5)).collect();
        assert_eq!(spread.len(), 5);
    }
}
