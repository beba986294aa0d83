//! `dialgate check`'s word on SRTP: when a trunk uses `srtp` (required or optional), whether
//! libsrtp2 can be loaded on this host, and its version. Without it those trunks' calls would
//! fail at the answer, so `check` fails instead, naming the Debian package to install.

use crate::config::{Config, SrtpMode};
use crate::media::srtp;

/// The trunks whose calls need libsrtp2 (`srtp: required | optional`), by id.
pub fn srtp_trunks(cfg: &Config) -> Vec<&str> {
    cfg.sip_connections
        .iter()
        .filter(|c| c.srtp != SrtpMode::Off)
        .map(|c| c.id.as_str())
        .collect()
}

/// `None` when no trunk uses SRTP; else the line to print: `Ok` when libsrtp2 loaded (with its
/// version when it tells it), `Err` with the reason and the package to install.
pub fn describe(cfg: &Config) -> Option<Result<String, String>> {
    let trunks = srtp_trunks(cfg);
    if trunks.is_empty() {
        return None;
    }
    let which = trunks.join(", ");
    let lib = srtp::library_name();
    Some(match srtp::version() {
        Ok(Some(v)) => Ok(format!("SRTP (trunks {which}): {lib} loaded, {v}")),
        Ok(None) => Ok(format!(
            "SRTP (trunks {which}): {lib} loaded (it does not report its version)"
        )),
        // The error names the Debian package (`libsrtp2-1`).
        Err(e) => Err(format!(
            "SRTP (trunks {which}): {e}; opened `{lib}` (set {} to the library's path if it is \
             installed elsewhere)",
            srtp::LIBRARY_ENV
        )),
    })
}
