//! `response_format` validation: is an answer the JSON object (`json_object`) or the schema
//! instance (`json_schema`) the client asked for, and if not, what should a repair retry say.
//!
//! Schemas are compiled offline: a `$ref` to anything outside the schema fails at compile time
//! (a client mistake) instead of being fetched.

use jsonschema::{ValidationError, Validator};
use serde_json::Value;

/// Violations kept per answer; a repair prompt only shows the first few anyway.
const MAX_ERRORS: usize = 20;
/// Violations listed in a repair prompt.
const SHOWN_ERRORS: usize = 5;
/// An offending value longer than this (serialized) is shortened in messages.
const MAX_VALUE_CHARS: usize = 40;
const MAX_MESSAGE_CHARS: usize = 200;
const MAX_NAME_CHARS: usize = 64;

/// A malformed `response_format`: the client's mistake (HTTP 400, param `response_format`).
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("response_format must be an object")]
    NotAnObject,
    #[error("response_format.type is required")]
    MissingType,
    #[error(
        "response_format.type {0} is not supported (expected \"text\", \"json_object\" or \"json_schema\")"
    )]
    UnknownType(String),
    #[error("response_format.json_schema must be an object when type is \"json_schema\"")]
    MissingJsonSchema,
    #[error("response_format.json_schema.schema is required")]
    MissingSchema,
    #[error("response_format.json_schema.schema is not a valid JSON Schema: {0}")]
    InvalidSchema(String),
}

impl SchemaError {
    /// The request parameter at fault, for an OpenAI-style error's `param`.
    pub fn param(&self) -> &'static str {
        match self {
            SchemaError::NotAnObject => "response_format",
            SchemaError::MissingType | SchemaError::UnknownType(_) => "response_format.type",
            SchemaError::MissingJsonSchema => "response_format.json_schema",
            SchemaError::MissingSchema | SchemaError::InvalidSchema(_) => {
                "response_format.json_schema.schema"
            }
        }
    }
}

/// Why an answer does not satisfy the requested format. Each entry is short: a JSON pointer
/// (`(root)` for the whole document) and what is wrong, with long values shortened.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .errors.join("; "))]
pub struct SchemaViolation {
    /// For unparsable answers the only entry is `not valid JSON: <parser error>`.
    pub errors: Vec<String>,
}

#[derive(Debug)]
enum Mode {
    JsonObject,
    JsonSchema {
        name: Option<String>,
        validator: Box<Validator>,
    },
}

/// A compiled `response_format`. Build once per request, check each answer.
#[derive(Debug)]
pub struct ResponseFormatCheck {
    mode: Mode,
}

impl ResponseFormatCheck {
    /// `None` when absent (`null`) or `"text"`: nothing to check.
    pub fn from_response_format(rf: &Value) -> Result<Option<Self>, SchemaError> {
        let obj = match rf {
            Value::Null => return Ok(None),
            Value::Object(o) => o,
            _ => return Err(SchemaError::NotAnObject),
        };
        let mode = match obj.get("type") {
            None | Some(Value::Null) => return Err(SchemaError::MissingType),
            Some(Value::String(t)) if t == "text" => return Ok(None),
            Some(Value::String(t)) if t == "json_object" => Mode::JsonObject,
            Some(Value::String(t)) if t == "json_schema" => {
                let Some(Value::Object(js)) = obj.get("json_schema") else {
                    return Err(SchemaError::MissingJsonSchema);
                };
                let schema = match js.get("schema") {
                    None | Some(Value::Null) => return Err(SchemaError::MissingSchema),
                    Some(s) => s,
                };
                let validator = jsonschema::options()
                    .offline()
                    .build(schema)
                    .map_err(|e| SchemaError::InvalidSchema(describe(&e)))?;
                Mode::JsonSchema {
                    name: js
                        .get("name")
                        .and_then(Value::as_str)
                        .map(|n| clip(n, MAX_NAME_CHARS)),
                    validator: Box::new(validator),
                }
            }
            Some(other) => return Err(SchemaError::UnknownType(clip(&other.to_string(), 40))),
        };
        Ok(Some(ResponseFormatCheck { mode }))
    }

