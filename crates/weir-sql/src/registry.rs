//! The engine's schema registry: `ksql.schema.registry.url` (and the
//! other `ksql.schema.registry.*` settings without their `ksql.` prefix),
//! reached through `weir-formats`' client. Query threads decode records
//! outside any async runtime, so registry calls run on a small runtime of
//! their own and callers wait for them.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};

use weir_formats::{RegistryConfig, ResolvedReference, Schema, SchemaRegistryClient};

use crate::engine::EngineConfig;
use crate::error::{Result, SqlError};
use crate::sr::{self, Bound, Parsed, SchemaLookup, SrKind};
use crate::types::SqlType;

/// The registry client of one engine.
pub struct Registry {
    client: Arc<SchemaRegistryClient>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Registry")
    }
}

fn registry_error(e: weir_formats::FormatError) -> SqlError {
    SqlError::invalid(format!("Schema registry: {e}"))
}

/// Runs `fut` on the registry runtime and waits for it, from any thread
/// (a scoped thread keeps this legal inside another runtime).
fn wait<T: Send>(fut: impl Future<Output = Result<T>> + Send) -> Result<T> {
    static RT: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    let rt = RT
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("sql-registry")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| SqlError::Internal {
            message: format!("cannot start the registry runtime: {e}"),
        })?;
    std::thread::scope(|s| s.spawn(|| rt.block_on(fut)).join()).unwrap_or_else(|_| {
        Err(SqlError::Internal {
            message: "a schema registry call failed".into(),
        })
    })
}

impl SchemaLookup for Registry {
    fn by_id(&self, id: i32) -> Result<(Schema, Vec<ResolvedReference>)> {
        let client = self.client.clone();
        wait(async move {
            let s = client.schema_by_id(id).await.map_err(registry_error)?;
            let refs = client
                .resolve_references(&s)
                .await
                .map_err(registry_error)?;
            Ok((s, refs))
        })
    }
}

impl Registry {
    /// The registry the settings name, if any.
    pub fn from_config(config: &EngineConfig) -> Result<Option<Arc<Registry>>> {
        let props: HashMap<String, String> = config
            .properties
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("ksql.")
                    .filter(|k| k.starts_with("schema.registry."))
                    .map(|k| (k.to_string(), v.clone()))
            })
            .collect();
        if props
            .get("schema.registry.url")
            .is_none_or(|u| u.trim().is_empty())
        {
            return Ok(None);
        }
        let rc = RegistryConfig::from_properties(&props).map_err(registry_error)?;
        let client = SchemaRegistryClient::new(rc).map_err(registry_error)?;
        Ok(Some(Arc::new(Registry {
            client: Arc::new(client),
        })))
    }

    /// The latest schema of `subject` and its id, `None` if it has none.
    pub fn latest(&self, kind: SrKind, subject: &str) -> Result<Option<(i32, Schema, Parsed)>> {
        let client = self.client.clone();
        let subject = subject.to_string();
        let got = wait(async move {
            match client.latest(&subject).await {
                Ok(r) => {
                    let refs = client
                        .resolve_references(&r.schema)
                        .await
                        .map_err(registry_error)?;
                    Ok(Some((r.id, r.schema, refs)))
                }
                Err(e) if matches!(e.registry_code(), Some(40401..=40403)) => Ok(None),
                Err(e) => Err(registry_error(e)),
            }
        })?;
        got.map(|(id, s, refs)| {
            let p = Parsed::parse(kind, &s, &refs)?;
            Ok((id, s, p))
        })
        .transpose()
    }

    /// `PRINT`: the format and JSON of `bytes` when they are a registry
    /// frame (magic byte 0, a schema id the registry holds) that decodes
    /// with that schema. Schemas are cached by id in `cache`, misses too.
    pub fn decode_frame(
        &self,
        cache: &mut HashMap<i32, Option<(SrKind, Arc<Parsed>)>>,
        bytes: &[u8],
    ) -> Option<(SrKind, serde_json::Value)> {
        let (id, rest) = weir_formats::wire::split(bytes).ok()?;
        let entry = cache.entry(id).or_insert_with(|| {
            let (s, refs) = self.by_id(id).ok()?;
            let kind = [SrKind::Avro, SrKind::Protobuf, SrKind::JsonSr]
                .into_iter()
                .find(|k| k.schema_type() == s.schema_type)?;
            Some((kind, Arc::new(Parsed::parse(kind, &s, &refs).ok()?)))
        });
        let (kind, parsed) = entry.as_ref()?;
        let json = sr::decode_payload(parsed, *kind, rest).ok()?;
        Some((*kind, json))
    }

    /// The schema with `id`.
    pub fn by_id_parsed(&self, kind: SrKind, id: i32) -> Result<(Schema, Parsed)> {
        let (s, refs) = self
            .by_id(id)
            .map_err(|e| SqlError::invalid(format!("Cannot read the schema with id {id}: {e}")))?;
        let p = Parsed::parse(kind, &s, &refs)?;
        Ok((s, p))
    }

    /// Registers `schema` under `subject`; its id.
    pub fn register(&self, subject: &str, schema: &Schema) -> Result<i32> {
        let client = self.client.clone();
        let subject = subject.to_string();
        let schema = schema.clone();
        wait(async move {
            client
                .register(&subject, &schema, false)
                .await
                .map_err(|e| {
                    SqlError::invalid(format!(
                        "Could not register schema for topic: {e}. Subject: {subject}"
                    ))
                })
        })
    }

    /// Binds a registry format for `subject`: the schema with
    /// `schema_id` when given (registered under the subject too when
    /// `register`), else the schema ksqlDB derives from the columns,
    /// registered.
    pub fn bind(
        self: &Arc<Self>,
        kind: SrKind,
        subject: &str,
        columns: &[(String, SqlType)],
        wrapped: bool,
        schema_id: Option<i32>,
        register: bool,
    ) -> Result<Arc<Bound>> {
        let lookup: Arc<dyn SchemaLookup> = self.clone();
        let (id, parsed) = match schema_id {
            Some(id) => {
                let (schema, parsed) = self.by_id_parsed(kind, id)?;
                if register {
                    self.register(subject, &schema)?;
                }
                (id, parsed)
            }
            None => {
                let schema = sr::schema_for(kind, columns, wrapped);
                let parsed = Parsed::parse(kind, &schema, &[])?;
                (self.register(subject, &schema)?, parsed)
            }
        };
        Ok(Arc::new(Bound::new(id, parsed, lookup)))
    }
}
