//! Buffering helpers: the network splits bytes anywhere, protocols think in
//! lines and records.

/// A line was longer than the buffer allows. The rest of it, up to the next
/// line feed, is discarded so that the stream resynchronises on the next line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTooLong;

/// Splits a byte stream into lines ended by CRLF or a bare LF (spam software
/// often sends bare LF; real MTAs tolerate it).
///
/// Memory is bounded: at most `max_line` bytes of an unfinished line are kept.
#[derive(Debug, Clone)]
pub struct LineBuffer {
    buf: Vec<u8>,
    /// Where unread bytes start; consumed bytes are dropped lazily so that a
    /// pipelined batch of many lines is not shifted once per line.
    start: usize,
    max_line: usize,
    /// Inside an over-long line: drop bytes until the next LF.
    discarding: bool,
    /// Unread bytes already searched and known to hold no LF, so a line
    /// that arrives a byte at a time is not searched again from its start.
    scanned: usize,
}

impl LineBuffer {
    /// A buffer for lines of at most `max_line` bytes, terminator included.
    pub fn new(max_line: usize) -> Self {
        LineBuffer {
            buf: Vec::new(),
            start: 0,
            max_line: max_line.max(2),
            discarding: false,
            scanned: 0,
        }
    }

    /// Append bytes received from the client.
    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete line without its terminator, `Err` for a line that
    /// was too long, or `None` until more bytes arrive.
    pub fn next_line(&mut self) -> Option<Result<Vec<u8>, LineTooLong>> {
        loop {
            let unread = &self.buf[self.start..];
            let found = unread[self.scanned..].iter().position(|&b| b == b'\n');
            match found.map(|i| i + self.scanned) {
                Some(i) => {
                    self.scanned = 0;
                    let line_end = self.start + i;
                    let was_discarding = std::mem::replace(&mut self.discarding, false);
                    if was_discarding {
                        // The tail of a line already reported as too long.
                        self.start = line_end + 1;
                        continue;
                    }
                    let line = &self.buf[self.start..line_end];
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    let result = if i + 1 > self.max_line {
                        Err(LineTooLong)
                    } else {
                        Ok(line.to_vec())
                    };
                    self.start = line_end + 1;
                    self.compact();
                    return Some(result);
                }
                None if unread.len() >= self.max_line => {
                    // Report the long line once, then drop it to its end.
                    let report = !self.discarding;
                    self.discarding = true;
                    self.buf.clear();
                    self.start = 0;
                    self.scanned = 0;
                    return report.then_some(Err(LineTooLong));
                }
                None => {
                    self.scanned = unread.len();
                    return None;
                }
            }
        }
    }

    /// Take every buffered byte that was not returned as a line.
    pub fn take_rest(&mut self) -> Vec<u8> {
        let rest = self.buf.split_off(self.start);
        self.buf.clear();
        self.start = 0;
        self.scanned = 0;
        rest
    }

    /// Bytes buffered and not yet returned.
    pub fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Whether no bytes are buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn compact(&mut self) {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 4096 && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }
}

/// Where `needle` first occurs in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(buf: &mut LineBuffer) -> Vec<Result<Vec<u8>, LineTooLong>> {
        std::iter::from_fn(|| buf.next_line()).collect()
    }

    #[test]
    fn splits_crlf_and_bare_lf_across_pushes() {
        let mut buf = LineBuffer::new(64);
        buf.push(b"HELO a\r");
        assert!(buf.next_line().is_none());
        buf.push(b"\nNOOP\nQU");
        assert_eq!(
            lines(&mut buf),
            vec![Ok(b"HELO a".to_vec()), Ok(b"NOOP".to_vec())]
        );
        buf.push(b"IT\r\n");
        assert_eq!(lines(&mut buf), vec![Ok(b"QUIT".to_vec())]);
        assert!(buf.is_empty());
    }

    #[test]
    fn long_line_is_reported_once_and_skipped() {
        let mut buf = LineBuffer::new(8);
        buf.push(b"0123456789");
        assert_eq!(lines(&mut buf), vec![Err(LineTooLong)]);
        buf.push(b"abcdefghij");
        assert!(lines(&mut buf).is_empty());
        buf.push(b"xyz\r\nNOOP\r\n");
        assert_eq!(lines(&mut buf), vec![Ok(b"NOOP".to_vec())]);
    }

    #[test]
    fn long_line_ending_in_the_same_push_is_an_error() {
        let mut buf = LineBuffer::new(8);
        buf.push(b"0123456789\nok\n");
        assert_eq!(lines(&mut buf), vec![Err(LineTooLong), Ok(b"ok".to_vec())]);
    }

    #[test]
    fn take_rest_returns_unread_bytes() {
        let mut buf = LineBuffer::new(64);
        buf.push(b"DATA\r\nSubject: x\r\n");
        assert_eq!(buf.next_line(), Some(Ok(b"DATA".to_vec())));
        assert_eq!(buf.take_rest(), b"Subject: x\r\n");
        assert!(buf.is_empty());
    }

    #[test]
    fn find_locates_needles() {
        assert_eq!(find(b"abc\r\n.\r\n", b"\r\n.\r\n"), Some(3));
        assert_eq!(find(b"abc", b"zz"), None);
    }
}
