//! HTTP/1.1 request parsing, sans-I/O: the request head with `httparse`, bounded in size,
//! and the body (Content-Length or chunked), bounded in size. Errors carry the status the
//! peer gets (400, 413, 431, 501, 505).

/// Most headers one request may carry.
pub const HEADERS_MAX: usize = 64;

/// A parsed request head.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// Method, e.g. `POST`.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Query string (after `?`), if any.
    pub query: Option<String>,
    /// Header names (lowercased) and values (trimmed), one after another in one string, so
    /// a request head costs a handful of allocations however many headers it has.
    fields: String,
    /// Per header, in order: where its name ends and where its value ends in `fields` (each
    /// header starts where the previous one ended).
    spans: Vec<(u32, u32)>,
    /// For each name in [`KNOWN_HEADERS`], the index of its first occurrence in `spans`
    /// ([`ABSENT`] when the request does not carry it): the lookups every request makes
    /// cost no scan.
    known: [u8; KNOWN_HEADERS.len()],
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    /// How the body is framed.
    pub body: BodyKind,
}

/// Header names looked up on every request, indexed when the head is parsed.
const KNOWN_HEADERS: [&str; 13] = [
    "accept",
    "connection",
    "content-length",
    "content-type",
    "expect",
    "host",
    "last-event-id",
    "mcp-method",
    "mcp-name",
    "mcp-protocol-version",
    "mcp-session-id",
    "origin",
    "transfer-encoding",
];
const ABSENT: u8 = u8::MAX;

fn known_slot(name: &str) -> Option<usize> {
    KNOWN_HEADERS.iter().position(|k| *k == name)
}

impl RequestHead {
    /// A head built from parts (names are lowercased, values trimmed), as parsing makes it.
    pub fn new(method: &str, path: &str, headers: &[(&str, &str)]) -> RequestHead {
        let mut head = RequestHead {
            method: method.into(),
            path: path.into(),
            query: None,
            fields: String::new(),
            spans: Vec::with_capacity(headers.len()),
            known: [ABSENT; KNOWN_HEADERS.len()],
            keep_alive: true,
            body: BodyKind::None,
        };
        for (n, v) in headers {
            head.push_header(n, v);
        }
        head
    }

    fn push_header(&mut self, name: &str, value: &str) {
        let start = self.fields.len();
        self.fields.push_str(name);
        self.fields[start..].make_ascii_lowercase();
        let name_end = self.fields.len() as u32;
        if let Some(k) = known_slot(&self.fields[start..]) {
            if self.known[k] == ABSENT && self.spans.len() < ABSENT as usize {
                self.known[k] = self.spans.len() as u8;
            }
        }
        self.fields.push_str(value.trim());
        self.spans.push((name_end, self.fields.len() as u32));
    }

    /// The value of the header at `index` in `spans`.
    fn value_at(&self, index: usize) -> &str {
        let (name_end, value_end) = self.spans[index];
        &self.fields[name_end as usize..value_end as usize]
    }

    /// Every header as (lowercased name, value), in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        let mut start = 0usize;
        self.spans.iter().map(move |&(n, v)| {
            let (n, v) = (n as usize, v as usize);
            let field = (&self.fields[start..n], &self.fields[n..v]);
            start = v;
            field
        })
    }

    /// The first value of a header (name in lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        match known_slot(name) {
            Some(k) if self.spans.len() < ABSENT as usize => {
                let i = self.known[k];
                (i != ABSENT).then(|| self.value_at(i as usize))
            }
            _ => self.headers().find(|(n, _)| *n == name).map(|(_, v)| v),
        }
    }

    /// A query parameter's value (no percent-decoding: ringmcp's own parameters are plain).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.as_deref()?.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then_some(v)
        })
    }
}

/// Body framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body.
    None,
    /// Exactly this many bytes.
    Length(usize),
    /// Chunked transfer coding.
    Chunked,
}

/// A request the server refuses, with the status it answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {reason}")]
pub struct HttpError {
    /// Status code.
    pub status: u16,
    /// Explanation sent in the body.
    pub reason: String,
}

impl HttpError {
    /// An error with a status and reason.
    pub fn new(status: u16, reason: impl Into<String>) -> Self {
        HttpError {
            status,
            reason: reason.into(),
        }
    }
}

