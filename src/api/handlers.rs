//! One function per route.

use super::ApiState;
use super::dialout::{self, MAX_BODY};
use super::error::ApiError;
use super::router::{Reply, json, read_body};
use crate::call::limiter::{Limits, Refusal};
use crate::call::queue::policy::{self, BeforeLimits};
use crate::call::queue::{QueueRefusal, Waiting};
use crate::call::{AcceptedDialout, HangupOutcome};
use crate::config::Group;
use crate::config::OnLimit;
use crate::store::{CallFilter, CallStatus, Inserted, NewCall};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;

fn authorization<B>(req: &Request<B>) -> Option<&str> {
    req.headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

async fn authenticate<B>(
    state: &ApiState,
    peer: SocketAddr,
    req: &Request<B>,
    group: Option<Group>,
) -> Result<super::auth::Principal, ApiError> {
    let snap = state.config.current();
    let who = state
        .auth
        .authenticate(&snap.config, peer.ip(), authorization(req))
        .await?;
    if let Some(g) = group {
        super::auth::Authenticator::require(&snap.config, &who, g)?;
    }
    Ok(who)
}

use crate::store::rfc3339;

fn body_timeout(state: &ApiState) -> std::time::Duration {
    let secs = state.config.current().config.server.http.body_timeout_sec;
    std::time::Duration::from_secs(secs.into())
}

/// Whether `who` may see and control `rec`: its own calls, or every call
/// with `all_calls: true`. Another client's call answers 404 as an unknown
/// one would, so conversation IDs cannot be probed.
fn owns(state: &ApiState, who: &super::auth::Principal, rec: &crate::store::CallRecord) -> bool {
    rec.client_id == who.client_id || sees_all_calls(state, who)
}

fn sees_all_calls(state: &ApiState, who: &super::auth::Principal) -> bool {
    state
        .config
        .current()
        .config
        .api_client(&who.client_id)
        .is_some_and(|c| c.all_calls)
}

fn parse_time(field: &str, s: &str) -> Result<i64, ApiError> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| {
            ApiError::field(
                field,
                format!("`{field}` must be RFC 3339 (2026-01-31T12:00:00Z) or Unix milliseconds"),
            )
        })
}

/// `GET /metrics`.
pub async fn metrics(state: &ApiState) -> Reply {
    let media = crate::media::global_metrics();
    state.metrics.sync_media(&media);
    let delayed = state
        .auth
        .delayed
        .load(std::sync::atomic::Ordering::Relaxed);
    let c = &state.metrics.auth_delayed;
    c.inc_by(delayed.saturating_sub(c.get()));
    let suppressed = crate::loglimit::SUPPRESSED.load(std::sync::atomic::Ordering::Relaxed);
    let c = &state.metrics.log_suppressed;
    c.inc_by(suppressed.saturating_sub(c.get()));
    let (ok, failed) = state.config.reload_counts();
    for (result, n) in [("ok", ok), ("failed", failed)] {
        let c = state
            .metrics
            .config_reloads
            .get_or_create(&crate::metrics::ResultLabels {
                result: result.into(),
            });
        c.inc_by(n.saturating_sub(c.get()));
    }
    state.metrics.set_live_calls(&state.calls.live_by_state());
    state.metrics.set_tables(&state.calls.tables());
    state.metrics.sync_queues();
    let mut r = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(
        state.metrics.render(),
    )));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    );
    r
}

