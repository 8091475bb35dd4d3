//! Analysis of captured message bodies: text extraction (a small MIME
//! walker), the domains of URLs, a MinHash fingerprint for campaigns, and a
//! stopword/script language guess. Everything here is pure and bounded: a
//! body is processed once, with limits on nesting and size.

use std::collections::BTreeSet;

/// At most this many bytes of a body are analyzed (spam is small; a large
/// attachment would only cost time).
pub const MAX_ANALYZED_BYTES: usize = 1 << 20;
/// MIME nesting depth followed.
const MAX_DEPTH: usize = 8;

/// What a body's analysis keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyInfo {
    /// The decoded `Subject:` (first one), control characters removed.
    pub subject: String,
    /// Domains of the URLs in the decoded text and HTML parts, without a
    /// leading `www.`, lower case, each once.
    pub domains: BTreeSet<String>,
    /// MinHash of the normalized text ([`minhash`]).
    pub signature: Signature,
    /// [`signature_id`] of `signature`.
    pub fingerprint: u64,
    /// Language code ([`detect_language`]).
    pub language: &'static str,
}

/// Analyze one raw message (headers and body as received).
pub fn analyze(raw: &[u8]) -> BodyInfo {
    let raw = &raw[..raw.len().min(MAX_ANALYZED_BYTES)];
    let mut parts = Parts::default();
    let (head, body) = split_head(raw);
    let headers = parse_headers(head);
    let subject = header(&headers, "subject")
        .map(|s| clean_line(&decode_words(s)))
        .unwrap_or_default();
    walk(&headers, body, 0, &mut parts);
    let mut domains = BTreeSet::new();
    for t in parts.text.iter().chain(parts.html.iter()) {
        extract_domains(t, &mut domains);
    }
    let mut text = parts.text.join("\n");
    for h in &parts.html {
        text.push('\n');
        text.push_str(&strip_tags(h));
    }
    let fp_text = if text.trim().is_empty() {
        &subject
    } else {
        &text
    };
    let signature = minhash(fp_text);
    let fingerprint = signature_id(&signature);
    let language = detect_language(&format!("{subject}\n{text}"));
    BodyInfo {
        subject,
        domains,
        signature,
        fingerprint,
        language,
    }
}

#[derive(Default)]
struct Parts {
    text: Vec<String>,
    html: Vec<String>,
}

/// Split at the first empty line (CRLF or LF).
fn split_head(raw: &[u8]) -> (&[u8], &[u8]) {
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\n' {
            let rest = &raw[i + 1..];
            if rest.starts_with(b"\r\n") {
                return (&raw[..i + 1], &rest[2..]);
            }
            if rest.starts_with(b"\n") {
                return (&raw[..i + 1], &rest[1..]);
            }
        }
        i += 1;
    }
    (raw, &[])
}

