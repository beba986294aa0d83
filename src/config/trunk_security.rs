//! TLS and SRTP settings of a trunk (`sip_connections[]`): how the trunk's certificate is
//! verified, the optional client certificate, and SDES-SRTP on the carrier leg.

use super::error::ErrorKind;
use super::raw::RawSipConnection;
use super::types::SipTransport;
use super::validate::Ctx;
use serde::Deserialize;
use std::path::PathBuf;

/// SDES-SRTP (RFC 4568) on a trunk's media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SrtpMode {
    /// Plain RTP (`RTP/AVP`, no `a=crypto`).
    #[default]
    Off,
    /// `RTP/AVP` with `a=crypto`: SRTP when the trunk answers with a crypto line, else RTP.
    Optional,
    /// `RTP/SAVP` with `a=crypto`: an answer without SRTP fails the call.
    Required,
}

impl SrtpMode {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SrtpMode::Off => "off",
            SrtpMode::Optional => "optional",
            SrtpMode::Required => "required",
        }
    }
}

/// How dialgate's TLS client treats a trunk (only used with `transport: tls`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkTls {
    /// Verify the trunk's certificate (chain and host name). `false` only when written
    /// explicitly as `tls_verify: false`; a warning is logged for every connection.
    pub verify: bool,
    /// PEM bundle of the CAs that sign the trunk's certificate; `None` = the Mozilla root
    /// store compiled in (webpki-roots).
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for trunks that authenticate dialgate by certificate.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl Default for TrunkTls {
    fn default() -> Self {
        TrunkTls {
            verify: true,
            ca_file: None,
            client_cert: None,
        }
    }
}

fn file(ctx: &mut Ctx, src: usize, path: &str, value: &str) -> PathBuf {
    let p = ctx.resolve(value);
    if !p.is_file() {
        ctx.err(
            src,
            path,
            ErrorKind::MissingFile,
            format!(
                "file {} does not exist (relative paths start at the config file's directory)",
                p.display()
            ),
        );
    }
    p
}

/// Validates the TLS and SRTP fields of trunk `p`: TLS settings and SRTP need
/// `transport: tls` (SDES keys travel in clear SDP otherwise), the files exist, a client
/// certificate comes with its key.
pub(super) fn trunk_security(
    ctx: &mut Ctx,
    src: usize,
    p: &str,
    raw: &RawSipConnection,
) -> (TrunkTls, SrtpMode) {
    let transport = raw.transport.unwrap_or_else(super::raw::d_transport);
    let srtp = srtp_mode(ctx, src, p, raw, transport);
    tls_only_fields(ctx, src, p, raw, transport);
    let verify = raw.tls_verify.unwrap_or(true);
    if !verify && raw.tls_ca_file.is_some() {
        ctx.err(
            src,
            &format!("{p}.tls_ca_file"),
            ErrorKind::Conflict,
            "tls_ca_file is unused with tls_verify: false; remove one of them",
        );
    }
    let ca_file = raw
        .tls_ca_file
        .as_deref()
        .map(|f| file(ctx, src, &format!("{p}.tls_ca_file"), f));
    let client_cert = client_cert(ctx, src, p, raw);
    (
        TrunkTls {
            verify,
            ca_file,
            client_cert,
        },
        srtp,
    )
}

/// `srtp`: SDES puts the media keys in the SDP, so any mode but `off` needs `transport: tls`.
fn srtp_mode(
    ctx: &mut Ctx,
    src: usize,
    p: &str,
    raw: &RawSipConnection,
    transport: SipTransport,
) -> SrtpMode {
    let srtp = raw.srtp.unwrap_or_default();
    if srtp != SrtpMode::Off && transport != SipTransport::Tls {
        ctx.err(
            src,
            &format!("{p}.srtp"),
            ErrorKind::Conflict,
            format!(
                "srtp: {} needs transport: tls (this trunk uses {}): SDES keys are sent in \
                 the SDP and must never cross the network in clear",
                srtp.as_str(),
                transport.as_str()
            ),
        );
    }
    srtp
}

/// The `tls_*` fields mean nothing on a UDP/TCP trunk; reporting them catches a forgotten
/// `transport: tls` instead of silently sending in clear.
fn tls_only_fields(
    ctx: &mut Ctx,
    src: usize,
    p: &str,
    raw: &RawSipConnection,
    transport: SipTransport,
) {
    let tls_fields = [
        ("tls_verify", raw.tls_verify.is_some()),
        ("tls_ca_file", raw.tls_ca_file.is_some()),
        ("tls_cert_file", raw.tls_cert_file.is_some()),
        ("tls_key_file", raw.tls_key_file.is_some()),
    ];
    for (field, set) in tls_fields {
        if set && transport != SipTransport::Tls {
            ctx.err(
                src,
                &format!("{p}.{field}"),
                ErrorKind::Conflict,
                format!(
                    "{field} applies to transport: tls only (this trunk uses {})",
                    transport.as_str()
                ),
            );
        }
    }
}

/// The client certificate and its key come as a pair (one without the other cannot
/// authenticate); both files must exist.
fn client_cert(
    ctx: &mut Ctx,
    src: usize,
    p: &str,
    raw: &RawSipConnection,
) -> Option<(PathBuf, PathBuf)> {
    match (&raw.tls_cert_file, &raw.tls_key_file) {
        (Some(c), Some(k)) => Some((
            file(ctx, src, &format!("{p}.tls_cert_file"), c),
            file(ctx, src, &format!("{p}.tls_key_file"), k),
        )),
        (None, None) => None,
        (Some(_), None) => {
            ctx.err(
                src,
                &format!("{p}.tls_cert_file"),
                ErrorKind::Conflict,
                "tls_cert_file needs tls_key_file (the client certificate's private key)",
            );
            None
        }
        (None, Some(_)) => {
            ctx.err(
                src,
                &format!("{p}.tls_key_file"),
                ErrorKind::Conflict,
                "tls_key_file needs tls_cert_file (the client certificate)",
            );
            None
        }
    }
}
