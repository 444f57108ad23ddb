//! The broker's TLS configuration (rustls): certificate, key, client certificate policy,
//! minimum version, and the client certificate's common name for the auth server.
//!
//! Mirrors upstream `nsqd/nsqd.go` `buildTLSConfig` and the TLS checks of `nsqd.New`: no
//! certificate means no TLS (IDENTIFY answers `tls_v1: false`); `--tls-required` without a
//! certificate is refused at start; `require` asks for any client certificate (verifying only
//! that the client holds its key, as Go's `RequireAnyClientCert`), `require-verify` verifies it
//! against `--tls-root-ca-file`. Files are read once, when the broker starts ([`prepare`]).

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig};
use rustls::{SignatureScheme, SupportedProtocolVersion};

use crate::options::{ClientAuthPolicy, Options, SecurityOptions, TlsMinVersion, TlsRequired};

/// How long an in-band TLS upgrade (or an HTTPS handshake) may take, as upstream's
/// `UpgradeTLS` deadline.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The crypto provider every TLS configuration of the broker uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the TLS configuration named by the options and returns options that carry it.
///
/// # Errors
/// Upstream's start-up errors: `failed to build TLS config - …` for an unreadable or invalid
/// file, `cannot require TLS client connections without TLS key and cert`.
pub fn prepare(opts: Arc<Options>) -> Result<Arc<Options>, String> {
    let config =
        server_config(&opts.security).map_err(|e| format!("failed to build TLS config - {e}"))?;
    if config.is_none() && opts.security.tls_required != TlsRequired::No {
        return Err("cannot require TLS client connections without TLS key and cert".into());
    }
    let auth_client = auth_client_config(&opts.security)
        .map_err(|e| format!("failed to build the auth client's TLS config - {e}"))?;
    if config.is_none() && auth_client.is_none() {
        return Ok(opts);
    }
    let mut with_tls = (*opts).clone();
    with_tls.security.tls_config = config;
    with_tls.security.auth_client_tls = auth_client;
    Ok(Arc::new(with_tls))
}

/// Where the system's certificate authorities usually are (Debian, Fedora, Alpine).
const SYSTEM_ROOTS: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// The auth client's configuration for `https://` auth servers: `--tls-root-ca-file` if given
/// (as upstream's `clientTLSConfig`), else the system's roots. `None` when no address needs it.
///
/// # Errors
/// An unreadable or empty root file.
pub fn auth_client_config(sec: &SecurityOptions) -> Result<Option<Arc<ClientConfig>>, String> {
    if !sec
        .auth_http_addresses
        .iter()
        .any(|a| a.starts_with("https://"))
    {
        return Ok(None);
    }
    let path = if sec.tls_root_ca_file.as_os_str().is_empty() {
        let found = SYSTEM_ROOTS
            .iter()
            .find(|p| std::path::Path::new(p).exists());
        std::path::PathBuf::from(found.ok_or("no system certificate authorities found")?)
    } else {
        sec.tls_root_ca_file.clone()
    };
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&path)
        .map_err(|e| format!("open {}: {e}", path.display()))?;
    for cert in certs.flatten() {
        // A bundle may hold certificates webpki cannot use; skip those, as Go does.
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(format!("{}: no usable certificate", path.display()));
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(Arc::new(config)))
}

