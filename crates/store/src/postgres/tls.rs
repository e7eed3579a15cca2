//! TLS to PostgreSQL, with libpq's `sslmode` and `sslrootcert` meanings, so a
//! URL copied from a hosting provider or from `psql` means what it meant there:
//!
//! - `disable`: no TLS.
//! - `prefer` (the default): TLS when the server offers it, plain otherwise;
//!   the certificate is not checked (it protects against eavesdropping only).
//! - `require`: TLS or no connection; the certificate is not checked, unless
//!   `sslrootcert` is given, which makes it `verify-ca` (as in libpq).
//! - `verify-ca`: TLS, and the certificate must chain to a trusted root.
//! - `verify-full`: that, and it must be issued for the host connected to.
//!
//! Trusted roots are the PEM file `sslrootcert` names, or, without one (or with
//! `sslrootcert=system`), the Mozilla roots compiled in (`webpki-roots`); libpq
//! would look for `~/.postgresql/root.crt` instead. tokio-postgres knows only
//! `disable`, `prefer` and `require`, so the two `verify-*` modes and
//! `sslrootcert` are taken out of the URL here and carried out by the rustls
//! configuration (tokio-postgres-rustls connects it to the driver).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{Error, Result};

/// libpq's `sslmode` values (`allow` is read as `prefer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// Where trusted roots come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Roots {
    /// The compiled-in Mozilla roots.
    Builtin,
    /// A PEM file.
    File(PathBuf),
}

/// The TLS settings of a database URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) mode: Mode,
    /// `None` when the URL gave no `sslrootcert`.
    pub(crate) roots: Option<Roots>,
}

fn bad(what: &str) -> Error {
    Error::Migration(format!("the PostgreSQL URL is not valid: {what}"))
}

fn mode(value: &str) -> Result<Mode> {
    Ok(match value {
        "disable" => Mode::Disable,
        "allow" | "prefer" => Mode::Prefer,
        "require" => Mode::Require,
        "verify-ca" => Mode::VerifyCa,
        "verify-full" => Mode::VerifyFull,
        other => {
            return Err(bad(&format!(
                "sslmode {other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
            )));
        }
    })
}

/// Decodes `%XX` escapes (query values in a URL).
fn percent_decoded(value: &str) -> Result<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad("a %-escape in its query is malformed"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad("a query value is not UTF-8"))
}

