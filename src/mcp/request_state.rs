//! `requestState` of `input_required` results (2026-07-28), sans-I/O: the answers a
//! client has given so far, sealed with HMAC-SHA256 so that the server needs no memory
//! between the rounds of one request, and any shard or node holding the same key can
//! carry on.
//!
//! A token is `rs1.<payload>.<tag>`, both parts base64url without padding. The payload is
//! JSON `{"v":1,"b":<binding>,"t":<issued, unix ms>,"a":{<key>: <answer>, ...}}`; the tag is
//! HMAC-SHA256 over `rs1.<payload>` under the key from `http.request_state_key`. The
//! binding is a SHA-256 over the server, the method, the tool/prompt/resource name and the
//! arguments (keys sorted), so a state issued for one call is refused for another.
//! Integrity only: the client can read the payload (it holds nothing the client did not
//! send), but cannot change it, forge one, or replay it past `http.request_state_ttl_ms`.

use crate::jsonrpc::ErrorObject;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The token's version prefix.
const PREFIX: &str = "rs1.";

/// Shortest key accepted, in bytes (the HMAC-SHA256 output size).
pub const KEY_BYTES_MIN: usize = 32;
/// Longest key accepted, in bytes (HMAC-SHA256's block size; longer keys are hashed down).
pub const KEY_BYTES_MAX: usize = 64;

/// The key that seals and opens request states.
#[derive(Clone, PartialEq, Eq)]
pub struct StateKey(Vec<u8>);

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key itself.
        write!(f, "StateKey({} bytes)", self.0.len())
    }
}

impl StateKey {
    /// Parses a key written as hex, [`KEY_BYTES_MIN`]..=[`KEY_BYTES_MAX`] bytes.
    pub fn from_hex(hex: &str) -> Result<StateKey, String> {
        let hex = hex.trim();
        if !hex.len().is_multiple_of(2) {
            return Err("must be an even number of hex digits".into());
        }
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("x"), 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| "must be hex digits only".to_string())?;
        if !(KEY_BYTES_MIN..=KEY_BYTES_MAX).contains(&bytes.len()) {
            return Err(format!(
                "must be {KEY_BYTES_MIN} to {KEY_BYTES_MAX} bytes ({} to {} hex digits), got {} bytes",
                KEY_BYTES_MIN * 2,
                KEY_BYTES_MAX * 2,
                bytes.len()
            ));
        }
        Ok(StateKey(bytes))
    }

    /// A fresh random key of [`KEY_BYTES_MIN`] bytes from the OS.
    pub fn generate() -> Result<StateKey, String> {
        let mut k = vec![0u8; KEY_BYTES_MIN];
        getrandom::fill(&mut k).map_err(|e| format!("no OS randomness: {e}"))?;
        Ok(StateKey(k))
    }

    /// The key as lowercase hex (for the configuration).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes a key of any length; the length is also checked at construction.
        <HmacSha256 as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"))
    }
}

/// What a state is bound to: one call of one method on one server.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// The hosted server's name.
    pub server: &'a str,
    /// The JSON-RPC method.
    pub method: &'a str,
    /// The tool or prompt name, or the resource URI ("" when the method has none).
    pub name: &'a str,
    /// The call's arguments (`Null` when the method has none).
    pub arguments: &'a Value,
}

impl Binding<'_> {
    fn digest(&self) -> String {
        let mut canon = String::new();
        canonical(
            &json!([self.server, self.method, self.name, self.arguments]),
            &mut canon,
        );
        URL_SAFE_NO_PAD.encode(Sha256::digest(canon.as_bytes()))
    }
}

/// Why a request state was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// Not a token of ours, or its tag does not verify (tampered, or sealed with another
    /// key).
    #[error("requestState integrity check failed")]
    Integrity,
    /// Verified, but issued for another call.
    #[error("requestState was issued for a different request")]
    Foreign,
    /// Verified, but older than the configured lifetime.
    #[error("requestState has expired; retry the request without it")]
    Expired,
}

impl StateError {
    /// The error the request is answered with (-32602).
    pub fn to_error(self) -> ErrorObject {
        ErrorObject::invalid_params(self.to_string())
    }
}

/// Seals `answers` for a call at `now_ms` (unix milliseconds).
pub fn seal(
    key: &StateKey,
    binding: &Binding<'_>,
    answers: &Map<String, Value>,
    now_ms: u64,
) -> String {
    let payload = json!({"v": 1, "b": binding.digest(), "t": now_ms, "a": answers});
    let mut token = String::from(PREFIX);
    token.push_str(&URL_SAFE_NO_PAD.encode(payload.to_string()));
    let mut mac = key.mac();
    mac.update(token.as_bytes());
    let tag = mac.finalize().into_bytes();
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(tag));
    token
}

