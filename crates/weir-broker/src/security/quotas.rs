//! Client quotas (KIP-13, KIP-124, KIP-546): the quota table that
//! AlterClientQuotas writes, Kafka's resolution of which quota applies to
//! a request, and the rate measurement that turns a request over quota
//! into a throttle time.
//!
//! [`QuotaManager`] is pure: it takes the principal's user name, the
//! client id, a value and the time, and answers with a throttle time in
//! milliseconds. The broker reports that time in the response's
//! `throttle_time_ms` and the server does not read the connection's next
//! request until it has passed (KIP-219's muting; see README for how this
//! differs for old request versions).
//!
//! Measurement is Kafka's `Rate` over `quota.window.num` samples of
//! `quota.window.size.seconds`: the rate is the samples' total over their
//! span, the span counted as at least `num - 1` windows, so a new client
//! cannot burst far past its quota. A client over its quota by a fraction
//! `f` is throttled `f` × the span, which brings its rate back to the
//! quota.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};

use serde::{Deserialize, Serialize};

use crate::error::BrokerError;

/// The `__weir_security` record kind of client quotas.
pub const QUOTA_KIND: &str = "quota";

/// Bytes produced per second (a whole number).
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
/// Bytes fetched per second (a whole number).
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
/// Percentage of one request handler's time.
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
/// Partition mutations per second (accepted and stored, not enforced).
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";

/// The quota keys Kafka accepts for user and client-id entities, and
/// whether each is a whole number.
pub const QUOTA_KEYS: &[(&str, bool)] = &[
    (PRODUCER_BYTE_RATE, true),
    (CONSUMER_BYTE_RATE, true),
    (REQUEST_PERCENTAGE, false),
    (CONTROLLER_MUTATION_RATE, false),
];

/// The entity types of user and client-id quotas.
pub const USER: &str = "user";
/// See [`USER`].
pub const CLIENT_ID: &str = "client-id";

/// One component of a quota entity: `None` is the default entity.
pub type EntityName = Option<String>;

/// A quota entity: a user, a client id, or both; each may be the default.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QuotaEntity {
    /// The `user` component, if the entity has one.
    #[serde(default, with = "component")]
    pub user: Option<EntityName>,
    /// The `client-id` component, if the entity has one.
    #[serde(default, with = "component")]
    pub client_id: Option<EntityName>,
}

/// A component in JSON: absent as `null` (what records always held),
/// the default entity as `{"default":true}` and a name as a string.
/// Plain serde writes the default entity as `null` too, so a record
/// read back (at start, or by another broker in cluster mode) lost the
/// component: `user=<default>` became the entity without components.
mod component {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::EntityName;

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Name(String),
        Default { default: bool },
    }

    pub(super) fn serialize<S: Serializer>(
        c: &Option<EntityName>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match c {
            None => s.serialize_none(),
            Some(None) => Repr::Default { default: true }.serialize(s),
            Some(Some(name)) => s.serialize_str(name),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<EntityName>, D::Error> {
        Ok(match Option::<Repr>::deserialize(d)? {
            None | Some(Repr::Default { default: false }) => None,
            Some(Repr::Default { default: true }) => Some(None),
            Some(Repr::Name(name)) => Some(Some(name)),
        })
    }
}

impl QuotaEntity {
    /// The record id in `__weir_security`: the entity as JSON, which
    /// keeps any character a name may hold unambiguous.
    pub fn record_id(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Kafka's components, in its order (user first).
    pub fn components(&self) -> Vec<(&'static str, EntityName)> {
        let mut v = Vec::new();
        if let Some(u) = &self.user {
            v.push((USER, u.clone()));
        }
        if let Some(c) = &self.client_id {
            v.push((CLIENT_ID, c.clone()));
        }
        v
    }
}

/// What is throttled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaType {
    /// Produce bytes (`producer_byte_rate`).
    Produce,
    /// Fetch bytes (`consumer_byte_rate`).
    Fetch,
    /// Request handler time (`request_percentage`).
    Request,
}

impl QuotaType {
    fn key(self) -> &'static str {
        match self {
            Self::Produce => PRODUCER_BYTE_RATE,
            Self::Fetch => CONSUMER_BYTE_RATE,
            Self::Request => REQUEST_PERCENTAGE,
        }
    }
}

