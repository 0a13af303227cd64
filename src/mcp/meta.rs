//! The per-request `_meta` of the stateless revision (2026-07-28), sans-I/O: with no
//! session and no `initialize`, every request names its protocol revision, the client's
//! capabilities, optionally the client's identity and the log level it wants, in
//! `params._meta`. [`RequestMeta::parse`] reads and checks those fields; a per-request
//! [`SessionCore`](crate::server::SessionCore) is built from the result.

use crate::jsonrpc::{code, ErrorObject};
use crate::mcp::revision::Revision;
use crate::server::LogLevel;
use serde_json::{json, Map, Value};

/// `_meta` key: the protocol revision of this request (required).
pub const PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key: the client's capabilities for this request (required; `{}` means none).
pub const CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key: the client's name and version (optional).
pub const CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
/// `_meta` key: the lowest log level the client wants for this request (optional; absent
/// means no `notifications/message` at all).
pub const LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
/// Result `_meta` key: the server's name and version.
pub const SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
/// Notification and result `_meta` key on a `subscriptions/listen` stream: the JSON-RPC id
/// of the listen request.
pub const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

/// What one stateless request says about itself in `params._meta`.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestMeta {
    /// The revision the request names, as sent (it may be one we do not serve; see
    /// [`RequestMeta::revision`]).
    pub protocol_version: String,
    /// The client's capabilities (an object).
    pub client_capabilities: Value,
    /// The client's `Implementation` object, `Null` when not sent.
    pub client_info: Value,
    /// The log level asked for; `None` means no log notifications for this request.
    pub log_level: Option<LogLevel>,
    /// `progressToken`, when the request asks for progress notifications.
    pub progress_token: Option<Value>,
}

impl RequestMeta {
    /// Reads `params._meta`. A missing `_meta`, a missing or mistyped `protocolVersion` or
    /// `clientCapabilities`, a `clientInfo` that is not an object or an unknown `logLevel`
    /// is invalid params (-32602).
    pub fn parse(params: &Map<String, Value>) -> Result<RequestMeta, ErrorObject> {
        let meta = match params.get("_meta") {
            Some(Value::Object(m)) => m,
            Some(_) => return Err(ErrorObject::invalid_params("params._meta must be an object")),
            None => {
                return Err(ErrorObject::invalid_params(format!(
                    "params._meta is required under the stateless protocol (with {PROTOCOL_VERSION} and {CLIENT_CAPABILITIES})"
                )))
            }
        };
        let protocol_version = match meta.get(PROTOCOL_VERSION) {
            Some(Value::String(v)) => v.clone(),
            _ => {
                return Err(ErrorObject::invalid_params(format!(
                    "params._meta[{PROTOCOL_VERSION:?}] (string) is required"
                )))
            }
        };
        let client_capabilities = match meta.get(CLIENT_CAPABILITIES) {
            Some(c @ Value::Object(_)) => c.clone(),
            _ => {
                return Err(ErrorObject::invalid_params(format!(
                    "params._meta[{CLIENT_CAPABILITIES:?}] (object) is required"
                )))
            }
        };
        let client_info = match meta.get(CLIENT_INFO) {
            None | Some(Value::Null) => Value::Null,
            Some(i @ Value::Object(_)) => i.clone(),
            Some(_) => {
                return Err(ErrorObject::invalid_params(format!(
                    "params._meta[{CLIENT_INFO:?}] must be an object"
                )))
            }
        };
        let log_level = match meta.get(LOG_LEVEL) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_str().and_then(LogLevel::parse).ok_or_else(|| {
                ErrorObject::invalid_params(format!(
                    "params._meta[{LOG_LEVEL:?}] must be one of debug, info, notice, warning, error, critical, alert, emergency"
                ))
            })?),
        };
        let progress_token = meta
            .get("progressToken")
            .filter(|t| t.is_string() || t.is_number())
            .cloned();
        Ok(RequestMeta {
            protocol_version,
            client_capabilities,
            client_info,
            log_level,
            progress_token,
        })
    }

    /// The stateless revision the request names, or -32022 listing the ones we serve.
    pub fn revision(&self) -> Result<Revision, ErrorObject> {
        Revision::STATELESS
            .into_iter()
            .find(|r| r.as_str() == self.protocol_version)
            .ok_or_else(|| unsupported_version(&self.protocol_version))
    }

    /// Whether the client declared a capability (`sampling`, `elicitation`, `roots`, ...).
    pub fn declares(&self, capability: &str) -> bool {
        self.client_capabilities.get(capability).is_some()
    }
}

