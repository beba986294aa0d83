//! Configuration: loading and every error with its position, the `cluster` and trunk security
//! sections, structural errors in one run of `dialgate check`, the command line, hot reload
//! through the watcher and by SIGHUP.
//!
//! One test binary for the area. Process-global state: the environment variables the fixtures
//! read are set once for the binary (`config_kit::env`); SIGHUP goes to the whole process, so
//! every test with a running watcher holds `config_kit::watcher_lock` (a signal sent by one test
//! would otherwise reload another test's store and bump its version).

mod cli;
mod cli_srtp;
mod config_bot_session_timer;
mod config_cluster;
mod config_greeting_bias;
mod config_kit;
mod config_load;
mod config_reload;
mod config_sighup;
mod config_structural;
mod config_stt;
mod config_trunk_security;