/// `POST /oauth/token` (client credentials grant, form-encoded).
pub async fn token(
    state: &ApiState,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Reply, ApiError> {
    let basic = authorization(&req)
        .and_then(|h| h.trim().strip_prefix("Basic ").map(str::to_owned))
        .and_then(|b| super::auth::parse_basic(&b));
    let (_, body) = read_body(
        req,
        "application/x-www-form-urlencoded",
        8 * 1024,
        body_timeout(state),
    )
    .await?;
    let mut grant = None;
    let (mut id, mut secret) = (None, None);
    for (k, v) in form_urlencoded::parse(&body) {
        match k.as_ref() {
            "grant_type" => grant = Some(v.into_owned()),
            "client_id" => id = Some(v.into_owned()),
            "client_secret" => secret = Some(v.into_owned()),
            _ => {}
        }
    }
    match grant.as_deref() {
        Some("client_credentials") => {}
        Some(other) => {
            return Err(ApiError::field(
                "grant_type",
                format!("unsupported grant_type `{other}`: only client_credentials"),
            ));
        }
        None => {
            return Err(ApiError::field(
                "grant_type",
                "grant_type=client_credentials is required",
            ));
        }
    }
    let (id, secret) = match (basic, id, secret) {
        (Some(b), _, _) => b,
        (None, Some(i), Some(s)) => (i, s),
        _ => return Err(ApiError::Unauthenticated),
    };
    let snap = state.config.current();
    state
        .auth
        .check_secret(&snap.config, peer.ip(), &id, &secret)
        .await?;
    let token = state.auth.issue(&id);
    tracing::info!(client = %id, "access token issued");
    Ok(json(
        StatusCode::OK,
        &json!({"access_token": token, "token_type": "Bearer", "expires_in": state.auth.ttl_secs()}),
    ))
}

/// `GET /api/v1/status`.
pub async fn status(
    state: &ApiState,
    peer: SocketAddr,
    req: &Request<Incoming>,
) -> Result<Reply, ApiError> {
    authenticate(state, peer, req, None).await?;
    let snap = state.config.current();
    let loaded_ms = snap
        .loaded_at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let last_error = state.config.last_error().map(|(at, msg)| {
        let ms = at
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        json!({"at": rfc3339(ms), "message": msg})
    });
    let live: i64 = state.calls.live_by_state().iter().map(|(_, n)| n).sum();
    let mut body = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptimeSeconds": state.started.elapsed().map(|d| d.as_secs()).unwrap_or(0),
        "config": {
            "version": snap.version,
            "loadedAt": rfc3339(loaded_ms),
            "lastReloadError": last_error,
        },
        "liveCalls": live,
    });
    if let (Value::Object(b), Value::Object(extra)) = (&mut body, (state.status_extra)()) {
        b.extend(extra);
    }
    // Bots that need recognition while no model is loaded (an empty list when all is well).
    if let Some(rec) = body.get_mut("recognition").and_then(Value::as_object_mut) {
        rec.insert(
            "botsWithoutRecognition".into(),
            super::recognition::status_gaps(state),
        );
    }
    Ok(json(StatusCode::OK, &body))
}

fn refusal(bot: &str, r: Refusal) -> ApiError {
    match r {
        Refusal::Concurrency { retry_after_secs } => ApiError::RateLimited {
            bot: bot.to_owned(),
            limit: "concurrent call limit (outbound.max_concurrent)",
            retry_after: retry_after_secs,
        },
        Refusal::Rate { retry_after_secs } => ApiError::RateLimited {
            bot: bot.to_owned(),
            limit: "calls-per-second limit (outbound.max_cps)",
            retry_after: retry_after_secs,
        },
        Refusal::Unavailable {
            reason,
            retry_after_secs,
        } => ApiError::ClusterUnavailable {
            reason,
            retry_after: retry_after_secs,
        },
    }
}

fn accepted(id: &str) -> Reply {
    json(StatusCode::OK, &json!({ "conversationId": id }))
}

