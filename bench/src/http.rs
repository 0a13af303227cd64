//! HTTP/1.1 response framing for the client side, sans-I/O: find where one response ends
//! in the bytes a connection received (Content-Length or chunked), and read the JSON-RPC
//! messages out of its body (`application/json`, or `text/event-stream` events).
//!
//! A response is taken whole: [`frame_response`] answers `Ok(None)` until every byte of
//! it has arrived, then says how many bytes it used, so pipelined responses that share
//! one read are framed one after another. Nothing here allocates except the caller's
//! reusable scratch buffers (a chunked body is copied into one).

use std::ops::Range;

/// Headers read per response; more is an error (ringmcp sends at most a handful).
pub const HEADERS_MAX: usize = 32;
/// Largest response head.
pub const HEAD_BYTES_MAX: usize = 16 * 1024;

/// Why bytes are not an HTTP response we can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The status line or a header is malformed, or there are too many headers.
    #[error("malformed response head")]
    BadHead,
    /// A chunk size line or chunk terminator is malformed.
    #[error("malformed chunked body")]
    BadChunk,
    /// Above the configured bound.
    #[error("response too large")]
    TooLarge,
    /// A transfer coding other than chunked.
    #[error("unsupported transfer coding")]
    UnsupportedCoding,
    /// No Content-Length and not chunked (a body delimited by close).
    #[error("response without length")]
    NoLength,
}

/// What one response head says that we act on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Head {
    /// Status code.
    pub status: u16,
    /// `Mcp-Session-Id`, as a range of the input.
    pub session_id: Option<Range<usize>>,
    /// `Connection: close`.
    pub close: bool,
    /// `Content-Type: text/event-stream`.
    pub sse: bool,
}

/// Where a framed response's body is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// In the input, at this range.
    Input(Range<usize>),
    /// Decoded (dechunked) into the scratch buffer.
    Scratch,
}

/// One complete response at the start of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framed {
    /// Bytes of the input it spans.
    pub consumed: usize,
    /// Its head.
    pub head: Head,
    /// Its body.
    pub body: Body,
}

/// Frames the response at the start of `buf`; `Ok(None)` while incomplete. A chunked
/// body is decoded into `scratch` (cleared first); `max_bytes` bounds the whole response.
pub fn frame_response(
    buf: &[u8],
    scratch: &mut Vec<u8>,
    max_bytes: usize,
) -> Result<Option<Framed>, FrameError> {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > HEAD_BYTES_MAX.min(max_bytes) {
                return Err(FrameError::TooLarge);
            }
            return Ok(None);
        }
        Err(_) => return Err(FrameError::BadHead),
    };
    let status = resp.code.ok_or(FrameError::BadHead)?;
    let mut head = Head {
        status,
        ..Head::default()
    };
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    for h in resp.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value).map_err(|_| FrameError::BadHead)?;
            let n: usize = v.trim().parse().map_err(|_| FrameError::BadHead)?;
            if content_length.is_some_and(|c| c != n) {
                return Err(FrameError::BadHead);
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let v = trim(h.value);
            if v.eq_ignore_ascii_case(b"chunked") {
                chunked = true;
            } else if !v.eq_ignore_ascii_case(b"identity") {
                return Err(FrameError::UnsupportedCoding);
            }
        } else if name.eq_ignore_ascii_case("content-type") {
            head.sse = starts_with_ignore_case(trim(h.value), b"text/event-stream");
        } else if name.eq_ignore_ascii_case("connection") {
            head.close = trim(h.value).eq_ignore_ascii_case(b"close");
        } else if name.eq_ignore_ascii_case("mcp-session-id") {
            let v = trim(h.value);
            // The value borrows from `buf`, so its offset is a pointer difference.
            let start = v.as_ptr() as usize - buf.as_ptr() as usize;
            head.session_id = Some(start..start + v.len());
        }
    }
    // 1xx, 204 and 304 have no body.
    if (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Some(Framed {
            consumed: head_len,
            head,
            body: Body::Input(head_len..head_len),
        }));
    }
    if chunked {
        return match dechunk(&buf[head_len..], scratch, max_bytes)? {
            None => Ok(None),
            Some(n) => Ok(Some(Framed {
                consumed: head_len + n,
                head,
                body: Body::Scratch,
            })),
        };
    }
    let len = content_length.ok_or(FrameError::NoLength)?;
    if head_len.saturating_add(len) > max_bytes {
        return Err(FrameError::TooLarge);
    }
    if buf.len() < head_len + len {
        return Ok(None);
    }
    Ok(Some(Framed {
        consumed: head_len + len,
        head,
        body: Body::Input(head_len..head_len + len),
    }))
}

