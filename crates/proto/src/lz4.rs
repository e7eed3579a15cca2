//! Raw LZ4 blocks, the `__lz4` payload encoding of the fpid-9 socket's replies
//! and pushes (PROTOCOL.md 10.2): one block, no frame header and no stored
//! length. The reader grows its buffer until the block fits, up to the same
//! cap as gzip ([`crate::codec::MAX_INFLATED_PAYLOAD`]).
//!
//! The block format itself is `lz4_flex`'s (safe decoder, checked decoding):
//! a hand-written decoder would be one more parser of network input to get
//! wrong.

use lz4_flex::block::DecompressError;

use crate::codec::MAX_INFLATED_PAYLOAD;
use crate::error::DecodeError;

/// The first output buffer: four times the input (a push compresses about
/// 2:1), at least 1 KiB.
fn first_capacity(input: usize) -> usize {
    input.saturating_mul(4).max(1024)
}

/// Decompresses one raw LZ4 block.
///
/// # Errors
/// [`DecodeError::Lz4`] for a corrupt block or one that inflates past
/// [`MAX_INFLATED_PAYLOAD`].
pub fn decompress_block(input: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let cap = usize::try_from(MAX_INFLATED_PAYLOAD).unwrap_or(usize::MAX);
    // One literal byte inflates to at most 255 bytes of output (a match token
    // and its length bytes), so no valid block needs more than this.
    let bound = input.len().saturating_mul(255).saturating_add(64).min(cap);
    let mut size = first_capacity(input.len()).min(bound);
    loop {
        let mut out = vec![0u8; size];
        match lz4_flex::block::decompress_into(input, &mut out) {
            Ok(n) => {
                out.truncate(n);
                return Ok(out);
            }
            Err(DecompressError::OutputTooSmall { .. }) if size < bound => {
                size = size.saturating_mul(4).min(bound);
            }
            Err(DecompressError::OutputTooSmall { .. }) if bound == cap => {
                return Err(DecodeError::Lz4(format!(
                    "the block inflates past {} MiB",
                    cap / (1024 * 1024)
                )));
            }
            Err(e) => return Err(DecodeError::Lz4(e.to_string())),
        }
    }
}

/// Compresses `input` into one raw LZ4 block (what the server sends).
pub fn compress_block(input: &[u8]) -> Vec<u8> {
    lz4_flex::block::compress(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_round_trips_at_every_size_class() {
        for len in [0usize, 1, 300, 1024, 5000, 70_000] {
            let data: Vec<u8> = (0..len).map(|i| (i % 7) as u8 + b'a').collect();
            let block = compress_block(&data);
            assert_eq!(decompress_block(&block).unwrap(), data, "{len}");
        }
    }

    #[test]
    fn a_highly_compressible_block_grows_the_buffer_until_it_fits() {
        let data = vec![b'x'; 2 * 1024 * 1024];
        let block = compress_block(&data);
        assert!(block.len() * 100 < data.len());
        assert_eq!(decompress_block(&block).unwrap(), data);
    }

    #[test]
    fn a_block_over_the_cap_is_refused() {
        let data = vec![0u8; MAX_INFLATED_PAYLOAD as usize + 1];
        let block = compress_block(&data);
        let err = decompress_block(&block).unwrap_err();
        assert!(
            matches!(err, DecodeError::Lz4(ref m) if m.contains("16 MiB")),
            "{err}"
        );
    }

    #[test]
    fn corrupt_blocks_are_errors_not_panics() {
        let block = compress_block(b"hello hello hello hello hello hello");
        for cut in 0..block.len() {
            let _ = decompress_block(&block[..cut]);
        }
        assert!(decompress_block(&[0xF0, 0xFF, 0xFF]).is_err());
        assert!(decompress_block(&[0x1F, b'a', 0xFF, 0xFF]).is_err());
    }
}
