//! The per-user CA of credential injection (`[[network.credentials]]`): created on first use
//! in `$XDG_STATE_HOME/wrapix/egress-ca/ca.pem` (0600 in a 0700 folder: the certificate and
//! its private key), never in a project and never mounted into a sandbox. Only the
//! certificate goes into a sandbox (see [`crate::egress::provide`]), where it is trusted; the
//! proxy signs a leaf certificate with it for each credential host when it starts.
//!
//! The CA's name is derived from its key ("wrapix egress CA <8 hex digits of sha256 of the
//! public key>"), so the issuer of a leaf is rebuilt from the key alone, without parsing the
//! stored certificate, and two users' CAs never share a name.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

use crate::error::SandboxError;

/// The CA's folder below wrapix's state folder.
pub const DIR: &str = "egress-ca";
/// The certificate and key, one PEM file.
const FILE: &str = "ca.pem";
/// A CA file is a few hundred bytes; more is not one of ours.
const LIMIT: u64 = 64 * 1024;

/// The CA, ready to sign leaf certificates.
pub struct Ca {
    /// The certificate (PEM): what the sandbox trusts.
    pub cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

/// `$XDG_STATE_HOME/wrapix/egress-ca`.
pub fn dir(state_root: &Path) -> PathBuf {
    state_root.join(DIR)
}

fn fail(what: String, fix: &str) -> SandboxError {
    SandboxError::Network {
        detail: format!("egress proxy's CA: {what}"),
        fix: fix.into(),
    }
}

/// The parameters of the CA whose key is `key`: the same every time for the same key.
fn ca_params(key: &KeyPair) -> CertificateParams {
    let digest = Sha256::digest(key.public_key_raw());
    let tag: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "wrapix");
    dn.push(DnType::CommonName, format!("wrapix egress CA {tag}"));
    let mut p = CertificateParams::default();
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

/// `(year, month, day)` `days` from today (UTC).
fn day(days: i64) -> (i16, i8, i8) {
    let d = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(24 * days))
        .unwrap_or(jiff::Timestamp::MAX)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    (d.year(), d.month(), d.day())
}

/// The date `days` from today, as rcgen takes it.
macro_rules! date {
    ($days:expr) => {{
        let (y, m, d) = day($days);
        rcgen::date_time_ymd(i32::from(y), m as u8, d as u8)
    }};
}

/// Loads the user's CA from `dir`, creating it (and the folder, 0700) on first use. Two runs
/// that create it at once agree on one: the file appears by a rename that never replaces.
pub fn load_or_create(dir: &Path) -> Result<Ca, SandboxError> {
    let folder = wrapix_hostfs::Dir::create_trusted(dir, 0o700)?;
    let file = Path::new(FILE);
    if let Some(bytes) = folder.read(file, LIMIT)? {
        return parse(&bytes).map_err(|why| {
            fail(
                format!("{}: {why}", dir.join(FILE).display()),
                "remove it (a new CA is created at the next run, and sandboxes trust that one)",
            )
        });
    }
    let key =
        KeyPair::generate().map_err(|e| fail(format!("generate a key: {e}"), "report this bug"))?;
    let mut params = ca_params(&key);
    params.not_before = date!(-1);
    params.not_after = date!(3650);
    let cert = params
        .self_signed(&key)
        .map_err(|e| fail(format!("sign the certificate: {e}"), "report this bug"))?;
    let text = format!("{}{}", cert.pem(), key.serialize_pem());
    let tmp = format!("{FILE}.{}.tmp", std::process::id());
    folder.write_atomic(Path::new(&tmp), text.as_bytes(), 0o600)?;
    let renamed = rustix::fs::renameat_with(
        folder.fd(),
        tmp.as_str(),
        folder.fd(),
        FILE,
        rustix::fs::RenameFlags::NOREPLACE,
    );
    if renamed.is_err() {
        // Another run made one first (or the rename failed): use what is there.
        let _ = rustix::fs::unlinkat(folder.fd(), tmp.as_str(), rustix::fs::AtFlags::empty());
        let bytes = folder.read(file, LIMIT)?.ok_or_else(|| {
            fail(
                format!("cannot create {}", dir.join(FILE).display()),
                "check that wrapix's state folder is writable",
            )
        })?;
        return parse(&bytes).map_err(|why| fail(why, "remove the file and run again"));
    }
    parse(text.as_bytes()).map_err(|why| fail(why, "report this bug"))
}

/// The certificate and the key from the file's PEM blocks.
fn parse(bytes: &[u8]) -> Result<Ca, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not PEM text".to_owned())?;
    let cert_end = "-----END CERTIFICATE-----";
    let end = text.find(cert_end).ok_or("no certificate in it")? + cert_end.len();
    let cert_pem = format!("{}\n", text[..end].trim());
    let key = KeyPair::from_pem(&text[end..])
        .map_err(|e| format!("no usable private key in it ({e})"))?;
    let cert_der = rustls::pki_types::pem::PemObject::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| format!("a bad certificate in it ({e:?})"))?;
    let issuer = Issuer::new(ca_params(&key), key);
    Ok(Ca {
        cert_pem,
        cert_der,
        issuer,
    })
}

impl Ca {
    /// A certificate for `host` signed by the CA (chain: leaf, CA), with a fresh key.
    pub fn leaf(
        &self,
        host: &str,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let mut p = CertificateParams::new(vec![host.to_owned()]).map_err(|e| e.to_string())?;
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, host);
        p.not_before = date!(-1);
        p.not_after = date!(90);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.use_authority_key_identifier_extension = true;
        let cert = p.signed_by(&key, &self.issuer).map_err(|e| e.to_string())?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok((vec![cert.der().clone(), self.cert_der.clone()], der))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_private_and_reloaded_the_same() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("state/egress-ca");
        let a = load_or_create(&d).unwrap();
        let b = load_or_create(&d).unwrap();
        assert_eq!(a.cert_pem, b.cert_pem);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&d.join(FILE)), 0o600);
        assert_eq!(mode(&d), 0o700);
        assert!(a.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(!a.cert_pem.contains("PRIVATE KEY"));
        // A leaf signed from the reloaded key verifies against the stored certificate.
        let (chain, _) = b.leaf("api.example").unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(a.cert_der.clone()).unwrap();
        #[allow(deprecated)] // ring, as in mitm.rs
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            std::sync::Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        use rustls::client::danger::ServerCertVerifier;
        verifier
            .verify_server_cert(
                &chain[0],
                &chain[1..],
                &rustls::pki_types::ServerName::try_from("api.example").unwrap(),
                &[],
                rustls::pki_types::UnixTime::now(),
            )
            .unwrap();
        assert!(verifier
            .verify_server_cert(
                &chain[0],
                &chain[1..],
                &rustls::pki_types::ServerName::try_from("other.example").unwrap(),
                &[],
                rustls::pki_types::UnixTime::now(),
            )
            .is_err());
    }

    #[test]
    fn a_damaged_file_is_an_error_not_a_new_ca() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("egress-ca");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join(FILE), "garbage").unwrap();
        let e = load_or_create(&d).unwrap_err().to_string();
        assert!(
            e.contains("no certificate") && e.contains("remove it"),
            "{e}"
        );
    }
}
