//! The wire tools of the working-client conformance tests, written apart from
//! the protocol crate: a protobuf writer that emits exactly the fields it is
//! given, in the order given (so presence is explicit, as with that client's
//! proto2 messages), a raw walker that reads answers field number by field
//! number the way that client's decoders do, and a raw LZ4 block reader that
//! grows its buffer as that client does.

/// A protobuf message under construction; fields go out in call order.
#[derive(Clone, Debug, Default)]
pub struct Pb(Vec<u8>);

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl Pb {
    pub fn new() -> Self {
        Self::default()
    }

    /// A varint field (wire type 0).
    pub fn uint(mut self, field: u64, v: u64) -> Self {
        put_varint(&mut self.0, field << 3);
        put_varint(&mut self.0, v);
        self
    }

    /// A length-delimited field (wire type 2).
    pub fn bytes(mut self, field: u64, v: &[u8]) -> Self {
        put_varint(&mut self.0, (field << 3) | 2);
        put_varint(&mut self.0, v.len() as u64);
        self.0.extend_from_slice(v);
        self
    }

    pub fn str(self, field: u64, v: &str) -> Self {
        self.bytes(field, v.as_bytes())
    }

    /// An embedded message (an empty one is still written).
    pub fn msg(self, field: u64, m: Pb) -> Self {
        self.bytes(field, &m.0)
    }

    /// A `{1 key, 2 value}` pair, both present.
    pub fn kv(self, field: u64, k: &str, v: &str) -> Self {
        self.msg(field, Pb::new().str(1, k).str(2, v))
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// One field value as it came off the wire.
#[derive(Clone, Debug, PartialEq)]
pub enum Raw {
    Varint(u64),
    Bytes(Vec<u8>),
    Fixed(u64),
}

fn get_varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn fixed(b: &[u8], at: &mut usize, n: usize) -> Option<u64> {
    let bytes = b.get(*at..*at + n)?;
    *at += n;
    Some(
        bytes
            .iter()
            .rev()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x)),
    )
}

/// Every field of `b` in wire order; `None` when `b` is not a well-formed
/// message (the wire types 0, 1, 2 and 5 that field 8's decoder knows).
pub fn fields(b: &[u8]) -> Option<Vec<(u64, Raw)>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < b.len() {
        let key = get_varint(b, &mut at)?;
        let value = match key & 7 {
            0 => Raw::Varint(get_varint(b, &mut at)?),
            1 => Raw::Fixed(fixed(b, &mut at, 8)?),
            2 => {
                let len = usize::try_from(get_varint(b, &mut at)?).ok()?;
                let bytes = b.get(at..at.checked_add(len)?)?.to_vec();
                at += len;
                Raw::Bytes(bytes)
            }
            5 => Raw::Fixed(fixed(b, &mut at, 4)?),
            _ => return None,
        };
        if key >> 3 == 0 {
            return None;
        }
        out.push((key >> 3, value));
    }
    Some(out)
}

/// Every occurrence of field `n`.
pub fn all(b: &[u8], n: u64) -> Vec<Raw> {
    fields(b)
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| *k == n)
        .map(|(_, v)| v)
        .collect()
}

/// Every length-delimited occurrence of field `n` (a repeated message).
pub fn all_bytes(b: &[u8], n: u64) -> Vec<Vec<u8>> {
    all(b, n)
        .into_iter()
        .filter_map(|r| match r {
            Raw::Bytes(v) => Some(v),
            _ => None,
        })
        .collect()
}

/// The first length-delimited occurrence of field `n`.
pub fn bytes(b: &[u8], n: u64) -> Option<Vec<u8>> {
    all_bytes(b, n).into_iter().next()
}

/// Field `n` as text (lossy, as a Go `string(bytes)` conversion never fails).
pub fn text(b: &[u8], n: u64) -> Option<String> {
    bytes(b, n).map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// The first varint occurrence of field `n`.
pub fn uint(b: &[u8], n: u64) -> Option<u64> {
    all(b, n).into_iter().find_map(|r| match r {
        Raw::Varint(v) => Some(v),
        _ => None,
    })
}

/// Field `n` read as text whether it arrived as a string or a varint (in
/// decimal): the send answer's id reader.
pub fn string_or_varint(b: &[u8], n: u64) -> Option<String> {
    all(b, n).into_iter().find_map(|r| match r {
        Raw::Bytes(v) => Some(String::from_utf8_lossy(&v).into_owned()),
        Raw::Varint(v) => Some(v.to_string()),
        Raw::Fixed(_) => None,
    })
}

fn lz4_length(src: &[u8], at: &mut usize, mut n: usize) -> Option<usize> {
    if n == 15 {
        loop {
            let byte = *src.get(*at)?;
            *at += 1;
            n = n.checked_add(usize::from(byte))?;
            if byte != 255 {
                break;
            }
        }
    }
    Some(n)
}

/// One raw LZ4 block decoded into at most `cap` bytes; `None` when it is
/// malformed or does not fit.
pub fn lz4_block(src: &[u8], cap: usize) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::new();
    let mut at = 0;
    while at < src.len() {
        let token = src[at];
        at += 1;
        let literals = lz4_length(src, &mut at, usize::from(token >> 4))?;
        let end = at.checked_add(literals)?;
        out.extend_from_slice(src.get(at..end)?);
        at = end;
        if out.len() > cap {
            return None;
        }
        if at == src.len() {
            break;
        }
        let offset = usize::from(u16::from_le_bytes([*src.get(at)?, *src.get(at + 1)?]));
        at += 2;
        let length = lz4_length(src, &mut at, usize::from(token & 15))? + 4;
        if offset == 0 || offset > out.len() || out.len() + length > cap {
            return None;
        }
        let start = out.len() - offset;
        for i in 0..length {
            out.push(out[start + i]);
        }
    }
    Some(out)
}

/// That client's reader: the uncompressed size is not sent, so it tries
/// buffers of 4, 8, ... 256 times the block's size until one holds it.
pub fn lz4_growing(src: &[u8]) -> Option<Vec<u8>> {
    (2..=8).find_map(|shift| lz4_block(src, src.len() << shift))
}

#[test]
fn the_lz4_reader_takes_literals_and_overlapping_matches() {
    // "abcabcabcabc!": 3 literals, a match of 9 at offset 3, 1 literal.
    let block = [0x35, b'a', b'b', b'c', 3, 0, 0x10, b'!'];
    assert_eq!(lz4_block(&block, 64).unwrap(), b"abcabcabcabc!");
    assert_eq!(lz4_block(&block, 8), None, "too small a buffer fails");
}
