//! Newline framing, sans-I/O: bytes in, complete lines out, with a bound on line length.
//! A connection that is not in the middle of a line holds no buffer at all.

/// A line longer than the configured maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("message exceeds max_message_bytes ({max})")]
pub struct TooLong {
    /// The configured maximum.
    pub max: usize,
}

/// Accumulates bytes and yields complete lines.
pub struct LineBuf {
    partial: Vec<u8>,
    max: usize,
}

impl LineBuf {
    /// A framer for lines of at most `max` bytes (not counting the newline).
    pub fn new(max: usize) -> Self {
        LineBuf {
            partial: Vec::new(),
            max,
        }
    }

    /// Whether bytes of an unfinished line are held.
    pub fn has_partial(&self) -> bool {
        !self.partial.is_empty()
    }

    /// Feeds `data`, calling `on_line` for each complete line (without its `\n` or a trailing
    /// `\r`; empty lines are skipped). Stops at the first line over the limit.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        mut on_line: impl FnMut(&mut [u8]),
    ) -> Result<(), TooLong> {
        while let Some(nl) = memchr(b'\n', data) {
            let (head, rest) = data.split_at(nl);
            data = &rest[1..];
            if self.partial.is_empty() {
                if head.len() > self.max + 1 {
                    return Err(TooLong { max: self.max });
                }
                // The common case: a whole line inside one read. Copy it once so the parser
                // can work in place.
                let mut line = head.to_vec();
                emit(&mut line, self.max, &mut on_line)?;
            } else {
                if self.partial.len() + head.len() > self.max + 1 {
                    self.partial = Vec::new();
                    return Err(TooLong { max: self.max });
                }
                self.partial.extend_from_slice(head);
                let mut line = std::mem::take(&mut self.partial);
                emit(&mut line, self.max, &mut on_line)?;
            }
        }
        if self.partial.len() + data.len() > self.max + 1 {
            self.partial = Vec::new();
            return Err(TooLong { max: self.max });
        }
        self.partial.extend_from_slice(data);
        Ok(())
    }
}

fn emit(
    line: &mut Vec<u8>,
    max: usize,
    on_line: &mut impl FnMut(&mut [u8]),
) -> Result<(), TooLong> {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    if line.len() > max {
        return Err(TooLong { max });
    }
    if line.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(());
    }
    on_line(line);
    Ok(())
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(lb: &mut LineBuf, data: &[u8]) -> Result<Vec<String>, TooLong> {
        let mut out = Vec::new();
        lb.feed(data, |l| out.push(String::from_utf8_lossy(l).into_owned()))?;
        Ok(out)
    }

    #[test]
    fn splits_across_reads() {
        let mut lb = LineBuf::new(100);
        assert_eq!(collect(&mut lb, b"ab").unwrap(), Vec::<String>::new());
        assert!(lb.has_partial());
        assert_eq!(
            collect(&mut lb, b"c\r\nde\n\n  \nf").unwrap(),
            vec!["abc", "de"]
        );
        assert_eq!(collect(&mut lb, b"\n").unwrap(), vec!["f"]);
        assert!(!lb.has_partial());
    }

    #[test]
    fn bounds_line_length() {
        let mut lb = LineBuf::new(4);
        assert_eq!(collect(&mut lb, b"1234\n").unwrap(), vec!["1234"]);
        assert!(collect(&mut lb, b"12345\n").is_err());
        let mut lb = LineBuf::new(4);
        assert!(collect(&mut lb, b"123").is_ok());
        assert!(collect(&mut lb, b"456").is_err());
        assert!(!lb.has_partial());
    }
}
