//! A small JSON Schema checker for tool arguments: `type`, `required`, `properties`,
//! `enum`, `items`, `minimum`/`maximum`, `additionalProperties: false`. It covers what tool
//! input schemas use in practice; keywords it does not know are ignored (accepting), never
//! guessed at. Depth is bounded so a hostile schema or value cannot recurse without end.

use serde_json::Value;

/// Deepest nesting checked.
pub const DEPTH_MAX: usize = 32;

/// Checks `value` against `schema`; the error names the path of the first mismatch.
pub fn check(schema: &Value, value: &Value) -> Result<(), String> {
    Validator::compile(schema).check(value)
}

/// The JSON types a schema's `type` allows, as a bit set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Types(u8);

impl Types {
    const ANY: Types = Types(u8::MAX);
    fn of(ty: &str) -> u8 {
        match ty {
            "object" => 1,
            "array" => 2,
            "string" => 4,
            "number" => 8,
            "integer" => 16,
            "boolean" => 32,
            "null" => 64,
            // A type name the checker does not know accepts anything (never guessed at).
            _ => u8::MAX,
        }
    }
    fn allows(self, v: &Value) -> bool {
        if self == Types::ANY {
            return true;
        }
        let b = self.0;
        match v {
            Value::Object(_) => b & 1 != 0,
            Value::Array(_) => b & 2 != 0,
            Value::String(_) => b & 4 != 0,
            Value::Number(n) => {
                b & 8 != 0
                    || (b & 16 != 0
                        && (n.is_i64()
                            || n.is_u64()
                            || n.as_f64().is_some_and(|f| f.fract() == 0.0)))
            }
            Value::Bool(_) => b & 32 != 0,
            Value::Null => b & 64 != 0,
        }
    }
}

/// A schema compiled once (per tool) so that checking a call does no lookups by keyword
/// and builds no path string unless the value is refused.
#[derive(Clone, Debug)]
pub struct Validator {
    node: Node,
}

#[derive(Clone, Debug)]
struct Node {
    types: Types,
    /// The `type` keyword as written, for the error message.
    type_text: Option<String>,
    enumeration: Option<Vec<Value>>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    required: Vec<String>,
    properties: Vec<(String, Node)>,
    closed: bool,
    items: Option<Box<Node>>,
    /// Deeper than DEPTH_MAX: refuses any value that reaches it.
    too_deep: bool,
}

impl Node {
    fn compile(schema: &Value, depth: usize) -> Node {
        let mut n = Node {
            types: Types::ANY,
            type_text: None,
            enumeration: None,
            minimum: None,
            maximum: None,
            required: Vec::new(),
            properties: Vec::new(),
            closed: false,
            items: None,
            too_deep: depth > DEPTH_MAX,
        };
        let Some(s) = schema.as_object() else {
            return n;
        };
        if n.too_deep {
            return n;
        }
        match s.get("type") {
            Some(Value::String(t)) => {
                n.types = Types(Types::of(t));
                n.type_text = Some(t.clone());
            }
            Some(Value::Array(ts)) => {
                n.types = Types(
                    ts.iter()
                        .filter_map(Value::as_str)
                        .map(Types::of)
                        .fold(0, |a, b| a | b),
                );
                n.type_text = Some(format!("one of {}", Value::Array(ts.clone())));
            }
            _ => {}
        }
        if let Some(Value::Array(options)) = s.get("enum") {
            n.enumeration = Some(options.clone());
        }
        n.minimum = s.get("minimum").and_then(Value::as_f64);
        n.maximum = s.get("maximum").and_then(Value::as_f64);
        if let Some(Value::Array(req)) = s.get("required") {
            n.required = req
                .iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect();
        }
        if let Some(props) = s.get("properties").and_then(Value::as_object) {
            n.properties = props
                .iter()
                .map(|(k, v)| (k.clone(), Node::compile(v, depth + 1)))
                .collect();
        }
        n.closed = s.get("additionalProperties") == Some(&Value::Bool(false));
        if let Some(items) = s.get("items") {
            n.items = Some(Box::new(Node::compile(items, depth + 1)));
        }
        n
    }

    fn check(&self, value: &Value, path: &Path<'_>) -> Result<(), String> {
        if self.too_deep {
            return Err(format!("{path}: nested deeper than {DEPTH_MAX} levels"));
        }
        if !self.types.allows(value) {
            return Err(format!(
                "{path}: expected {}",
                self.type_text.as_deref().unwrap_or("?")
            ));
        }
        if let Some(options) = &self.enumeration {
            if !options.contains(value) {
                return Err(format!(
                    "{path}: must be one of {}",
                    Value::Array(options.clone())
                ));
            }
        }
        if let Some(x) = value.as_f64() {
            if let Some(min) = self.minimum.filter(|m| x < *m) {
                return Err(format!("{path}: must be >= {min}"));
            }
            if let Some(max) = self.maximum.filter(|m| x > *m) {
                return Err(format!("{path}: must be <= {max}"));
            }
        }
        match value {
            Value::Object(obj) => {
                if let Some(r) = self.required.iter().find(|r| !obj.contains_key(r.as_str())) {
                    return Err(format!("{path}: missing required property {r:?}"));
                }
                for (k, v) in obj {
                    match self.properties.iter().find(|(name, _)| name == k) {
                        Some((_, node)) => node.check(v, &Path::Key(path, k))?,
                        None if self.closed => {
                            return Err(format!("{path}: unexpected property {k:?}"));
                        }
                        None => {}
                    }
                }
            }
            Value::Array(items) => {
                if let Some(node) = &self.items {
                    for (i, v) in items.iter().enumerate() {
                        node.check(v, &Path::Index(path, i))?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Where in the value a check is, built into text only for an error message.
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Path::Root => f.write_str("arguments"),
            Path::Key(p, k) => write!(f, "{p}.{k}"),
            Path::Index(p, i) => write!(f, "{p}[{i}]"),
        }
    }
}

impl Validator {
    /// Compiles `schema` (keywords it does not know are ignored).
    pub fn compile(schema: &Value) -> Validator {
        Validator {
            node: Node::compile(schema, 0),
        }
    }

    /// Checks `value`; the error names the path of the first mismatch.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        self.node.check(value, &Path::Root)
    }
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
        // Unknown type names accept; a type list accepts any member; errors name the path.
        assert!(check(&json!({"type":"decimal"}), &json!("x")).is_ok());
        let either = json!({"type":"object","properties":{"v":{"type":["string","null"]}}});
        assert!(check(&either, &json!({"v": null})).is_ok());
        let e = check(&either, &json!({"v": 1})).unwrap_err();
        assert!(e.starts_with("arguments.v: expected one of"), "{e}");
        let nested = json!({"type":"object","properties":{"a":{"type":"array","items":{"type":"object","properties":{"b":{"type":"integer"}}}}}});
        let e = check(&nested, &json!({"a": [{"b": 1}, {"b": 2.5}]})).unwrap_err();
        assert_eq!(e, "arguments.a[1].b: expected integer");
        // A schema nested past DEPTH_MAX refuses a value that reaches that deep.
        let mut deep = json!({"type":"object"});
        let mut value = json!(1);
        for _ in 0..=DEPTH_MAX + 1 {
            deep = json!({"type":"object","properties":{"x": deep}});
            value = json!({"x": value});
        }
        assert!(check(&deep, &value).unwrap_err().contains("nested deeper"));
    }
}
