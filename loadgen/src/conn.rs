//! A client socket with a reused read buffer, where every read and write has
//! the `--timeout` deadline.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;

/// How an operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fail {
    /// Connection refused (nothing listening, or a listener cap).
    Refused,
    Timeout,
    /// The peer closed before the expected bytes.
    Closed,
    /// Connection reset by the peer.
    Reset,
    /// Accepted, then closed or reset before a single byte came back: what
    /// a listener cap (spampot's `max_sessions_per_ip`) looks like.
    Dropped,
    /// Any other socket error.
    Io,
    /// The bytes arrived but were not the expected ones.
    Unexpected,
}

impl Fail {
    pub const ALL: [Fail; 7] = [
        Fail::Refused,
        Fail::Timeout,
        Fail::Closed,
        Fail::Reset,
        Fail::Dropped,
        Fail::Io,
        Fail::Unexpected,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Fail::Refused => "refused",
            Fail::Timeout => "timeout",
            Fail::Closed => "closed",
            Fail::Reset => "reset",
            Fail::Dropped => "dropped",
            Fail::Io => "io",
            Fail::Unexpected => "unexpected",
        }
    }

    fn from_io(e: &io::Error) -> Fail {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => Fail::Refused,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => Fail::Reset,
            io::ErrorKind::TimedOut => Fail::Timeout,
            io::ErrorKind::UnexpectedEof => Fail::Closed,
            _ => Fail::Io,
        }
    }
}

/// Reply lines are kept up to this length for error samples.
const SAMPLE_MAX: usize = 120;
/// A reply (SMTP reply or HTTP head) longer than this is an error.
const READ_MAX: usize = 1 << 20;

/// Buffers a worker reuses from session to session.
#[derive(Default)]
pub struct Buffers {
    pub rbuf: Vec<u8>,
    pub wbuf: Vec<u8>,
    pub msg: Vec<u8>,
    pub sample: Vec<u8>,
    pub s1: String,
    pub s2: String,
    pub s3: String,
}

impl Buffers {
    pub fn new() -> Self {
        Buffers {
            rbuf: vec![0; 16 * 1024],
            wbuf: Vec::with_capacity(16 * 1024),
            msg: Vec::with_capacity(16 * 1024),
            ..Default::default()
        }
    }
}

/// An SMTP reply: the code of its last line (0 when malformed).
#[derive(Clone, Copy, Debug)]
pub struct Reply {
    pub code: u16,
    /// Whether a line carried the keyword asked for (e.g. PIPELINING).
    pub has_keyword: bool,
}

/// An HTTP response head.
#[derive(Clone, Copy, Debug)]
pub struct Head {
    /// 0 when the status line is not `HTTP/x.y NNN`.
    pub status: u16,
    pub content_length: Option<usize>,
}

pub struct Conn<'a> {
    stream: TcpStream,
    rbuf: &'a mut Vec<u8>,
    /// First line of the last reply, for error samples.
    pub sample: &'a mut Vec<u8>,
    start: usize,
    end: usize,
    timeout: Duration,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Connects with the timeout, from `source` when given.
pub async fn connect(
    addr: SocketAddr,
    source: Option<SocketAddr>,
    limit: Duration,
) -> Result<TcpStream, Fail> {
    let fut = async {
        match source {
            None => TcpStream::connect(addr).await,
            Some(src) => {
                let sock = if addr.is_ipv4() {
                    TcpSocket::new_v4()?
                } else {
                    TcpSocket::new_v6()?
                };
                sock.set_reuseaddr(true)?;
                sock.bind(src)?;
                sock.connect(addr).await
            }
        }
    };
    match timeout(limit, fut).await {
        Err(_) => Err(Fail::Timeout),
        Ok(Err(e)) => Err(Fail::from_io(&e)),
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
    }
}