/// Parses a request head from the start of `buf`. `Ok(None)`: incomplete, read more.
/// `Ok(Some((head, n)))`: the head took `n` bytes.
pub fn parse_head(
    buf: &[u8],
    max_head_bytes: usize,
    max_body_bytes: usize,
) -> Result<Option<(RequestHead, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut req = httparse::Request::new(&mut headers);
    let status = match req.parse(buf) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HttpError::new(
                431,
                format!("more than {HEADERS_MAX} header fields"),
            ))
        }
        Err(e) => return Err(HttpError::new(400, format!("malformed request head: {e}"))),
    };
    let consumed = match status {
        httparse::Status::Partial => {
            if buf.len() > max_head_bytes {
                return Err(HttpError::new(
                    431,
                    format!("request head exceeds {max_head_bytes} bytes"),
                ));
            }
            return Ok(None);
        }
        httparse::Status::Complete(n) => n,
    };
    if consumed > max_head_bytes {
        return Err(HttpError::new(
            431,
            format!("request head exceeds {max_head_bytes} bytes"),
        ));
    }
    let version = req.version.unwrap_or(1);
    if version != 1 {
        return Err(HttpError::new(505, "only HTTP/1.1 is served"));
    }
    let method = req.method.unwrap_or("").to_string();
    let target = req.path.unwrap_or("/");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.to_string(), None),
    };
    let mut head = RequestHead {
        method,
        path,
        query,
        fields: String::with_capacity(consumed),
        spans: Vec::with_capacity(req.headers.len()),
        known: [ABSENT; KNOWN_HEADERS.len()],
        keep_alive: true,
        body: BodyKind::None,
    };
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value)
            .map_err(|_| HttpError::new(400, format!("header {} is not UTF-8", h.name)))?;
        head.push_header(h.name, value);
    }
    if let Some(c) = head.header("connection") {
        if c.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")) {
            head.keep_alive = false;
        }
    }
    let te = head
        .header("transfer-encoding")
        .map(str::to_ascii_lowercase);
    let cl: Vec<&str> = head
        .headers()
        .filter(|(n, _)| *n == "content-length")
        .map(|(_, v)| v)
        .collect();
    head.body = match (te, cl.as_slice()) {
        (Some(te), []) => {
            if te.trim() == "chunked" {
                BodyKind::Chunked
            } else {
                return Err(HttpError::new(
                    501,
                    format!("transfer-encoding {te:?} is not supported"),
                ));
            }
        }
        (Some(_), _) => {
            return Err(HttpError::new(
                400,
                "both transfer-encoding and content-length",
            ))
        }
        (None, []) => BodyKind::None,
        (None, [one]) => match content_length(one, max_body_bytes)? {
            0 => BodyKind::None,
            n => BodyKind::Length(n),
        },
        (None, many) => {
            if many.windows(2).any(|w| w[0] != w[1]) {
                return Err(HttpError::new(400, "conflicting content-length headers"));
            }
            BodyKind::Length(content_length(many[0], max_body_bytes)?)
        }
    };
    Ok(Some((head, consumed)))
}

/// A Content-Length value: a number no larger than `max_body_bytes` (else 413).
fn content_length(value: &str, max_body_bytes: usize) -> Result<usize, HttpError> {
    let n: usize = value
        .parse()
        .map_err(|_| HttpError::new(400, "invalid content-length"))?;
    if n > max_body_bytes {
        return Err(HttpError::new(
            413,
            format!("body of {n} bytes exceeds {max_body_bytes}"),
        ));
    }
    Ok(n)
}

/// Decodes a chunked body incrementally.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: ChunkState,
    max_body_bytes: usize,
    total: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading the size line.
    Size,
    /// Reading `n` more data bytes.
    Data(usize),
    /// Expecting CRLF after data.
    DataEnd,
    /// Reading trailer lines after the last chunk.
    Trailer,
    /// Done.
    Done,
}

/// Longest chunk-size line (with extensions) accepted.
const CHUNK_LINE_MAX: usize = 1024;

impl ChunkedDecoder {
    /// A decoder bounded to `max_body_bytes` of decoded data.
    pub fn new(max_body_bytes: usize) -> Self {
        ChunkedDecoder {
            state: ChunkState::Size,
            max_body_bytes,
            total: 0,
        }
    }

