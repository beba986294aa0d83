//! Command-line interface.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// dialgate: outbound calls for voice bots over SIP.
#[derive(Debug, Parser)]
#[command(name = "dialgate", version, about)]
pub struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true)]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service.
    Run {
        /// Configuration file.
        #[arg(long, short, default_value = "conf/dialgate.yaml")]
        config: PathBuf,
    },
    /// Validate a configuration file: print a summary, or every error.
    Check {
        /// Configuration file.
        file: PathBuf,
    },
    /// Read a secret on standard input and print the hash to put in YAML.
    HashSecret,
}