/// Decodes a chunked body at the start of `buf` into `out` (cleared first); answers the
/// bytes the body spans, trailers included, or `None` while incomplete.
pub fn dechunk(
    buf: &[u8],
    out: &mut Vec<u8>,
    max_bytes: usize,
) -> Result<Option<usize>, FrameError> {
    out.clear();
    let mut pos = 0usize;
    // Each pass consumes at least one size line (3 bytes), so this ends.
    loop {
        let Some(eol) = find_crlf(&buf[pos..]) else {
            if buf.len() - pos > 256 {
                return Err(FrameError::BadChunk);
            }
            return Ok(None);
        };
        let line = &buf[pos..pos + eol];
        let size_part = match line.iter().position(|&b| b == b';') {
            Some(i) => &line[..i],
            None => line,
        };
        let size = parse_hex(trim(size_part)).ok_or(FrameError::BadChunk)?;
        pos += eol + 2;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                let Some(eol) = find_crlf(&buf[pos..]) else {
                    return Ok(None);
                };
                pos += eol + 2;
                if eol == 0 {
                    return Ok(Some(pos));
                }
                if pos > max_bytes {
                    return Err(FrameError::TooLarge);
                }
            }
        }
        if out.len().saturating_add(size) > max_bytes {
            return Err(FrameError::TooLarge);
        }
        if buf.len() < pos + size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&buf[pos..pos + size]);
        if &buf[pos + size..pos + size + 2] != b"\r\n" {
            return Err(FrameError::BadChunk);
        }
        pos += size + 2;
    }
}