impl<'a> Conn<'a> {
    pub fn new(
        stream: TcpStream,
        rbuf: &'a mut Vec<u8>,
        sample: &'a mut Vec<u8>,
        timeout: Duration,
    ) -> Self {
        if rbuf.len() < 4096 {
            rbuf.resize(16 * 1024, 0);
        }
        sample.clear();
        Conn {
            stream,
            rbuf,
            sample,
            start: 0,
            end: 0,
            timeout,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    pub fn buffered(&self) -> &[u8] {
        &self.rbuf[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads more bytes into the buffer; `Closed` at end of stream.
    async fn fill(&mut self) -> Result<(), Fail> {
        if self.end == self.rbuf.len() {
            if self.start > 0 {
                self.rbuf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.rbuf.len() >= READ_MAX {
                return Err(Fail::Unexpected);
            } else {
                let n = self.rbuf.len() * 2;
                self.rbuf.resize(n, 0);
            }
        }
        let end = self.end;
        match timeout(self.timeout, self.stream.read(&mut self.rbuf[end..])).await {
            Err(_) => Err(Fail::Timeout),
            Ok(Err(e)) => Err(Fail::from_io(&e)),
            Ok(Ok(0)) => Err(Fail::Closed),
            Ok(Ok(n)) => {
                self.end += n;
                self.bytes_in += n as u64;
                Ok(())
            }
        }
    }

    pub async fn write_all(&mut self, data: &[u8]) -> Result<(), Fail> {
        match timeout(self.timeout, self.stream.write_all(data)).await {
            Err(_) => Err(Fail::Timeout),
            Ok(Err(e)) => Err(Fail::from_io(&e)),
            Ok(Ok(())) => {
                self.bytes_out += data.len() as u64;
                Ok(())
            }
        }
    }

    /// Half-closes the sending side.
    pub async fn shutdown_write(&mut self) -> Result<(), Fail> {
        match timeout(self.timeout, self.stream.shutdown()).await {
            Err(_) => Err(Fail::Timeout),
            Ok(Err(e)) => Err(Fail::from_io(&e)),
            Ok(Ok(())) => Ok(()),
        }
    }

    fn keep_sample(&mut self, from: usize, to: usize) {
        let line = &self.rbuf[from..to];
        let line = &line[..line.len().min(SAMPLE_MAX)];
        self.sample.clear();
        self.sample.extend_from_slice(line.trim_ascii_end());
    }

    /// Reads one line; returns its (start, end) in the buffer, CRLF/LF
    /// excluded, already consumed (valid until the next read).
    async fn line(&mut self) -> Result<(usize, usize), Fail> {
        let mut scanned = 0;
        loop {
            let buf = &self.rbuf[self.start + scanned..self.end];
            if let Some(i) = buf.iter().position(|&b| b == b'\n') {
                let s = self.start;
                let nl = self.start + scanned + i;
                let mut e = nl;
                if e > s && self.rbuf[e - 1] == b'\r' {
                    e -= 1;
                }
                // Consumed; the bytes stay in place until the next read.
                self.start = nl + 1;
                return Ok((s, e));
            }
            scanned = self.end - self.start;
            if self.end == self.rbuf.len() && self.start > 0 {
                // Make room without losing the partial line.
                self.rbuf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            self.fill().await?;
        }
    }

    /// Reads an SMTP reply (multi-line `NNN-` ... `NNN `). `keyword` is
    /// searched (case-insensitively) in the text of each line.
    pub async fn smtp_reply(&mut self, keyword: Option<&[u8]>) -> Result<Reply, Fail> {
        let mut has_keyword = false;
        let mut first = true;
        loop {
            let (s, e) = self.line().await?;
            if first {
                self.keep_sample(s, e);
                first = false;
            }
            let line = &self.rbuf[s..e];
            if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
                self.keep_sample(s, e);
                return Ok(Reply {
                    code: 0,
                    has_keyword,
                });
            }
            if let Some(k) = keyword
                && line.len() > 4
                && line[4..].len() >= k.len()
                && line[4..]
                    .windows(k.len())
                    .any(|w| w.eq_ignore_ascii_case(k))
            {
                has_keyword = true;
            }
            if line.get(3) != Some(&b'-') {
                let code = (line[0] - b'0') as u16 * 100
                    + (line[1] - b'0') as u16 * 10
                    + (line[2] - b'0') as u16;
                return Ok(Reply { code, has_keyword });
            }
        }
    }

    /// Reads an HTTP response head, up to and including the empty line.
    /// Bytes after it stay buffered (a spliced SMTP banner, a body).
    pub async fn http_head(&mut self) -> Result<Head, Fail> {
        let (s, e) = self.line().await?;
        self.keep_sample(s, e);
        let status_line = &self.rbuf[s..e];
        let status = if status_line.starts_with(b"HTTP/") {
            status_line
                .split(|&b| b == b' ')
                .nth(1)
                .and_then(|c| std::str::from_utf8(c).ok())
                .and_then(|c| c.parse::<u16>().ok())
                .unwrap_or(0)
        } else {
            0
        };
        let mut content_length = None;
        loop {
            let (s, e) = self.line().await?;
            if s == e {
                return Ok(Head {
                    status,
                    content_length,
                });
            }
            let h = &self.rbuf[s..e];
            if h.len() > 15 && h[..15].eq_ignore_ascii_case(b"content-length:") {
                content_length = std::str::from_utf8(&h[15..])
                    .ok()
                    .and_then(|v| v.trim().parse().ok());
            }
        }
    }

    /// Reads exactly `n` bytes; returns their (start, end) in the buffer,
    /// already consumed.
    pub async fn exact(&mut self, n: usize) -> Result<&[u8], Fail> {
        while self.end - self.start < n {
            if self.rbuf.len() - self.start < n {
                self.rbuf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
                if self.rbuf.len() < n {
                    self.rbuf.resize(n, 0);
                }
            }
            self.fill().await?;
        }
        let s = self.start;
        self.start += n;
        let out = &self.rbuf[s..s + n];
        Ok(out)
    }

    /// Skips `n` bytes (an HTTP body); returns whether `needle` was in them.
    pub async fn skip(&mut self, mut n: usize, needle: &[u8]) -> Result<bool, Fail> {
        let mut finder = Finder::new(needle);
        loop {
            let have = (self.end - self.start).min(n);
            finder.feed(&self.buffered()[..have]);
            self.consume(have);
            n -= have;
            if n == 0 {
                return Ok(finder.found);
            }
            self.fill().await?;
        }
    }

    /// Reads until the peer closes (a reset counts as closed); returns the
    /// bytes that arrived, buffered ones included, and whether `needle` was
    /// in them.
    pub async fn until_eof(&mut self, needle: &[u8]) -> Result<(u64, bool), Fail> {
        let mut total = 0u64;
        let mut finder = Finder::new(needle);
        loop {
            let have = self.end - self.start;
            if have > 0 && self.sample.is_empty() {
                let (s, e) = (self.start, self.start + have.min(SAMPLE_MAX));
                self.keep_sample(s, e);
            }
            finder.feed(self.buffered());
            total += have as u64;
            self.consume(have);
            match self.fill().await {
                Ok(()) => {}
                Err(Fail::Closed | Fail::Reset) => return Ok((total, finder.found)),
                Err(e) => return Err(e),
            }
        }
    }

    pub fn sample_text(&self) -> String {
        String::from_utf8_lossy(self.sample).into_owned()
    }
}

/// Finds a needle in a stream of chunks, across chunk boundaries.
struct Finder<'n> {
    needle: &'n [u8],
    carry: Vec<u8>,
    found: bool,
}

impl<'n> Finder<'n> {
    fn new(needle: &'n [u8]) -> Self {
        Finder {
            needle,
            carry: Vec::new(),
            found: needle.is_empty(),
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        if self.found || chunk.is_empty() {
            return;
        }
        let n = self.needle.len();
        let k = n - 1;
        let mut joint = std::mem::take(&mut self.carry);
        joint.extend_from_slice(&chunk[..k.min(chunk.len())]);
        if joint.windows(n).any(|w| w == self.needle) || chunk.windows(n).any(|w| w == self.needle)
        {
            self.found = true;
            return;
        }
        // keep the last k bytes seen
        joint.truncate(joint.len() - k.min(chunk.len()));
        joint.extend_from_slice(chunk);
        let cut = joint.len().saturating_sub(k);
        joint.drain(..cut);
        self.carry = joint;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn pair(server_bytes: &'static [u8]) -> TcpStream {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            // dribble the bytes to exercise partial reads
            for chunk in server_bytes.chunks(3) {
                s.write_all(chunk).await.unwrap();
                s.flush().await.unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        TcpStream::connect(a).await.unwrap()
    }

    #[test]
    fn finder_crosses_chunks() {
        let mut f = Finder::new(b"REMOTE_ADDR");
        for c in [&b"xx REMO"[..], b"T", b"", b"E_A", b"DDR = 1"] {
            f.feed(c);
        }
        assert!(f.found);
        let mut f = Finder::new(b"abc");
        for c in [&b"ab"[..], b"xabx", b"cab"] {
            f.feed(c);
        }
        assert!(!f.found);
        f.feed(b"c");
        assert!(f.found);
    }

    #[tokio::test]
    async fn reads_replies_heads_and_bytes() {
        let s = pair(
            b"HTTP/1.0 200 Connection established\r\nProxy-Agent: x\r\n\r\n\
              220 mx ESMTP\r\n250-mx\r\n250-SIZE 1\r\n250-pipelining\r\n250 8BITMIME\r\n\
              \x05\x00tail",
        )
        .await;
        let mut rbuf = vec![0; 8];
        let mut sample = Vec::new();
        let mut c = Conn::new(s, &mut rbuf, &mut sample, Duration::from_secs(5));
        let h = c.http_head().await.unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(c.smtp_reply(None).await.unwrap().code, 220);
        assert_eq!(c.sample_text(), "220 mx ESMTP");
        let r = c.smtp_reply(Some(b"PIPELINING")).await.unwrap();
        assert_eq!((r.code, r.has_keyword), (250, true));
        assert_eq!(c.exact(2).await.unwrap(), [5, 0]);
        let (n, found) = c.until_eof(b"ai").await.unwrap();
        assert_eq!((n, found), (4, true));
    }
}
