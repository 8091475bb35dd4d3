//! The DATA phase: find the end-of-data line and undo dot-stuffing, in bulk.
//!
//! RFC 5321 §4.5.2: the message ends at a line holding only `.`; a line that
//! starts with `.` otherwise had one dot added by the client, which the
//! server removes. Spam software is sloppy, so a bare LF ends a line as well
//! as CRLF (`\n.\n`, `\r\n.\n` and `\n.\r\n` all end the message).
//!
//! The scanner only looks at bytes right after a line feed: everything else
//! is copied a whole run at a time, found with a word-at-a-time search for
//! `\n`. The only state carried across chunks is where we are in the line
//! (its start, a leading dot, a leading `.\r`), so the terminator is found
//! wherever the network split it.

/// Where the scanner stands in the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineState {
    /// At the start of a line (also right after `DATA`).
    Start,
    /// The line so far is `.`: the end of the data, or a stuffed dot.
    Dot,
    /// The line so far is `.\r`: the end of the data unless no LF follows.
    DotCr,
    /// Inside a line.
    Middle,
}

/// What [`DataReader::feed`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// The whole chunk was message data; send more.
    More,
    /// The end-of-data line ended after this many bytes of the chunk; the
    /// rest are commands.
    Done(usize),
}

/// Collects one message's content, bounded by a size cap.
#[derive(Debug)]
pub struct DataReader {
    state: LineState,
    body: Vec<u8>,
    /// Bytes of content seen after unstuffing, including any past the cap.
    size: u64,
    cap: usize,
    /// The content outgrew the cap: keep scanning for the end, store nothing.
    overflow: bool,
}

impl DataReader {
    /// A reader for a message of at most `cap` bytes; `hint` (the client's
    /// `SIZE=`) pre-sizes the buffer so a large message is not regrown often.
    pub fn new(cap: usize, hint: u64) -> Self {
        // Trust the hint only so far: it is the client's word.
        let reserve = (hint.min(cap as u64) as usize).min(1 << 20);
        DataReader {
            state: LineState::Start,
            body: Vec::with_capacity(reserve),
            size: 0,
            cap,
            overflow: false,
        }
    }

    /// Scan a chunk of the DATA stream.
    pub fn feed(&mut self, data: &[u8]) -> Feed {
        let mut i = 0;
        while i < data.len() {
            match self.state {
                LineState::Middle => {
                    // Copy up to the next line that starts with a dot (or
                    // the end of the chunk) in one go.
                    let run_start = i;
                    loop {
                        match find_lf(&data[i..]) {
                            None => {
                                i = data.len();
                                break;
                            }
                            Some(p) => {
                                i += p + 1;
                                if i == data.len() || data[i] == b'.' {
                                    self.state = LineState::Start;
                                    break;
                                }
                            }
                        }
                    }
                    self.append(&data[run_start..i]);
                }
                LineState::Start => {
                    if data[i] == b'.' {
                        // Either the terminator or a stuffed dot: dropped both ways.
                        self.state = LineState::Dot;
                        i += 1;
                    } else {
                        self.state = LineState::Middle;
                    }
                }
                LineState::Dot => match data[i] {
                    b'\n' => return self.finish(i + 1),
                    b'\r' => {
                        self.state = LineState::DotCr;
                        i += 1;
                    }
                    // A stuffed dot: the rest of the line is content.
                    _ => self.state = LineState::Middle,
                },
                LineState::DotCr => {
                    if data[i] == b'\n' {
                        return self.finish(i + 1);
                    }
                    // `.\r` then something else: a stuffed line beginning with CR.
                    self.append(b"\r");
                    self.state = LineState::Middle;
                }
            }
        }
        Feed::More
    }

    fn finish(&mut self, consumed: usize) -> Feed {
        self.state = LineState::Start;
        Feed::Done(consumed)
    }

    fn append(&mut self, bytes: &[u8]) {
        self.size += bytes.len() as u64;
        if self.overflow {
            return;
        }
        if self.body.len() + bytes.len() > self.cap {
            // Past the cap: free the memory now; the message will be refused.
            self.overflow = true;
            self.body = Vec::new();
        } else {
            self.body.extend_from_slice(bytes);
        }
    }

    /// Content bytes seen so far, after unstuffing (counting any past the cap).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether the content outgrew the cap.
    pub fn overflowed(&self) -> bool {
        self.overflow
    }

    /// The message content; empty after an overflow.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }
}

