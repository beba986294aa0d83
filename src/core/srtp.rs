//! SRTP key material shared by the SIP layer (SDES in the SDP) and the relay (libsrtp2).

/// The SDES crypto suites dialgate offers (RFC 4568 §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrtpSuite {
    /// AES-128 counter mode, HMAC-SHA1 with an 80-bit tag.
    AesCm128HmacSha1_80,
    /// AES-128 counter mode, HMAC-SHA1 with a 32-bit tag on SRTP (80 bits on SRTCP).
    AesCm128HmacSha1_32,
}

impl SrtpSuite {
    /// The SDP name of the suite.
    pub fn name(self) -> &'static str {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpSuite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    /// The suite named `name` in an `a=crypto` line, if dialgate supports it.
    pub fn from_name(name: &str) -> Option<SrtpSuite> {
        [
            SrtpSuite::AesCm128HmacSha1_80,
            SrtpSuite::AesCm128HmacSha1_32,
        ]
        .into_iter()
        .find(|s| s.name().eq_ignore_ascii_case(name))
    }
}

/// Master key (16 bytes) followed by master salt (14 bytes), as in an SDES `inline:` key.
pub const MASTER_LEN: usize = 30;

/// Keys of one SRTP leg: ours (what we send with) and the peer's (what we receive with).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SrtpKeys {
    /// The negotiated suite.
    pub suite: SrtpSuite,
    /// Our master key and salt (we protect with it).
    pub local: [u8; MASTER_LEN],
    /// The peer's master key and salt (we unprotect with it).
    pub remote: [u8; MASTER_LEN],
}

impl std::fmt::Debug for SrtpKeys {
    // Keys are secrets: keep them out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpKeys")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}
