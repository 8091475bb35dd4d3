//! Mutation fuzzing, natively: known conversations, mutated the way hostile
//! or broken clients mangle them, are played against an emulator whole and
//! cut into random pieces.
//!
//! Two properties are checked for every case:
//!
//! - **No panic** in `start`, `on_open`, `on_data`, `on_timeout` or
//!   `on_close`. In the sensor a panic traps the sandbox: the session is
//!   lost and the abuser learns the port is not what it claims.
//! - **TCP does not change the answer.** The same bytes cut into different
//!   pieces (as segmentation, a slow client or a tarpit would cut them)
//!   must get the same bytes back, the same events and artifacts, and the
//!   same close or splice target. "The same bytes" are those the session
//!   took before it closed or spliced: a plugin that refuses garbage at its
//!   first byte, as a real server does, answers with what it has.
//!
//! Cases are drawn from a seed, so a failure names what reproduces it.
//! `SPAMPOT_FUZZ_CASES=N` runs more cases (a long run by hand) and
//! `SPAMPOT_FUZZ_SEED=S` another seed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use super::Harness;
use crate::{Artifact, Config, ConnInfo, Emulator, Event, Target};

/// Cases per run unless `cases` or `SPAMPOT_FUZZ_CASES` says otherwise:
/// enough to reach the deep states of the SDK's plugins (a stored message,
/// a splice) many times over, and a fraction of a second in a debug build.
const DEFAULT_CASES: u32 = 400;

/// Mutated inputs are cut back to this size, so a case stays cheap; the
/// emulators' own limits are tested with larger inputs by their tests.
const MAX_INPUT: usize = 64 << 10;

/// The clock both plays of a case see, so time-stamped answers compare.
const FIXED_CLOCK: Duration = Duration::from_secs(1_795_000_000);

/// Bytes that mean something to line- and length-based protocols.
const INTERESTING_BYTES: &[u8] = b"\0\x01\x04\x05\x7f\x80\xff\r\n. :<>@/0";

/// Fragments a mutation inserts: line ends, the DATA terminator, commands
/// out of place, format strings, a long line.
const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b"\r\n.\r\n",
    b"\r\n\r\n",
    b"DATA\r\n",
    b"RCPT TO:<a@b.example>\r\n",
    b"MAIL FROM:<>\r\n",
    b"QUIT\r\n",
    b"RSET\r\n",
    b"AUTH LOGIN\r\n",
    b"CONNECT mx.example.com:25 HTTP/1.0\r\n\r\n",
    b"Content-Length: 99999999\r\n",
    b"%s%n%x",
    b"\xef\xbb\xbf",
    b"\x05\x01\x00",
    b"\x04\x01\x00\x19\x00\x00\x00\x01",
];

/// What a run found, so a test can check the cases went deep, not only
/// that nothing panicked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FuzzSummary {
    /// Cases played.
    pub cases: u32,
    /// Cases whose session asked to close.
    pub closed: u32,
    /// Cases whose session asked to splice.
    pub spliced: u32,
    /// Cases that stored at least one artifact.
    pub stored: u32,
}

/// A fuzz run: a corpus of conversations (bytes from the client, in
/// order), the connection and config each session starts with, how many
/// cases and which seed.
///
/// ```
/// # use spampot_sdk::{Config, ConnInfo, Context, Emulator, PluginInfo};
/// # struct Echo;
/// # impl Emulator for Echo {
/// #     fn describe() -> PluginInfo { PluginInfo::new("echo", "0") }
/// #     fn start(_: &ConnInfo, _: &Config) -> Self { Echo }
/// #     fn on_data(&mut self, d: &[u8], cx: &mut Context) { cx.send(d) }
/// # }
/// use spampot_sdk::testing::Fuzz;
/// let summary = Fuzz::new(&[b"ping\r\n", b"pong"]).cases(50).run::<Echo>();
/// assert_eq!(summary.cases, 50);
/// ```
pub struct Fuzz<'a> {
    corpus: Vec<&'a [u8]>,
    /// Fragments inserted out of place: the built-in ones and the plugin's.
    tokens: Vec<&'a [u8]>,
    conn: ConnInfo,
    config: Config,
    cases: u32,
    seed: u64,
}

