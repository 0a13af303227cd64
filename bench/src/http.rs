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

/// A response head as read: what we act on, its length and how its body is delimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadInfo {
    /// What the head says that we act on.
    pub head: Head,
    /// Bytes of the head (status line, headers, blank line).
    pub len: usize,
    /// `Content-Length`.
    pub content_length: Option<usize>,
    /// `Transfer-Encoding: chunked`.
    pub chunked: bool,
}

/// Reads the response head at the start of `buf`; `Ok(None)` while incomplete. For a
/// response whose body may not end (an SSE stream), where [`frame_response`] would wait
/// for the whole body.
pub fn response_head(buf: &[u8], max_bytes: usize) -> Result<Option<HeadInfo>, FrameError> {
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
    Ok(Some(HeadInfo {
        head,
        len: head_len,
        content_length,
        chunked,
    }))
}

/// Frames the response at the start of `buf`; `Ok(None)` while incomplete. A chunked
/// body is decoded into `scratch` (cleared first); `max_bytes` bounds the whole response.
pub fn frame_response(
    buf: &[u8],
    scratch: &mut Vec<u8>,
    max_bytes: usize,
) -> Result<Option<Framed>, FrameError> {
    let Some(HeadInfo {
        head,
        len: head_len,
        content_length,
        chunked,
    }) = response_head(buf, max_bytes)?
    else {
        return Ok(None);
    };
    let status = head.status;
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

/// Decodes the complete chunks at the start of `buf`, a chunked body that may go on
/// for ever (an SSE stream), appending their data to `out`. Answers the bytes used and
/// whether the last chunk (size 0, then trailers) ended the body; an incomplete chunk is
/// left for the next call. `max_bytes` bounds one chunk and `out`.
pub fn dechunk_stream(
    buf: &[u8],
    out: &mut Vec<u8>,
    max_bytes: usize,
) -> Result<(usize, bool), FrameError> {
    let mut pos = 0usize;
    // Each pass consumes one whole chunk (at least its 3-byte size line) or returns.
    loop {
        let Some(eol) = find_crlf(&buf[pos..]) else {
            if buf.len() - pos > 256 {
                return Err(FrameError::BadChunk);
            }
            return Ok((pos, false));
        };
        let line = &buf[pos..pos + eol];
        let size_part = match line.iter().position(|&b| b == b';') {
            Some(i) => &line[..i],
            None => line,
        };
        let size = parse_hex(trim(size_part)).ok_or(FrameError::BadChunk)?;
        let data_at = pos + eol + 2;
        if size == 0 {
            // Trailers, then the empty line; all of it or nothing.
            let mut p = data_at;
            loop {
                let Some(eol) = find_crlf(&buf[p..]) else {
                    if buf.len() - pos > max_bytes {
                        return Err(FrameError::TooLarge);
                    }
                    return Ok((pos, false));
                };
                p += eol + 2;
                if eol == 0 {
                    return Ok((p, true));
                }
            }
        }
        if out.len().saturating_add(size) > max_bytes {
            return Err(FrameError::TooLarge);
        }
        if buf.len() < data_at + size + 2 {
            return Ok((pos, false));
        }
        if &buf[data_at + size..data_at + size + 2] != b"\r\n" {
            return Err(FrameError::BadChunk);
        }
        out.extend_from_slice(&buf[data_at..data_at + size]);
        pos = data_at + size + 2;
    }
}

/// Calls `f` with the data of every complete event of an SSE body (its `data:` lines
/// joined by `\n`, as the EventSource rules say); events without data (priming events,
/// comments, keep-alives) are skipped. `f` returns `false` to stop. `data` is scratch.
/// An event not ended by a blank line is incomplete and not dispatched.
pub fn sse_events(body: &[u8], data: &mut Vec<u8>, f: impl FnMut(&[u8]) -> bool) {
    sse_scan(body, data, true, f);
}

/// [`sse_events`] for a stream that goes on: the events complete so far are dispatched
/// and the answer is the bytes they span (through the blank line ending the last one);
/// the rest is an event still arriving, for the next call with more bytes after it.
pub fn sse_stream(body: &[u8], data: &mut Vec<u8>, f: impl FnMut(&[u8]) -> bool) -> usize {
    sse_scan(body, data, false, f)
}

/// The SSE reader behind [`sse_events`] and [`sse_stream`]. `whole`: `body` is all there
/// is, so a final `\r` ends its line; in a stream it may be the first half of `\r\n`.
fn sse_scan(
    body: &[u8],
    data: &mut Vec<u8>,
    whole: bool,
    mut f: impl FnMut(&[u8]) -> bool,
) -> usize {
    data.clear();
    let mut has_data = false;
    let mut pos = 0usize;
    let mut event_end = 0usize;
    // Each pass consumes one line (at least its terminator), so this ends.
    while pos < body.len() {
        let rest = &body[pos..];
        let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') else {
            return event_end;
        };
        if !whole && rest[end] == b'\r' && end + 1 == rest.len() {
            return event_end;
        }
        let line = &rest[..end];
        pos += end + 1;
        if rest[end] == b'\r' && rest.get(end + 1) == Some(&b'\n') {
            pos += 1;
        }
        if line.is_empty() {
            event_end = pos;
            if has_data {
                if data.last() == Some(&b'\n') {
                    data.pop();
                }
                // An empty data buffer is not dispatched (the EventSource rule): that
                // is the 2025-11-25 priming event.
                if !data.is_empty() && !f(data) {
                    return event_end;
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
    event_end
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
    fn chunked_stream_decodes_what_has_arrived() {
        let body = "5\r\nhello\r\n6;x=1\r\n world\r\n0\r\nX-T: 1\r\n\r\n";
        let b = body.as_bytes();
        // At every split point, the first part yields its complete chunks and the rest
        // yields the others; the body ends exactly once, at its end.
        for n in 0..=b.len() {
            let mut out = Vec::new();
            let (used, ended) = dechunk_stream(&b[..n], &mut out, 1024).unwrap();
            assert!(!ended || n == b.len(), "split {n}");
            let rest = [&b[used..n], &b[n..]].concat();
            let (used2, ended2) = dechunk_stream(&rest, &mut out, 1024).unwrap();
            assert_eq!(out, b"hello world", "split {n}");
            assert_eq!(used2, rest.len(), "split {n}");
            assert!(ended2 || ended, "split {n}");
        }
        let mut out = Vec::new();
        assert_eq!(
            dechunk_stream(b"3\r\nabcd\r\n", &mut out, 1024),
            Err(FrameError::BadChunk)
        );
        assert_eq!(
            dechunk_stream(b"zz\r\n", &mut out, 1024),
            Err(FrameError::BadChunk)
        );
        assert_eq!(
            dechunk_stream(b"800\r\n", &mut out, 1024),
            Err(FrameError::TooLarge)
        );
        assert_eq!(
            dechunk_stream(&[b'1'; 300], &mut out, 1024),
            Err(FrameError::BadChunk)
        );
    }

    #[test]
    fn sse_stream_dispatches_complete_events_only() {
        let text = "id: 0-1\r\ndata: a\r\n\r\n: keep-alive\n\ndata: b\ndata: c\n\nid: 0-4\ndata: d";
        let t = text.as_bytes();
        for n in 0..=t.len() {
            // Feed a prefix, keep what was not used, then the rest: the same events.
            let mut data = Vec::new();
            let mut events = Vec::new();
            let used = sse_stream(&t[..n], &mut data, |d| {
                events.push(String::from_utf8(d.to_vec()).unwrap());
                true
            });
            let rest = [&t[used..n], &t[n..]].concat();
            let used2 = sse_stream(&rest, &mut data, |d| {
                events.push(String::from_utf8(d.to_vec()).unwrap());
                true
            });
            assert_eq!(events, vec!["a", "b\nc"], "split {n}");
            // The last event has no blank line yet: it stays.
            assert_eq!(&rest[used2..], b"id: 0-4\ndata: d", "split {n}");
        }
        // A final CR may be half of CRLF in a stream: the blank line is not seen yet.
        let mut data = Vec::new();
        let mut n = 0;
        assert_eq!(
            sse_stream(b"data: x\r\n\r", &mut data, |_| {
                n += 1;
                true
            }),
            0
        );
        assert_eq!(n, 0);
        assert_eq!(
            sse_stream(b"data: x\r\n\r\n", &mut data, |_| {
                n += 1;
                true
            }),
            11
        );
        assert_eq!(n, 1);
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
