//! Validation of routing rules and their references to bots, trunks and numbers.

use super::error::ErrorKind;
use super::lists::{Item, Unique, lookup};
use super::raw::RawRoutingRule;
use super::types::{PhoneNumber, RouteTarget, RoutingRule};
use super::validate::Ctx;
use std::collections::HashMap;

/// Validates the rules; returns them sorted by priority (stable, so ties keep file order).
pub(super) fn routing_rules(
    ctx: &mut Ctx,
    items: &[Item<RawRoutingRule>],
    bot_ref: &HashMap<&str, &str>,
    conn_ref: &HashMap<&str, &str>,
    numbers: &[PhoneNumber],
) -> Vec<RoutingRule> {
    let mut names = Unique::new("routing rule name");
    let num_ref: HashMap<&str, &str> = numbers
        .iter()
        .map(|n| (n.number.as_str(), n.number.as_str()))
        .collect();
    let targets = Targets {
        conn_ref,
        num_ref: &num_ref,
        numbers,
    };
    let mut out = Vec::new();
    for Item { src, path, raw } in items {
        let (src, p) = (*src, path.as_str());
        names.check(ctx, src, &format!("{p}.name"), &raw.name);
        let origin = if raw.origin_bot == "*" {
            Some(None)
        } else {
            lookup(
                ctx,
                src,
                &format!("{p}.origin_bot"),
                "bot",
                bot_ref,
                &raw.origin_bot,
            )
            .map(|b| Some(b.to_string()))
        };
        let pattern = destination_pattern(ctx, src, p, raw.destination_pattern.as_deref());
        let route = targets.route(ctx, src, &format!("{p}.route"), raw, origin.as_ref());
        if let (Some(origin_bot), Some(destination_pattern), Some(route)) = (origin, pattern, route)
        {
            out.push(RoutingRule {
                name: raw.name.clone(),
                rule_type: raw.rule_type,
                origin_bot,
                destination_pattern,
                route,
                priority: raw.priority,
            });
        }
    }
    // Stable: equal priorities keep file order.
    out.sort_by_key(|r| r.priority);
    out
}

/// A rule's `destination_pattern`: `Some(None)` when absent (any destination), `None` when it
/// is not a valid regular expression (reported at `{p}.destination_pattern`).
fn destination_pattern(
    ctx: &mut Ctx,
    src: usize,
    p: &str,
    pattern: Option<&str>,
) -> Option<Option<regex_lite::Regex>> {
    match pattern.map(regex_lite::Regex::new) {
        None => Some(None),
        Some(Ok(r)) => Some(Some(r)),
        Some(Err(e)) => {
            let msg = format!(
                "invalid regular expression: {}",
                e.to_string().replace('\n', " ")
            );
            ctx.err(
                src,
                &format!("{p}.destination_pattern"),
                ErrorKind::InvalidValue,
                msg,
            );
            None
        }
    }
}

/// What a rule's `route` may name: SIP connections, and phone numbers with their bots.
struct Targets<'a> {
    conn_ref: &'a HashMap<&'a str, &'a str>,
    num_ref: &'a HashMap<&'a str, &'a str>,
    numbers: &'a [PhoneNumber],
}

impl Targets<'_> {
    /// The rule's route (at `rp`): exactly one of a SIP connection or a phone number, the
    /// number belonging to the rule's origin bot (`origin`: `Some(None)` for any bot).
    fn route(
        &self,
        ctx: &mut Ctx,
        src: usize,
        rp: &str,
        raw: &RawRoutingRule,
        origin: Option<&Option<String>>,
    ) -> Option<RouteTarget> {
        match (&raw.route.sip_connection, &raw.route.phone_number) {
            (Some(c), None) => lookup(
                ctx,
                src,
                &format!("{rp}.sip_connection"),
                "SIP connection",
                self.conn_ref,
                c,
            )
            .map(|c| RouteTarget::SipConnection(c.into())),
            (None, Some(n)) => {
                let t = lookup(
                    ctx,
                    src,
                    &format!("{rp}.phone_number"),
                    "phone number",
                    self.num_ref,
                    n,
                );
                // A number used as calling ID must belong to the bot the rule is for.
                if let (Some(t), Some(Some(bot))) = (t, origin)
                    && let Some(owner) = self.numbers.iter().find(|x| x.number == t).map(|x| &x.bot)
                    && owner != bot
                {
                    let msg = format!(
                        "number {t} belongs to bot `{owner}`, not to this rule's origin bot `{bot}`"
                    );
                    ctx.err(src, &format!("{rp}.phone_number"), ErrorKind::Conflict, msg);
                }
                t.map(|n| RouteTarget::PhoneNumber(n.into()))
            }
            _ => {
                ctx.err(
                    src,
                    rp,
                    ErrorKind::Conflict,
                    "set exactly one of `sip_connection` or `phone_number`",
                );
                None
            }
        }
    }
}