/// The rustls server configuration, or `None` when no certificate is configured.
///
/// # Errors
/// What is wrong with a file or the policy, naming the file.
pub fn server_config(sec: &SecurityOptions) -> Result<Option<Arc<ServerConfig>>, String> {
    if !sec.tls_configured() {
        return Ok(None);
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&sec.tls_cert)
        .and_then(|iter| iter.collect::<Result<_, _>>())
        .map_err(|e| format!("open {}: {e}", sec.tls_cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", sec.tls_cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&sec.tls_key)
        .map_err(|e| format!("open {}: {e}", sec.tls_key.display()))?;
    let provider = provider();
    let versions: &[&SupportedProtocolVersion] = match sec.tls_min_version {
        TlsMinVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsMinVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?;
    let builder = match sec.tls_client_auth_policy {
        ClientAuthPolicy::None => builder.with_no_client_auth(),
        ClientAuthPolicy::Require => builder.with_client_cert_verifier(Arc::new(AnyClientCert {
            algorithms: provider.signature_verification_algorithms,
        })),
        ClientAuthPolicy::RequireVerify => {
            let roots = root_store(sec)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| e.to_string())?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("{}: {e}", sec.tls_key.display()))?;
    Ok(Some(Arc::new(config)))
}

/// The certificate authorities of `--tls-root-ca-file`.
fn root_store(sec: &SecurityOptions) -> Result<Arc<RootCertStore>, String> {
    if sec.tls_root_ca_file.as_os_str().is_empty() {
        // Go would fall back to the system's roots; a broker verifying its clients against
        // every public CA is almost never intended, so the file is required (README).
        return Err("--tls-client-auth-policy=require-verify needs --tls-root-ca-file".into());
    }
    let file = sec.tls_root_ca_file.display();
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&sec.tls_root_ca_file)
        .map_err(|e| format!("open {file}: {e}"))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("{file}: {e}"))?;
        roots.add(cert).map_err(|e| format!("{file}: {e}"))?;
    }
    if roots.is_empty() {
        return Err("failed to append certificate to pool".into());
    }
    Ok(Arc::new(roots))
}

/// `--tls-client-auth-policy=require`: any client certificate, as Go's `RequireAnyClientCert`.
/// The certificate is not checked against any authority, but the client must prove it holds
/// the certificate's key (the handshake signature is verified).
#[derive(Debug)]
struct AnyClientCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The subject common name of a DER certificate (the last CN, as Go's `pkix.Name` keeps), or
/// an empty string when there is none or the certificate does not parse.
///
/// ```text
/// Certificate  ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
/// TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer,
///                               validity, subject, ... }
/// Name ::= SEQUENCE OF SET OF SEQUENCE { type OID, value ANY }      (CN: OID 2.5.4.3)
/// ```
pub fn common_name(cert_der: &[u8]) -> String {
    subject_common_name(cert_der).unwrap_or_default()
}

fn subject_common_name(der: &[u8]) -> Option<String> {
    const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const OID: u8 = 0x06;
    const VERSION: u8 = 0xa0;
    const CN_OID: &[u8] = &[0x55, 0x04, 0x03];
    let (tag, certificate, _) = der_element(der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = der_element(certificate)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut fields = tbs;
    let (tag, _, rest) = der_element(fields)?;
    if tag == VERSION {
        fields = rest;
    }
    // serialNumber, signature, issuer, validity; then the subject.
    for _ in 0..4 {
        fields = der_element(fields)?.2;
    }
    let (tag, mut rdns, _) = der_element(fields)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut name = None;
    while !rdns.is_empty() {
        let (tag, mut set, rest) = der_element(rdns)?;
        rdns = rest;
        if tag != SET {
            return None;
        }
        while !set.is_empty() {
            let (_, attribute, rest) = der_element(set)?;
            set = rest;
            let (tag, oid, value) = der_element(attribute)?;
            if tag == OID && oid == CN_OID {
                let (_, text, _) = der_element(value)?;
                name = Some(String::from_utf8_lossy(text).into_owned());
            }
        }
    }
    name
}

/// Splits one DER element off `input`: (tag, contents, rest). Only single-byte tags and
/// definite lengths (all DER has).
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let bytes = rest.get(..count)?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest.get(count..)?)
    };
    Some((tag, rest.get(..len)?, rest.get(len..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with(names: &[(rcgen::DnType, &str)]) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (kind, value) in names {
            params.distinguished_name.push(kind.clone(), *value);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn common_name_is_read_from_the_subject() {
        let der = cert_with(&[
            (rcgen::DnType::OrganizationName, "sluice"),
            (rcgen::DnType::CommonName, "consumer-7"),
        ]);
        assert_eq!(common_name(&der), "consumer-7");
        assert_eq!(
            common_name(&cert_with(&[(rcgen::DnType::OrganizationName, "x")])),
            ""
        );
    }

    #[test]
    fn common_name_of_garbage_is_empty_at_every_cut() {
        let der = cert_with(&[(rcgen::DnType::CommonName, "cut")]);
        for len in 0..der.len() {
            let _ = common_name(&der[..len]);
        }
        let mut flipped = der.clone();
        for i in 0..flipped.len() {
            flipped[i] ^= 0xff;
            let _ = common_name(&flipped);
            flipped[i] ^= 0xff;
        }
        assert_eq!(common_name(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), "");
    }
}
