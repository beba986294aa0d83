//! Validation of the lists (bots, trunks, numbers, routes, API clients) and their cross-references.

use super::check;
use super::error::ErrorKind;
use super::raw::{
    RawApiClient, RawBot, RawLists, RawPhoneNumber, RawRoutingRule, RawSipConnection,
};
use super::secret::{ApiClient, ClientSecret, check_phc};
use super::types::{Bot, Outbound, PhoneNumber, RoutingRule, SipConnection};
use super::validate::Ctx;
use std::collections::HashMap;

/// A list entry with where it came from: source index and its path in that file.
pub(super) struct Item<T> {
    pub src: usize,
    pub path: String,
    pub raw: T,
}

/// All list entries of the main file and the include files, in load order.
#[derive(Default)]
pub(super) struct Lists {
    pub bots: Vec<Item<RawBot>>,
    pub sip_connections: Vec<Item<RawSipConnection>>,
    pub phone_numbers: Vec<Item<RawPhoneNumber>>,
    pub routing_rules: Vec<Item<RawRoutingRule>>,
    pub api_clients: Vec<Item<RawApiClient>>,
}

fn items<T>(src: usize, name: &str, v: Vec<T>) -> impl Iterator<Item = Item<T>> {
    v.into_iter().enumerate().map(move |(i, raw)| Item {
        src,
        path: format!("{name}[{i}]"),
        raw,
    })
}

impl Lists {
    /// Appends the lists of one file.
    pub fn add(&mut self, src: usize, raw: RawLists) {
        self.bots.extend(items(src, "bots", raw.bots));
        self.sip_connections
            .extend(items(src, "sip_connections", raw.sip_connections));
        self.phone_numbers
            .extend(items(src, "phone_numbers", raw.phone_numbers));
        self.routing_rules
            .extend(items(src, "routing_rules", raw.routing_rules));
        self.api_clients
            .extend(items(src, "api_clients", raw.api_clients));
    }
}

/// Validated lists.
pub(super) struct Resolved {
    pub bots: Vec<Bot>,
    pub sip_connections: Vec<SipConnection>,
    pub phone_numbers: Vec<PhoneNumber>,
    pub routing_rules: Vec<RoutingRule>,
    pub api_clients: Vec<ApiClient>,
}

/// Remembers where each unique key was first seen, to report duplicates at the second one.
pub(super) struct Unique {
    what: &'static str,
    seen: HashMap<String, (usize, String)>,
}

impl Unique {
    pub(super) fn new(what: &'static str) -> Self {
        Unique {
            what,
            seen: HashMap::new(),
        }
    }

    pub(super) fn check(&mut self, ctx: &mut Ctx, src: usize, path: &str, value: &str) {
        match self.seen.get(value) {
            Some((s, p)) => {
                let first = ctx.where_is(*s, p);
                ctx.err(
                    src,
                    path,
                    ErrorKind::Duplicate,
                    format!(
                        "duplicate {} `{value}` (first defined at {first})",
                        self.what
                    ),
                );
            }
            None => {
                self.seen.insert(value.to_string(), (src, path.to_string()));
            }
        }
    }
}

/// Validates every list and the references between them.
pub(super) fn resolve(ctx: &mut Ctx, lists: &Lists) -> Resolved {
    let bots = bots(ctx, &lists.bots);
    let sip_connections = sip_connections(ctx, &lists.sip_connections);

    // Bots may be referenced by ID or name; both map to the ID.
    let bot_ref: HashMap<&str, &str> = bots
        .iter()
        .flat_map(|b| {
            [
                (b.id.as_str(), b.id.as_str()),
                (b.name.as_str(), b.id.as_str()),
            ]
        })
        .collect();
    let conn_ref: HashMap<&str, &str> = sip_connections
        .iter()
        .flat_map(|c| {
            [
                (c.id.as_str(), c.id.as_str()),
                (c.name.as_str(), c.id.as_str()),
            ]
        })
        .collect();

    let phone_numbers = phone_numbers(ctx, &lists.phone_numbers, &bot_ref, &conn_ref);
    let routing_rules = super::routes::routing_rules(
        ctx,
        &lists.routing_rules,
        &bot_ref,
        &conn_ref,
        &phone_numbers,
    );
    let api_clients = api_clients(ctx, &lists.api_clients);
    Resolved {
        bots,
        sip_connections,
        phone_numbers,
        routing_rules,
        api_clients,
    }
}

