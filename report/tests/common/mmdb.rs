//! A minimal MaxMind DB writer for tests (format: MaxMind DB spec 2.0):
//! an IPv6 search tree with 24-bit records, the data section, then the
//! metadata after `\xAB\xCD\xEFMaxMind.com`. IPv4 networks go under ::/96.

use std::net::IpAddr;

pub enum V {
    Str(String),
    U16(u16),
    U32(u32),
    U64(u64),
    Map(Vec<(&'static str, V)>),
    Arr(Vec<V>),
}

pub fn s(x: &str) -> V {
    V::Str(x.to_string())
}

fn ctrl(out: &mut Vec<u8>, ty: u8, size: usize) {
    let (first_type, ext) = if ty <= 7 {
        (ty, None)
    } else {
        (0, Some(ty - 7))
    };
    let (size_bits, extra): (u8, Vec<u8>) = if size < 29 {
        (size as u8, vec![])
    } else if size < 285 {
        (29, vec![(size - 29) as u8])
    } else if size < 65_821 {
        (30, ((size - 285) as u16).to_be_bytes().to_vec())
    } else {
        (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec())
    };
    out.push(first_type << 5 | size_bits);
    if let Some(e) = ext {
        out.push(e);
    }
    out.extend(extra);
}

fn uint(out: &mut Vec<u8>, ty: u8, v: u64, max: usize) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count().max(8 - max);
    ctrl(out, ty, 8 - skip);
    out.extend_from_slice(&bytes[skip..]);
}

fn encode(v: &V, out: &mut Vec<u8>) {
    match v {
        V::Str(s) => {
            ctrl(out, 2, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        V::U16(n) => uint(out, 5, u64::from(*n), 2),
        V::U32(n) => uint(out, 6, u64::from(*n), 4),
        V::U64(n) => uint(out, 9, *n, 8),
        V::Map(kv) => {
            ctrl(out, 7, kv.len());
            for (k, v) in kv {
                encode(&s(k), out);
                encode(v, out);
            }
        }
        V::Arr(items) => {
            ctrl(out, 11, items.len());
            for i in items {
                encode(i, out);
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Rec {
    Empty,
    Node(u32),
    Data(u32),
}

/// Build a database from (network, prefix length, record) entries.
pub fn build(database_type: &str, entries: Vec<(IpAddr, u8, V)>) -> Vec<u8> {
    let mut nodes: Vec<[Rec; 2]> = vec![[Rec::Empty, Rec::Empty]];
    let mut data = Vec::new();
    for (net, len, value) in entries {
        let (bits, len) = match net {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), len + 96),
            IpAddr::V6(v6) => (u128::from(v6), len),
        };
        let offset = data.len() as u32;
        encode(&value, &mut data);
        let mut node = 0usize;
        for i in 0..len {
            let bit = (bits >> (127 - i) & 1) as usize;
            if i == len - 1 {
                nodes[node][bit] = Rec::Data(offset);
            } else {
                node = match nodes[node][bit] {
                    Rec::Node(n) => n as usize,
                    _ => {
                        nodes.push([Rec::Empty, Rec::Empty]);
                        let n = nodes.len() - 1;
                        nodes[node][bit] = Rec::Node(n as u32);
                        n
                    }
                };
            }
        }
    }
    let count = nodes.len() as u32;
    let mut out = Vec::new();
    for n in &nodes {
        for r in n {
            let v = match *r {
                Rec::Empty => count,
                Rec::Node(i) => i,
                Rec::Data(off) => count + 16 + off,
            };
            out.extend_from_slice(&v.to_be_bytes()[1..]);
        }
    }
    out.extend_from_slice(&[0u8; 16]);
    out.extend_from_slice(&data);
    out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
    let meta = V::Map(vec![
        ("binary_format_major_version", V::U16(2)),
        ("binary_format_minor_version", V::U16(0)),
        ("build_epoch", V::U64(1_700_000_000)),
        ("database_type", s(database_type)),
        (
            "description",
            V::Map(vec![("en", s("spampot test database"))]),
        ),
        ("ip_version", V::U16(6)),
        ("languages", V::Arr(vec![s("en")])),
        ("node_count", V::U32(count)),
        ("record_size", V::U16(24)),
    ]);
    encode(&meta, &mut out);
    out
}
