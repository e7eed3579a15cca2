//! AES-256-GCM sealing of TikTok sessions under a master key.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use secrecy::SecretString;

use crate::error::{Error, Result};

/// The environment variable that may hold the master key (base64 of 32 bytes).
pub const MASTER_KEY_ENV: &str = "TIKTOK_DM_MASTER_KEY";

const NONCE_LEN: usize = 12;

/// Seals and opens secrets. Sealed form: a 12-byte random nonce, then the
/// ciphertext with its 16-byte tag.
pub struct Vault {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(<master key redacted>)")
    }
}

fn decode_key(text: &str) -> Result<[u8; 32]> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| Error::MasterKey("it is not base64".into()))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        Error::MasterKey(format!(
            "it decodes to {} bytes; it must be 32",
            bytes.len()
        ))
    })
}

/// Writes a new random key to `path` unless the file exists (see
/// [`Vault::load_or_create`]); losing the race to another process is not an
/// error.
fn create_key_file(path: &Path) -> Result<()> {
    let file_error = |message: String| Error::KeyFile {
        path: path.to_owned(),
        message,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| file_error("it names no file".into()))?;
    let suffix: u64 = rand::random();
    let temporary = dir.join(format!(".{}.{suffix:016x}.tmp", name.to_string_lossy()));
    let key: [u8; 32] = rand::random();
    let written = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(&temporary)?;
        let encoded = base64::engine::general_purpose::STANDARD.encode(key);
        file.write_all(format!("{encoded}\n").as_bytes())?;
        file.sync_all()?;
        std::fs::hard_link(&temporary, path)
    })();
    // Whatever happened, the temporary name goes (the file itself stays under
    // `path` when the link was made).
    let _ = std::fs::remove_file(&temporary);
    match written {
        Ok(()) => {
            // The new name must survive a power cut as much as the key.
            #[cfg(unix)]
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| file_error(format!("cannot sync its directory: {e}")))?;
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(file_error(format!("cannot create it: {e}"))),
    }
}

impl Vault {
    /// A vault over a raw 32-byte key.
    pub fn from_key(key: &[u8; 32]) -> Self {
        Self {
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    /// A vault over a base64 key (as in [`MASTER_KEY_ENV`]).
    ///
    /// # Errors
    /// Not base64, or not 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self> {
        Ok(Self::from_key(&decode_key(text)?))
    }

    /// Reads the key file at `path`, or creates it with a new random key and
    /// mode 0600. An existing file readable by group or others is refused.
    ///
    /// The file appears whole or not at all: the key is written and synced to
    /// a temporary file beside it, which is then hard-linked into place (the
    /// link fails if the file exists), and the directory is synced. So a crash
    /// or power cut never leaves an empty key file, and two processes starting
    /// on a new database at once (a second gateway, `keys create` as `serve`
    /// starts) end up with the same key: the loser of the link reads the
    /// winner's. Sessions sealed under a key that did not survive could never
    /// be opened again.
    ///
    /// # Errors
    /// The file cannot be read or created, is too widely readable, or is malformed.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        if let Some(vault) = Self::load(path)? {
            return Ok(vault);
        }
        create_key_file(path)?;
        Self::load(path)?.ok_or_else(|| Error::KeyFile {
            path: path.to_owned(),
            message: "it was removed right after it was created".into(),
        })
    }

    /// The vault in the key file at `path`, or `None` when there is no file.
    /// An existing file readable by group or others is refused.
    ///
    /// # Errors
    /// The file cannot be read, is too widely readable, or is malformed.
    pub fn load(path: &Path) -> Result<Option<Self>> {
        let file_error = |message: String| Error::KeyFile {
            path: path.to_owned(),
            message,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(file_error(format!("cannot read it: {e}"))),
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(path)
                .map_err(|e| file_error(e.to_string()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(file_error(format!(
                    "mode {:o} lets others read it; run chmod 600",
                    mode & 0o777
                )));
            }
        }
        decode_key(&text)
            .map(|key| Some(Self::from_key(&key)))
            .map_err(|e| match e {
                Error::MasterKey(why) => file_error(why),
                other => other,
            })
    }

    /// Seals `plaintext`, bound to `context`: a sealed value opens only with
    /// the same context.
    ///
    /// # Errors
    /// [`Error::Seal`] only for inputs over AES-GCM's 64 GiB limit.
    pub fn seal(&self, plaintext: &[u8], context: SealContext<'_>) -> Result<Vec<u8>> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let aad = context.to_string();
        let payload = Payload {
            msg: plaintext,
            aad: aad.as_bytes(),
        };
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .map_err(|_| Error::Seal)?;
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Opens a sealed value sealed with the same `context`.
    ///
    /// # Errors
    /// [`Error::Unseal`] for a wrong key, a wrong context or altered data.
    pub fn open(&self, sealed: &[u8], context: SealContext<'_>) -> Result<SecretString> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(Error::Unseal);
        }
        let aad = context.to_string();
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let plaintext = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| Error::Unseal)?;
        String::from_utf8(plaintext)
            .map(SecretString::from)
            .map_err(|_| Error::Unseal)
    }
}