/// `POST /api/v1/actions/dialout`: the ordered checks of DESIGN.md §1.
pub async fn dialout(
    state: &Arc<ApiState>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Reply, ApiError> {
    // 1-2. Authentication, then group.
    let who = authenticate(state, peer, &req, Some(Group::CallControl)).await?;
    let idem = idempotency_key(req.headers())?;
    // 3. Body: content type, size, JSON, fields.
    let (body, mut request) = read_dialout(state, req).await?;
    // A retried request answers as the first one did, before any other check
    // can change the answer (the bot may have been disabled since, or be at
    // its limit because of this very call).
    if let Some(key) = &idem
        && let Some(id) = state.store.find_idempotent(&who.client_id, key).await?
    {
        tracing::info!(client = %who.client_id, conversation_id = %id, "idempotent retry answered with the first call");
        return Ok(accepted(&id));
    }
    // 4. Bot exists and may dial out.
    let snap = state.config.current();
    let cfg = &snap.config;
    let bot = dialling_bot(cfg, &request.bot)?;
    // 4b. Recognition it needs but no model: refused (503) or placed with a warning.
    let recognition_warning = super::recognition::check(state, bot, &request)?;
    // 4c-5. The number in E.164; a routing rule matches.
    let (target_as_sent, route) = route_target(cfg, bot, &mut request, &body)?;
    // 6. Room for one more call (before the 200, not as a failure after it),
    // then the bot's rate limits; `None`: the dialout waits in the bot's queue.
    let permit = admit(state, bot, &request).await?;
    // 7. Durably recorded before the answer.
    let conversation_id = uuid::Uuid::new_v4().to_string();
    let new_call = NewCall {
        conversation_id: conversation_id.clone(),
        client_id: who.client_id.clone(),
        bot_id: bot.id.clone(),
        target: request.target.display(),
        request: with_target_as_sent(&request, &target_as_sent)?,
        config_version: snap.version,
        snapshot: crate::webhook::snapshot(cfg, &who.client_id, bot),
    };
    let stored = match permit.is_some() {
        true => state.store.insert_call(new_call, idem).await?,
        false => state.store.insert_queued_call(new_call, idem).await?,
    };
    if let Inserted::Duplicate(first) = stored {
        // A concurrent retry won the race: never place a second call.
        return Ok(accepted(&first));
    }
    note_accepted(
        state,
        &conversation_id,
        &who,
        bot,
        &request,
        recognition_warning,
    )
    .await?;
    let call = RecordedDialout {
        conversation_id,
        client_id: who.client_id,
        bot_id: bot.id.clone(),
        request,
        config: snap.clone(),
        route,
    };
    Ok(dispatch(state, call, permit))
}

/// Step 3 of a dialout: the body (content type, size, JSON, fields) and the request it holds,
/// its `notifyUrl` checked against `server.notify_allow`.
async fn read_dialout(
    state: &ApiState,
    req: Request<Incoming>,
) -> Result<(bytes::Bytes, crate::core::DialoutRequest), ApiError> {
    let (_, body) = read_body(req, "application/json", MAX_BODY, body_timeout(state)).await?;
    let request = dialout::parse(&body)?;
    if let Some(url) = &request.notify_url {
        let allow = &state.config.current().config.server.notify_allow;
        crate::netguard::check_url(url, allow).map_err(|e| {
            ApiError::field("notifyUrl", format!("`notifyUrl` `{url}` is refused: {e}"))
        })?;
    }
    Ok((body, request))
}

/// Step 4 of a dialout: the bot exists and may dial out.
fn dialling_bot<'a>(
    cfg: &'a crate::config::Config,
    id: &str,
) -> Result<&'a crate::config::Bot, ApiError> {
    let bot = cfg
        .bot(id)
        .ok_or_else(|| ApiError::UnknownBot(id.to_owned()))?;
    if !bot.outbound.enabled {
        return Err(ApiError::OutboundDisabled(bot.id.clone()));
    }
    Ok(bot)
}

/// An accepted dialout is counted, its recognition warning (if any) put on its timeline, and
/// logged.
async fn note_accepted(
    state: &ApiState,
    conversation_id: &str,
    who: &super::auth::Principal,
    bot: &crate::config::Bot,
    request: &crate::core::DialoutRequest,
    recognition_warning: Option<String>,
) -> Result<(), ApiError> {
    state.metrics.dialouts_accepted.inc();
    if let Some(w) = &recognition_warning {
        tracing::warn!(conversation_id = %conversation_id, bot = %bot.id, "{w}");
        state.store.add_event(conversation_id, "warning", w).await?;
    }
    tracing::info!(
        conversation_id = %conversation_id,
        client = %who.client_id,
        bot = %bot.id,
        target = %request.target.display(),
        "dialout accepted"
    );
    Ok(())
}

/// A dialout durably recorded, to be dialled or queued.
struct RecordedDialout {
    conversation_id: String,
    client_id: String,
    bot_id: String,
    request: crate::core::DialoutRequest,
    config: Arc<crate::config::Snapshot>,
    route: crate::call::routing::Route,
}

/// The recorded dialout is dialled now with its `permit`, or, without one, waits in its bot's
/// queue (the answer then says `queued`).
fn dispatch(
    state: &ApiState,
    call: RecordedDialout,
    permit: Option<crate::call::limiter::Permit>,
) -> Reply {
    let RecordedDialout {
        conversation_id,
        client_id,
        bot_id,
        request,
        config,
        route,
    } = call;
    let Some(permit) = permit else {
        tracing::info!(conversation_id = %conversation_id, bot = %bot_id, waiting = state.queue.len(&bot_id) + 1, "dialout queued: the bot is at its limits");
        state.queue.push(Waiting {
            conversation_id: conversation_id.clone(),
            client_id,
            bot_id,
            request,
            queued_at_ms: crate::store::now_ms(),
        });
        return json(
            StatusCode::OK,
            &json!({ "conversationId": conversation_id, "queued": true }),
        );
    };
    state.calls.start(AcceptedDialout {
        conversation_id: conversation_id.clone(),
        client_id,
        bot_id,
        request,
        config,
        permit,
        route,
    });
    accepted(&conversation_id)
}

