use clap::Parser;
use dialgate::cli::{Cli, Command};
use std::io::Read;
use std::process::ExitCode;

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        b.json().flatten_event(true).with_current_span(true).init();
    } else {
        b.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    match cli.command {
        Command::Run { config } => {
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            rt.block_on(async move {
                let app = match dialgate::app::App::start(&config, Default::default()).await {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::error!("{e}");
                        return ExitCode::FAILURE;
                    }
                };
                tracing::info!(api = %app.api_url(), "dialgate running; Ctrl-C or SIGTERM to stop");
                wait_for_stop().await;
                tracing::info!("stopping");
                app.shutdown().await;
                ExitCode::SUCCESS
            })
        }
        Command::Check { file } => match dialgate::config::load(&file) {
            Ok(cfg) => {
                println!("{}: OK", file.display());
                println!("{}", dialgate::config::summary(&cfg));
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::FAILURE
            }
        },
        Command::HashSecret => {
            let mut s = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut s) {
                eprintln!("cannot read the secret from standard input: {e}");
                return ExitCode::FAILURE;
            }
            let secret = s.trim_end_matches(['\r', '\n']);
            if secret.is_empty() {
                eprintln!(
                    "the secret is empty: pipe it on standard input, e.g. `printf %s \"$SECRET\" | dialgate hash-secret`"
                );
                return ExitCode::FAILURE;
            }
            println!("{}", dialgate::config::hash_secret(secret));
            ExitCode::SUCCESS
        }
    }
}

async fn wait_for_stop() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
