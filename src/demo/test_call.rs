//! `dialgate test-call`: one dialout against a running instance, followed to its end.

use super::ApiClient;
use serde_json::json;
use std::time::Duration;

/// What to dial and how to reach the API.
pub struct TestCall {
    pub api: String,
    pub client_id: String,
    pub secret: String,
    pub ca: Option<std::path::PathBuf>,
    pub bot: String,
    pub target: String,
    pub caller: Option<String>,
    pub notify_url: Option<String>,
    pub timeout: Duration,
}

/// Places the call and prints its record's timeline; true when it completed.
pub async fn test_call(t: TestCall) -> Result<bool, String> {
    let pem = match &t.ca {
        Some(p) => Some(std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?),
        None => None,
    };
    let mut api = ApiClient::new(&t.api, pem.as_deref(), &t.client_id, &t.secret)?;
    api.login(&t.client_id, &t.secret).await?;
    let mut body = json!({"bot": t.bot, "target": t.target});
    if let Some(c) = &t.caller {
        body["caller"] = json!(c);
    }
    if let Some(n) = &t.notify_url {
        body["notifyUrl"] = json!(n);
    }
    let (status, v) = api.dialout(&body).await?;
    if status != 200 {
        return Err(format!("dialout refused: {status} {v}"));
    }
    let id = v["conversationId"].as_str().unwrap_or_default().to_owned();
    println!("dialout accepted: conversationId {id}");
    let rec = api.wait_terminal(&id, t.timeout).await?;
    for e in rec["timeline"].as_array().into_iter().flatten() {
        println!(
            "{}  {:<12} {}",
            e["at"].as_str().unwrap_or(""),
            e["event"].as_str().unwrap_or(""),
            e["detail"].as_str().unwrap_or("")
        );
    }
    println!(
        "\nresult: {} reasonCode={} sipCode={} machineDetection={}",
        rec["status"], rec["reasonCode"], rec["sipCode"], rec["machineDetection"]["result"]
    );
    Ok(rec["status"] == "completed")
}