impl<'a> Fuzz<'a> {
    /// Fuzz from these conversations (at least one).
    pub fn new(corpus: &[&'a [u8]]) -> Self {
        assert!(!corpus.is_empty(), "a fuzz corpus needs a conversation");
        Fuzz {
            corpus: corpus.to_vec(),
            tokens: TOKENS.to_vec(),
            conn: ConnInfo::test(0),
            config: Config::default(),
            cases: env_number("SPAMPOT_FUZZ_CASES").map_or(DEFAULT_CASES, |n| n as u32),
            seed: env_number("SPAMPOT_FUZZ_SEED").unwrap_or(0x5eed_5a11_2006_0007),
        }
    }

    /// Fragments of your protocol to insert out of place, beside the
    /// built-in ones (line ends, SMTP and HTTP commands, SOCKS headers):
    /// its commands, its length prefixes, its escape sequences.
    pub fn tokens(mut self, tokens: &[&'a [u8]]) -> Self {
        self.tokens.extend_from_slice(tokens);
        self
    }

    /// The connection each session starts with.
    pub fn conn(mut self, conn: ConnInfo) -> Self {
        self.conn = conn;
        self
    }

    /// The config each session starts with.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// How many cases, unless `SPAMPOT_FUZZ_CASES` is set.
    pub fn cases(mut self, cases: u32) -> Self {
        if std::env::var_os("SPAMPOT_FUZZ_CASES").is_none() {
            self.cases = cases;
        }
        self
    }

    /// Play every case against `E`; panics on the first case that breaks a
    /// property, naming the seed, the case, the input and its pieces.
    pub fn run<E: Emulator>(&self) -> FuzzSummary {
        let name = E::describe().name;
        let mut summary = FuzzSummary::default();
        for (case, fuzz_case) in (0u32..).zip(self.inputs()) {
            let input = &fuzz_case.input;
            let pieces: Vec<&[u8]> = fuzz_case.pieces().collect();
            let failure = |how: &str, what: String| -> ! {
                panic!(
                    "plugin {name}, fuzz case {case} (seed {seed:#x}) {how}: {what}\n\
                     input ({len} bytes): b\"{input}\"\n\
                     pieces: {sizes:?}\n\
                     reproduce: SPAMPOT_FUZZ_SEED={seed} and at least {cases} cases",
                    seed = self.seed,
                    len = input.len(),
                    input = input.escape_ascii(),
                    sizes = pieces.iter().map(|p| p.len()).collect::<Vec<_>>(),
                    cases = case + 1,
                )
            };
            let whole = catch_unwind(AssertUnwindSafe(|| {
                play::<E>(&self.conn, &self.config, &[input])
            }))
            .unwrap_or_else(|p| failure("panicked, fed in one piece", panic_text(&p)));
            let in_pieces = catch_unwind(AssertUnwindSafe(|| {
                play::<E>(&self.conn, &self.config, &pieces)
            }))
            .unwrap_or_else(|p| failure("panicked, fed in pieces", panic_text(&p)));
            // Compare with one piece of the bytes the session took before it
            // closed or spliced: a plugin may answer before the client is
            // done (garbage, as a real server would), and then it answers
            // what it has.
            let taken = &input[..in_pieces.fed];
            let same_bytes = if taken.len() == input.len() {
                whole
            } else {
                catch_unwind(AssertUnwindSafe(|| {
                    play::<E>(&self.conn, &self.config, &[taken])
                }))
                .unwrap_or_else(|p| failure("panicked, fed in one shorter piece", panic_text(&p)))
            };
            if let Some(difference) = same_bytes.difference(&in_pieces) {
                failure(
                    &format!(
                        "answered the same {} bytes differently in one piece and in pieces",
                        taken.len()
                    ),
                    difference,
                );
            }
            summary.cases += 1;
            summary.closed += u32::from(in_pieces.closed);
            summary.spliced += u32::from(in_pieces.splice.is_some());
            summary.stored += u32::from(!in_pieces.artifacts.is_empty());
        }
        summary
    }
}

impl Fuzz<'_> {
    /// The cases `run` plays, for a harness of another kind (the sensor's
    /// tests play them through the compiled components).
    pub fn inputs(&self) -> impl Iterator<Item = FuzzCase> + '_ {
        (0..self.cases).map(|case| {
            let mut rng = Rng::new(self.seed ^ u64::from(case).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let input = mutate(&self.corpus, &self.tokens, &mut rng);
            let cuts = cut(input.len(), &mut rng);
            FuzzCase { input, cuts }
        })
    }
}

/// One mutated conversation and where it is cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuzzCase {
    /// The bytes from the client.
    pub input: Vec<u8>,
    /// Consecutive ranges of `input` that together cover it.
    pub cuts: Vec<std::ops::Range<usize>>,
}

impl FuzzCase {
    /// The pieces, in order.
    pub fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        self.cuts.iter().map(|r| &self.input[r.clone()])
    }
}