/// What a sealed value belongs to; its text (`account:NAME`, `request:ID`,
/// `key-check`, `webhook:KEY_ID:URL`) is the AES-GCM associated data, so a session sealed for one
/// account or request does not open as another's.
#[derive(Clone, Copy, Debug)]
pub enum SealContext<'a> {
    /// A stored account, by name.
    Account(&'a str),
    /// A request's own session (`X-TikTok-Session`), by request id.
    Request(&'a str),
    /// The master key's check value (see [`check_master_key`](super::check_master_key)).
    KeyCheck,
    /// A webhook's signing secret, by its key id and URL (known before the
    /// store draws the webhook's id).
    Webhook(i64, &'a str),
}

impl std::fmt::Display for SealContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Account(name) => write!(f, "account:{name}"),
            Self::Request(id) => write!(f, "request:{id}"),
            Self::KeyCheck => f.write_str("key-check"),
            Self::Webhook(key_id, url) => write!(f, "webhook:{key_id}:{url}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;

    #[test]
    fn sealed_sessions_open_only_with_the_same_key_and_context() {
        let vault = Vault::from_key(&[7; 32]);
        let sealed = vault
            .seal(b"sessionid=abc", SealContext::Account("shop"))
            .unwrap();
        assert!(
            !sealed.windows(13).any(|w| w == b"sessionid=abc"),
            "no plaintext in the sealed form"
        );
        assert_eq!(
            vault
                .open(&sealed, SealContext::Account("shop"))
                .unwrap()
                .expose_secret(),
            "sessionid=abc"
        );
        assert!(matches!(
            vault.open(&sealed, SealContext::Account("other")),
            Err(Error::Unseal)
        ));
        assert!(matches!(
            Vault::from_key(&[8; 32]).open(&sealed, SealContext::Account("shop")),
            Err(Error::Unseal)
        ));
        let mut tampered = sealed.clone();
        tampered[20] ^= 1;
        assert!(matches!(
            vault.open(&tampered, SealContext::Account("shop")),
            Err(Error::Unseal)
        ));
        assert!(matches!(
            vault.open(&sealed[..10], SealContext::Account("shop")),
            Err(Error::Unseal)
        ));
        assert_ne!(
            vault.seal(b"x", SealContext::Account("c")).unwrap(),
            vault.seal(b"x", SealContext::Account("c")).unwrap(),
            "a fresh nonce each time"
        );
    }

    #[test]
    fn the_key_file_is_created_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let first = Vault::load_or_create(&path).unwrap();
        let sealed = first.seal(b"s", SealContext::Account("ctx")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let second = Vault::load_or_create(&path).unwrap();
        assert_eq!(
            second
                .open(&sealed, SealContext::Account("ctx"))
                .unwrap()
                .expose_secret(),
            "s"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let err = Vault::load_or_create(&path).unwrap_err().to_string();
            assert!(err.contains("chmod 600"), "{err}");
        }
    }

    #[test]
    fn processes_starting_at_once_on_a_new_file_share_one_key() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("master.key");
            let start = std::sync::Barrier::new(8);
            let vaults: Vec<Vault> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|_| {
                        s.spawn(|| {
                            start.wait();
                            Vault::load_or_create(&path)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap().unwrap())
                    .collect()
            });
            let sealed = vaults[0].seal(b"s", SealContext::Account("ctx")).unwrap();
            for vault in &vaults {
                assert_eq!(
                    vault
                        .open(&sealed, SealContext::Account("ctx"))
                        .unwrap()
                        .expose_secret(),
                    "s"
                );
            }
            let names: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, ["master.key"], "no temporary file is left");
        }
    }

    #[test]
    fn a_malformed_key_file_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        std::fs::write(&path, "").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let err = Vault::load_or_create(&path).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "master key file {}: it decodes to 0 bytes; it must be 32",
                path.display()
            )
        );
    }

    #[test]
    fn malformed_master_keys_say_what_is_wrong() {
        assert!(
            Vault::from_base64("not base64!")
                .unwrap_err()
                .to_string()
                .contains("not base64")
        );
        assert!(
            Vault::from_base64("AAAA")
                .unwrap_err()
                .to_string()
                .contains("3 bytes; it must be 32")
        );
        assert!(
            Vault::from_base64(&base64::engine::general_purpose::STANDARD.encode([1u8; 32]))
                .is_ok()
        );
        assert!(!format!("{:?}", Vault::from_key(&[1; 32])).contains('1'));
    }
}