/// Validates `bots[]`: unique id and name, the media side, the Bot API, the session timer and
/// the outbound limits; returns every bot (a bad field is reported, the bot is still built).
fn bots(ctx: &mut Ctx, items: &[Item<RawBot>]) -> Vec<Bot> {
    let (mut ids, mut names) = (Unique::new("bot id"), Unique::new("bot name"));
    let mut out = Vec::new();
    for Item { src, path, raw } in items {
        let (src, p) = (*src, path.as_str());
        if let Err(e) = check::id(&raw.id) {
            ctx.err(src, &format!("{p}.id"), ErrorKind::InvalidValue, e);
        }
        ids.check(ctx, src, &format!("{p}.id"), &raw.id);
        names.check(ctx, src, &format!("{p}.name"), &raw.name);
        media_side(ctx, src, p, raw);
        let websocket = websocket(ctx, src, p, raw.websocket.as_ref());
        bot_session_timer(ctx, src, p, raw);
        if let Some(Err(e)) = raw.events_url.as_deref().map(check::http_url) {
            ctx.err(src, &format!("{p}.events_url"), ErrorKind::InvalidValue, e);
        }
        let token = ctx.clear_or_env(
            src,
            p,
            ("token", raw.token.as_ref()),
            ("token_env", raw.token_env.as_ref()),
        );
        let o = &raw.outbound;
        let op = format!("{p}.outbound");
        super::early_media::check(ctx, src, &op, raw);
        outbound_limits(ctx, src, &op, o);
        out.push(Bot {
            id: raw.id.clone(),
            name: raw.name.clone(),
            sip_uri: raw.sip_uri.clone(),
            events_url: raw.events_url.clone(),
            token,
            language: raw.language.clone(),
            recording: raw.recording,
            outbound: Outbound {
                enabled: o.enabled,
                start_recognition_on_connect: o.start_recognition_on_connect,
                dialout_initiated_event: o.dialout_initiated_event,
                machine_detection: o.machine_detection,
                answer_timeout_sec: o.answer_timeout_sec,
                max_cps: o.max_cps,
                max_concurrent: o.max_concurrent,
                require_recognition: o.require_recognition,
                on_limit: o.on_limit,
                max_queue: o.max_queue,
                max_queue_wait_sec: o.max_queue_wait_sec,
                transfer: o.transfer,
                send_metadata_info: o.send_metadata_info,
                speak_messages: o.speak_messages,
                barge_in: o.barge_in,
                early_media_to_bot: o.early_media_to_bot,
            },
            amd: raw.amd.clone(),
            default_country: country(ctx, src, p, raw.default_country),
            websocket,
            session_expires_sec: raw.session_expires_sec,
            min_se: raw.min_se,
        });
    }
    out
}

/// A bot's media side: exactly one of `sip_uri` (a SIP media bot) and `websocket`, or neither
/// for a text bot, which then needs `events_url` because its replies come through the Bot API.
fn media_side(ctx: &mut Ctx, src: usize, p: &str, raw: &RawBot) {
    match (raw.sip_uri.as_deref(), &raw.websocket) {
        (Some(_), Some(_)) => ctx.err(
            src,
            &format!("{p}.websocket"),
            ErrorKind::Conflict,
            "a bot has exactly one media side: give either `sip_uri` or `websocket`, not both"
                .to_owned(),
        ),
        (Some(uri), None) => {
            if let Err(e) = check::sip_uri(uri) {
                ctx.err(src, &format!("{p}.sip_uri"), ErrorKind::InvalidValue, e);
            }
        }
        (None, Some(_)) => {}
        // A text bot: dialgate speaks its replies, which come through its Bot API.
        (None, None) if raw.events_url.is_none() => ctx.err(
            src,
            &format!("{p}.events_url"),
            ErrorKind::InvalidValue,
            "a bot without `sip_uri` or `websocket` is a text bot and needs `events_url` (its \
             replies come through the Bot API); give it a `sip_uri` to be a SIP media bot or a \
             `websocket` to be a WebSocket bot"
                .to_owned(),
        ),
        (None, None) => {}
    }
}

