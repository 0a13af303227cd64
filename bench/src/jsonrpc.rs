//! Reading the server's JSON-RPC messages, sans-I/O: is this a response, to which id,
//! with a result or an error (and which code), or something else (a notification or a
//! server-to-client request, which a load generator skips)?
//!
//! The message is fully parsed (serde_json validates it) but nothing is built: the result
//! is skipped except for its `isError` flag, ids are read as numbers, strings are never
//! copied.

use serde::de::{self, Deserializer, IgnoredAny, Visitor};
use serde::Deserialize;
use std::fmt;

/// A JSON-RPC id as far as matching goes: ours are non-negative integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcId {
    /// A non-negative integer id.
    Num(u64),
    /// A string, negative or fractional id: never one of ours.
    Other,
}

impl<'de> Deserialize<'de> for RpcId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RpcId;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON-RPC id")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RpcId, E> {
                Ok(RpcId::Num(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RpcId, E> {
                Ok(u64::try_from(v).map_or(RpcId::Other, RpcId::Num))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<RpcId, E> {
                Ok(RpcId::Other)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<RpcId, E> {
                Ok(RpcId::Other)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
struct ResultProbe {
    #[serde(rename = "isError", default)]
    is_error: Option<bool>,
}

/// An object key, read only for whether it is `reason` (never copied).
struct IsReason(bool);

impl<'de> Deserialize<'de> for IsReason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IsReason;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IsReason, E> {
                Ok(IsReason(v == "reason"))
            }
        }
        d.deserialize_str(V)
    }
}

/// `error.data`, read only for whether it is an object with a `reason` member (any other
/// value, or an object without one, is skipped without being built).
struct HasReason(bool);

impl<'de> Deserialize<'de> for HasReason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = HasReason;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut m: A) -> Result<HasReason, A::Error> {
                let mut found = false;
                // Bounded by the members of the object.
                while let Some(k) = m.next_key::<IsReason>()? {
                    found |= k.0;
                    m.next_value::<IgnoredAny>()?;
                }
                Ok(HasReason(found))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut s: A) -> Result<HasReason, A::Error> {
                // Bounded by the elements of the array.
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(HasReason(false))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<HasReason, E> {
                Ok(HasReason(false))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<HasReason, E> {
                Ok(HasReason(false))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<HasReason, E> {
                Ok(HasReason(false))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<HasReason, E> {
                Ok(HasReason(false))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<HasReason, E> {
                Ok(HasReason(false))
            }
            fn visit_unit<E: de::Error>(self) -> Result<HasReason, E> {
                Ok(HasReason(false))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
struct ErrorProbe {
    code: i64,
    #[serde(default)]
    data: Option<HasReason>,
}

impl ErrorProbe {
    fn has_reason(&self) -> bool {
        self.data.as_ref().is_some_and(|d| d.0)
    }
}

#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    jsonrpc: Option<IgnoredAny>,
    #[serde(default)]
    id: Option<RpcId>,
    #[serde(default)]
    method: Option<IgnoredAny>,
    #[serde(default)]
    result: Option<ResultProbe>,
    #[serde(default)]
    error: Option<ErrorProbe>,
}

/// What a message from the server is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// A response with a result. `tool_error` is the tools/call result's `isError`.
    Result {
        /// Its id (`None`: null or absent).
        id: Option<RpcId>,
        /// `result.isError == true`.
        tool_error: bool,
    },
    /// A response with an error.
    Error {
        /// Its id (`None`: null, as for a parse error).
        id: Option<RpcId>,
        /// `error.code`.
        code: i64,
        /// `error.data.reason` is present: the server says which of its limits refused
        /// (ringmcp's overload answers carry it).
        reason: bool,
    },
    /// A notification or a server-to-client request (has `method`).
    Other,
}

/// Why a message is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// Not JSON, or not the shape of a JSON-RPC message.
    #[error("not a JSON-RPC message: {0}")]
    Invalid(String),
}

/// Reads one message (a batch is not a reply to anything we send).
pub fn classify(msg: &[u8]) -> Result<Reply, ReplyError> {
    let p: Probe = serde_json::from_slice(msg).map_err(|e| ReplyError::Invalid(e.to_string()))?;
    if p.jsonrpc.is_none() {
        return Err(ReplyError::Invalid("missing jsonrpc".into()));
    }
    if p.method.is_some() {
        return Ok(Reply::Other);
    }
    match (p.result, p.error) {
        (Some(r), None) => Ok(Reply::Result {
            id: p.id,
            tool_error: r.is_error == Some(true),
        }),
        (None, Some(e)) => Ok(Reply::Error {
            id: p.id,
            reason: e.has_reason(),
            code: e.code,
        }),
        _ => Err(ReplyError::Invalid(
            "a response needs exactly one of result and error".into(),
        )),
    }
}

/// The method of a resource update notification.
pub const RESOURCE_UPDATED: &str = "notifications/resources/updated";

#[derive(Deserialize)]
struct UriProbe<'a> {
    #[serde(borrow, default)]
    uri: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct NotificationProbe<'a> {
    #[serde(default)]
    jsonrpc: Option<IgnoredAny>,
    #[serde(default)]
    id: Option<IgnoredAny>,
    #[serde(borrow, default)]
    method: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    params: Option<UriProbe<'a>>,
}

/// Whether `msg` is `notifications/resources/updated` for `uri` (a notification: a
/// method, no id). Anything else, malformed JSON included, is not; [`classify`] is what
/// rejects malformed messages.
pub fn is_resource_updated(msg: &[u8], uri: &str) -> bool {
    // Cheap filter first: most messages a subscriber reads are not updates.
    if memchr::memmem::find(msg, b"resources/updated").is_none() {
        return false;
    }
    let Ok(p) = serde_json::from_slice::<NotificationProbe>(msg) else {
        return false;
    };
    p.jsonrpc.is_some()
        && p.id.is_none()
        && p.method.as_deref() == Some(RESOURCE_UPDATED)
        && p.params.and_then(|x| x.uri).as_deref() == Some(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_updated_notifications() {
        let uri = "demo://counter";
        assert!(is_resource_updated(
            br#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"demo://counter"}}"#,
            uri
        ));
        // Escapes in the URI are read, key order does not matter.
        assert!(is_resource_updated(
            br#"{"params":{"uri":"demo:\/\/counter"},"method":"notifications/resources/updated","jsonrpc":"2.0"}"#,
            uri
        ));
        // Another URI, another method, a request with an id, no params, garbage.
        for other in [
            &br#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"demo://other"}}"#[..],
            br#"{"jsonrpc":"2.0","method":"notifications/resources/list_changed","params":{}}"#,
            br#"{"jsonrpc":"2.0","id":3,"method":"notifications/resources/updated","params":{"uri":"demo://counter"}}"#,
            br#"{"jsonrpc":"2.0","method":"notifications/resources/updated"}"#,
            br#"{"method":"notifications/resources/updated","params":{"uri":"demo://counter"}}"#,
            br#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"demo://counter"}"#,
        ] {
            assert!(!is_resource_updated(other, uri), "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn results_and_errors() {
        assert_eq!(
            classify(br#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"hi \"x\""}]}}"#),
            Ok(Reply::Result {
                id: Some(RpcId::Num(7)),
                tool_error: false
            })
        );
        assert_eq!(
            classify(br#"{"jsonrpc":"2.0","id":8,"result":{"content":[],"isError":true}}"#),
            Ok(Reply::Result {
                id: Some(RpcId::Num(8)),
                tool_error: true
            })
        );
        assert_eq!(
            classify(br#"{"jsonrpc":"2.0","id":3,"error":{"code":-32602,"message":"Unknown tool: nope"}}"#),
            Ok(Reply::Error {
                id: Some(RpcId::Num(3)),
                code: -32602,
                reason: false
            })
        );
        assert_eq!(
            classify(br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}"#),
            Ok(Reply::Error {
                id: None,
                code: -32700,
                reason: false
            })
        );
        // An overload refusal says why in data.reason; other data is not a reason.
        assert_eq!(
            classify(br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"full","data":{"reason":"connections_per_shard","retryAfterMs":1000}}}"#),
            Ok(Reply::Error {
                id: None,
                code: -32001,
                reason: true
            })
        );
        for data in [r#"{"timeoutMs":5}"#, "\"reason\"", "[1]"] {
            let msg = format!(
                r#"{{"jsonrpc":"2.0","id":4,"error":{{"code":-32008,"message":"x","data":{data}}}}}"#
            );
            assert_eq!(
                classify(msg.as_bytes()),
                Ok(Reply::Error {
                    id: Some(RpcId::Num(4)),
                    code: -32008,
                    reason: false
                }),
                "{data}"
            );
        }
        assert_eq!(
            classify(br#"{"jsonrpc":"2.0","id":"abc","result":{}}"#),
            Ok(Reply::Result {
                id: Some(RpcId::Other),
                tool_error: false
            })
        );
        assert_eq!(
            classify(br#"{"jsonrpc":"2.0","id":-1,"result":{}}"#),
            Ok(Reply::Result {
                id: Some(RpcId::Other),
                tool_error: false
            })
        );
    }

    #[test]
    fn notifications_and_requests_are_other() {
        assert_eq!(
            classify(
                br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}"#
            ),
            Ok(Reply::Other)
        );
        assert_eq!(
            classify(br#"{"jsonrpc":"2.0","id":9,"method":"roots/list"}"#),
            Ok(Reply::Other)
        );
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(classify(b"").is_err());
        assert!(classify(b"{\"jsonrpc\":\"2.0\",\"id\":1").is_err());
        assert!(classify(br#"{"id":1,"result":{}}"#).is_err());
        assert!(classify(br#"{"jsonrpc":"2.0","id":1}"#).is_err());
        assert!(classify(br#"{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1}}"#).is_err());
        assert!(classify(br#"{"jsonrpc":"2.0","id":1,"result":{}} trailing"#).is_err());
    }
}
