//! Syntax checks for single values: IDs, SIP URIs, host:port, E.164, URLs, header names.

use super::types::HostPort;

/// IDs are used in URLs and logs: `[A-Za-z0-9._-]+`.
pub(super) fn id(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    match s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(c) => Err(format!(
            "`{s}` contains `{c}`; IDs may only use letters, digits, `.`, `_` and `-`"
        )),
        None => Ok(()),
    }
}

/// E.164: `+`, country code not starting with 0, 2..=15 digits in total.
pub(super) fn e164(s: &str) -> Result<(), String> {
    let digits = s.strip_prefix('+').unwrap_or("");
    let ok = s.starts_with('+')
        && (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not an E.164 number; write `+` then country code and number, digits only, at most 15 (e.g. +15551234567)"
        ))
    }
}

/// An E.164 country calling code known to the numbering plan (`1`, `44`, `49`, …).
pub(super) fn country_code(code: u16) -> Result<(), String> {
    if crate::numbers::known_country_code(code) {
        Ok(())
    } else {
        Err(format!(
            "{code} is not an E.164 country calling code (e.g. 1 for North America, 44 for the UK, 49 for Germany)"
        ))
    }
}

/// Host name, IPv4, or IPv6 (without brackets).
fn host(h: &str) -> Result<(), String> {
    if h.is_empty() {
        return Err("the host is empty".into());
    }
    if h.contains(':') {
        return h
            .parse::<std::net::Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| format!("`{h}` is not an IPv6 address"));
    }
    if h.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && !h.starts_with(['.', '-'])
    {
        Ok(())
    } else {
        Err(format!("`{h}` is not a valid host name or IP address"))
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` → host + optional port.
fn host_port_part(s: &str) -> Result<HostPort, String> {
    let (h, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("`{s}`: `[` without `]`"))?;
        match after {
            "" => (h, None),
            p => (
                h,
                Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| format!("`{s}`: expected `:port` after `]`"))?,
                ),
            ),
        }
    } else if s.matches(':').count() > 1 {
        return Err(format!(
            "`{s}`: write IPv6 addresses in brackets, e.g. [2001:db8::1]:5060"
        ));
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    host(h)?;
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("`{p}` is not a port number (1..=65535)")),
        },
    };
    Ok(HostPort {
        host: h.to_string(),
        port,
    })
}

/// A trunk address: `host[:port]` or `sip:host[:port]` (no user part, no parameters).
pub(super) fn trunk_address(s: &str) -> Result<HostPort, String> {
    let rest = s
        .strip_prefix("sips:")
        .or_else(|| s.strip_prefix("sip:"))
        .unwrap_or(s);
    if rest.contains(['@', ';', '?', '/', ' ']) {
        return Err(format!(
            "`{s}` must be host[:port] or sip:host[:port], without user part or parameters"
        ));
    }
    host_port_part(rest)
}

/// `sip:`/`sips:` URI: `[user@]host[:port][;params][?headers]`.
pub(super) fn sip_uri(s: &str) -> Result<(), String> {
    let Some(rest) = s.strip_prefix("sip:").or_else(|| s.strip_prefix("sips:")) else {
        return Err(format!(
            "`{s}` is not a SIP URI; it must start with sip: or sips: (e.g. sip:bot@127.0.0.1:5090)"
        ));
    };
    let rest = rest.split(['?']).next().unwrap_or("");
    let rest = rest.split(';').next().unwrap_or("");
    let hostport = match rest.rsplit_once('@') {
        Some((user, hp)) => {
            if user.is_empty() || user.contains([' ', '<', '>', '"']) {
                return Err(format!(
                    "`{s}`: the user part before `@` is empty or has invalid characters"
                ));
            }
            hp
        }
        None => rest,
    };
    host_port_part(hostport)
        .map(|_| ())
        .map_err(|e| format!("`{s}` is not a valid SIP URI: {e}"))
}

/// `http://` or `https://` URL with a host.
pub(super) fn http_url(s: &str) -> Result<(), String> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') && !r.contains(' ') => Ok(()),
        _ => Err(format!("`{s}` is not an http:// or https:// URL")),
    }
}

/// Extra headers must be `X-` headers with RFC 3261 token characters.
pub(super) fn x_header_name(s: &str) -> Result<(), String> {
    let token_ok = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b));
    if !(s.starts_with("X-") || s.starts_with("x-")) {
        return Err(format!(
            "header `{s}` is not allowed; only custom headers starting with X- may be added"
        ));
    }
    if !token_ok || s.len() < 3 {
        return Err(format!(
            "header name `{s}` contains characters not allowed in a SIP header name"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert!(sip_uri("sip:bot@127.0.0.1:5090").is_ok());
        assert!(sip_uri("sips:[::1]:5061;transport=tls").is_ok());
        assert!(sip_uri("sip:bot@").is_err());
        assert!(sip_uri("bot@127.0.0.1").is_err());
        assert!(sip_uri("sip:bot@host:99999").is_err());
        assert!(e164("+15550001111").is_ok());
        assert!(e164("15550001111").is_err());
        assert!(e164("+0555").is_err());
        assert!(e164("+1555000111122223").is_err());
        assert_eq!(
            trunk_address("sip:10.0.0.1:5080").map(|h| h.port),
            Ok(Some(5080))
        );
        assert!(trunk_address("a b").is_err());
        assert!(x_header_name("X-Account").is_ok());
        assert!(x_header_name("Account").is_err());
        assert!(x_header_name("X-Bad Name").is_err());
        assert!(id("demo-bot_1.x").is_ok());
        assert!(id("demo bot").is_err());
    }
}