/// Steps 4c and 5 of a dialout: the number in E.164, checked against the numbering plan (a
/// number without `+` takes the bot's default country, else its trunk's: the trunk a routing
/// rule picks for the number as written), then the routing rule for it. The target as the
/// dialer wrote it, and the route.
fn route_target(
    cfg: &crate::config::Config,
    bot: &crate::config::Bot,
    request: &mut crate::core::DialoutRequest,
    body: &[u8],
) -> Result<(String, crate::call::routing::Route), ApiError> {
    let target_as_sent = raw_target(body).unwrap_or_else(|| request.target.display());
    let country = bot.default_country.or_else(|| {
        dialout::needs_country(&request.target)
            .then(|| crate::call::routing::resolve(cfg, bot, &request.target))
            .flatten()
            .and_then(|r| r.connection.default_country)
    });
    request.target = dialout::normalise_target(&request.target, country)?;
    let Some(route) = crate::call::routing::resolve(cfg, bot, &request.target) else {
        return Err(ApiError::NoRoute {
            bot: bot.id.clone(),
            target: request.target.display(),
        });
    };
    Ok((target_as_sent, route.to_route()))
}

/// The `Idempotency-Key` header, when there is one: 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &hyper::HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => match v.to_str() {
            Ok(s) if !s.is_empty() && s.len() <= 255 => Ok(Some(s.to_owned())),
            _ => Err(ApiError::field(
                "Idempotency-Key",
                "the Idempotency-Key header must be 1 to 255 visible ASCII characters",
            )),
        },
    }
}

/// Step 6 of a dialout: dialgate's capacity, then the bot's limits. A permit to dial now, or
/// `None` when the bot queues and the dialout has room in its queue.
async fn admit(
    state: &Arc<ApiState>,
    bot: &crate::config::Bot,
    request: &crate::core::DialoutRequest,
) -> Result<Option<crate::call::limiter::Permit>, ApiError> {
    let room = (state.capacity)();
    let queues = bot.outbound.on_limit.queues(request.queue);
    let shared = state.queue.is_shared();
    // No room here: refused at once, unless the dialout can wait for another instance (the
    // queue's depth does not change this answer).
    if policy::refused_for_room(room.is_ok(), queues, shared) {
        let e = room.err().map(|e| e.to_string()).unwrap_or_default();
        tracing::warn!(error = %e, "dialout refused: dialgate is at capacity");
        return Err(ApiError::AtCapacity(e));
    }
    let limits = Limits {
        max_cps: bot.outbound.max_cps,
        max_concurrent: bot.outbound.max_concurrent,
    };
    if request.queue == Some(true) && bot.outbound.on_limit == OnLimit::Reject {
        return Err(ApiError::field(
            "queue",
            format!(
                "bot `{}` does not queue dialouts (its outbound.on_limit is reject)",
                bot.id
            ),
        ));
    }
    // In cluster mode the queue is shared: its depth is read from the store.
    let depth = match queues {
        true => state.queue.depth(&bot.id).await?,
        false => 0,
    };
    let permit = match policy::before_limits(room.is_ok(), queues, depth) {
        // Behind the dialouts already waiting, or for an instance of the cluster with room.
        BeforeLimits::Queue => None,
        BeforeLimits::AskLimiter => match state.limiter.try_acquire(&bot.id, limits).await {
            Ok(p) => Some(p),
            // Without the shared limits nothing is admitted, not even to the queue: its
            // dispatcher could not dial it either, and the dialer retries after 503.
            Err(r @ Refusal::Unavailable { .. }) => return Err(refusal(&bot.id, r)),
            Err(_) if queues => None,
            Err(r) => return Err(refusal(&bot.id, r)),
        },
    };
    if permit.is_none() {
        state
            .queue
            .room(&bot.id, depth, bot.outbound.max_queue, bot.outbound.max_cps)
            .map_err(|r| match r {
                QueueRefusal::Full {
                    retry_after_secs, ..
                } => ApiError::RateLimited {
                    bot: bot.id.clone(),
                    limit: "queue length (outbound.max_queue)",
                    retry_after: retry_after_secs,
                },
            })?;
    }
    Ok(permit)
}