/// Calls `f` with the data of every complete event of an SSE body (its `data:` lines
/// joined by `\n`, as the EventSource rules say); events without data (priming events,
/// comments, keep-alives) are skipped. `f` returns `false` to stop. `data` is scratch.
/// An event not ended by a blank line is incomplete and not dispatched.
pub fn sse_events(body: &[u8], data: &mut Vec<u8>, mut f: impl FnMut(&[u8]) -> bool) {
    data.clear();
    let mut has_data = false;
    let mut pos = 0usize;
    // Each pass consumes one line (at least its terminator), so this ends.
    while pos < body.len() {
        let rest = &body[pos..];
        let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') else {
            return;
        };
        let line = &rest[..end];
        pos += end + 1;
        if rest[end] == b'\r' && rest.get(end + 1) == Some(&b'\n') {
            pos += 1;
        }
        if line.is_empty() {
            if has_data {
                if data.last() == Some(&b'\n') {
                    data.pop();
                }
                // An empty data buffer is not dispatched (the EventSource rule): that
                // is the 2025-11-25 priming event.
                if !data.is_empty() && !f(data) {
                    return;
                }
            }
            data.clear();
            has_data = false;
            continue;
        }
        if line[0] == b':' {
            continue;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        if field == b"data" {
            data.extend_from_slice(value);
            data.push(b'\n');
            has_data = true;
        }
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    memchr::memmem::find(buf, b"\r\n")
}

fn parse_hex(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 12 {
        return None;
    }
    let mut v = 0usize;
    for &b in s {
        let d = (b as char).to_digit(16)?;
        v = v * 16 + d as usize;
    }
    Some(v)
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &v[start..end.max(start)]
}

fn starts_with_ignore_case(v: &[u8], prefix: &[u8]) -> bool {
    v.len() >= prefix.len() && v[..prefix.len()].eq_ignore_ascii_case(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 14\r\nMcp-Session-Id: abc123\r\n\r\n{\"id\":1,\"x\":2}";

    #[test]
    fn content_length() {
        let mut s = Vec::new();
        let buf = JSON;
        let f = frame_response(buf, &mut s, 1 << 20).unwrap().unwrap();
        assert_eq!(f.consumed, buf.len());
        assert_eq!(f.head.status, 200);
        assert!(!f.head.sse);
        assert_eq!(&buf[f.head.session_id.clone().unwrap()], b"abc123");
        let Body::Input(r) = f.body else { panic!() };
        assert_eq!(&buf[r], b"{\"id\":1,\"x\":2}");
        // Every strict prefix is incomplete.
        for n in 0..buf.len() {
            assert_eq!(
                frame_response(&buf[..n], &mut s, 1 << 20),
                Ok(None),
                "prefix {n}"
            );
        }
    }

    #[test]
    fn pipelined_responses_frame_one_by_one() {
        let one = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n";
        let two = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        let buf = [&one[..], &two[..]].concat();
        let mut s = Vec::new();
        let f = frame_response(&buf, &mut s, 1 << 20).unwrap().unwrap();
        assert_eq!(f.head.status, 202);
        assert_eq!(f.consumed, one.len());
        let g = frame_response(&buf[f.consumed..], &mut s, 1 << 20)
            .unwrap()
            .unwrap();
        assert_eq!(g.head.status, 200);
        assert_eq!(g.consumed, two.len());
    }

    #[test]
    fn chunked_sse() {
        let body = "id: 2-0\nretry: 1000\ndata: \n\nid: 2-1\ndata: {\"method\":\"notifications/progress\"}\n\nid: 2-2\ndata: {\"id\":4,\n: comment\ndata: \"result\":{}}\n\n";
        let (a, b) = body.split_at(30);
        let buf = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n0\r\n\r\n",
            a.len(),
            b.len()
        );
        let buf = buf.as_bytes();
        let mut s = Vec::new();
        for n in 0..buf.len() {
            assert_eq!(
                frame_response(&buf[..n], &mut s, 1 << 20),
                Ok(None),
                "prefix {n}"
            );
        }
        let f = frame_response(buf, &mut s, 1 << 20).unwrap().unwrap();
        assert_eq!(f.consumed, buf.len());
        assert!(f.head.sse);
        assert_eq!(f.body, Body::Scratch);
        assert_eq!(s, body.as_bytes());
        let mut data = Vec::new();
        let mut events = Vec::new();
        sse_events(&s, &mut data, |d| {
            events.push(String::from_utf8(d.to_vec()).unwrap());
            true
        });
        assert_eq!(
            events,
            vec![
                "{\"method\":\"notifications/progress\"}".to_string(),
                "{\"id\":4,\n\"result\":{}}".to_string()
            ]
        );
    }

    #[test]
    fn sse_line_endings_and_incomplete_event() {
        let mut data = Vec::new();
        let mut events = Vec::new();
        sse_events(b"data:a\r\n\r\ndata: b\r\rdata: c\n", &mut data, |d| {
            events.push(d.to_vec());
            true
        });
        assert_eq!(events, vec![b"a".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn trailers_and_errors() {
        let mut s = Vec::new();
        let buf = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\nHTTP";
        let f = frame_response(buf, &mut s, 1 << 20).unwrap().unwrap();
        assert_eq!(f.consumed, buf.len() - 4);
        assert_eq!(s, b"abc");
        let bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n";
        assert_eq!(
            frame_response(bad, &mut s, 1 << 20),
            Err(FrameError::BadChunk)
        );
        let bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n";
        assert_eq!(
            frame_response(bad, &mut s, 1 << 20),
            Err(FrameError::BadChunk)
        );
        let gz = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n";
        assert_eq!(
            frame_response(gz, &mut s, 1 << 20),
            Err(FrameError::UnsupportedCoding)
        );
        let nolen = b"HTTP/1.1 200 OK\r\n\r\n";
        assert_eq!(
            frame_response(nolen, &mut s, 1 << 20),
            Err(FrameError::NoLength)
        );
        let big = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n";
        assert_eq!(frame_response(big, &mut s, 1024), Err(FrameError::TooLarge));
        assert_eq!(
            frame_response(b"HTTX/1.1 200\r\n\r\n", &mut s, 1024),
            Err(FrameError::BadHead)
        );
        let close =
            b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        let f = frame_response(close, &mut s, 1024).unwrap().unwrap();
        assert!(f.head.close);
        assert_eq!(f.head.status, 503);
    }
}
