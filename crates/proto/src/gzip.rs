//! gzip (RFC 1952) around raw deflate, with one compressor and one decompressor
//! per thread. Creating deflate state costs far more than compressing a
//! few-hundred-byte push, so the state is reset and reused instead.

use std::cell::RefCell;

use flate2::{Compress, Compression, Crc, Decompress, FlushCompress, FlushDecompress, Status};

use crate::codec::MAX_INFLATED_PAYLOAD;
use crate::error::DecodeError;

thread_local! {
    static DEFLATE: RefCell<Compress> = RefCell::new(Compress::new(Compression::fast(), false));
    static INFLATE: RefCell<Decompress> = RefCell::new(Decompress::new(false));
}

const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;

fn gzip_error(what: &str) -> DecodeError {
    DecodeError::Gzip(what.to_owned())
}

pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    // Header: magic, deflate, no flags, mtime 0, no extra flags, OS unknown.
    let mut out = Vec::with_capacity(data.len() + 64);
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    DEFLATE.with(|cell| {
        let mut deflate = cell.borrow_mut();
        deflate.reset();
        loop {
            let consumed = usize::try_from(deflate.total_in())
                .unwrap_or(data.len())
                .min(data.len());
            out.reserve(data.len() / 2 + 64);
            match deflate.compress_vec(&data[consumed..], &mut out, FlushCompress::Finish) {
                Ok(Status::StreamEnd) => break,
                Ok(_) => continue,
                // Compressing into a growing Vec does not fail; if it ever did,
                // store the data uncompressed rather than lose it.
                Err(_) => return stored(data),
            }
        }
        let mut crc = Crc::new();
        crc.update(data);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out
    })
}

/// A gzip member with one stored (uncompressed) deflate block per 65535 bytes.
fn stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut chunks = data.chunks(0xffff).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        out.push(u8::from(chunks.peek().is_none()));
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    let mut crc = Crc::new();
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// The offset of the deflate stream after the header.
fn skip_header(data: &[u8]) -> Result<usize, DecodeError> {
    if data.len() < 10 || data[0] != 0x1f || data[1] != 0x8b {
        return Err(gzip_error("not gzip data"));
    }
    if data[2] != 8 {
        return Err(gzip_error("unknown compression method"));
    }
    let flags = data[3];
    if flags & 0xe0 != 0 {
        return Err(gzip_error("reserved header flags set"));
    }
    let mut pos = 10;
    if flags & FEXTRA != 0 {
        let xlen = data
            .get(pos..pos + 2)
            .ok_or_else(|| gzip_error("truncated header"))?;
        pos += 2 + usize::from(u16::from_le_bytes([xlen[0], xlen[1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let rest = data
                .get(pos..)
                .ok_or_else(|| gzip_error("truncated header"))?;
            let nul = rest
                .iter()
                .position(|b| *b == 0)
                .ok_or_else(|| gzip_error("truncated header"))?;
            pos += nul + 1;
        }
    }
    if flags & FHCRC != 0 {
        pos += 2;
    }
    if pos > data.len() {
        return Err(gzip_error("truncated header"));
    }
    Ok(pos)
}

pub(crate) fn gunzip(data: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let start = skip_header(data)?;
    let input = &data[start..];
    INFLATE.with(|cell| {
        let mut inflate = cell.borrow_mut();
        inflate.reset(false);
        let mut out: Vec<u8> = Vec::with_capacity((input.len() * 4).clamp(256, 64 * 1024));
        loop {
            let consumed = usize::try_from(inflate.total_in())
                .unwrap_or(input.len())
                .min(input.len());
            if out.len() == out.capacity() {
                if out.len() as u64 >= MAX_INFLATED_PAYLOAD {
                    return Err(gzip_error(&format!(
                        "inflates to more than {MAX_INFLATED_PAYLOAD} bytes"
                    )));
                }
                out.reserve(out.len());
            }
            let before = (inflate.total_in(), inflate.total_out());
            match inflate.decompress_vec(&input[consumed..], &mut out, FlushDecompress::None) {
                Ok(Status::StreamEnd) => break,
                Ok(_)
                    if before == (inflate.total_in(), inflate.total_out())
                        && out.len() < out.capacity() =>
                {
                    return Err(gzip_error("truncated deflate stream"));
                }
                Ok(_) => continue,
                Err(e) => return Err(gzip_error(&e.to_string())),
            }
        }
        if out.len() as u64 > MAX_INFLATED_PAYLOAD {
            return Err(gzip_error(&format!(
                "inflates to more than {MAX_INFLATED_PAYLOAD} bytes"
            )));
        }
        let end = usize::try_from(inflate.total_in()).unwrap_or(input.len());
        let trailer = input
            .get(end..end + 8)
            .ok_or_else(|| gzip_error("missing CRC-32 and length trailer"))?;
        let crc_expected = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let len_expected = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
        let mut crc = Crc::new();
        crc.update(&out);
        if crc.sum() != crc_expected || out.len() as u32 != len_expected {
            return Err(gzip_error("CRC-32 or length mismatch"));
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn reference_gzip(data: &[u8], name: Option<&str>) -> Vec<u8> {
        let mut builder = flate2::GzBuilder::new().comment("c");
        if let Some(n) = name {
            builder = builder.filename(n);
        }
        let mut e = builder.write(Vec::new(), Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn our_gzip_is_read_by_a_reference_decoder_and_vice_versa() {
        for data in [&b""[..], b"hello", &[7u8; 200_000][..]] {
            let ours = gzip(data);
            let mut decoded = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&ours[..]), &mut decoded)
                .unwrap();
            assert_eq!(decoded, data);
            assert_eq!(
                gunzip(&reference_gzip(data, Some("push.bin"))).unwrap(),
                data
            );
            assert_eq!(gunzip(&stored(data)).unwrap(), data);
        }
    }

    #[test]
    fn corrupt_and_truncated_input_is_an_error_not_a_panic() {
        let good = gzip(b"some push payload, long enough to compress a little");
        let mut bad_crc = good.clone();
        let n = bad_crc.len();
        bad_crc[n - 6] ^= 0xff;
        assert!(gunzip(&bad_crc).is_err());
        for cut in 0..good.len() {
            assert!(gunzip(&good[..cut]).is_err(), "cut at {cut}");
        }
        assert!(gunzip(b"\x1f\x8b\x08\x08\x00\x00\x00\x00\x00\xffname-without-end").is_err());
    }

    #[test]
    fn a_decompression_bomb_is_refused() {
        let bomb = reference_gzip(&vec![0u8; (MAX_INFLATED_PAYLOAD + 1) as usize], None);
        assert!(gunzip(&bomb).unwrap_err().to_string().contains("more than"));
    }
}
