//! A small JSON Schema checker for tool arguments: `type`, `required`, `properties`,
//! `enum`, `items`, `minimum`/`maximum`, `additionalProperties: false`. It covers what tool
//! input schemas use in practice; keywords it does not know are ignored (accepting), never
//! guessed at. Depth is bounded so a hostile schema or value cannot recurse without end.

use serde_json::Value;

/// Deepest nesting checked.
pub const DEPTH_MAX: usize = 32;

/// Checks `value` against `schema`; the error names the path of the first mismatch.
pub fn check(schema: &Value, value: &Value) -> Result<(), String> {
    check_at(schema, value, "arguments", 0)
}

fn type_matches(ty: &str, v: &Value) -> bool {
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => {
            v.as_i64().is_some()
                || v.as_u64().is_some()
                || v.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => true,
    }
}

fn check_at(schema: &Value, value: &Value, path: &str, depth: usize) -> Result<(), String> {
    if depth > DEPTH_MAX {
        return Err(format!("{path}: nested deeper than {DEPTH_MAX} levels"));
    }
    let Some(s) = schema.as_object() else {
        return Ok(());
    };
    match s.get("type") {
        Some(Value::String(t)) if !type_matches(t, value) => {
            return Err(format!("{path}: expected {t}"));
        }
        Some(Value::Array(ts))
            if !ts
                .iter()
                .filter_map(Value::as_str)
                .any(|t| type_matches(t, value)) =>
        {
            return Err(format!(
                "{path}: expected one of {}",
                Value::Array(ts.clone())
            ));
        }
        _ => {}
    }
    if let Some(Value::Array(options)) = s.get("enum") {
        if !options.contains(value) {
            return Err(format!(
                "{path}: must be one of {}",
                Value::Array(options.clone())
            ));
        }
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
            if n < min {
                return Err(format!("{path}: must be >= {min}"));
            }
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
            if n > max {
                return Err(format!("{path}: must be <= {max}"));
            }
        }
    }
    if let Value::Object(obj) = value {
        if let Some(Value::Array(required)) = s.get("required") {
            for r in required.iter().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    return Err(format!("{path}: missing required property {r:?}"));
                }
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        for (k, v) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(ps) => check_at(ps, v, &format!("{path}.{k}"), depth + 1)?,
                None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return Err(format!("{path}: unexpected property {k:?}"));
                }
                None => {}
            }
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (value, s.get("items")) {
        for (i, v) in items.iter().enumerate() {
            check_at(item_schema, v, &format!("{path}[{i}]"), depth + 1)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn checks_common_keywords() {
        let s = json!({"type":"object","properties":{"a":{"type":"number","minimum":0},"b":{"type":"string","enum":["x","y"]},"c":{"type":"array","items":{"type":"integer"}}},"required":["a"]});
        assert!(check(&s, &json!({"a": 1})).is_ok());
        assert!(check(&s, &json!({"a": 1, "b": "x", "c": [1, 2]})).is_ok());
        assert!(check(&s, &json!({})).unwrap_err().contains("\"a\""));
        assert!(check(&s, &json!({"a": "1"}))
            .unwrap_err()
            .contains("arguments.a"));
        assert!(check(&s, &json!({"a": -1})).is_err());
        assert!(check(&s, &json!({"a": 1, "b": "z"})).is_err());
        assert!(check(&s, &json!({"a": 1, "c": [1.5]})).is_err());
        let closed = json!({"type":"object","additionalProperties":false});
        assert!(check(&closed, &json!({"x":1})).is_err());
    }
}