/// The first `\n` in `hay`: a word-at-a-time search (SWAR), since the
/// standard library's `memchr` is not public and this is the hot loop.
pub fn find_lf(hay: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const LF: u64 = LO * b'\n' as u64;
    let mut words = hay.chunks_exact(8);
    let mut base = 0;
    for word in &mut words {
        let w = u64::from_le_bytes(word.try_into().expect("8-byte chunk")) ^ LF;
        // A zero byte in `w` is a `\n` in the input (exact for the lowest one).
        let zero = w.wrapping_sub(LO) & !w & HI;
        if zero != 0 {
            return Some(base + (zero.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|p| base + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `chunks` and return (body, bytes left after the terminator).
    fn run(chunks: &[&[u8]], cap: usize) -> (Vec<u8>, Option<Vec<u8>>, bool) {
        let mut r = DataReader::new(cap, 0);
        for (n, chunk) in chunks.iter().enumerate() {
            if let Feed::Done(k) = r.feed(chunk) {
                let mut rest = chunk[k..].to_vec();
                for c in &chunks[n + 1..] {
                    rest.extend_from_slice(c);
                }
                let over = r.overflowed();
                return (r.into_body(), Some(rest), over);
            }
        }
        let over = r.overflowed();
        (r.into_body(), None, over)
    }

    #[test]
    fn find_lf_matches_position_everywhere() {
        for len in 0..40 {
            for at in 0..=len {
                let mut v = vec![b'a'; len];
                if at < len {
                    v[at] = b'\n';
                }
                // A byte just above '\n' must not fool the SWAR test.
                if at + 1 < len {
                    v[at + 1] = 0x0b;
                }
                let want = v.iter().position(|&b| b == b'\n');
                assert_eq!(find_lf(&v), want, "len {len} at {at}");
            }
        }
        assert_eq!(find_lf(&[0x8a, 0x0a]), Some(1));
        assert_eq!(find_lf(&[0x0b; 17]), None);
    }

    #[test]
    fn terminator_and_unstuffing() {
        let (body, rest, _) = run(&[b"a\r\n..b\r\n.\r\nQUIT\r\n"], 100);
        assert_eq!(body, b"a\r\n.b\r\n");
        assert_eq!(rest.unwrap(), b"QUIT\r\n");
    }

    #[test]
    fn empty_message() {
        let (body, rest, _) = run(&[b".\r\n"], 100);
        assert!(body.is_empty());
        assert_eq!(rest.unwrap(), b"");
    }

    #[test]
    fn bare_lf_forms() {
        for input in [&b"x\n.\n"[..], b"x\r\n.\n", b"x\n.\r\n"] {
            let (body, rest, _) = run(&[input], 100);
            assert_eq!(
                body,
                &input[..input.len() - 2 - (input.ends_with(b"\r\n") as usize)]
            );
            assert!(rest.is_some(), "{input:?}");
        }
    }

    #[test]
    fn dot_cr_without_lf_is_content() {
        let (body, rest, _) = run(&[b"a\r\n.\rb\r\n.\r\n"], 100);
        assert_eq!(body, b"a\r\n\rb\r\n");
        assert!(rest.is_some());
    }

    #[test]
    fn dots_inside_lines_are_kept() {
        let (body, _, _) = run(&[b"a.b\r\n.\r\n"], 100);
        assert_eq!(body, b"a.b\r\n");
    }

    #[test]
    fn every_split_and_byte_by_byte() {
        let msg: &[u8] = b"Subject: t\r\n\r\n..x\r\n.\r\n.y\n.\r\nNOOP\r\n";
        let want: &[u8] = b"Subject: t\r\n\r\n.x\r\n";
        for cut in 0..=msg.len() {
            let (body, rest, _) = run(&[&msg[..cut], &msg[cut..]], 100);
            assert_eq!(body, want, "cut {cut}");
            assert_eq!(rest.unwrap(), b".y\n.\r\nNOOP\r\n", "cut {cut}");
        }
        let bytes: Vec<&[u8]> = msg.chunks(1).collect();
        let (body, rest, _) = run(&bytes, 100);
        assert_eq!(body, want);
        assert_eq!(rest.unwrap(), b".y\n.\r\nNOOP\r\n");
    }

    #[test]
    fn cap_stops_storing_but_not_scanning() {
        let (body, rest, over) = run(&[b"0123456789\r\n", b"abc\r\n.\r\n"], 12);
        assert!(over);
        assert!(body.is_empty());
        assert!(rest.is_some());
        let (body, _, over) = run(&[b"0123456789\r\n.\r\n"], 12);
        assert!(!over, "exactly the cap is fine");
        assert_eq!(body.len(), 12);
    }
}