/// The words of a key=value connection string, with where each starts.
fn words(s: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in s.char_indices().chain(std::iter::once((s.len(), ' '))) {
        match (c.is_whitespace(), start) {
            (true, Some(from)) => {
                out.push((from, &s[from..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    out
}

/// Reads `part` into `settings` when it is `sslmode=...` or
/// `sslrootcert=...`; whether it was.
fn take_tls(part: &str, settings: &mut Settings) -> Result<bool> {
    match part.split_once('=') {
        Some(("sslmode", value)) => settings.mode = mode(&percent_decoded(value)?)?,
        Some(("sslrootcert", value)) => {
            let value = percent_decoded(value)?;
            settings.roots = Some(if value == "system" {
                Roots::Builtin
            } else {
                Roots::File(PathBuf::from(value))
            });
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Takes `sslmode` and `sslrootcert` out of `url` (the URL form's query, or
/// the key=value form's words) and returns the rest, with the `sslmode`
/// tokio-postgres should use, and the TLS settings. Everything else is kept
/// as it was written.
pub(crate) fn split(url: &str) -> Result<(String, Settings)> {
    let lower = url.get(..13).unwrap_or(url).to_ascii_lowercase();
    let is_url = lower.starts_with("postgres://") || lower.starts_with("postgresql://");
    let mut settings = Settings {
        mode: Mode::Prefer,
        roots: None,
    };
    // The rest, ready for the driver's `sslmode` to be appended.
    let rest = if is_url {
        let (head, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        for part in query.split('&').filter(|p| !p.is_empty()) {
            if !take_tls(part, &mut settings)? {
                kept.push(part);
            }
        }
        kept.push("");
        format!("{head}?{}", kept.join("&"))
    } else {
        // Only the TLS words go; the rest (quoted values included) stays.
        let mut taken = Vec::new();
        for (at, word) in words(url) {
            if take_tls(word, &mut settings)? {
                taken.push(at..at + word.len());
            }
        }
        let mut rest = url.to_owned();
        for range in taken.into_iter().rev() {
            rest.replace_range(range, "");
        }
        format!("{} ", rest.trim_end())
    };
    // libpq: a root file makes `require` check the chain; `system` roots make
    // any mode check the name too.
    if settings.mode == Mode::Require && settings.roots.is_some() {
        settings.mode = Mode::VerifyCa;
    }
    if settings.roots == Some(Roots::Builtin) && settings.mode != Mode::Disable {
        settings.mode = Mode::VerifyFull;
    }
    let driver_mode = match settings.mode {
        Mode::Disable => "sslmode=disable",
        Mode::Prefer => "sslmode=prefer",
        _ => "sslmode=require",
    };
    Ok((format!("{rest}{driver_mode}"), settings))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(from: Option<&Roots>) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    match from {
        None | Some(Roots::Builtin) => {
            store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        Some(Roots::File(path)) => {
            let unreadable = |e: &dyn std::fmt::Display| {
                Error::Migration(format!(
                    "cannot read the PostgreSQL root certificates in {}: {e}",
                    path.display()
                ))
            };
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| unreadable(&e))? {
                let cert = cert.map_err(|e| unreadable(&e))?;
                store.add(cert).map_err(|e| unreadable(&e))?;
            }
            if store.is_empty() {
                return Err(unreadable(&"no certificate in the file"));
            }
        }
    }
    Ok(store)
}

/// The connector for `settings`.
pub(crate) fn connector(settings: &Settings) -> Result<MakeRustlsConnect> {
    let provider = provider();
    let setup = |e: &dyn std::fmt::Display| Error::Migration(format!("TLS setup failed: {e}"));
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| setup(&e))?;
    let roots = roots(settings.roots.as_ref())?;
    let config = if settings.mode == Mode::VerifyFull {
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| setup(&e))?;
        let check = if settings.mode == Mode::VerifyCa {
            Check::Chain
        } else {
            Check::Nothing
        };
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Relaxed { webpki, check }))
            .with_no_client_auth()
    };
    Ok(MakeRustlsConnect::new(config))
}

/// What a relaxed verifier checks of the certificate.
#[derive(Debug, Clone, Copy)]
enum Check {
    /// `prefer` and `require`: nothing, as libpq.
    Nothing,
    /// `verify-ca`: the chain, not the name.
    Chain,
}

/// A WebPKI verifier that checks less of the certificate; the handshake's
/// signatures are still checked against it. The WebPKI verifier checks the
/// chain first and the name after, so a name error means the chain was good.
#[derive(Debug)]
struct Relaxed {
    webpki: Arc<WebPkiServerVerifier>,
    check: Check,
}

impl ServerCertVerifier for Relaxed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if let Check::Nothing = self.check {
            return Ok(ServerCertVerified::assertion());
        }
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tls_settings_are_taken_out_of_either_url_form() {
        let (rest, s) =
            split("postgres://gw:pw@db/gw?sslmode=verify-full&application_name=x").unwrap();
        assert_eq!(
            rest,
            "postgres://gw:pw@db/gw?application_name=x&sslmode=require"
        );
        assert_eq!((s.mode, s.roots), (Mode::VerifyFull, None));

        let (rest, s) = split("postgres://db/gw").unwrap();
        assert_eq!(rest, "postgres://db/gw?sslmode=prefer");
        assert_eq!(s.mode, Mode::Prefer);

        let (rest, s) =
            split("postgresql://db/gw?sslmode=require&sslrootcert=%2Fetc%2Fca.pem").unwrap();
        assert_eq!(rest, "postgresql://db/gw?sslmode=require");
        assert_eq!(
            (s.mode, s.roots),
            (Mode::VerifyCa, Some(Roots::File("/etc/ca.pem".into()))),
            "a root file makes require check the chain, as in libpq"
        );

        let (_, s) = split("postgres://db/gw?sslrootcert=system").unwrap();
        assert_eq!((s.mode, s.roots), (Mode::VerifyFull, Some(Roots::Builtin)));

        let (rest, s) = split("host=db password='a  b' sslmode=disable user=gw").unwrap();
        assert_eq!(rest, "host=db password='a  b'  user=gw sslmode=disable");
        assert_eq!(s.mode, Mode::Disable);

        let e = split("postgres://db/gw?sslmode=verify").unwrap_err();
        assert!(
            e.to_string().contains("sslmode \"verify\" is not one of"),
            "{e}"
        );
        assert!(split("postgres://db/gw?sslrootcert=%zz").is_err());
    }

    #[test]
    fn a_root_file_that_is_missing_or_empty_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.pem");
        let e = roots(Some(&Roots::File(missing.clone()))).unwrap_err();
        assert!(
            e.to_string().contains(&missing.display().to_string()),
            "{e}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = roots(Some(&Roots::File(empty))).unwrap_err();
        assert!(e.to_string().contains("no certificate in the file"), "{e}");
    }
}
