//! The stateless 2026-07-28 revision over Streamable HTTP.

use super::parse::RequestHead;
use super::Response;
use crate::runtime::Shard;
use std::rc::Rc;

/// Whether a POST without a session id is a stateless request (its `_meta` names the
/// stateless revision) rather than an `initialize`.
pub fn looks_stateless(body: &[u8]) -> bool {
    let needle = super::STATELESS_REVISION.as_bytes();
    body.windows(needle.len()).any(|w| w == needle)
        && !body
            .windows(b"\"initialize\"".len())
            .any(|w| w == b"\"initialize\"")
}

/// Answers one stateless request.
pub async fn handle(
    _shard: &Rc<Shard>,
    _head: &RequestHead,
    _body: Vec<u8>,
    _server: &str,
) -> Response {
    Response::error(
        400,
        "protocol revision 2026-07-28 is not served yet; use 2025-11-25",
    )
}