/// What one play of a case produced.
struct Outcome {
    /// Input bytes given to the session before it closed or spliced.
    fed: usize,
    sent: Vec<u8>,
    closed: bool,
    /// Only the target: the bytes a splice carries on depend on where the
    /// input was cut.
    splice: Option<Target>,
    events: Vec<Event>,
    artifacts: Vec<Artifact>,
}

impl Outcome {
    fn difference(&self, other: &Outcome) -> Option<String> {
        if self.sent != other.sent {
            let at = self
                .sent
                .iter()
                .zip(&other.sent)
                .position(|(a, b)| a != b)
                .unwrap_or(self.sent.len().min(other.sent.len()));
            let from = at.saturating_sub(40);
            return Some(format!(
                "sent bytes differ at byte {at}: one piece b\"{}\", pieces b\"{}\"",
                self.sent[from..(at + 80).min(self.sent.len())].escape_ascii(),
                other.sent[from..(at + 80).min(other.sent.len())].escape_ascii(),
            ));
        }
        if self.closed != other.closed {
            return Some(format!(
                "closed in one piece: {}, in pieces: {}",
                self.closed, other.closed
            ));
        }
        if self.splice != other.splice {
            return Some(format!(
                "splice in one piece: {:?}, in pieces: {:?}",
                self.splice, other.splice
            ));
        }
        if let Some(i) = (0..self.events.len().max(other.events.len()))
            .find(|&i| self.events.get(i) != other.events.get(i))
        {
            return Some(format!(
                "event {i} differs: one piece {:?}, pieces {:?}",
                self.events.get(i),
                other.events.get(i)
            ));
        }
        if self.artifacts != other.artifacts {
            return Some(format!(
                "artifacts differ: one piece {} ({:?}), pieces {} ({:?})",
                self.artifacts.len(),
                self.artifacts
                    .iter()
                    .map(|a| a.data.len())
                    .collect::<Vec<_>>(),
                other.artifacts.len(),
                other
                    .artifacts
                    .iter()
                    .map(|a| a.data.len())
                    .collect::<Vec<_>>(),
            ));
        }
        None
    }
}

/// One session as the host would run it: open, the pieces until a close or
/// a splice, a timeout if it is still open, close.
fn play<E: Emulator>(conn: &ConnInfo, config: &Config, pieces: &[&[u8]]) -> Outcome {
    let mut h = Harness::<E>::with_config(conn.clone(), config.clone());
    h.recorder.clock = Some(FIXED_CLOCK);
    h.open();
    let mut fed = 0;
    for piece in pieces {
        if h.closed() || h.spliced().is_some() {
            break;
        }
        h.feed(piece);
        fed += piece.len();
    }
    if !h.closed() && h.spliced().is_none() {
        h.timeout();
    }
    h.close();
    Outcome {
        fed,
        sent: h.sent().to_vec(),
        closed: h.closed(),
        splice: h.spliced().map(|s| s.target.clone()),
        events: std::mem::take(&mut h.recorder.events),
        artifacts: std::mem::take(&mut h.recorder.artifacts),
    }
}

/// A corpus conversation with one to six mutations.
fn mutate(corpus: &[&[u8]], tokens: &[&[u8]], rng: &mut Rng) -> Vec<u8> {
    let mut input = corpus[rng.below(corpus.len())].to_vec();
    for _ in 0..1 + rng.below(6) {
        let len = input.len();
        let at = rng.below(len + 1);
        match rng.below(9) {
            // Flip a bit.
            0 if len > 0 => input[at.min(len - 1)] ^= 1 << rng.below(8),
            // A byte with a meaning.
            1 if len > 0 => {
                input[at.min(len - 1)] = INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())]
            }
            // Random bytes.
            2 => {
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                input.splice(at..at, bytes);
            }
            // A token out of place.
            3 => {
                let token = tokens[rng.below(tokens.len())];
                input.splice(at..at, token.iter().copied());
            }
            // Delete a range.
            4 => {
                let end = (at + 1 + rng.below(32)).min(len);
                input.drain(at.min(end)..end);
            }
            // Repeat a range: floods, pipelined duplicates.
            5 => {
                let end = (at + 1 + rng.below(64)).min(len);
                let range = input[at.min(end)..end].to_vec();
                for _ in 0..1 + rng.below(40) {
                    input.splice(at..at, range.iter().copied());
                }
            }
            // Cut it short.
            6 => input.truncate(at),
            // A long line.
            7 => {
                let n = 1 + rng.below(5000);
                input.splice(at..at, std::iter::repeat_n(b'A', n));
            }
            // Another conversation's tail.
            _ => {
                let other = corpus[rng.below(corpus.len())];
                let from = rng.below(other.len() + 1);
                input.truncate(at);
                input.extend_from_slice(&other[from..]);
            }
        }
        input.truncate(MAX_INPUT);
    }
    input
}

