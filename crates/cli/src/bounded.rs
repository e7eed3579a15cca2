//! Reading a file or standard input with a ceiling, so that a wrong path (a
//! device such as `/dev/zero`, a FIFO, a huge file) cannot make the CLI read
//! without end. File sizes from metadata cannot be trusted for this: a device
//! reports 0.

use std::io::Read;
use std::path::Path;

/// The most a session may be: a cookie export is a few KiB.
const MAX_SESSION_BYTES: u64 = 1 << 20;

/// The most a config file may be.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The most a sandbox seed file may be (a crowd of thousands of accounts).
pub const MAX_SEED_BYTES: u64 = 64 << 20;

fn capped(reader: impl Read, cap: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    reader.take(cap.saturating_add(1)).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Up to `cap + 1` bytes of `source` (`-` for standard input, else a path):
/// more than `cap` means there was more.
pub fn read(source: &str, cap: u64) -> std::io::Result<Vec<u8>> {
    if source == "-" {
        capped(std::io::stdin(), cap)
    } else {
        capped(std::fs::File::open(source)?, cap)
    }
}

/// [`read`] as UTF-8 text, refused past `cap` bytes. `what` names the source
/// in errors ("session file x.txt"); the content never appears in them.
pub fn read_text(source: &str, cap: u64, what: &str) -> Result<String, String> {
    text(read(source, cap), cap, what)
}

/// A session given as `-` (standard input) or `@FILE`, read with
/// [`MAX_SESSION_BYTES`]; `None` when `source` is neither (a bare value).
pub fn read_session_source(source: &str) -> Option<Result<String, String>> {
    if source == "-" {
        Some(read_text(
            "-",
            MAX_SESSION_BYTES,
            "the session on standard input",
        ))
    } else {
        let path = source.strip_prefix('@')?;
        Some(read_text(
            path,
            MAX_SESSION_BYTES,
            &format!("session file {path}"),
        ))
    }
}

/// [`read_text`] of a file given as a path.
pub fn read_file_text(path: &Path, cap: u64, what: &str) -> Result<String, String> {
    text(
        std::fs::File::open(path).and_then(|f| capped(f, cap)),
        cap,
        what,
    )
}

fn text(bytes: std::io::Result<Vec<u8>>, cap: u64, what: &str) -> Result<String, String> {
    let bytes = bytes.map_err(|e| format!("cannot read {what}: {e}"))?;
    if bytes.len() as u64 > cap {
        return Err(format!(
            "{what} is larger than {cap} bytes; is it the right file?"
        ));
    }
    String::from_utf8(bytes).map_err(|_| format!("{what} is not UTF-8 text"))
}