/// `outbound` pacing and queue limits: each must leave room for at least one call (a zero
/// would make the bot silently undialable), and the answer timeout stays within 1..=300 s.
fn outbound_limits(ctx: &mut Ctx, src: usize, op: &str, o: &super::raw::RawOutbound) {
    if !(o.max_cps.is_finite() && o.max_cps > 0.0) {
        ctx.range(src, &format!("{op}.max_cps"), o.max_cps);
    }
    if o.max_concurrent == 0 {
        ctx.range(src, &format!("{op}.max_concurrent"), 0);
    }
    if o.max_queue == 0 {
        ctx.range(src, &format!("{op}.max_queue"), 0);
    }
    if o.max_queue_wait_sec == 0 {
        ctx.range(src, &format!("{op}.max_queue_wait_sec"), 0);
    }
    if !(1..=300).contains(&o.answer_timeout_sec) {
        ctx.range(
            src,
            &format!("{op}.answer_timeout_sec"),
            o.answer_timeout_sec,
        );
    }
}

/// `websocket`: validated by the module, each problem positioned at its field.
fn websocket(
    ctx: &mut Ctx,
    src: usize,
    p: &str,
    raw: Option<&crate::wsbot::WebSocketBotYaml>,
) -> Option<crate::wsbot::WebSocketBot> {
    match raw?.validate(|v| std::env::var(v).ok()) {
        Ok(bot) => Some(bot),
        Err(issues) => {
            for i in issues {
                let path = format!("{p}.websocket.{}", i.field);
                ctx.err(src, &path, i.kind, i.message);
            }
            None
        }
    }
}

/// `default_country`: an E.164 country calling code the numbering plan knows.
fn country(ctx: &mut Ctx, src: usize, p: &str, code: Option<u16>) -> Option<u16> {
    let code = code?;
    match check::country_code(code) {
        Ok(()) => Some(code),
        Err(e) => {
            ctx.err(
                src,
                &format!("{p}.default_country"),
                ErrorKind::InvalidValue,
                e,
            );
            None
        }
    }
}

/// A bot's session timer: the trunk's bounds, and only on a SIP bot (a WebSocket or text bot
/// has no SIP leg to refresh).
fn bot_session_timer(ctx: &mut Ctx, src: usize, p: &str, raw: &RawBot) {
    session_timer_values(ctx, src, p, raw.session_expires_sec, raw.min_se);
    if raw.session_expires_sec != 0 && raw.sip_uri.is_none() {
        ctx.err(
            src,
            &format!("{p}.session_expires_sec"),
            ErrorKind::Conflict,
            "session timers need a SIP bot leg (`sip_uri`); remove `session_expires_sec` from a \
             WebSocket or text bot"
                .to_owned(),
        );
    }
}

/// RFC 4028: `Min-SE` never below 90 s, and the interval asked for never below `Min-SE`.
fn session_timer_values(ctx: &mut Ctx, src: usize, p: &str, expires: u32, min_se: u32) {
    const MAX: u32 = 86_400;
    if !(90..=MAX).contains(&min_se) {
        ctx.err(
            src,
            &format!("{p}.min_se"),
            ErrorKind::InvalidValue,
            format!("min_se must be between 90 (the RFC 4028 floor) and {MAX} seconds"),
        );
    }
    if expires != 0 && !(90..=MAX).contains(&expires) {
        ctx.err(
            src,
            &format!("{p}.session_expires_sec"),
            ErrorKind::InvalidValue,
            format!("session_expires_sec must be 0 (no session timers) or 90..{MAX} seconds"),
        );
    } else if expires != 0 && expires < min_se {
        ctx.err(
            src,
            &format!("{p}.session_expires_sec"),
            ErrorKind::Conflict,
            format!("session_expires_sec ({expires}) is below min_se ({min_se})"),
        );
    }
}

