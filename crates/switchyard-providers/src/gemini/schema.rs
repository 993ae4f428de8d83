//! JSON Schema → the OpenAPI subset Gemini accepts for `parameters` and `responseSchema`.
//!
//! Gemini answers 400 to any keyword outside its `Schema` object (`additionalProperties`,
//! `$schema`, `$ref`...), and OpenAI clients send those routinely: strict-mode tools carry
//! `additionalProperties: false`, and Pydantic-generated schemas use `$defs` references.

use serde_json::{json, Map, Value};

/// Keywords of Gemini's `Schema` object copied through unchanged.
const KEPT: &[&str] = &[
    "description",
    "enum",
    "example",
    "maxItems",
    "maxLength",
    "maxProperties",
    "maximum",
    "minItems",
    "minLength",
    "minProperties",
    "minimum",
    "nullable",
    "pattern",
    "propertyOrdering",
    "required",
    "title",
];

/// Gemini rejects other `format`s (e.g. `uri`, `email`) instead of ignoring them.
const FORMATS: &[&str] = &["enum", "date-time", "int32", "int64", "float", "double"];

/// Recursive `$ref`s are cut off at this depth instead of looping forever.
const MAX_REF_DEPTH: usize = 8;

pub(crate) fn to_gemini_schema(schema: &Value) -> Value {
    let defs = schema
        .get("$defs")
        .or_else(|| schema.get("definitions"))
        .and_then(Value::as_object);
    convert(schema, defs, 0)
}

fn convert(schema: &Value, defs: Option<&Map<String, Value>>, depth: usize) -> Value {
    let Value::Object(obj) = schema else {
        return schema.clone();
    };
    if let Some(target) = obj.get("$ref").and_then(Value::as_str) {
        let name = target
            .strip_prefix("#/$defs/")
            .or_else(|| target.strip_prefix("#/definitions/"));
        let resolved = name.and_then(|n| defs.and_then(|d| d.get(n)));
        return match resolved {
            Some(def) if depth < MAX_REF_DEPTH => convert(def, defs, depth + 1),
            // Unresolvable or too deep: an unconstrained object is the honest approximation.
            _ => json!({"type": "object"}),
        };
    }
    let mut out = Map::new();
    for (key, value) in obj {
        match key.as_str() {
            "type" => match value {
                // JSON Schema's `["string", "null"]` is Gemini's `type` + `nullable`.
                Value::Array(types) => {
                    let mut concrete = types.iter().filter(|t| t.as_str() != Some("null"));
                    if let Some(t) = concrete.next() {
                        out.insert("type".into(), t.clone());
                    }
                    if types.iter().any(|t| t.as_str() == Some("null")) {
                        out.insert("nullable".into(), Value::Bool(true));
                    }
                }
                other => {
                    out.insert("type".into(), other.clone());
                }
            },
            "properties" => {
                if let Value::Object(props) = value {
                    let props = props
                        .iter()
                        .map(|(name, s)| (name.clone(), convert(s, defs, depth)))
                        .collect();
                    out.insert("properties".into(), Value::Object(props));
                }
            }
            "items" => {
                out.insert("items".into(), convert(value, defs, depth));
            }
            "anyOf" | "oneOf" => {
                if let Value::Array(variants) = value {
                    let (nulls, rest): (Vec<&Value>, Vec<&Value>) = variants
                        .iter()
                        .partition(|v| v.get("type").and_then(Value::as_str) == Some("null"));
                    if !nulls.is_empty() {
                        out.insert("nullable".into(), Value::Bool(true));
                    }
                    let rest: Vec<Value> = rest.iter().map(|v| convert(v, defs, depth)).collect();
                    // A lone remaining variant (the `Optional[X]` shape) is just X.
                    match <[Value; 1]>::try_from(rest) {
                        Ok([single]) => merge(&mut out, single),
                        Err(rest) if !rest.is_empty() => {
                            out.insert("anyOf".into(), Value::Array(rest));
                        }
                        Err(_) => {}
                    }
                }
            }
            "const" if !obj.contains_key("enum") => {
                out.insert("enum".into(), Value::Array(vec![value.clone()]));
            }
            "format" if value.as_str().is_some_and(|f| FORMATS.contains(&f)) => {
                out.insert("format".into(), value.clone());
            }
            "format" => {}
            k if KEPT.contains(&k) => {
                out.insert(key.clone(), value.clone());
            }
            _ => {}
        }
    }
    Value::Object(out)
}

fn merge(out: &mut Map<String, Value>, schema: Value) {
    if let Value::Object(fields) = schema {
        for (k, v) in fields {
            out.entry(k).or_insert(v);
        }
    }
}

/// Gemini rejects an OBJECT schema without properties, which OpenAI clients send for
/// argument-less tools; such tools simply declare no parameters.
pub(crate) fn is_empty_object(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("object")
        && schema
            .get("properties")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_unknown_keywords_and_nullable_types() {
        let s = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "city": {"type": "string", "format": "uri", "description": "City"},
                "when": {"type": ["string", "null"], "format": "date-time"},
                "unit": {"const": "celsius"}
            },
            "required": ["city"]
        });
        assert_eq!(
            to_gemini_schema(&s),
            json!({
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City"},
                    "when": {"type": "string", "nullable": true, "format": "date-time"},
                    "unit": {"enum": ["celsius"]}
                },
                "required": ["city"]
            })
        );
    }

    #[test]
    fn inlines_defs_and_optional_any_of() {
        let s = json!({
            "$defs": {"Step": {"type": "object", "properties": {"text": {"type": "string"}}}},
            "type": "object",
            "properties": {
                "steps": {"type": "array", "items": {"$ref": "#/$defs/Step"}},
                "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": null}
            }
        });
        assert_eq!(
            to_gemini_schema(&s),
            json!({
                "type": "object",
                "properties": {
                    "steps": {"type": "array", "items":
                        {"type": "object", "properties": {"text": {"type": "string"}}}},
                    "note": {"type": "string", "nullable": true}
                }
            })
        );
    }

    #[test]
    fn recursive_refs_terminate() {
        let s = json!({
            "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
            "$ref": "#/$defs/Node"
        });
        let out = to_gemini_schema(&s);
        assert_eq!(out["type"], "object");
    }

    #[test]
    fn empty_objects() {
        assert!(is_empty_object(&json!({"type": "object"})));
        assert!(is_empty_object(
            &json!({"type": "object", "properties": {}})
        ));
        assert!(!is_empty_object(
            &json!({"type": "object", "properties": {"a": {}}})
        ));
    }
}