/// The measurement window: `samples` windows of `window_ms`.
#[derive(Debug, Clone, Copy)]
pub struct QuotaWindow {
    /// `quota.window.num`.
    pub samples: usize,
    /// `quota.window.size.seconds` in ms.
    pub window_ms: i64,
}

impl Default for QuotaWindow {
    fn default() -> Self {
        Self {
            samples: 11,
            window_ms: 1000,
        }
    }
}

/// Kafka's sampled rate: totals per window.
#[derive(Debug, Default)]
struct Rate {
    /// `(window start, total)`, oldest first.
    samples: Vec<(i64, f64)>,
}

impl Rate {
    fn purge(&mut self, w: &QuotaWindow, now: i64) {
        let horizon = now - w.window_ms * w.samples as i64;
        self.samples.retain(|(start, _)| *start > horizon);
    }

    fn record(&mut self, w: &QuotaWindow, value: f64, now: i64) {
        self.purge(w, now);
        match self.samples.last_mut() {
            Some((start, total)) if now - *start < w.window_ms => *total += value,
            _ => {
                if self.samples.len() >= w.samples {
                    self.samples.remove(0);
                }
                self.samples.push((now, value));
            }
        }
    }

    /// Per second, over the samples' span (at least `samples - 1`
    /// windows).
    fn rate(&mut self, w: &QuotaWindow, now: i64) -> f64 {
        self.purge(w, now);
        let Some((oldest, _)) = self.samples.first() else {
            return 0.0;
        };
        let total: f64 = self.samples.iter().map(|(_, t)| t).sum();
        (total / span_ms(w, now - oldest)) * 1000.0
    }

    fn is_idle(&mut self, w: &QuotaWindow, now: i64) -> bool {
        self.purge(w, now);
        self.samples.is_empty()
    }
}

/// Kafka's `Rate.windowSize`: the elapsed time, raised to `samples - 1`
/// full windows.
fn span_ms(w: &QuotaWindow, elapsed: i64) -> f64 {
    let min_full = (w.samples.max(1) - 1) as i64;
    let full = elapsed / w.window_ms;
    let span = if full < min_full {
        elapsed + (min_full - full) * w.window_ms
    } else {
        elapsed
    };
    span.max(1) as f64
}

/// The quota table and the rates measured against it.
#[derive(Debug, Default)]
pub struct QuotaManager {
    window: RwLock<QuotaWindow>,
    quotas: RwLock<BTreeMap<QuotaEntity, BTreeMap<String, f64>>>,
    /// Set when any quota exists: requests skip all of this otherwise.
    any: AtomicBool,
    /// Rates by quota type and the matched entity's (user, client-id)
    /// names, `""` for a component the entity does not have.
    rates: Mutex<HashMap<(QuotaType, String, String), Rate>>,
}

impl QuotaManager {
    /// Sets the measurement window.
    pub fn set_window(&self, w: QuotaWindow) {
        *self.window.write().unwrap_or_else(|e| e.into_inner()) = w;
    }

    /// Replaces an entity's quotas (empty: none).
    pub fn set(&self, entity: QuotaEntity, values: BTreeMap<String, f64>) {
        let mut q = self.quotas.write().unwrap_or_else(|e| e.into_inner());
        if values.is_empty() {
            q.remove(&entity);
        } else {
            q.insert(entity, values);
        }
        self.any.store(!q.is_empty(), Ordering::Release);
    }

