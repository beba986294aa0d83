use clap::Parser;
use dialgate::cli::{
    AmdEvalArgs, Cli, ColorChoice, Command, SttEvalArgs, SttModelAction, TestCallArgs, TtsEvalArgs,
    default_log_filter,
};
use std::io::{IsTerminal, Read};
use std::process::ExitCode;

/// Logs go to standard error; `level` applies when `RUST_LOG` is not set.
fn init_logging(json: bool, color: ColorChoice, level: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_log_filter(level)));
    let ansi = color.use_ansi(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
    );
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    // Warnings about what strangers send: one line per source per interval.
    let limit = dialgate::loglimit::MalformedInputLimit::default();
    if json {
        b.json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .finish()
            .with(limit)
            .init();
    } else {
        b.finish().with(limit).init();
    }
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Runtime::new() {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            None
        }
    }
}

fn done(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Text bots need speech synthesis: without the voice or its runtime they could not say a word,
/// so `check` refuses the configuration and says what to run.
fn text_bots_without_voice(cfg: &dialgate::config::Config) -> Option<String> {
    let text_bots: Vec<&str> = cfg
        .bots
        .iter()
        .filter(|b| b.is_text_bot())
        .map(|b| b.id.as_str())
        .collect();
    if text_bots.is_empty() {
        return None;
    }
    let tts = dialgate::tts::TtsConfig {
        data_dir: cfg.server.data_dir.clone(),
        ..Default::default()
    };
    let reason = dialgate::tts::TtsEngine::check(&tts).err()?;
    Some(format!(
        "text bot(s) {} cannot speak: speech synthesis is not installed ({reason}); run scripts/setup-model {}",
        text_bots.join(", "),
        cfg.server.data_dir.display()
    ))
}

/// `check --probe`: every bot's `events_url` gets the Bot API validation request; one line per
/// bot; failure if any bot is unhealthy.
fn probe_bots(cfg: &dialgate::config::Config) -> ExitCode {
    use dialgate::webhook::probe;
    let Some(rt) = runtime() else {
        return ExitCode::FAILURE;
    };
    let results = rt.block_on(probe::probe_bots(cfg, probe::PROBE_TIMEOUT));
    if results.is_empty() {
        println!("probe: no bot has an events_url");
    }
    let mut unhealthy = 0;
    for p in &results {
        println!("probe: bot {} ({}): {}", p.bot, p.url, p.outcome.describe());
        if !p.outcome.healthy() {
            unhealthy += 1;
        }
    }
    if unhealthy > 0 {
        eprintln!("probe: {unhealthy} bot(s) cannot take calls");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo prints its own timeline: keep the log to warnings unless asked.
    let level = if cli.command.is_quiet() {
        "warn"
    } else {
        "info"
    };
    init_logging(cli.log_json, cli.color, level);
    dialgate::crypto::install_crypto_provider();
    match cli.command {
        Command::Run { config } => run(&config),
        Command::Check { file, probe } => check(&file, probe),
        Command::HashSecret => hash_secret(),
        Command::Demo { conf_dir } => demo(&conf_dir),
        Command::TestCall(args) => test_call(args),
        Command::AmdEval(args) => amd_eval(args),
        Command::SttEval(args) => stt_eval(args),
        Command::TtsEval(args) => tts_eval(args),
        Command::SttModel {
            action:
                SttModelAction::Import {
                    input,
                    out,
                    weights,
                },
        } => report(
            "stt-model import",
            dialgate::stt::import_model(&input, &out, weights),
        ),
    }
}

/// Prints a report (success) or the error prefixed with the command's name (failure).
fn report<R: std::fmt::Display, E: std::fmt::Display>(what: &str, r: Result<R, E>) -> ExitCode {
    match r {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{what}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `run`: the gateway, until Ctrl-C or SIGTERM.
fn run(config: &std::path::Path) -> ExitCode {
    let Some(rt) = runtime() else {
        return ExitCode::FAILURE;
    };
    rt.block_on(async move {
        let app = match dialgate::app::App::start(config, Default::default()).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("dialgate: {e}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(api = %app.api_url(), "dialgate running; Ctrl-C or SIGTERM to stop");
        wait_for_stop().await;
        tracing::info!("stopping: hanging up live calls");
        app.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// `check`: the configuration's errors, or its summary (and the bots' health with `--probe`).
fn check(file: &std::path::Path, probe: bool) -> ExitCode {
    let cfg = match dialgate::config::load(file) {
        Ok(cfg) => cfg,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{}: {} error(s)", file.display(), errors.errors().len());
            return ExitCode::FAILURE;
        }
    };
    if let Some(problem) = text_bots_without_voice(&cfg) {
        eprintln!("{}: {problem}", file.display());
        return ExitCode::FAILURE;
    }
    // An `srtp` trunk's calls need libsrtp2 on this host.
    let srtp = match dialgate::call::srtp_check::describe(&cfg).transpose() {
        Ok(line) => line,
        Err(problem) => {
            eprintln!("{}: {problem}", file.display());
            return ExitCode::FAILURE;
        }
    };
    println!("{}: OK", file.display());
    print!("{}", dialgate::config::summary(&cfg));
    if dialgate::call::trunk_dns::any_domain(&cfg) {
        let Some(rt) = runtime() else {
            return ExitCode::FAILURE;
        };
        for line in rt.block_on(dialgate::call::trunk_dns::describe(&cfg)) {
            println!("{line}");
        }
    }
    if let Some(line) = srtp {
        println!("{line}");
    }
    if probe {
        probe_bots(&cfg)
    } else {
        ExitCode::SUCCESS
    }
}

/// `hash-secret`: the argon2 hash of the secret on standard input.
fn hash_secret() -> ExitCode {
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

/// `demo`: one call through simulated peers, its timeline printed.
fn demo(conf_dir: &std::path::Path) -> ExitCode {
    let Some(rt) = runtime() else {
        return ExitCode::FAILURE;
    };
    match rt.block_on(dialgate::demo::run_demo(conf_dir)) {
        Ok(ok) => {
            println!(
                "\n{}",
                if ok {
                    "demo: the call went as expected"
                } else {
                    "demo: FAILED (see the checks above)"
                }
            );
            done(ok)
        }
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `test-call`: one dialout through a running gateway's API; the secret is read from
/// `$secret_env`.
fn test_call(a: TestCallArgs) -> ExitCode {
    let Ok(secret) = std::env::var(&a.secret_env) else {
        eprintln!("set the API client's secret in ${}", a.secret_env);
        return ExitCode::FAILURE;
    };
    let Some(rt) = runtime() else {
        return ExitCode::FAILURE;
    };
    let call = dialgate::demo::TestCall {
        api: a.api,
        client_id: a.client_id,
        secret,
        ca: a.ca,
        bot: a.bot,
        target: a.target,
        caller: a.caller,
        notify_url: a.notify_url,
        timeout: std::time::Duration::from_secs(a.timeout_sec),
    };
    match rt.block_on(dialgate::demo::test_call(call)) {
        Ok(ok) => done(ok),
        Err(e) => {
            eprintln!("test-call: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `amd-eval`: the machine detector over a labelled corpus, with transcripts as in a call
/// unless `audio_only` (or no recogniser is installed).
fn amd_eval(a: AmdEvalArgs) -> ExitCode {
    let AmdEvalArgs {
        dir,
        csv,
        audio_only,
        data_dir,
        hold_ms,
        set,
    } = a;
    let dir = dir.as_path();
    let mut params = dialgate::amd::AmdParams::default();
    if let Some(h) = hold_ms {
        params.transcript_hold_ms = h;
    }
    let mut cfg = dialgate::stt::SttEngineConfig {
        data_dir,
        ..Default::default()
    };
    if let Some(e) = set.iter().find_map(|kv| cfg.set(kv).err()) {
        eprintln!("amd-eval: {e}");
        return ExitCode::FAILURE;
    }
    let engine = (!audio_only).then(|| dialgate::stt::SttEngine::new(cfg));
    let engine = match engine.as_ref().map(|e| e.status()) {
        Some(dialgate::stt::SttStatus::Ready { model, .. }) => {
            println!("transcripts: {model} recogniser (as in a call; --audio-only to skip)");
            engine
        }
        Some(dialgate::stt::SttStatus::Unavailable { reason }) => {
            println!("transcripts: none, audio only ({reason})");
            None
        }
        None => {
            println!("transcripts: none, audio only (--audio-only)");
            None
        }
    };
    let result = match engine {
        Some(engine) => amd_eval_with_transcripts(dir, &params, &engine),
        None => dialgate::amd::eval_corpus(dir, &params),
    };
    match result {
        Ok(report) => {
            println!("{report}");
            if let Some(p) = &csv
                && let Err(e) = std::fs::write(p, report.to_csv())
            {
                eprintln!("cannot write {}: {e}", p.display());
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("amd-eval: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The corpus recognised once, in simulated real time; audio-only and assisted figures (and
/// the transcript hold sweep) are scored on the same recognition.
fn amd_eval_with_transcripts(
    dir: &std::path::Path,
    params: &dialgate::amd::AmdParams,
    engine: &dialgate::stt::SttEngine,
) -> Result<dialgate::amd::EvalReport, dialgate::amd::AmdEvalError> {
    let transcribe = |samples: &[i16]| -> Vec<(u64, String)> {
        match dialgate::stt::eval::transcript_for_amd(engine, samples) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("amd-eval: recognition failed: {e}");
                Vec::new()
            }
        }
    };
    dialgate::amd::transcribe_corpus(dir, &transcribe).and_then(|t| {
        let holds = [0, 1000, 2000, 3000, 4000, 6000];
        let table = dialgate::amd::compare(dir, params, &t, &holds)?;
        let refused = engine
            .stats()
            .jobs_refused
            .load(std::sync::atomic::Ordering::Relaxed);
        println!("{table}recognition jobs refused (queue full): {refused}\n");
        dialgate::amd::eval_corpus_with_transcripts(dir, params, &t)
    })
}

/// `stt-eval`: the recogniser over a directory of labelled clips.
fn stt_eval(a: SttEvalArgs) -> ExitCode {
    let mut cfg = dialgate::stt::SttEngineConfig {
        data_dir: a.data_dir,
        model_path: a.model,
        audio_ctx: a.audio_ctx,
        audio_ctx_margin: a.ctx_margin,
        audio_ctx_min: a.ctx_min,
        beam_size: a.beam,
        initial_prompt: a.prompt,
        ..Default::default()
    };
    if let Some(e) = a.set.iter().find_map(|kv| cfg.set(kv).err()) {
        eprintln!("stt-eval: {e}");
        return ExitCode::FAILURE;
    }
    let mut session = dialgate::stt::SttSessionConfig::default();
    session.segmenter.pause_ms = a.pause_ms;
    session.segmenter.final_pause_ms = a.final_pause_ms;
    report("stt-eval", dialgate::stt::eval_dir(&a.dir, cfg, session))
}

/// `tts-eval`: synthesis of a file's lines, checked by recognising them back.
fn tts_eval(a: TtsEvalArgs) -> ExitCode {
    let defaults = dialgate::tts::TtsConfig::default();
    let tts = dialgate::tts::TtsConfig {
        data_dir: a.data_dir.clone(),
        threads_per_job: a.threads,
        length_scale: a.length_scale.or(defaults.length_scale),
        noise_scale: a.noise_scale.or(defaults.noise_scale),
        noise_w: a.noise_w.or(defaults.noise_w),
        ..defaults
    };
    let stt = dialgate::stt::SttEngineConfig {
        data_dir: a.data_dir,
        ..Default::default()
    };
    report(
        "tts-eval",
        dialgate::tts::eval::eval_file(&a.file, tts, stt),
    )
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
