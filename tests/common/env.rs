//! The environment variables the tests' configurations name (`secret_env:` and the like), set
//! once before `main`. A test binary runs its tests in parallel threads, and writing the
//! environment while another thread reads it (Rust's loader takes a lock, C code such as
//! whisper.cpp, ONNX Runtime or `getaddrinfo` does not) is a data race; before `main` there is
//! only one thread. Children spawned by the tests (the `dialgate` binary) inherit them.

use super::{flows, mediaflows, sippflows, sttflows};

/// `control_plane`'s dialer client secret (`CP_DIALER_SECRET`).
pub const CP_DIALER_SECRET: &str = "dialer-secret-123";
/// `openapi`'s dialer client secret (`OPENAPI_DIALER_SECRET`).
pub const OPENAPI_DIALER_SECRET: &str = "openapi-secret-1";
/// `recognition_status`'s dialer client secret (`REC_DIALER_SECRET`).
pub const REC_DIALER_SECRET: &str = "rec-secret-1";

/// Every variable and its value (the same in every binary).
pub const VARS: &[(&str, &str)] = &[
    ("FLOWS_DIALER_SECRET", flows::DIALER_SECRET),
    ("MEDIAFLOWS_DIALER_SECRET", mediaflows::DIALER_SECRET),
    ("STTFLOWS_DIALER_SECRET", sttflows::DIALER_SECRET),
    ("FLOW_DIALER_SECRET", sippflows::SECRET),
    ("FLOW_WEBHOOK_SECRET", "flow-whsec"),
    ("CP_DIALER_SECRET", CP_DIALER_SECRET),
    ("CP_READER_SECRET", "reader-secret-456"),
    ("CP_WEBHOOK_SECRET", "whsec"),
    ("OPENAPI_DIALER_SECRET", OPENAPI_DIALER_SECRET),
    ("REC_DIALER_SECRET", REC_DIALER_SECRET),
    ("SNAP_SECRET", "snap-secret"),
];

extern "C" fn set_vars() {
    for (name, value) in VARS {
        // SAFETY: runs from `.init_array`, before `main`, while the process has one thread.
        unsafe { std::env::set_var(name, value) };
    }
}

/// Runs [`set_vars`] at load time, as the C runtime runs every `.init_array` entry (Linux).
#[used]
#[unsafe(link_section = ".init_array")]
static SET_VARS_BEFORE_MAIN: extern "C" fn() = set_vars;
