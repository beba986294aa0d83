//! Routing-rule resolution: which SIP connection (and calling number) a
//! dialout from a bot to a target uses.

use crate::config::{Bot, Config, RouteTarget, SipConnection};
use crate::core::Target;

/// The outcome of routing one dialout.
#[derive(Debug, Clone)]
pub struct ResolvedRoute<'a> {
    /// The rule that matched.
    pub rule: &'a str,
    /// The trunk the INVITE goes to.
    pub connection: &'a SipConnection,
    /// The calling number when the rule routes through a phone number.
    pub calling_number: Option<&'a str>,
}

/// The route a call takes, chosen once when the dialout is accepted and carried by the call
/// (the call's configuration snapshot always holds the connection it names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The rule that matched.
    pub rule: String,
    /// The SIP connection's ID.
    pub connection: String,
    /// The calling number when the rule routes through a phone number.
    pub calling_number: Option<String>,
}

impl ResolvedRoute<'_> {
    /// The route as the call carries it.
    pub fn to_route(&self) -> Route {
        Route {
            rule: self.rule.to_owned(),
            connection: self.connection.id.clone(),
            calling_number: self.calling_number.map(str::to_owned),
        }
    }
}

impl Route {
    /// The route against the snapshot it was chosen in.
    pub fn resolve<'a>(&'a self, cfg: &'a Config) -> Option<ResolvedRoute<'a>> {
        Some(ResolvedRoute {
            rule: &self.rule,
            connection: cfg.sip_connection(&self.connection)?,
            calling_number: self.calling_number.as_deref(),
        })
    }
}

/// Finds the first matching `call` rule (lowest priority number first, then
/// file order) whose origin is this bot (or `*`) and whose destination
/// pattern, if any, matches the target.
pub fn resolve<'a>(cfg: &'a Config, bot: &'a Bot, target: &'a Target) -> Option<ResolvedRoute<'a>> {
    // `routes_for` yields the matching `call` rules in priority order.
    for rule in cfg.routes_for(&bot.id, target.routing_key()) {
        let resolved = match &rule.route {
            RouteTarget::SipConnection(id) => cfg.sip_connection(id).map(|c| ResolvedRoute {
                rule: &rule.name,
                connection: c,
                calling_number: None,
            }),
            RouteTarget::PhoneNumber(n) => cfg.phone_number(n).and_then(|p| {
                cfg.sip_connection(&p.sip_connection)
                    .map(|c| ResolvedRoute {
                        rule: &rule.name,
                        connection: c,
                        calling_number: Some(p.number.as_str()),
                    })
            }),
        };
        if resolved.is_some() {
            return resolved;
        }
    }
    None
}