/// Validates `sip_connections[]`: unique id and name, addresses, credentials, extra headers,
/// session timer, TLS/SRTP; a trunk whose main address does not parse is left out.
fn sip_connections(ctx: &mut Ctx, items: &[Item<RawSipConnection>]) -> Vec<SipConnection> {
    let (mut ids, mut names) = (
        Unique::new("SIP connection id"),
        Unique::new("SIP connection name"),
    );
    let mut out = Vec::new();
    for Item { src, path, raw } in items {
        let (src, p) = (*src, path.as_str());
        if let Err(e) = check::id(&raw.id) {
            ctx.err(src, &format!("{p}.id"), ErrorKind::InvalidValue, e);
        }
        ids.check(ctx, src, &format!("{p}.id"), &raw.id);
        names.check(ctx, src, &format!("{p}.name"), &raw.name);
        let (address, backup) = trunk_addresses(ctx, src, p, raw);
        let password = trunk_password(ctx, src, p, raw);
        trunk_headers(ctx, src, p, raw);
        session_timer_values(ctx, src, p, raw.session_expires_sec, raw.min_se);
        let (tls, srtp) = super::trunk_security::trunk_security(ctx, src, p, raw);
        if let (Ok(address), backup) = (address, backup) {
            out.push(SipConnection {
                id: raw.id.clone(),
                name: raw.name.clone(),
                address,
                backup_address: backup.and_then(Result::ok),
                transport: raw.transport.unwrap_or_else(super::raw::d_transport),
                transport_explicit: raw.transport.is_some(),
                username: raw.username.clone(),
                password,
                p_asserted_identity: raw.p_asserted_identity,
                caller_id_format: raw.caller_id_format,
                headers: raw.headers.clone(),
                rtp_latching: raw.rtp_latching,
                default_country: country(ctx, src, p, raw.default_country),
                session_expires_sec: raw.session_expires_sec,
                min_se: raw.min_se,
                require_100rel: raw.require_100rel,
                tls,
                srtp,
            });
        }
    }
    out
}

/// A trunk's `address` and optional `backup_address`, each reported at its own field; the
/// trunk is only kept when the main address parses (there is nothing to dial otherwise).
fn trunk_addresses(
    ctx: &mut Ctx,
    src: usize,
    p: &str,
    raw: &RawSipConnection,
) -> (
    Result<super::types::HostPort, String>,
    Option<Result<super::types::HostPort, String>>,
) {
    let address = check::trunk_address(&raw.address);
    if let Err(e) = &address {
        ctx.err(
            src,
            &format!("{p}.address"),
            ErrorKind::InvalidValue,
            e.clone(),
        );
    }
    let backup = raw.backup_address.as_deref().map(check::trunk_address);
    if let Some(Err(e)) = &backup {
        ctx.err(
            src,
            &format!("{p}.backup_address"),
            ErrorKind::InvalidValue,
            e.clone(),
        );
    }
    (address, backup)
}

/// Digest credentials: the password (clear or from the environment) is useless without the
/// username it authenticates, so that pair is checked here.
fn trunk_password(ctx: &mut Ctx, src: usize, p: &str, raw: &RawSipConnection) -> Option<String> {
    let password = ctx.clear_or_env(
        src,
        p,
        ("password", raw.password.as_ref()),
        ("password_env", raw.password_env.as_ref()),
    );
    if password.is_some() && raw.username.is_none() {
        ctx.err(
            src,
            p,
            ErrorKind::Conflict,
            "a password is set but no username; digest authentication needs both",
        );
    }
    password
}

/// Extra `headers` sent to the trunk: only `X-` names, and one-line values (a CR/LF would
/// let a config value inject its own SIP header lines).
fn trunk_headers(ctx: &mut Ctx, src: usize, p: &str, raw: &RawSipConnection) {
    for (name, value) in &raw.headers {
        let hp = format!("{p}.headers.{name}");
        if let Err(e) = check::x_header_name(name) {
            ctx.err_key(src, &hp, ErrorKind::InvalidValue, e);
        }
        if value.contains(['\r', '\n']) {
            ctx.err(
                src,
                &hp,
                ErrorKind::InvalidValue,
                "header values must be one line",
            );
        }
    }
}

pub(super) fn lookup<'a>(
    ctx: &mut Ctx,
    src: usize,
    path: &str,
    what: &str,
    map: &HashMap<&str, &'a str>,
    name: &str,
) -> Option<&'a str> {
    let found = map.get(name).copied();
    if found.is_none() {
        let mut known: Vec<&str> = map.keys().copied().collect();
        known.sort_unstable();
        let hint = match super::serde_err::closest(name, &known) {
            Some(c) => format!(", did you mean `{c}`?"),
            None if known.is_empty() => format!("; no {what} is defined"),
            None => format!("; defined: {}", known.join(", ")),
        };
        ctx.err(
            src,
            path,
            ErrorKind::UnknownReference,
            format!("unknown {what} `{name}`{hint}"),
        );
    }
    found
}