/// The `target` field exactly as the dialer wrote it.
fn raw_target(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Raw {
        target: String,
    }
    serde_json::from_slice::<Raw>(body).ok().map(|r| r.target)
}

/// The request as stored on the call record, with the target as the dialer
/// wrote it (`targetAsSent`) beside the one dialled (`target`).
fn with_target_as_sent(
    request: &crate::core::DialoutRequest,
    as_sent: &str,
) -> Result<Value, ApiError> {
    let mut v = serde_json::to_value(request).map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Value::Object(m) = &mut v {
        m.insert("targetAsSent".into(), Value::String(as_sent.to_owned()));
    }
    Ok(v)
}

/// The call record with its deliveries and timeline, times as RFC 3339.
pub async fn call_json(state: &ApiState, rec: crate::store::CallRecord) -> Result<Value, ApiError> {
    let id = rec.conversation_id.clone();
    let mut v = serde_json::to_value(&rec).map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Value::Object(m) = &mut v {
        for (k, val) in m.iter_mut() {
            if k.ends_with("At")
                && let Some(ms) = val.as_i64()
            {
                *val = rfc3339(ms);
            }
        }
        let deliveries = state.store.deliveries(&id).await?;
        let notes: Vec<Value> = deliveries
            .into_iter()
            .map(|(item, attempts)| {
                json!({
                    "channel": item.channel,
                    "kind": item.kind,
                    "url": item.url,
                    "state": item.state,
                    "createdAt": rfc3339(item.created_at),
                    "attempts": attempts.iter().map(|a| json!({
                        "at": rfc3339(a.at), "httpStatus": a.http_status, "error": a.error, "durationMs": a.duration_ms
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        m.insert("deliveries".into(), Value::Array(notes));
        let events = state.store.events(&id).await?;
        m.insert(
            "timeline".into(),
            Value::Array(
                events
                    .into_iter()
                    .map(|(at, kind, detail)| json!({"at": rfc3339(at), "event": kind, "detail": detail}))
                    .collect(),
            ),
        );
    }
    Ok(v)
}

/// `GET /api/v1/calls/{id}`.
pub async fn get_call(
    state: &ApiState,
    peer: SocketAddr,
    req: &Request<Incoming>,
    id: &str,
) -> Result<Reply, ApiError> {
    let who = authenticate(state, peer, req, Some(Group::CallDataManager)).await?;
    let rec = state
        .store
        .get_call(id)
        .await?
        .filter(|r| owns(state, &who, r))
        .ok_or_else(|| ApiError::CallNotFound(id.to_owned()))?;
    Ok(json(StatusCode::OK, &call_json(state, rec).await?))
}

/// `GET /api/v1/calls?bot=&status=&from=&to=&limit=&offset=`.
pub async fn list_calls(
    state: &ApiState,
    peer: SocketAddr,
    req: &Request<Incoming>,
) -> Result<Reply, ApiError> {
    let who = authenticate(state, peer, req, Some(Group::CallDataManager)).await?;
    let mut f = CallFilter {
        limit: 50,
        client: (!sees_all_calls(state, &who)).then(|| who.client_id.clone()),
        ..Default::default()
    };
    for (k, v) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "bot" => f.bot = Some(v.into_owned()),
            "status" => {
                f.status = Some(CallStatus::parse(&v).ok_or_else(|| {
                    ApiError::field("status", format!("unknown status `{v}`: queued, dialing, ringing, answered, connected, failed, completed"))
                })?)
            }
            "from" => f.from_ms = Some(parse_time("from", &v)?),
            "to" => f.to_ms = Some(parse_time("to", &v)?),
            "limit" => {
                f.limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=500).contains(n))
                    .ok_or_else(|| ApiError::field("limit", "`limit` must be 1 to 500"))?
            }
            "offset" => {
                f.offset = v
                    .parse::<u32>()
                    .map_err(|_| ApiError::field("offset", "`offset` must be a non-negative integer"))?
            }
            other => return Err(ApiError::field(other, format!("unknown query parameter `{other}`: bot, status, from, to, limit, offset"))),
        }
    }
    // A bot named by its name is found by its ID.
    if let Some(b) = &f.bot
        && let Some(bot) = state.config.current().config.bot(b)
    {
        f.bot = Some(bot.id.clone());
    }
    let (limit, offset) = (f.limit, f.offset);
    let recs = state.store.list_calls(f).await?;
    let next = (recs.len() as u32 == limit).then_some(offset + limit);
    let mut calls = Vec::with_capacity(recs.len());
    for r in recs {
        let mut v = serde_json::to_value(&r).map_err(|e| ApiError::Internal(e.to_string()))?;
        if let Value::Object(m) = &mut v {
            for (k, val) in m.iter_mut() {
                if k.ends_with("At")
                    && let Some(ms) = val.as_i64()
                {
                    *val = rfc3339(ms);
                }
            }
        }
        calls.push(v);
    }
    Ok(json(
        StatusCode::OK,
        &json!({"calls": calls, "nextOffset": next}),
    ))
}

/// `DELETE /api/v1/calls/{id}`: hang-up request.
pub async fn hangup(
    state: &ApiState,
    peer: SocketAddr,
    req: &Request<Incoming>,
    id: &str,
) -> Result<Reply, ApiError> {
    let who = authenticate(state, peer, req, Some(Group::CallControl)).await?;
    let rec = state
        .store
        .get_call(id)
        .await?
        .filter(|r| owns(state, &who, r))
        .ok_or_else(|| ApiError::CallNotFound(id.to_owned()))?;
    if rec.status.is_terminal() {
        return Err(ApiError::CallEnded(id.to_owned()));
    }
    if state.queue.cancel(id).await {
        tracing::info!(conversation_id = %id, client = %who.client_id, "queued dialout cancelled by the API");
        return Ok(json(
            StatusCode::ACCEPTED,
            &json!({"conversationId": id, "status": "hangup-requested"}),
        ));
    }
    match state.calls.hangup(id) {
        HangupOutcome::Requested => {
            tracing::info!(conversation_id = %id, client = %who.client_id, "hang-up requested by the API");
            Ok(json(
                StatusCode::ACCEPTED,
                &json!({"conversationId": id, "status": "hangup-requested"}),
            ))
        }
        HangupOutcome::NotLive => match &state.owners {
            Some(owners) => hangup_elsewhere(owners, id, &who.client_id).await,
            // Stored as live but unknown to the engine: it is ending right now.
            None => Err(ApiError::CallEnded(id.to_owned())),
        },
    }
}

/// Cluster mode: a call not live here is hung up by its owner instance; answers as a local
/// hang-up does once the owner has confirmed, or 503 when the owner is gone.
async fn hangup_elsewhere(
    owners: &crate::cluster::Owners,
    id: &str,
    client: &str,
) -> Result<Reply, ApiError> {
    use crate::cluster::RemoteHangup;
    match owners.hangup_remote(id).await {
        Ok(RemoteHangup::Requested { owner }) => {
            tracing::info!(conversation_id = %id, %client, %owner, "hang-up requested by the API, through the owning instance");
            Ok(json(
                StatusCode::ACCEPTED,
                &json!({"conversationId": id, "status": "hangup-requested"}),
            ))
        }
        Ok(RemoteHangup::NotLive { .. }) => Err(ApiError::CallEnded(id.to_owned())),
        // Not terminal in the store, yet no instance holds it live: a queued dialout being
        // claimed by an instance right now, a dialout queued on an instance without the shared
        // store, or a call whose owner died and is not taken over yet.
        Ok(RemoteHangup::NoOwner) => Err(ApiError::OwnerUnreachable {
            id: id.to_owned(),
            owner: "none".into(),
            why: "is not recorded on Redis (the call is being dialled by an instance right now, or its owner stopped)".into(),
            retry_after: owners.lease_secs(),
        }),
        Ok(RemoteHangup::OwnerGone { owner, why }) => Err(ApiError::OwnerUnreachable {
            id: id.to_owned(),
            owner,
            why,
            retry_after: owners.lease_secs(),
        }),
        Err(e) => Err(ApiError::ClusterUnavailable {
            reason: e.to_string(),
            retry_after: crate::cluster::RETRY_AFTER_SECS,
        }),
    }
}
