//! The process's one rustls crypto provider. The HTTPS API, the webhook and Bot API client, the
//! SIP TLS transport and the demo all need it installed before they build a TLS configuration;
//! they all call this one function, so there is a single place that chooses the provider.

/// Installs rustls' `ring` provider as the process default; later calls are harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
