//! The HTTP API, the command line's `check`/`demo`/probe, logging and the status: dialgate
//! in-process (or its binary) on loopback with real HTTPS, the SIP side simulated.
//!
//! One test binary for the area (each former `tests/<name>.rs` is a module here, so the suite
//! links a handful of binaries instead of one per file). Shared state: the kit's secrets are set
//! before `main` (`common::env`); each module's fixed RTP ranges are distinct (`logging` 22000-22099,
//! `recognition_status` 22100-22199).

mod api_abuse;
mod bot_probe;
#[path = "../common/mod.rs"]
mod common;
mod control_plane;
mod demo;
mod hot_reload_api;
mod logging;
mod notify_guard;
mod openapi;
mod recognition_status;