/// Unfolded headers, names lower case.
fn parse_headers(head: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(head);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    out
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// A parameter of a structured header (`boundary`, `charset`).
fn param(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

fn walk(headers: &[(String, String)], body: &[u8], depth: usize, out: &mut Parts) {
    let ctype = header(headers, "content-type")
        .unwrap_or("text/plain")
        .to_ascii_lowercase();
    let cte = header(headers, "content-transfer-encoding")
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if ctype.starts_with("multipart/") {
        let Some(boundary) = header(headers, "content-type").and_then(|v| param(v, "boundary"))
        else {
            return;
        };
        if depth >= MAX_DEPTH || boundary.is_empty() {
            return;
        }
        for part in split_multipart(body, boundary.as_bytes()) {
            let (h, b) = split_head(part);
            walk(&parse_headers(h), b, depth + 1, out);
        }
        return;
    }
    if ctype.starts_with("message/rfc822") && depth < MAX_DEPTH {
        let (h, b) = split_head(body);
        walk(&parse_headers(h), b, depth + 1, out);
        return;
    }
    let is_html = ctype.starts_with("text/html");
    if !(ctype.starts_with("text/") || ctype.is_empty()) {
        return;
    }
    let decoded = match cte.as_str() {
        "base64" => base64_decode(body),
        "quoted-printable" => qp_decode(body),
        _ => body.to_vec(),
    };
    let charset = header(headers, "content-type").and_then(|v| param(v, "charset"));
    let text = decode_charset(&decoded, charset.as_deref());
    if is_html {
        out.html.push(text);
    } else {
        out.text.push(text);
    }
}

/// The parts between `--boundary` delimiter lines.
fn split_multipart<'a>(body: &'a [u8], boundary: &[u8]) -> Vec<&'a [u8]> {
    let mut delim = b"--".to_vec();
    delim.extend_from_slice(boundary);
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    let mut i = 0;
    while i < body.len() {
        let line_end = body[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(body.len(), |p| i + p + 1);
        let line = &body[i..line_end];
        if line.starts_with(&delim) {
            if let Some(s) = start {
                // The CRLF before the delimiter belongs to it.
                let mut end = i;
                if end > s && body[end - 1] == b'\n' {
                    end -= 1;
                    if end > s && body[end - 1] == b'\r' {
                        end -= 1;
                    }
                }
                parts.push(&body[s..end]);
            }
            if line[delim.len()..].starts_with(b"--") {
                return parts;
            }
            start = Some(line_end);
        }
        i = line_end;
    }
    if let Some(s) = start
        && s < body.len()
    {
        parts.push(&body[s..]);
    }
    parts
}

/// Base64, ignoring anything outside the alphabet (line breaks, junk).
pub fn base64_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &c in input {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// Quoted-printable (soft line breaks, `=XX`).
pub fn qp_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    while i < input.len() {
        let c = input[i];
        if c == b'=' {
            if input[i + 1..].starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            if input[i + 1..].starts_with(b"\n") {
                i += 2;
                continue;
            }
            if i + 2 < input.len()
                && let (Some(h), Some(l)) = (hex(input[i + 1]), hex(input[i + 2]))
            {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Quoted-printable encoding (UTF-8 bytes, soft breaks at 76 columns).
pub fn qp_encode(s: &str) -> String {
    let mut out = String::new();
    let mut line_len = 0;
    for b in s.bytes() {
        let piece = if b == b'\n' {
            line_len = 0;
            out.push_str("\r\n");
            continue;
        } else if (b.is_ascii_graphic() && b != b'=') || b == b' ' {
            (b as char).to_string()
        } else {
            format!("={b:02X}")
        };
        if line_len + piece.len() > 73 {
            out.push_str("=\r\n");
            line_len = 0;
        }
        line_len += piece.len();
        out.push_str(&piece);
    }
    out
}

/// Base64 with CRLF every 76 characters.
pub fn base64_encode(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for (i, chunk) in data.chunks(3).enumerate() {
        if i > 0 && i % 19 == 0 {
            out.push_str("\r\n");
        }
        let n = chunk.len();
        let v = u32::from(chunk[0]) << 16
            | u32::from(*chunk.get(1).unwrap_or(&0)) << 8
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for j in 0..4 {
            if j <= n {
                out.push(A[(v >> (18 - 6 * j) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Text in the charset a part or an encoded word declares (any label the
/// WHATWG Encoding Standard knows: GB2312 and GBK, Big5, KOI8-R,
/// windows-1251, ISO-2022-JP, Shift_JIS, EUC-KR, the ISO-8859 family…). No
/// label, or one nobody knows: UTF-8, bytes that are not valid UTF-8 replaced.
/// A declared charset is trusted, not sniffed: what spam says it is, it
/// usually is, and a wrong guess would garble correct text.
pub fn decode_charset(bytes: &[u8], charset: Option<&str>) -> String {
    let encoding = charset
        .and_then(|label| encoding_rs::Encoding::for_label(label.trim().as_bytes()))
        .unwrap_or(encoding_rs::UTF_8);
    encoding.decode_without_bom_handling(bytes).0.into_owned()
}

/// RFC 2047 encoded words (`=?charset?B|Q?...?=`, RFC 2231's
/// `charset*language` too), in their charset ([`decode_charset`]).
pub fn decode_words(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    let mut last_was_word = false;
    while let Some(start) = rest.find("=?") {
        let (before, after) = rest.split_at(start);
        let decoded = (|| {
            let inner = &after[2..];
            let q1 = inner.find('?')?;
            let enc = inner[q1 + 1..].chars().next()?;
            if inner.as_bytes().get(q1 + 2) != Some(&b'?') {
                return None;
            }
            let text_start = q1 + 3;
            let end = inner[text_start..].find("?=")? + text_start;
            let payload = &inner[text_start..end];
            let bytes = match enc.to_ascii_uppercase() {
                'B' => base64_decode(payload.as_bytes()),
                'Q' => qp_decode(payload.replace('_', " ").as_bytes()),
                _ => return None,
            };
            let charset = inner[..q1].split('*').next();
            Some((decode_charset(&bytes, charset), 2 + end + 2))
        })();
        match decoded {
            Some((text, used)) => {
                // Whitespace between two encoded words is dropped.
                if !(last_was_word && before.trim().is_empty()) {
                    out.push_str(before);
                }
                out.push_str(&text);
                rest = &after[used..];
                last_was_word = true;
            }
            None => {
                out.push_str(before);
                out.push_str("=?");
                rest = &after[2..];
                last_was_word = false;
            }
        }
    }
    out.push_str(rest);
    out
}

/// One line, control characters replaced by spaces, at most 200 characters.
fn clean_line(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    s.trim().to_string()
}

/// Text of an HTML part: tags removed (attributes included), entities for
/// `&nbsp;` `&amp;` `&lt;` `&gt;` `&quot;` decoded, `<style>`/`<script>` content dropped.
pub fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let lower = html.to_ascii_lowercase();
    let mut i = 0;
    let b = html.as_bytes();
    while i < b.len() {
        if b[i] == b'<' {
            for skip in ["<style", "<script"] {
                if lower[i..].starts_with(skip) {
                    let close = format!("</{}", &skip[1..]);
                    if let Some(p) = lower[i..].find(&close) {
                        i += p;
                    }
                }
            }
            match html[i..].find('>') {
                Some(p) => i += p + 1,
                None => break,
            }
            out.push(' ');
        } else {
            let next = html[i..].find('<').map_or(html.len(), |p| i + p);
            out.push_str(&html[i..next]);
            i = next;
        }
    }
    out.replace("&nbsp;", " ")
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
}

fn is_host_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'.' || c == b'-'
}

/// Domains of `http://`, `https://` and bare `www.` URLs in `text` (ASCII
/// case-insensitive), lower case, leading `www.` removed. A host must have a
/// dot and end in a letter or be an IPv4 literal.
pub fn extract_domains(text: &str, out: &mut BTreeSet<String>) {
    let lower = text.to_ascii_lowercase();
    let b = lower.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        let skip = if rest.starts_with(b"http://") {
            7
        } else if rest.starts_with(b"https://") {
            8
        } else if rest.starts_with(b"www.") && (i == 0 || !is_host_char(b[i - 1])) {
            0
        } else {
            i += 1;
            continue;
        };
        let start = i + skip;
        let mut end = start;
        while end < b.len() && is_host_char(b[end]) {
            end += 1;
        }
        let host = lower[start..end].trim_matches(['.', '-']);
        let host = host.strip_prefix("www.").unwrap_or(host);
        if valid_host(host) {
            out.insert(host.to_string());
        }
        i = end.max(i + 1);
    }
}

fn valid_host(host: &str) -> bool {
    if !host.contains('.') || host.len() > 253 {
        return false;
    }
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        return true;
    }
    let tld = host.rsplit('.').next().unwrap_or("");
    tld.len() >= 2 && tld.bytes().all(|c| c.is_ascii_alphabetic())
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // kana
        | 0x3400..=0x4DBF    // CJK ext. A
        | 0x4E00..=0x9FFF    // CJK unified
        | 0xAC00..=0xD7AF    // Hangul
        | 0xF900..=0xFAFF)
}

/// Tokens for the fingerprint: lower-cased words; URLs become `URL`, e-mail
/// addresses `EMAIL`, anything with a digit `#`; each CJK character is a
/// token of its own (those scripts have no spaces).
pub fn normalized_tokens(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    for word in text.split_whitespace() {
        let lw = word.to_lowercase();
        if lw.contains("://") || lw.starts_with("www.") {
            tokens.push("URL".to_string());
            continue;
        }
        if lw.contains('@') && lw.contains('.') {
            tokens.push("EMAIL".to_string());
            continue;
        }
        let mut cur = String::new();
        let mut has_digit = false;
        let flush = |cur: &mut String, has_digit: &mut bool, tokens: &mut Vec<String>| {
            if !cur.is_empty() {
                tokens.push(if *has_digit {
                    "#".to_string()
                } else {
                    std::mem::take(cur)
                });
                cur.clear();
            }
            *has_digit = false;
        };
        for c in lw.chars() {
            if is_cjk(c) {
                flush(&mut cur, &mut has_digit, &mut tokens);
                tokens.push(c.to_string());
            } else if c.is_alphanumeric() {
                has_digit |= c.is_numeric();
                cur.push(c);
            } else {
                flush(&mut cur, &mut has_digit, &mut tokens);
            }
        }
        flush(&mut cur, &mut has_digit, &mut tokens);
    }
    tokens
}

/// FNV-1a, then a SplitMix64 finalizer: stable across Rust versions and
/// platforms (campaign ids derive from it).
fn hash64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Word shingle length of the fingerprint.
pub const SHINGLE: usize = 3;
/// MinHash signature length (hash functions).
pub const MINHASH_K: usize = 64;
/// At most this many distinct shingles enter a signature.
const MAX_SHINGLES: usize = 4096;

/// A MinHash signature: for each of [`MINHASH_K`] hash functions, the least
/// (32-bit) hash over the body's word 3-shingles.
pub type Signature = [u32; MINHASH_K];

fn mix(mut h: u64) -> u64 {
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// MinHash over the distinct word 3-shingles of [`normalized_tokens`]
/// (texts with fewer than 3 tokens use the tokens). The Jaccard similarity
/// of two shingle sets is estimated by the share of equal positions
/// ([`similarity`]). An empty text has the all-`u32::MAX` signature.
pub fn minhash(text: &str) -> Signature {
    let tokens = normalized_tokens(text);
    let mut shingles: Vec<u64> = if tokens.len() < SHINGLE {
        tokens.iter().map(|t| hash64(t.as_bytes())).collect()
    } else {
        let mut buf = Vec::new();
        tokens
            .windows(SHINGLE)
            .map(|w| {
                buf.clear();
                for t in w {
                    buf.extend_from_slice(t.as_bytes());
                    buf.push(0);
                }
                hash64(&buf)
            })
            .collect()
    };
    shingles.sort_unstable();
    shingles.dedup();
    shingles.truncate(MAX_SHINGLES);
    let mut sig = [u32::MAX; MINHASH_K];
    for &x in &shingles {
        for (i, slot) in sig.iter_mut().enumerate() {
            let h = (mix(x ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)) >> 32) as u32;
            if h < *slot {
                *slot = h;
            }
        }
    }
    sig
}

/// Estimated Jaccard similarity of the shingle sets behind two signatures.
pub fn similarity(a: &Signature, b: &Signature) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / MINHASH_K as f64
}

/// A stable 64-bit digest of a signature (campaign ids).
pub fn signature_id(sig: &Signature) -> u64 {
    let mut bytes = Vec::with_capacity(MINHASH_K * 4);
    for v in sig {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    hash64(&bytes)
}

const STOP_EN: &[&str] = &[
    "the", "and", "you", "your", "for", "is", "this", "with", "are", "to", "of", "our", "we", "it",
    "be", "now", "from", "have", "will", "not", "can", "all", "that", "on", "get",
];
const STOP_PT: &[&str] = &[
    "de", "que", "não", "nao", "para", "com", "uma", "os", "do", "da", "em", "você", "voce", "seu",
    "sua", "mais", "por", "é", "dos", "das", "no", "na", "agora", "grátis", "aqui",
];
const STOP_ES: &[&str] = &[
    "de", "que", "el", "la", "los", "las", "y", "en", "para", "con", "una", "por", "su", "usted",
    "más", "es", "del", "al", "gratis", "ahora", "aquí", "ya", "sus",
];
const STOP_DE: &[&str] = &[
    "der",
    "die",
    "und",
    "das",
    "ist",
    "nicht",
    "mit",
    "sie",
    "ich",
    "den",
    "zu",
    "ein",
    "eine",
    "für",
    "auf",
    "dem",
    "sich",
    "von",
    "wir",
    "ihr",
    "jetzt",
    "hier",
    "kostenlos",
];
const STOP_FR: &[&str] = &[
    "le",
    "la",
    "les",
    "et",
    "des",
    "est",
    "pour",
    "vous",
    "une",
    "dans",
    "que",
    "pas",
    "sur",
    "avec",
    "votre",
    "du",
    "au",
    "en",
    "nous",
    "ce",
    "gratuit",
    "ici",
    "maintenant",
];

/// Language of a text, a small heuristic (documented in docs/report.md):
///
/// 1. Count letters by script. If CJK characters outnumber the others:
///    `ja` when kana are at least 10% of them, `ko` when Hangul dominate,
///    else `zh`. If Cyrillic letters dominate: `ru`.
/// 2. Otherwise count words in small stopword lists of `en`, `pt`, `es`,
///    `de`, `fr`; the language with most hits wins if it has at least 2 hits
///    and strictly more than the runner-up.
/// 3. Else `und` (undetermined).
pub fn detect_language(text: &str) -> &'static str {
    let (mut han, mut kana, mut hangul, mut cyr, mut latin) = (0usize, 0, 0, 0, 0);
    for c in text.chars() {
        match c as u32 {
            0x3040..=0x30FF => kana += 1,
            0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF => han += 1,
            0xAC00..=0xD7AF => hangul += 1,
            0x0400..=0x04FF => cyr += 1,
            _ if c.is_alphabetic() && (c.is_ascii() || (0xC0..=0x24F).contains(&(c as u32))) => {
                latin += 1
            }
            _ => {}
        }
    }
    let cjk = han + kana + hangul;
    if cjk > 0 && cjk >= cyr && cjk * 2 >= latin {
        if hangul * 2 > cjk {
            return "ko";
        }
        if kana * 10 >= cjk {
            return "ja";
        }
        return "zh";
    }
    if cyr > 0 && cyr >= latin {
        return "ru";
    }
    let mut scores = [("en", 0usize), ("pt", 0), ("es", 0), ("de", 0), ("fr", 0)];
    let lists = [STOP_EN, STOP_PT, STOP_ES, STOP_DE, STOP_FR];
    for word in text
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| !w.is_empty())
    {
        let w = word.to_lowercase();
        for (i, list) in lists.iter().enumerate() {
            if list.contains(&w.as_str()) {
                scores[i].1 += 1;
            }
        }
    }
    scores.sort_by_key(|s| std::cmp::Reverse(s.1));
    if scores[0].1 >= 2 && scores[0].1 > scores[1].1 {
        scores[0].0
    } else {
        "und"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_and_domains() {
        let raw = b"Subject: =?utf-8?B?5L2g5aW9?= =?utf-8?Q?_world?=\r\nContent-Type: multipart/alternative; boundary=\"b1\"\r\n\r\npreamble\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nVisit http://WWW.Example.COM/x?y=3D1 now=\r\n!\r\n--b1\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\nPGEgaHJlZj0iaHR0cHM6Ly9zaG9wLmV4YW1wbGUubmV0OjgwODAvIj5idXk8L2E+\r\n--b1--\r\n";
        let info = analyze(raw);
        assert_eq!(info.subject, "你好 world");
        assert_eq!(
            info.domains.iter().map(String::as_str).collect::<Vec<_>>(),
            ["example.com", "shop.example.net"]
        );
    }

    #[test]
    fn languages() {
        assert_eq!(
            detect_language("Buy the best pills for you and your family now"),
            "en"
        );
        assert_eq!(
            detect_language("Compre agora o seu remédio com desconto para você"),
            "pt"
        );
        assert_eq!(
            detect_language("Compre ahora los mejores productos con descuento para usted"),
            "es"
        );
        assert_eq!(
            detect_language("Jetzt kaufen und sparen: die besten Angebote für Sie"),
            "de"
        );
        assert_eq!(
            detect_language("Achetez maintenant les meilleurs produits pour vous et votre famille"),
            "fr"
        );
        assert_eq!(detect_language("我们的产品是最好的"), "zh");
        assert_eq!(detect_language("これはテストです"), "ja");
        assert_eq!(detect_language("Купите лучшие товары сейчас"), "ru");
        assert_eq!(detect_language("test"), "und");
    }

    #[test]
    fn declared_charsets_are_transcoded() {
        // A KOI8-R subject (an encoded word) over a windows-1251 body, and a
        // GB2312 body in base64: each in its own charset.
        let (koi8, _, _) = encoding_rs::KOI8_R.encode("Купите лучшие товары");
        let (cp1251, _, _) = encoding_rs::WINDOWS_1251.encode("Скидки для вас сегодня");
        let mut raw = format!(
            "Subject: =?KOI8-R?B?{}?=\r\nContent-Type: text/plain; charset=windows-1251\r\n\r\n",
            base64_encode(&koi8)
        )
        .into_bytes();
        raw.extend_from_slice(&cp1251);
        let info = analyze(&raw);
        assert_eq!(info.subject, "Купите лучшие товары");
        assert_eq!(info.language, "ru");
        let (gb2312, _, _) = encoding_rs::GBK.encode("我们的产品是最好的");
        let raw = format!(
            "Content-Type: text/plain; charset=\"gb2312\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            base64_encode(&gb2312)
        );
        assert_eq!(analyze(raw.as_bytes()).language, "zh");
        // Big5 in an 8bit part, and a label nobody knows (read as UTF-8).
        let (big5, _, _) = encoding_rs::BIG5.encode("我們的產品是最好的");
        let mut raw = b"Content-Type: text/plain; charset=big5\r\n\r\n".to_vec();
        raw.extend_from_slice(&big5);
        assert_eq!(analyze(&raw).language, "zh");
        assert_eq!(decode_charset("café".as_bytes(), Some("x-unknown")), "café");
        assert_eq!(decode_charset(b"caf\xe9", None), "caf\u{fffd}");
        assert_eq!(decode_charset(b"caf\xe9", Some("iso-8859-1")), "café");
    }

    #[test]
    fn minhash_near_duplicates() {
        let a = "Dear John, our pharmacy offers the best prices on all medications. Order today and get 25% off your first purchase. Fast and discreet shipping worldwide. Visit http://pills.example/a1 to see the full catalogue of products we offer.";
        let b = "Dear Maria, our pharmacy offers the best prices on all medications. Order today and get 30% off your first purchase. Fast and discreet shipping worldwide. Visit http://pills.example/zz9 to see the full catalogue of products we offer.";
        let c = "Hello friend, I am a banker in a foreign country and need your help moving ten million dollars out of an account that belongs to a deceased client.";
        let (sa, sb, sc) = (minhash(a), minhash(b), minhash(c));
        assert!(similarity(&sa, &sb) >= 0.75, "{}", similarity(&sa, &sb));
        assert!(similarity(&sa, &sc) < 0.1, "{}", similarity(&sa, &sc));
        assert_eq!(similarity(&sa, &minhash(a)), 1.0);
    }
}