    /// Every entity's quotas.
    pub fn all(&self) -> BTreeMap<QuotaEntity, BTreeMap<String, f64>> {
        self.quotas
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// One entity's quotas.
    pub fn get(&self, entity: &QuotaEntity) -> BTreeMap<String, f64> {
        self.quotas
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(entity)
            .cloned()
            .unwrap_or_default()
    }

    /// Whether any quota is set.
    pub fn enabled(&self) -> bool {
        self.any.load(Ordering::Acquire)
    }

    /// The quota of `qt` for `user` and `client_id`, in Kafka's order
    /// (the most specific entity that sets this key wins), with the names
    /// the rate is kept under.
    pub fn resolve(
        &self,
        qt: QuotaType,
        user: &str,
        client_id: &str,
    ) -> Option<(f64, String, String)> {
        let q = self.quotas.read().unwrap_or_else(|e| e.into_inner());
        let named = |s: &str| Some(Some(s.to_string()));
        let default = Some(None);
        let candidates = [
            (named(user), named(client_id)),
            (named(user), default.clone()),
            (named(user), None),
            (default.clone(), named(client_id)),
            (default.clone(), default.clone()),
            (default.clone(), None),
            (None, named(client_id)),
            (None, default.clone()),
        ];
        candidates.into_iter().find_map(|(u, c)| {
            let (has_user, has_client) = (u.is_some(), c.is_some());
            let e = QuotaEntity {
                user: u,
                client_id: c,
            };
            let v = *q.get(&e)?.get(qt.key())?;
            Some((
                v,
                if has_user {
                    user.to_string()
                } else {
                    String::new()
                },
                if has_client {
                    client_id.to_string()
                } else {
                    String::new()
                },
            ))
        })
    }

    /// Kafka's `getMaxValueInQuotaWindow`: the most the client can take
    /// from an idle window without being throttled, quota x
    /// (`samples` - 1) x window. None without a quota of `qt`.
    pub fn max_value_in_window(&self, qt: QuotaType, user: &str, client_id: &str) -> Option<f64> {
        if !self.enabled() {
            return None;
        }
        let (quota, _, _) = self.resolve(qt, user, client_id)?;
        let w = *self.window.read().unwrap_or_else(|e| e.into_inner());
        Some(quota * (w.samples.max(1) - 1) as f64 * w.window_ms as f64 / 1000.0)
    }

    /// Records `value` for the client and returns how long to throttle
    /// it, in ms (0: within quota). Kafka caps a throttle at the whole
    /// measurement window.
    pub fn record(
        &self,
        qt: QuotaType,
        user: &str,
        client_id: &str,
        value: f64,
        now_ms: i64,
    ) -> i32 {
        if !self.enabled() {
            return 0;
        }
        let Some((quota, u, c)) = self.resolve(qt, user, client_id) else {
            return 0;
        };
        let w = *self.window.read().unwrap_or_else(|e| e.into_inner());
        let mut rates = self.rates.lock().unwrap_or_else(|e| e.into_inner());
        if rates.len() > 4096 {
            // Forget clients that have been quiet for a whole window.
            rates.retain(|_, r| !r.is_idle(&w, now_ms));
        }
        let rate = rates.entry((qt, u, c)).or_default();
        rate.record(&w, value, now_ms);
        let observed = rate.rate(&w, now_ms);
        if observed <= quota {
            return 0;
        }
        let oldest = rate.samples.first().map_or(now_ms, |s| s.0);
        let span = span_ms(&w, now_ms - oldest);
        let throttle = (observed - quota) / quota * span;
        let cap = (w.window_ms * w.samples as i64) as f64;
        throttle.min(cap) as i32
    }

    /// Takes back a recorded value (a fetch answered empty because it was
    /// throttled does not count against the client).
    pub fn unrecord(&self, qt: QuotaType, user: &str, client_id: &str, value: f64, now_ms: i64) {
        if let Some((_, u, c)) = self.resolve(qt, user, client_id) {
            let w = *self.window.read().unwrap_or_else(|e| e.into_inner());
            let mut rates = self.rates.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(r) = rates.get_mut(&(qt, u, c)) {
                r.record(&w, -value, now_ms);
            }
        }
    }
}

/// Why a quota entry is refused (Kafka's `ClientQuotaControlManager`):
/// always INVALID_REQUEST, with this message.
pub fn validate_entity(components: &[(String, EntityName)]) -> Result<QuotaEntity, BrokerError> {
    let invalid = |reason: String| Err(BrokerError::invalid_request(reason));
    if components.is_empty() {
        return invalid("Invalid empty client quota entity".into());
    }
    let mut e = QuotaEntity {
        user: None,
        client_id: None,
    };
    for (kind, name) in components {
        let slot = match kind.as_str() {
            USER => &mut e.user,
            CLIENT_ID => &mut e.client_id,
            "ip" => return invalid("IP quotas are not supported by this broker".into()),
            other => return invalid(format!("Unhandled client quota entity type: {other}")),
        };
        if slot.is_some() {
            return invalid(format!("Duplicate {kind} entity in quota entity"));
        }
        *slot = Some(name.clone());
    }
    Ok(e)
}

/// Checks one quota key and value as Kafka does.
pub fn validate_value(key: &str, value: f64) -> Result<(), BrokerError> {
    let invalid = |reason: String| Err(BrokerError::invalid_request(reason));
    let Some((_, whole)) = QUOTA_KEYS.iter().find(|(k, _)| *k == key) else {
        return invalid(format!("Invalid configuration key {key}"));
    };
    if !value.is_finite() || value <= 0.0 {
        return invalid(format!("Quota {key} must be greater than 0"));
    }
    if *whole && (value.fract() != 0.0 || value > i64::MAX as f64) {
        return invalid(format!("Invalid value {value} for integer key {key}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(user: Option<Option<&str>>, client: Option<Option<&str>>) -> QuotaEntity {
        QuotaEntity {
            user: user.map(|u| u.map(String::from)),
            client_id: client.map(|c| c.map(String::from)),
        }
    }

    /// Every shape of entity reads back as itself from its record id, and
    /// no two share one: the default entity is not lost as an absent
    /// component. Records written before keep their meaning.
    #[test]
    fn entities_read_back_as_written() {
        let names = [None, Some(None), Some(Some("alice")), Some(Some(""))];
        let mut ids = std::collections::HashSet::new();
        for u in names {
            for c in names {
                let e = entity(u, c);
                let id = e.record_id();
                assert_eq!(serde_json::from_str::<QuotaEntity>(&id).unwrap(), e, "{id}");
                assert!(ids.insert(id.clone()), "{id} names two entities");
            }
        }
        let old: QuotaEntity = serde_json::from_str(r#"{"user":"bob","client_id":null}"#).unwrap();
        assert_eq!(old, entity(Some(Some("bob")), None));
    }

    fn set(m: &QuotaManager, e: QuotaEntity, key: &str, v: f64) {
        let mut values = m.get(&e);
        values.insert(key.into(), v);
        m.set(e, values);
    }

    #[test]
    fn the_window_max_is_quota_times_all_but_the_current_window() {
        let m = QuotaManager::default();
        let f = QuotaType::Fetch;
        assert_eq!(m.max_value_in_window(f, "u", "c"), None);
        set(&m, entity(None, Some(Some("c"))), CONSUMER_BYTE_RATE, 512.0);
        // Kafka's defaults: 11 windows of 1 s.
        assert_eq!(m.max_value_in_window(f, "u", "c"), Some(5120.0));
        assert_eq!(m.max_value_in_window(f, "u", "other"), None);
        m.set_window(QuotaWindow {
            samples: 3,
            window_ms: 2000,
        });
        assert_eq!(m.max_value_in_window(f, "u", "c"), Some(2048.0));
    }

    #[test]
    fn the_most_specific_entity_with_the_key_wins() {
        let m = QuotaManager::default();
        let p = QuotaType::Produce;
        assert_eq!(m.resolve(p, "alice", "app"), None);
        set(&m, entity(None, Some(None)), PRODUCER_BYTE_RATE, 8.0);
        assert_eq!(
            m.resolve(p, "alice", "app"),
            Some((8.0, "".into(), "app".into()))
        );
        set(&m, entity(None, Some(Some("app"))), PRODUCER_BYTE_RATE, 7.0);
        assert_eq!(m.resolve(p, "alice", "app").unwrap().0, 7.0);
        set(&m, entity(Some(None), None), PRODUCER_BYTE_RATE, 6.0);
        assert_eq!(
            m.resolve(p, "alice", "app"),
            Some((6.0, "alice".into(), "".into()))
        );
        set(&m, entity(Some(None), Some(None)), PRODUCER_BYTE_RATE, 5.0);
        assert_eq!(m.resolve(p, "alice", "app").unwrap().0, 5.0);
        set(
            &m,
            entity(Some(None), Some(Some("app"))),
            PRODUCER_BYTE_RATE,
            4.0,
        );
        assert_eq!(m.resolve(p, "alice", "app").unwrap().0, 4.0);
        set(
            &m,
            entity(Some(Some("alice")), None),
            PRODUCER_BYTE_RATE,
            3.0,
        );
        assert_eq!(m.resolve(p, "alice", "app").unwrap().0, 3.0);
        set(
            &m,
            entity(Some(Some("alice")), Some(None)),
            PRODUCER_BYTE_RATE,
            2.0,
        );
        assert_eq!(m.resolve(p, "alice", "app").unwrap().0, 2.0);
        set(
            &m,
            entity(Some(Some("alice")), Some(Some("app"))),
            PRODUCER_BYTE_RATE,
            1.0,
        );
        assert_eq!(
            m.resolve(p, "alice", "app"),
            Some((1.0, "alice".into(), "app".into()))
        );
        // Other users fall through to the defaults; other keys are separate.
        assert_eq!(m.resolve(p, "bob", "app").unwrap().0, 4.0);
        assert_eq!(m.resolve(QuotaType::Fetch, "alice", "app"), None);
    }

    #[test]
    fn a_client_over_quota_is_throttled_back_to_it() {
        let m = QuotaManager::default();
        set(
            &m,
            entity(None, Some(Some("c"))),
            PRODUCER_BYTE_RATE,
            1000.0,
        );
        let w = QuotaWindow::default();
        // 500 B/s for 20 s: never throttled.
        let mut t = 0;
        for _ in 0..20 {
            assert_eq!(m.record(QuotaType::Produce, "u", "c", 500.0, t), 0);
            t += 1000;
        }
        // A client sending as fast as the throttle lets it converges on
        // the quota.
        let m = QuotaManager::default();
        set(
            &m,
            entity(None, Some(Some("c"))),
            PRODUCER_BYTE_RATE,
            1000.0,
        );
        let (mut t, mut sent) = (0i64, 0.0);
        while t < 60_000 {
            let throttle = m.record(QuotaType::Produce, "u", "c", 100.0, t);
            sent += 100.0;
            t += 10 + i64::from(throttle);
        }
        let rate = sent / (t as f64 / 1000.0);
        assert!((rate - 1000.0).abs() < 100.0, "rate {rate}");
        // Throttles are capped at the whole window.
        let m = QuotaManager::default();
        set(&m, entity(None, Some(Some("c"))), PRODUCER_BYTE_RATE, 1.0);
        let cap = (w.window_ms * w.samples as i64) as i32;
        assert_eq!(m.record(QuotaType::Produce, "u", "c", 1e9, 0), cap);
    }

    #[test]
    fn entities_and_values_are_validated_as_kafka_does() {
        let c = |k: &str, n: Option<&str>| (k.to_string(), n.map(String::from));
        assert!(validate_entity(&[]).is_err());
        assert!(validate_entity(&[c("user", Some("a")), c("user", None)]).is_err());
        assert!(validate_entity(&[c("group", Some("a"))]).is_err());
        assert!(validate_entity(&[c("ip", Some("1.2.3.4"))]).is_err());
        assert_eq!(
            validate_entity(&[c("client-id", None), c("user", Some("a"))]).unwrap(),
            entity(Some(Some("a")), Some(None))
        );
        assert!(validate_value("producer_byte_rate", 1024.0).is_ok());
        assert!(validate_value("request_percentage", 12.5).is_ok());
        assert!(validate_value("producer_byte_rate", 10.5).is_err());
        assert!(validate_value("producer_byte_rate", 0.0).is_err());
        assert!(validate_value("consumer_byte_rate", -1.0).is_err());
        assert!(validate_value("request_percentage", f64::NAN).is_err());
        assert!(validate_value("bogus", 1.0).is_err());
    }
}