    /// Whether the final chunk and trailers were read.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Consumes as much of `input` as it can, appending data to `out`. Returns the bytes
    /// consumed; call again with more input until [`is_done`](Self::is_done).
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, HttpError> {
        let mut pos = 0;
        loop {
            match self.state {
                ChunkState::Done => return Ok(pos),
                ChunkState::Size | ChunkState::Trailer => {
                    let rest = &input[pos..];
                    let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                        if rest.len() > CHUNK_LINE_MAX {
                            return Err(HttpError::new(400, "chunk size line too long"));
                        }
                        return Ok(pos);
                    };
                    if nl > CHUNK_LINE_MAX {
                        return Err(HttpError::new(400, "chunk size line too long"));
                    }
                    let line = &rest[..nl];
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    pos += nl + 1;
                    if self.state == ChunkState::Trailer {
                        if line.is_empty() {
                            self.state = ChunkState::Done;
                        }
                        continue;
                    }
                    let size_part = line.split(|&b| b == b';').next().unwrap_or(&[]);
                    let size_str = std::str::from_utf8(size_part)
                        .map_err(|_| HttpError::new(400, "invalid chunk size"))?
                        .trim();
                    let size = usize::from_str_radix(size_str, 16)
                        .map_err(|_| HttpError::new(400, "invalid chunk size"))?;
                    if size == 0 {
                        self.state = ChunkState::Trailer;
                        continue;
                    }
                    if self.total.saturating_add(size) > self.max_body_bytes {
                        return Err(HttpError::new(
                            413,
                            format!("body exceeds {} bytes", self.max_body_bytes),
                        ));
                    }
                    self.state = ChunkState::Data(size);
                }
                ChunkState::Data(n) => {
                    let rest = &input[pos..];
                    if rest.is_empty() {
                        return Ok(pos);
                    }
                    let take = n.min(rest.len());
                    out.extend_from_slice(&rest[..take]);
                    self.total += take;
                    pos += take;
                    self.state = if take == n {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(n - take)
                    };
                }
                ChunkState::DataEnd => {
                    let rest = &input[pos..];
                    if rest.len() < 2 {
                        if rest == b"\r" || rest.is_empty() {
                            return Ok(pos);
                        }
                        return Err(HttpError::new(400, "chunk data not followed by CRLF"));
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err(HttpError::new(400, "chunk data not followed by CRLF"));
                    }
                    pos += 2;
                    self.state = ChunkState::Size;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_found_by_lowercase_name_first_occurrence_first() {
        let raw = b"POST /mcp HTTP/1.1\r\nHost: a\r\nACCEPT:  application/json \r\nX-Custom: 1\r\nAccept: text/html\r\nx-custom: 2\r\nContent-Length: 0\r\n\r\n";
        let (head, n) = parse_head(raw, 16384, 1024).unwrap().unwrap();
        assert_eq!(n, raw.len());
        // A name indexed at parse time and one that is not.
        assert_eq!(head.header("accept"), Some("application/json"));
        assert_eq!(head.header("x-custom"), Some("1"));
        assert_eq!(head.header("host"), Some("a"));
        assert_eq!(head.header("origin"), None);
        assert_eq!(head.header("x-missing"), None);
        let all: Vec<_> = head.headers().collect();
        assert_eq!(all.len(), 6);
        assert_eq!(all[4], ("x-custom", "2"));
        let built = RequestHead::new(
            "GET",
            "/mcp",
            &[("Mcp-Session-Id", " s1 "), ("mcp-session-id", "s2")],
        );
        assert_eq!(built.header("mcp-session-id"), Some("s1"));
    }

    #[test]
    fn parses_a_post_head() {
        let raw = b"POST /mcp/demo?x=1&sessionId=ab HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: 5\r\nMcp-Session-Id: abc\r\n\r\nhello";
        let (h, n) = parse_head(raw, 8192, 1024).unwrap().unwrap();
        assert_eq!(n, raw.len() - 5);
        assert_eq!(h.method, "POST");
        assert_eq!(h.path, "/mcp/demo");
        assert_eq!(h.query_param("sessionId"), Some("ab"));
        assert_eq!(h.header("mcp-session-id"), Some("abc"));
        assert_eq!(h.body, BodyKind::Length(5));
        assert!(h.keep_alive);
    }

    #[test]
    fn partial_and_limits() {
        assert!(parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n", 8192, 10)
            .unwrap()
            .is_none());
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(100));
        assert_eq!(parse_head(big.as_bytes(), 64, 10).unwrap_err().status, 431);
        let body = b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n";
        assert_eq!(parse_head(body, 8192, 10).unwrap_err().status, 413);
        assert_eq!(
            parse_head(b"GARBAGE\r\n\r\n", 8192, 10).unwrap_err().status,
            400
        );
        assert_eq!(
            parse_head(b"GET / HTTP/1.0\r\n\r\n", 8192, 10)
                .unwrap_err()
                .status,
            505
        );
        let te = b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n";
        assert_eq!(parse_head(te, 8192, 10).unwrap_err().status, 501);
        let both = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(parse_head(both, 8192, 10).unwrap_err().status, 400);
        let close = b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n";
        assert!(!parse_head(close, 8192, 10).unwrap().unwrap().0.keep_alive);
    }

    #[test]
    fn chunked_bodies_across_reads() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n";
        for split in 0..body.len() {
            let mut d = ChunkedDecoder::new(100);
            let mut out = Vec::new();
            let mut buf = body[..split].to_vec();
            let n = d.decode(&buf, &mut out).unwrap();
            buf.drain(..n);
            buf.extend_from_slice(&body[split..]);
            let n2 = d.decode(&buf, &mut out).unwrap();
            assert_eq!(n2, buf.len(), "split {split}");
            assert!(d.is_done());
            assert_eq!(out, b"hello world");
        }
    }

    #[test]
    fn chunked_limits() {
        let mut d = ChunkedDecoder::new(4);
        assert_eq!(
            d.decode(b"5\r\nhello\r\n", &mut Vec::new())
                .unwrap_err()
                .status,
            413
        );
        let mut d = ChunkedDecoder::new(100);
        assert_eq!(
            d.decode(b"zz\r\n", &mut Vec::new()).unwrap_err().status,
            400
        );
        let mut d = ChunkedDecoder::new(100);
        assert_eq!(
            d.decode(b"2\r\nabXY", &mut Vec::new()).unwrap_err().status,
            400
        );
    }
}
