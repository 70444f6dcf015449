//! Kafka's `listeners`, `advertised.listeners` and
//! `listener.security.protocol.map` settings.

use std::collections::BTreeMap;

use crate::{AuthError, SecurityProtocol};

/// One `NAME://host:port` endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The listener's name (upper case, as Kafka normalises it).
    pub name: String,
    /// The host; empty means every interface.
    pub host: String,
    /// The port; 0 asks the OS for one.
    pub port: u16,
    /// The protocol, from the protocol map.
    pub protocol: SecurityProtocol,
}

/// A value of `listeners` or `listener.security.protocol.map` that does
/// not parse.
fn bad(detail: String) -> AuthError {
    AuthError::BadValue { detail }
}

/// Parses `listener.security.protocol.map` (`NAME:PROTOCOL,...`). The
/// four protocol names always map to themselves unless overridden.
pub fn parse_protocol_map(s: &str) -> Result<BTreeMap<String, SecurityProtocol>, AuthError> {
    let mut map: BTreeMap<String, SecurityProtocol> = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ]
    .into_iter()
    .map(|p| (p.name().to_string(), p))
    .collect();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, proto) = item
            .split_once(':')
            .ok_or_else(|| bad(format!("`{item}` is not NAME:PROTOCOL")))?;
        let name = name.trim().to_ascii_uppercase();
        if name.is_empty() {
            return Err(bad(format!("`{item}` has no listener name")));
        }
        let proto = SecurityProtocol::parse(proto.trim())
            .ok_or_else(|| bad(format!("`{}` is not a security protocol", proto.trim())))?;
        map.insert(name, proto);
    }
    Ok(map)
}

/// Parses a `listeners`-style list against a protocol map. Names must be
/// unique and known to the map.
pub fn parse_listeners(
    s: &str,
    map: &BTreeMap<String, SecurityProtocol>,
) -> Result<Vec<Endpoint>, AuthError> {
    let mut out: Vec<Endpoint> = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, rest) = item
            .split_once("://")
            .ok_or_else(|| bad(format!("`{item}` is not NAME://HOST:PORT")))?;
        let name = name.trim().to_ascii_uppercase();
        let protocol = *map.get(&name).ok_or_else(|| {
            bad(format!(
                "listener name `{name}` is not in listener.security.protocol.map"
            ))
        })?;
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| bad(format!("`{item}` has no port")))?;
        let port: u16 = port
            .parse()
            .map_err(|_| bad(format!("`{port}` in `{item}` is not a port number")))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if out.iter().any(|e| e.name == name) {
            return Err(bad(format!("listener name `{name}` appears twice")));
        }
        out.push(Endpoint {
            name,
            host: host.to_string(),
            port,
            protocol,
        });
    }
    if out.is_empty() {
        return Err(bad("no listener given".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_parse_with_the_default_and_custom_maps() {
        let map = parse_protocol_map("").unwrap();
        let l = parse_listeners(
            "PLAINTEXT://127.0.0.1:9092, sasl_ssl://:0,SSL://[::1]:9094",
            &map,
        )
        .unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l[0].protocol, SecurityProtocol::Plaintext);
        assert_eq!(
            (l[1].name.as_str(), l[1].host.as_str(), l[1].port),
            ("SASL_SSL", "", 0)
        );
        assert_eq!(l[2].host, "::1");
        let map = parse_protocol_map("EXTERNAL:SASL_SSL,INTERNAL:PLAINTEXT").unwrap();
        let l = parse_listeners("EXTERNAL://0.0.0.0:9093,INTERNAL://127.0.0.1:9092", &map).unwrap();
        assert_eq!(l[0].protocol, SecurityProtocol::SaslSsl);
        assert_eq!(l[1].protocol, SecurityProtocol::Plaintext);
    }

    #[test]
    fn bad_listeners_are_refused_with_a_reason() {
        let map = parse_protocol_map("").unwrap();
        for bad in [
            "",
            "127.0.0.1:9092",
            "EXTERNAL://127.0.0.1:9092",
            "PLAINTEXT://127.0.0.1",
            "PLAINTEXT://127.0.0.1:99999",
            "PLAINTEXT://a:1,PLAINTEXT://b:2",
        ] {
            assert!(parse_listeners(bad, &map).is_err(), "{bad}");
        }
        assert!(parse_protocol_map("X:TLS").is_err());
        assert!(parse_protocol_map("X").is_err());
    }
}