    /// `Ok(())` when `answer` (surrounding whitespace allowed, code fences not) is a JSON object
    /// for `json_object`, or valid against the schema for `json_schema`.
    pub fn check(&self, answer: &str) -> Result<(), SchemaViolation> {
        let value: Value = serde_json::from_str(answer.trim()).map_err(|e| SchemaViolation {
            errors: vec![format!("not valid JSON: {e}")],
        })?;
        let errors: Vec<String> = match &self.mode {
            Mode::JsonObject if value.is_object() => Vec::new(),
            Mode::JsonObject => vec![format!(
                "(root): expected a JSON object, got {}",
                type_name(&value)
            )],
            Mode::JsonSchema { validator, .. } => validator
                .iter_errors(&value)
                .take(MAX_ERRORS)
                .map(|e| describe(&e))
                .collect(),
        };
        if errors.is_empty() {
            Ok(())
        } else {
            Err(SchemaViolation { errors })
        }
    }

    /// The user message for one repair retry: what was wrong, and a request for only the
    /// corrected JSON.
    pub fn repair_instruction(&self, v: &SchemaViolation) -> String {
        let wanted = match &self.mode {
            Mode::JsonObject => "a single JSON object".to_owned(),
            Mode::JsonSchema { name: Some(n), .. } => {
                format!("JSON matching the required schema \"{n}\"")
            }
            Mode::JsonSchema { name: None, .. } => "JSON matching the required schema".to_owned(),
        };
        let mut msg =
            format!("Your previous answer was not valid: it must be {wanted}.\nProblems:");
        for e in v.errors.iter().take(SHOWN_ERRORS) {
            msg.push_str("\n- ");
            msg.push_str(e);
        }
        if v.errors.len() > SHOWN_ERRORS {
            msg.push_str(&format!(
                "\n- ... and {} more",
                v.errors.len() - SHOWN_ERRORS
            ));
        }
        msg.push_str(
            "\nReply with only the corrected JSON: no explanation, no markdown, no code fences.",
        );
        msg
    }
}

/// `path: message`, with a long offending value shortened (the library would print it whole,
/// e.g. an entire object that has the wrong type).
fn describe(e: &ValidationError<'_>) -> String {
    let path = match e.instance_path().as_str() {
        "" => "(root)",
        p => p,
    };
    let value = e.instance().to_string();
    let message = if value.chars().count() > MAX_VALUE_CHARS {
        e.masked_with(format!("{}…", clip(&value, MAX_VALUE_CHARS)))
            .to_string()
    } else {
        e.to_string()
    };
    clip(&format!("{path}: {message}"), MAX_MESSAGE_CHARS)
}