fn phone_numbers(
    ctx: &mut Ctx,
    items: &[Item<RawPhoneNumber>],
    bot_ref: &HashMap<&str, &str>,
    conn_ref: &HashMap<&str, &str>,
) -> Vec<PhoneNumber> {
    let mut seen: HashMap<&str, (usize, String, Option<&str>)> = HashMap::new();
    let mut out = Vec::new();
    for Item { src, path, raw } in items {
        let (src, p) = (*src, path.as_str());
        if let Err(e) = check::e164(&raw.number) {
            ctx.err(src, &format!("{p}.number"), ErrorKind::InvalidValue, e);
        }
        let bot = lookup(ctx, src, &format!("{p}.bot"), "bot", bot_ref, &raw.bot);
        let conn = lookup(
            ctx,
            src,
            &format!("{p}.sip_connection"),
            "SIP connection",
            conn_ref,
            &raw.sip_connection,
        );
        if let Some((s0, p0, bot0)) = seen.get(raw.number.as_str()) {
            let first = ctx.where_is(*s0, &format!("{p0}.number"));
            let msg = match (bot0, bot) {
                (Some(a), Some(b)) if *a != b => {
                    format!(
                        "number {} is owned by two bots: `{a}` ({first}) and `{b}`; a number belongs to one bot",
                        raw.number
                    )
                }
                _ => format!(
                    "duplicate phone number {} (first defined at {first})",
                    raw.number
                ),
            };
            ctx.err(src, &format!("{p}.number"), ErrorKind::Duplicate, msg);
            continue;
        }
        seen.insert(&raw.number, (src, p.to_string(), bot));
        if let (Some(bot), Some(conn)) = (bot, conn) {
            out.push(PhoneNumber {
                number: raw.number.clone(),
                bot: bot.into(),
                sip_connection: conn.into(),
            });
        }
    }
    out
}

fn api_clients(ctx: &mut Ctx, items: &[Item<RawApiClient>]) -> Vec<ApiClient> {
    let mut ids = Unique::new("API client_id");
    let mut out = Vec::new();
    for Item { src, path, raw } in items {
        let (src, p) = (*src, path.as_str());
        ids.check(ctx, src, &format!("{p}.client_id"), &raw.client_id);
        let secret = match (&raw.secret_hash, &raw.secret_env) {
            (Some(h), None) => match check_phc(h) {
                Ok(()) => Some(ClientSecret::Hash(h.clone())),
                Err(e) => {
                    let msg = format!("{e}; create one with `dialgate hash-secret`");
                    ctx.err(
                        src,
                        &format!("{p}.secret_hash"),
                        ErrorKind::InvalidValue,
                        msg,
                    );
                    None
                }
            },
            (None, Some(var)) => ctx
                .env(src, &format!("{p}.secret_env"), var)
                .map(ClientSecret::Env),
            (Some(_), Some(_)) => {
                ctx.err_key(
                    src,
                    &format!("{p}.secret_env"),
                    ErrorKind::Conflict,
                    "set either `secret_hash` or `secret_env`, not both",
                );
                None
            }
            (None, None) => {
                ctx.err(src, p, ErrorKind::MissingField, "an API client needs `secret_hash` (from `dialgate hash-secret`) or `secret_env`");
                None
            }
        };
        if raw.groups.is_empty() {
            ctx.err(
                src,
                &format!("{p}.groups"),
                ErrorKind::InvalidValue,
                "at least one group is required (call_control, call_data_manager)",
            );
        }
        let webhook_secret = ctx.clear_or_env(
            src,
            p,
            ("webhook_secret", raw.webhook_secret.as_ref()),
            ("webhook_secret_env", raw.webhook_secret_env.as_ref()),
        );
        if let Some(secret) = secret {
            out.push(ApiClient {
                client_id: raw.client_id.clone(),
                secret,
                groups: raw.groups.clone(),
                webhook_secret,
                all_calls: raw.all_calls,
            });
        }
    }
    out
}