/// -32022 UnsupportedProtocolVersionError: `data.supported` lists the stateless revisions
/// (the session revisions are reached through `initialize`, not per request) and
/// `data.requested` echoes what was asked for.
pub fn unsupported_version(requested: &str) -> ErrorObject {
    let supported: Vec<&str> = Revision::STATELESS.iter().map(|r| r.as_str()).collect();
    ErrorObject::new(
        code::UNSUPPORTED_PROTOCOL_VERSION,
        format!(
            "unsupported protocol version {requested:?}; this server serves {} per request (and 2024-11-05 .. 2025-11-25 after initialize)",
            supported.join(", ")
        ),
    )
    .with_data(json!({"supported": supported, "requested": requested}))
}

/// -32021 MissingRequiredClientCapabilityError for one capability.
pub fn missing_capability(capability: &str, why: &str) -> ErrorObject {
    let mut required = Map::new();
    required.insert(capability.to_string(), json!({}));
    ErrorObject::new(
        code::MISSING_REQUIRED_CLIENT_CAPABILITY,
        format!("Missing required client capability {capability}: {why}"),
    )
    .with_data(json!({"requiredCapabilities": required}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(meta: Value) -> Map<String, Value> {
        let mut p = Map::new();
        p.insert("_meta".into(), meta);
        p
    }

    fn valid() -> Value {
        json!({
            PROTOCOL_VERSION: "2026-07-28",
            CLIENT_CAPABILITIES: {"sampling": {}},
            CLIENT_INFO: {"name": "c", "version": "1"},
        })
    }

    #[test]
    fn reads_a_complete_meta() {
        let mut m = valid();
        m[LOG_LEVEL] = json!("warning");
        m["progressToken"] = json!("p-1");
        let meta = RequestMeta::parse(&params(m)).unwrap();
        assert_eq!(meta.revision().unwrap(), Revision::V2026_07_28);
        assert!(meta.declares("sampling") && !meta.declares("elicitation"));
        assert_eq!(meta.client_info["name"], "c");
        assert_eq!(meta.log_level, Some(LogLevel::Warning));
        assert_eq!(meta.progress_token, Some(json!("p-1")));
    }

    #[test]
    fn client_info_and_log_level_are_optional() {
        let mut m = valid();
        m.as_object_mut().unwrap().remove(CLIENT_INFO);
        let meta = RequestMeta::parse(&params(m)).unwrap();
        assert_eq!(meta.client_info, Value::Null);
        assert_eq!(meta.log_level, None);
        assert_eq!(meta.progress_token, None);
    }

    #[test]
    fn missing_required_fields_are_invalid_params() {
        assert_eq!(RequestMeta::parse(&Map::new()).unwrap_err().code, -32602);
        assert_eq!(
            RequestMeta::parse(&params(json!("x"))).unwrap_err().code,
            -32602
        );
        for key in [PROTOCOL_VERSION, CLIENT_CAPABILITIES] {
            let mut m = valid();
            m.as_object_mut().unwrap().remove(key);
            let e = RequestMeta::parse(&params(m)).unwrap_err();
            assert_eq!(e.code, -32602);
            assert!(e.message.contains(key), "{}", e.message);
        }
        let mut m = valid();
        m[CLIENT_CAPABILITIES] = json!(["sampling"]);
        assert_eq!(RequestMeta::parse(&params(m)).unwrap_err().code, -32602);
        let mut m = valid();
        m[LOG_LEVEL] = json!("loud");
        assert_eq!(RequestMeta::parse(&params(m)).unwrap_err().code, -32602);
        let mut m = valid();
        m[CLIENT_INFO] = json!("me");
        assert_eq!(RequestMeta::parse(&params(m)).unwrap_err().code, -32602);
    }

    #[test]
    fn unsupported_revisions_list_what_is_served() {
        for v in ["v999.0.0", "2025-11-25"] {
            let mut m = valid();
            m[PROTOCOL_VERSION] = json!(v);
            let e = RequestMeta::parse(&params(m))
                .unwrap()
                .revision()
                .unwrap_err();
            assert_eq!(e.code, -32022);
            assert_eq!(
                e.data,
                Some(json!({"supported": ["2026-07-28"], "requested": v}))
            );
        }
    }

    #[test]
    fn missing_capability_names_an_object() {
        let e = missing_capability("sampling", "the tool samples");
        assert_eq!(e.code, -32021);
        assert_eq!(
            e.data,
            Some(json!({"requiredCapabilities": {"sampling": {}}}))
        );
    }
}
