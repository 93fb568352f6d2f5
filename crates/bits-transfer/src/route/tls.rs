//! The TLS configuration of a job: the system's certificate authorities
//! (read when a client is built, see `clients`), one more from the job's
//! `--ca-cert`, and the checks its security flags loosen, each exactly one:
//!
//! - `ignore-cert-cn-invalid`: the host name check is skipped; the chain,
//!   dates and usage are still checked.
//! - `ignore-cert-date-invalid`: the chain is checked at a moment each
//!   certificate was valid, so an expired one passes and nothing else does.
//! - `ignore-unknown-ca`: the presented certificates may be their own
//!   authority; the signatures between them, dates, usage and name are
//!   still checked.
//! - `ignore-cert-wrong-usage`: an extended key usage without server
//!   authentication is accepted.

use bits_core::SecurityFlags;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, Error, SignatureScheme};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The certificate checks a job loosens.
const TLS_FLAGS: u32 = SecurityFlags::IGNORE_CERT_CN_INVALID
    | SecurityFlags::IGNORE_CERT_DATE_INVALID
    | SecurityFlags::IGNORE_UNKNOWN_CA
    | SecurityFlags::IGNORE_CERT_WRONG_USAGE;

/// Why a job's extra certificate authority cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CaProblem(pub(crate) String);

/// A client configuration trusting the system's authorities and `extra`
/// (a job's own, read by [`read_ca`]), loosening what `flags` say.
pub(crate) fn client_config(
    system: &[CertificateDer<'static>],
    extra: Vec<TrustAnchor<'static>>,
    flags: SecurityFlags,
) -> ClientConfig {
    let mut anchors: Vec<TrustAnchor<'static>> = system
        .iter()
        .filter_map(|c| {
            webpki::anchor_from_trusted_cert(c)
                .ok()
                .map(|a| a.to_owned())
        })
        .collect();
    anchors.extend(extra);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default versions");
    let mut config = if flags.bits() & TLS_FLAGS == 0 {
        let roots = rustls::RootCertStore {
            roots: anchors.clone(),
        };
        builder.with_root_certificates(roots)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Loosened {
                anchors,
                flags,
                provider,
            }))
    }
    .with_no_client_auth();
    // As reqwest sets it for its own configurations: HTTP/2 when the
    // server offers it.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

/// The authorities of a PEM file: at least one, all parseable.
pub(crate) fn read_ca(path: &Path) -> Result<Vec<TrustAnchor<'static>>, CaProblem> {
    let shown = path.display();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| CaProblem(format!("cannot read {shown}: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CaProblem(format!("{shown} is not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(CaProblem(format!("{shown} holds no PEM certificate")));
    }
    certs
        .iter()
        .map(|c| {
            webpki::anchor_from_trusted_cert(c)
                .map(|a| a.to_owned())
                .map_err(|e| {
                    CaProblem(format!(
                        "{shown} holds a certificate that is not an authority: {e}"
                    ))
                })
        })
        .collect()
}

/// A verifier that loosens the checks of `flags` (see the module's list)
/// and makes every other one as rustls's own would.
#[derive(Debug)]
struct Loosened {
    anchors: Vec<TrustAnchor<'static>>,
    flags: SecurityFlags,
    provider: Arc<CryptoProvider>,
}

/// Any extended key usage (`ignore-cert-wrong-usage`).
struct AnyUsage;

impl webpki::ExtendedKeyUsageValidator for AnyUsage {
    fn validate(&self, iter: webpki::KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        // The extension must still be well-formed.
        for id in iter {
            id?;
        }
        Ok(())
    }
}

impl ServerCertVerifier for Loosened {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(pki_error)?;
        let mut anchors = self.anchors.clone();
        if self.flags.has(SecurityFlags::IGNORE_UNKNOWN_CA) {
            anchors.extend(
                std::iter::once(end_entity)
                    .chain(intermediates)
                    .filter_map(|c| {
                        webpki::anchor_from_trusted_cert(c)
                            .ok()
                            .map(|a| a.to_owned())
                    }),
            );
        }
        let algs = self.provider.signature_verification_algorithms.all;
        let mut time = now;
        // Each round moves the time into one more certificate's validity;
        // a chain has at most that many.
        let mut rounds = intermediates.len() + 2;
        loop {
            let checked = if self.flags.has(SecurityFlags::IGNORE_CERT_WRONG_USAGE) {
                cert.verify_for_usage(algs, &anchors, intermediates, time, AnyUsage, None, None)
                    .map(|_| ())
            } else {
                cert.verify_for_usage(
                    algs,
                    &anchors,
                    intermediates,
                    time,
                    webpki::KeyUsage::server_auth(),
                    None,
                    None,
                )
                .map(|_| ())
            };
            let dates = self.flags.has(SecurityFlags::IGNORE_CERT_DATE_INVALID) && rounds > 0;
            rounds = rounds.saturating_sub(1);
            match checked {
                Ok(()) => break,
                Err(webpki::Error::CertExpired { not_after, .. }) if dates => {
                    time = UnixTime::since_unix_epoch(
                        Duration::from_secs(not_after.as_secs())
                            .saturating_sub(Duration::from_secs(1)),
                    );
                }
                Err(webpki::Error::CertNotValidYet { not_before, .. }) if dates => {
                    time = UnixTime::since_unix_epoch(
                        Duration::from_secs(not_before.as_secs()) + Duration::from_secs(1),
                    );
                }
                Err(e) => return Err(pki_error(e)),
            }
        }
        match cert.verify_is_valid_for_subject_name(server_name) {
            Ok(()) => {}
            Err(webpki::Error::CertNotValidForName(_))
                if self.flags.has(SecurityFlags::IGNORE_CERT_CN_INVALID) => {}
            Err(e) => return Err(pki_error(e)),
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// webpki's verdict as rustls reports certificate problems.
fn pki_error(e: webpki::Error) -> Error {
    use webpki::Error as W;
    let c = match e {
        W::UnknownIssuer => CertificateError::UnknownIssuer,
        W::CertExpired { time, not_after } => CertificateError::ExpiredContext { time, not_after },
        W::CertNotValidYet { time, not_before } => {
            CertificateError::NotValidYetContext { time, not_before }
        }
        W::CertNotValidForName(_) => CertificateError::NotValidForName,
        #[allow(deprecated)]
        W::RequiredEkuNotFound | W::RequiredEkuNotFoundContext(_) => {
            CertificateError::InvalidPurpose
        }
        W::InvalidSignatureForPublicKey => CertificateError::BadSignature,
        W::BadDer | W::BadDerTime => CertificateError::BadEncoding,
        other => CertificateError::Other(rustls::OtherError(Arc::new(other))),
    };
    Error::InvalidCertificate(c)
}
