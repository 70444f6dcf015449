//! SCRAM credentials: the broker's copy of the `scram` records of
//! `__weir_security`, and the store the SCRAM mechanisms read.
//!
//! Each record's key is `scram/<user>/<mechanism>` and its value Kafka's
//! text form of the credential (salt, StoredKey, ServerKey, iterations;
//! never a password). A tombstone deletes the credential.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::error::BrokerError;
use crate::internal_log::Durable;
use bytes::Bytes;
use tracing::warn;
use weir_auth::scram::{ScramAlgorithm, ScramCredential, ScramCredentialStore, ScramMechanism};

/// The `__weir_security` record kind of SCRAM credentials.
pub const SCRAM_KIND: &str = "scram";

/// The credentials in memory, by user and algorithm.
#[derive(Debug, Default)]
pub struct ScramStore {
    creds: RwLock<BTreeMap<(String, ScramAlgorithm), ScramCredential>>,
}

impl ScramCredentialStore for ScramStore {
    fn scram_credential(&self, user: &str, alg: ScramAlgorithm) -> Option<ScramCredential> {
        self.creds
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(user.to_string(), alg))
            .cloned()
    }
}

impl ScramStore {
    fn set(&self, user: &str, alg: ScramAlgorithm, cred: Option<ScramCredential>) {
        let mut m = self.creds.write().unwrap_or_else(|e| e.into_inner());
        let key = (user.to_string(), alg);
        match cred {
            Some(c) => m.insert(key, c),
            None => m.remove(&key),
        };
    }

    /// Every user with a credential, with the algorithms and iterations.
    pub fn users(&self) -> BTreeMap<String, Vec<(ScramAlgorithm, i32)>> {
        let mut out: BTreeMap<String, Vec<(ScramAlgorithm, i32)>> = BTreeMap::new();
        for ((user, alg), c) in self.creds.read().unwrap_or_else(|e| e.into_inner()).iter() {
            out.entry(user.clone())
                .or_default()
                .push((*alg, c.iterations));
        }
        out
    }
}

fn record_id(user: &str, alg: ScramAlgorithm) -> String {
    format!("{user}/{}", alg.mechanism_name())
}

impl crate::security::Security {
    /// Loads the SCRAM credentials from `__weir_security` and offers both
    /// SCRAM mechanisms (they are always on: without credentials nobody
    /// can use them).
    pub(crate) async fn open_scram(&self) -> Result<(), BrokerError> {
        let store = self.scram.clone();
        for (id, value) in self.security_records(SCRAM_KIND).await? {
            self.apply_scram(&id, Some(&value));
        }
        for alg in ScramAlgorithm::ALL {
            self.register_mechanism(Arc::new(ScramMechanism::new(alg, store.clone())));
        }
        Ok(())
    }

    /// Stores (or with `None`, deletes) the credential of one record.
    pub(crate) fn apply_scram(&self, id: &str, value: Option<&Bytes>) {
        let Some((user, alg)) = id
            .rsplit_once('/')
            .and_then(|(user, mech)| Some((user, ScramAlgorithm::from_mechanism_name(mech)?)))
        else {
            warn!(id, "ignoring an unreadable SCRAM credential record");
            return;
        };
        let cred = match value {
            None => None,
            Some(v) => match std::str::from_utf8(v)
                .ok()
                .and_then(ScramCredential::decode)
            {
                Some(c) => Some(c),
                None => {
                    warn!(id, "ignoring an unreadable SCRAM credential record");
                    return;
                }
            },
        };
        self.scram.set(user, alg, cred);
    }

    /// The SCRAM credentials.
    pub fn scram_store(&self) -> &Arc<ScramStore> {
        &self.scram
    }

    /// Stores (or with `None`, deletes) one SCRAM credential: appends the
    /// record and, on a single node, updates the in-memory copy at once;
    /// the future resolves when the record is durable (and applied, in
    /// cluster mode).
    pub fn put_scram_credential(
        &self,
        user: &str,
        alg: ScramAlgorithm,
        cred: Option<ScramCredential>,
    ) -> Result<Durable, BrokerError> {
        let value = cred.as_ref().map(|c| Bytes::from(c.encode()));
        let durable = self.put_security_record(SCRAM_KIND, &record_id(user, alg), value)?;
        if self.applies_own_writes() {
            self.scram.set(user, alg, cred);
        }
        Ok(durable)
    }

    /// Whether `password` is `user`'s password under any SCRAM mechanism
    /// (HTTP basic auth against SCRAM users). Costs a PBKDF2 derivation
    /// per stored credential of the user.
    pub fn verify_scram_password(&self, user: &str, password: &str) -> bool {
        ScramAlgorithm::ALL.into_iter().any(|alg| {
            self.scram
                .scram_credential(user, alg)
                .is_some_and(|c| c.verify_password(alg, password))
        })
    }
}
