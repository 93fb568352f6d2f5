//! The TLS identity of a [`crate::TestServer::start_tls`] server: a freshly generated test CA and
//! a server certificate it signed, plus the rustls configuration that serves with them.
//!
//! Every server gets its own CA, so a client can only trust a server whose CA the test handed
//! it explicitly (`ca_pem`), never another test's server by accident.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;

/// Names the server certificate is valid for: the DNS name `localhost` and the IP address the
/// server listens on (an IP SAN, which is what a client checks for `https://127.0.0.1:…`).
const SERVER_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// Numbers the CAs of one process. With the process id it makes every CA's name distinct, so a
/// client trusting another server's CA sees an unknown issuer (with equal names it would find
/// that CA as the issuer and report a bad signature instead).
static NEXT_CA: AtomicU64 = AtomicU64::new(1);

/// How a server certificate differs from a correct one, to test a client's checks.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// The names (DNS names or IP addresses) the certificate is for, instead of `localhost` and
    /// `127.0.0.1`.
    pub names: Option<Vec<String>>,
    /// Valid only during 2020: expired.
    pub expired: bool,
    /// Made for TLS clients (extended key usage clientAuth only), not servers.
    pub client_usage: bool,
}

/// The generated CA and the configuration that serves the server certificate it signed.
pub(crate) struct TlsIdentity {
    /// The CA certificate, PEM.
    pub(crate) ca_pem: String,
    /// Server side: the certificate chain (server certificate, then the CA) and its key.
    pub(crate) config: Arc<ServerConfig>,
}

impl TlsIdentity {
    /// Generates a CA and a server certificate for [`SERVER_NAMES`] (ECDSA P-256 keys, which
    /// take milliseconds to make, unlike RSA).
    ///
    /// # Panics
    /// If generation or the rustls configuration fails; neither depends on the environment.
    pub(crate) fn generate(options: &TlsOptions) -> TlsIdentity {
        let ca_key = KeyPair::generate().expect("bits-test-support: generate CA key");
        let mut ca_params = CertificateParams::default();
        let ca_number = NEXT_CA.fetch_add(1, Ordering::Relaxed);
        ca_params.distinguished_name = name(&format!(
            "bits-test-support test CA {}-{ca_number}",
            std::process::id()
        ));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .expect("bits-test-support: self-sign the test CA");

        let server_key = KeyPair::generate().expect("bits-test-support: generate server key");
        // `CertificateParams::new` makes "127.0.0.1" an IP SAN and "localhost" a DNS SAN.
        let names = options
            .names
            .clone()
            .unwrap_or_else(|| SERVER_NAMES.map(str::to_owned).to_vec());
        let mut server_params = CertificateParams::new(names)
            .expect("bits-test-support: server certificate parameters");
        server_params.distinguished_name = name("localhost");
        server_params.is_ca = IsCa::ExplicitNoCa;
        server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server_params.extended_key_usages = if options.client_usage {
            vec![ExtendedKeyUsagePurpose::ClientAuth]
        } else {
            vec![ExtendedKeyUsagePurpose::ServerAuth]
        };
        if options.expired {
            server_params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            server_params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let server_cert = server_params
            .signed_by(&server_key, &ca_cert, &ca_key)
            .expect("bits-test-support: sign the server certificate");

        let chain: Vec<CertificateDer<'static>> =
            vec![server_cert.der().clone(), ca_cert.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        // An explicit provider: `ServerConfig::builder()` would panic if another crate in the
        // build enabled a second provider (aws-lc-rs) without installing a process default.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("bits-test-support: TLS protocol versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("bits-test-support: TLS server certificate");
        // The server speaks HTTP/1.1 only; saying so keeps a client that offers h2 from guessing.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        TlsIdentity {
            ca_pem: ca_cert.pem(),
            config: Arc::new(config),
        }
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name.push(DnType::OrganizationName, "bits-test-support");
    name
}