/// Verifies a token and returns the answers it carries. The tag is checked (in constant
/// time) before anything in the payload is trusted.
pub fn open(
    key: &StateKey,
    token: &str,
    binding: &Binding<'_>,
    now_ms: u64,
    ttl_ms: u64,
) -> Result<Map<String, Value>, StateError> {
    let (signed, tag) = token.rsplit_once('.').ok_or(StateError::Integrity)?;
    let payload = signed.strip_prefix(PREFIX).ok_or(StateError::Integrity)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| StateError::Integrity)?;
    let mut mac = key.mac();
    mac.update(signed.as_bytes());
    mac.verify_slice(&tag).map_err(|_| StateError::Integrity)?;
    // Sealed by us: the payload is well-formed unless the key leaked.
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| StateError::Integrity)?;
    let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(&bytes) else {
        return Err(StateError::Integrity);
    };
    if body.get("v") != Some(&json!(1)) {
        return Err(StateError::Integrity);
    }
    if body.get("b").and_then(Value::as_str) != Some(binding.digest().as_str()) {
        return Err(StateError::Foreign);
    }
    let issued = body
        .get("t")
        .and_then(Value::as_u64)
        .ok_or(StateError::Integrity)?;
    if now_ms.saturating_sub(issued) > ttl_ms {
        return Err(StateError::Expired);
    }
    match body.remove("a") {
        Some(Value::Object(answers)) => Ok(answers),
        _ => Err(StateError::Integrity),
    }
}

/// Writes `v` as JSON with object keys sorted, so equal values give equal text however
/// their keys were ordered on the wire.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR_MS: u64 = 3_600_000;

    fn key(byte: u8) -> StateKey {
        StateKey::from_hex(&format!("{byte:02x}").repeat(32)).unwrap()
    }

    fn answers() -> Map<String, Value> {
        let mut a = Map::new();
        a.insert(
            "confirm".into(),
            json!({"action": "accept", "content": {"ok": true}}),
        );
        a
    }

    /// A `tools/call` of tool `t` on server `s`.
    fn tool_call(arguments: &Value) -> Binding<'_> {
        Binding {
            server: "s",
            method: "tools/call",
            name: "t",
            arguments,
        }
    }

    #[test]
    fn round_trips() {
        let args = json!({"b": 1, "a": [1, {"y": 2, "x": 1}]});
        let b = tool_call(&args);
        let token = seal(&key(1), &b, &answers(), 1_000);
        assert!(token.starts_with("rs1."));
        assert_eq!(open(&key(1), &token, &b, 2_000, HOUR_MS), Ok(answers()));
        // The same arguments with their keys in another order are the same call.
        let reordered: Value = serde_json::from_str(r#"{"a":[1,{"x":1,"y":2}],"b":1}"#).unwrap();
        let b2 = Binding {
            arguments: &reordered,
            ..b
        };
        assert_eq!(open(&key(1), &token, &b2, 2_000, HOUR_MS), Ok(answers()));
    }

    #[test]
    fn tampering_and_foreign_keys_are_refused() {
        let args = json!({});
        let b = tool_call(&args);
        let token = seal(&key(1), &b, &answers(), 1_000);
        let bad = [
            format!("{token}-TAMPERED"),
            token.replacen("rs1.", "rs2.", 1),
            token[..token.len() - 2].to_string(),
            String::new(),
            "rs1.e30.AAAA".to_string(),
            "not a token".to_string(),
        ];
        for t in &bad {
            assert_eq!(
                open(&key(1), t, &b, 2_000, HOUR_MS),
                Err(StateError::Integrity),
                "{t}"
            );
        }
        // A payload with one answer changed, re-encoded, keeps the old tag: refused.
        let (_, rest) = token.split_once('.').unwrap();
        let (_, tag) = rest.split_once('.').unwrap();
        let mut forged = answers();
        forged.insert("confirm".into(), json!({"action": "decline"}));
        let payload = json!({"v": 1, "b": b.digest(), "t": 1_000, "a": forged});
        let t = format!("rs1.{}.{tag}", URL_SAFE_NO_PAD.encode(payload.to_string()));
        assert_eq!(
            open(&key(1), &t, &b, 2_000, HOUR_MS),
            Err(StateError::Integrity)
        );
        // Sealed by another node with another key.
        assert_eq!(
            open(&key(2), &token, &b, 2_000, HOUR_MS),
            Err(StateError::Integrity)
        );
        assert_eq!(StateError::Integrity.to_error().code, -32602);
    }

    #[test]
    fn bound_to_the_call_and_to_its_lifetime() {
        let args = json!({"path": "/a"});
        let b = tool_call(&args);
        let token = seal(&key(1), &b, &answers(), 1_000);
        let other_args = json!({"path": "/b"});
        for other in [
            Binding { name: "u", ..b },
            Binding { server: "z", ..b },
            Binding {
                method: "prompts/get",
                ..b
            },
            Binding {
                arguments: &other_args,
                ..b
            },
        ] {
            assert_eq!(
                open(&key(1), &token, &other, 2_000, HOUR_MS),
                Err(StateError::Foreign)
            );
        }
        assert_eq!(
            open(&key(1), &token, &b, 1_000 + HOUR_MS + 1, HOUR_MS),
            Err(StateError::Expired)
        );
    }

    #[test]
    fn keys_from_hex() {
        let k = StateKey::generate().unwrap();
        assert_eq!(StateKey::from_hex(&k.to_hex()), Ok(k.clone()));
        assert_ne!(StateKey::generate().unwrap(), k);
        assert!(StateKey::from_hex("abc").is_err());
        assert!(StateKey::from_hex(&"zz".repeat(32)).is_err());
        assert!(StateKey::from_hex(&"ab".repeat(31)).is_err());
        assert!(StateKey::from_hex(&"ab".repeat(65)).is_err());
        assert!(StateKey::from_hex(&"ab".repeat(64)).is_ok());
        assert!(!format!("{k:?}").contains(&k.to_hex()));
    }
}