/// Cut `len` bytes into pieces, mostly small ones (byte by byte now and
/// then), as a slow or a deliberately fragmenting client would send them.
fn cut(len: usize, rng: &mut Rng) -> Vec<std::ops::Range<usize>> {
    let largest = match rng.below(4) {
        0 => 1,
        1 => 8,
        2 => 64,
        _ => 1500,
    };
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < len {
        let end = (start + 1 + rng.below(largest)).min(len);
        pieces.push(start..end);
        start = end;
    }
    pieces
}

/// xorshift64*: small, fast and the same everywhere, so a seed reproduces.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform enough in `0..n`; 0 when `n` is 0.
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim();
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={text:?} is not a number")))
}

fn panic_text(payload: &Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a non-text panic)".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Context, PluginInfo};

    /// Answers each line with its length; a line of "boom" panics, as a bug
    /// would.
    struct Lines {
        buf: Vec<u8>,
    }

    impl Emulator for Lines {
        fn describe() -> PluginInfo {
            PluginInfo::new("lines", "0")
        }
        fn start(_: &ConnInfo, _: &Config) -> Self {
            Lines { buf: Vec::new() }
        }
        fn on_data(&mut self, data: &[u8], cx: &mut Context) {
            self.buf.extend_from_slice(data);
            while let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                assert!(!line.starts_with(b"boom"), "boom");
                cx.send(format!("{}\r\n", line.len()).as_bytes());
            }
        }
    }

    /// Answers whatever each call brings: depends on how TCP cut it.
    struct PerCall;

    impl Emulator for PerCall {
        fn describe() -> PluginInfo {
            PluginInfo::new("per-call", "0")
        }
        fn start(_: &ConnInfo, _: &Config) -> Self {
            PerCall
        }
        fn on_data(&mut self, data: &[u8], cx: &mut Context) {
            cx.send(format!("{}\r\n", data.len()).as_bytes());
        }
    }

    #[test]
    fn a_line_protocol_holds_both_properties() {
        let summary = Fuzz::new(&[b"hello\r\nworld\r\n", b"a\nbb\nccc\n"])
            .cases(300)
            .run::<Lines>();
        assert!(summary.cases > 0);
    }

    #[test]
    fn a_panic_is_found_and_named() {
        let found = catch_unwind(|| {
            Fuzz::new(&[b"bo\r\n", b"om\r\n"])
                .cases(2000)
                .run::<Lines>();
        })
        .expect_err("mutations join \"bo\" and \"om\" into a line of boom");
        let text = panic_text(&found);
        assert!(text.contains("plugin lines, fuzz case"), "{text}");
        assert!(text.contains("panicked"), "{text}");
        assert!(text.contains("SPAMPOT_FUZZ_SEED="), "{text}");
    }

    #[test]
    fn a_plugins_own_tokens_reach_it() {
        let found = catch_unwind(|| {
            Fuzz::new(&[b"hello\n"])
                .tokens(&[b"boom\n"])
                .cases(2000)
                .run::<Lines>();
        })
        .expect_err("the token puts a line of boom in front of a line");
        assert!(panic_text(&found).contains("panicked"));
    }

    #[test]
    fn answers_that_depend_on_the_cuts_are_found() {
        let found = catch_unwind(|| {
            Fuzz::new(&[b"hello world, a longer line\r\n"])
                .cases(50)
                .run::<PerCall>();
        })
        .expect_err("PerCall answers each piece");
        let text = panic_text(&found);
        assert!(
            text.contains("differently in one piece and in pieces"),
            "{text}"
        );
        assert!(text.contains("sent bytes differ"), "{text}");
    }

    #[test]
    fn the_same_seed_makes_the_same_cases() {
        let corpus: &[&[u8]] = &[b"EHLO x\r\nMAIL FROM:<a@b>\r\n", b"GET / HTTP/1.0\r\n\r\n"];
        let cases = |seed: u64| -> Vec<(Vec<u8>, Vec<std::ops::Range<usize>>)> {
            let mut rng = Rng::new(seed);
            (0..50)
                .map(|_| {
                    let input = mutate(corpus, TOKENS, &mut rng);
                    let cuts = cut(input.len(), &mut rng);
                    (input, cuts)
                })
                .collect()
        };
        assert_eq!(cases(7), cases(7));
        assert_ne!(cases(7), cases(8));
        for (input, cuts) in cases(7) {
            assert!(input.len() <= MAX_INPUT);
            let joined: Vec<u8> = cuts
                .iter()
                .flat_map(|r| input[r.clone()].to_vec())
                .collect();
            assert_eq!(joined, input, "the pieces are the input, in order");
        }
    }
}