fn clip(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => s[..i].to_owned(),
        None => s.to_owned(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(rf: &Value) -> ResponseFormatCheck {
        match ResponseFormatCheck::from_response_format(rf) {
            Ok(Some(c)) => c,
            Ok(None) => panic!("no check for {rf}"),
            Err(e) => panic!("{e}"),
        }
    }

    fn person() -> ResponseFormatCheck {
        check(&json!({
            "type": "json_schema",
            "json_schema": {
                "name": "person",
                "strict": true,
                "schema": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "age": {"type": "integer", "minimum": 0},
                        "tags": {"type": "array", "items": {"type": "string"}}
                    },
                    "required": ["name", "age"],
                    "additionalProperties": false
                }
            }
        }))
    }

    fn errors(c: &ResponseFormatCheck, answer: &str) -> Vec<String> {
        match c.check(answer) {
            Ok(()) => Vec::new(),
            Err(v) => v.errors,
        }
    }

    #[test]
    fn text_and_absent_need_no_check() {
        for rf in [json!(null), json!({"type": "text"})] {
            assert!(matches!(
                ResponseFormatCheck::from_response_format(&rf),
                Ok(None)
            ));
        }
    }

    #[test]
    fn malformed_response_formats_name_the_param() {
        let cases = [
            (json!("json"), "response_format"),
            (json!({}), "response_format.type"),
            (json!({"type": "yaml"}), "response_format.type"),
            (json!({"type": 3}), "response_format.type"),
            (
                json!({"type": "json_schema"}),
                "response_format.json_schema",
            ),
            (
                json!({"type": "json_schema", "json_schema": {"name": "x"}}),
                "response_format.json_schema.schema",
            ),
            (
                json!({"type": "json_schema", "json_schema": {"schema": {"type": "nope"}}}),
                "response_format.json_schema.schema",
            ),
            (
                json!({"type": "json_schema", "json_schema": {"schema": {"$ref": "https://example.com/s.json"}}}),
                "response_format.json_schema.schema",
            ),
        ];
        for (rf, param) in cases {
            match ResponseFormatCheck::from_response_format(&rf) {
                Err(e) => {
                    assert_eq!(e.param(), param, "{rf}");
                    assert!(e.to_string().starts_with(param), "{e}");
                }
                Ok(_) => panic!("{rf} accepted"),
            }
        }
        let e = ResponseFormatCheck::from_response_format(
            &json!({"type": "json_schema", "json_schema": {"schema": {"type": "nope"}}}),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            e.starts_with("response_format.json_schema.schema is not a valid JSON Schema: /type: "),
            "{e}"
        );
    }

    #[test]
    fn json_object_accepts_only_objects() {
        let c = check(&json!({"type": "json_object"}));
        assert!(c.check("  {\"a\": [1, 2]}\n").is_ok());
        assert_eq!(
            errors(&c, "[1, 2]"),
            ["(root): expected a JSON object, got an array"]
        );
        let fenced = errors(&c, "```json\n{\"a\": 1}\n```");
        assert_eq!(fenced.len(), 1);
        assert!(fenced[0].starts_with("not valid JSON: "), "{fenced:?}");
    }

    #[test]
    fn json_schema_reports_pointer_and_problem() {
        let c = person();
        assert!(c
            .check(r#"{"name": "Ada", "age": 36, "tags": ["math"]}"#)
            .is_ok());
        let got = errors(&c, r#"{"age": "x", "tags": ["ok", 7], "extra": true}"#);
        assert!(
            got.contains(&r#"/age: "x" is not of type "integer""#.to_owned()),
            "{got:?}"
        );
        assert!(
            got.contains(&r#"/tags/1: 7 is not of type "string""#.to_owned()),
            "{got:?}"
        );
        assert!(got.iter().any(|e| e.starts_with("(root): ") && e.contains("\"name\" is a required property")), "{got:?}");
        assert!(got.iter().any(|e| e.contains("extra")), "{got:?}");
        assert!(errors(&c, "not json")
            .iter()
            .all(|e| e.starts_with("not valid JSON: ")));
    }

    #[test]
    fn long_values_are_shortened() {
        let c = person();
        let long = "y".repeat(500);
        let got = errors(&c, &format!(r#"{{"name": "Ada", "age": "{long}"}}"#));
        assert_eq!(got.len(), 1);
        // The serialized value (opening quote included) is cut to 40 characters.
        let expected = format!("/age: \"{}… is not of type \"integer\"", "y".repeat(39));
        assert_eq!(got, [expected]);
    }

    #[test]
    fn repair_instruction_lists_at_most_five_problems() {
        let c = check(&json!({
            "type": "json_schema",
            "json_schema": {"name": "nums", "schema": {"type": "array", "items": {"type": "integer"}}}
        }));
        let v = match c.check(r#"["a","b","c","d","e","f","g"]"#) {
            Err(v) => v,
            Ok(()) => panic!("accepted"),
        };
        assert_eq!(v.errors.len(), 7);
        let msg = c.repair_instruction(&v);
        assert!(msg.contains("\"nums\""), "{msg}");
        assert!(
            msg.contains(r#"- /0: "a" is not of type "integer""#),
            "{msg}"
        );
        assert!(msg.contains("- /4:") && !msg.contains("- /5:"), "{msg}");
        assert!(msg.contains("and 2 more"), "{msg}");
        assert!(msg.contains("only the corrected JSON"), "{msg}");
    }

    #[test]
    fn checks_are_shareable() {
        fn shared<T: Send + Sync + 'static>() {}
        shared::<ResponseFormatCheck>();
        shared::<SchemaViolation>();
    }
}
