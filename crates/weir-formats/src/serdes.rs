//! What Confluent's serializers and deserializers share whatever the
//! format: the subject name strategies, the serializer settings
//! (`auto.register.schemas`, `use.latest.version` with
//! `latest.compatibility.strict`, `normalize.schemas`, `use.schema.id`), and finding the schema to write or read with through
//! the registry, with parsed schemas cached by id.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use crate::client::SchemaRegistryClient;
use crate::compat;
use crate::schema::{ResolvedReference, Schema, SchemaType};
use crate::FormatError;

/// Whether a record's key or value is (de)serialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// The key: subjects end in `-key`.
    Key,
    /// The value: subjects end in `-value`.
    Value,
}

/// How a serializer names the subject a schema is registered under
/// (Confluent's `key.subject.name.strategy`/`value.subject.name.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubjectNameStrategy {
    /// `<topic>-key` or `<topic>-value` (the default).
    #[default]
    TopicName,
    /// The record's full name (Avro record, Protobuf message, JSON Schema
    /// `title`).
    RecordName,
    /// `<topic>-<record full name>`.
    TopicRecordName,
}

impl SubjectNameStrategy {
    /// From Confluent's class name (`io.confluent.kafka.serializers.subject.TopicNameStrategy`)
    /// or its simple name.
    pub fn from_class_name(name: &str) -> Result<Self, FormatError> {
        let simple = name.trim().rsplit('.').next().unwrap_or_default();
        match simple {
            "TopicNameStrategy" => Ok(Self::TopicName),
            "RecordNameStrategy" => Ok(Self::RecordName),
            "TopicRecordNameStrategy" => Ok(Self::TopicRecordName),
            _ => Err(FormatError::config(
                "subject.name.strategy",
                format!("unknown strategy {name}"),
            )),
        }
    }

    /// The subject for `topic`'s key or value whose schema's record has
    /// full name `record`.
    pub fn subject(
        self,
        topic: &str,
        field: Field,
        record: Option<&str>,
    ) -> Result<String, FormatError> {
        let record = || {
            record.ok_or_else(|| FormatError::NoSubject {
                reason: format!("{self:?}Strategy needs a schema with a record name"),
            })
        };
        Ok(match self {
            Self::TopicName => match field {
                Field::Key => format!("{topic}-key"),
                Field::Value => format!("{topic}-value"),
            },
            Self::RecordName => record()?.to_string(),
            Self::TopicRecordName => format!("{topic}-{}", record()?),
        })
    }
}

/// Serializer and deserializer settings, by Confluent's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerdeConfig {
    /// `auto.register.schemas` (default true): register the schema given
    /// to the serializer. When false, the schema must already be
    /// registered under the subject (or `use.latest.version` is set).
    pub auto_register_schemas: bool,
    /// `use.latest.version` (default false): serialize with the subject's
    /// latest schema instead of registering; deserializers read with it as
    /// the reader schema.
    pub use_latest_version: bool,
    /// `latest.compatibility.strict` (default true): with
    /// `use.latest.version`, the latest schema must be backward compatible
    /// with the given one (read data written with it), by the registry's
    /// own rules ([`crate::compat`]).
    pub latest_compatibility_strict: bool,
    /// `normalize.schemas` (default false): ask the registry to normalize
    /// when registering and looking up.
    pub normalize_schemas: bool,
    /// `use.schema.id`: always serialize with this registered schema.
    pub use_schema_id: Option<i32>,
    /// `key.subject.name.strategy` or `value.subject.name.strategy`.
    pub subject_name_strategy: SubjectNameStrategy,
    /// `json.fail.invalid.schema` (default false): JSON Schema serializers
    /// and deserializers validate payloads against the schema.
    pub json_fail_invalid_schema: bool,
}

impl Default for SerdeConfig {
    fn default() -> Self {
        Self {
            auto_register_schemas: true,
            use_latest_version: false,
            latest_compatibility_strict: true,
            normalize_schemas: false,
            use_schema_id: None,
            subject_name_strategy: SubjectNameStrategy::TopicName,
            json_fail_invalid_schema: false,
        }
    }
}

impl SerdeConfig {
    /// From properties with Confluent's names, for the key or value
    /// serializer (which picks `key.` or `value.subject.name.strategy`).
    pub fn from_properties(
        props: &HashMap<String, String>,
        field: Field,
    ) -> Result<Self, FormatError> {
        let flag = |k: &str, default: bool| -> Result<bool, FormatError> {
            match props.get(k).map(|v| v.trim().to_ascii_lowercase()) {
                None => Ok(default),
                Some(v) if v == "true" => Ok(true),
                Some(v) if v == "false" => Ok(false),
                Some(v) => Err(FormatError::config(k, format!("{v} is not true or false"))),
            }
        };
        let strategy_key = match field {
            Field::Key => "key.subject.name.strategy",
            Field::Value => "value.subject.name.strategy",
        };
        Ok(Self {
            auto_register_schemas: flag("auto.register.schemas", true)?,
            use_latest_version: flag("use.latest.version", false)?,
            latest_compatibility_strict: flag("latest.compatibility.strict", true)?,
            normalize_schemas: flag("normalize.schemas", false)?,
            use_schema_id: match props.get("use.schema.id").map(|v| v.trim()) {
                None | Some("-1") => None,
                Some(v) => Some(
                    v.parse()
                        .map_err(|e| FormatError::config("use.schema.id", e))?,
                ),
            },
            subject_name_strategy: props
                .get(strategy_key)
                .map(|s| SubjectNameStrategy::from_class_name(s))
                .transpose()?
                .unwrap_or_default(),
            json_fail_invalid_schema: flag("json.fail.invalid.schema", false)?,
        })
    }
}

/// A format's parsed schema, as the shared machinery needs it.
pub(crate) trait Parsed: Sized + Send + Sync + 'static {
    const TYPE: SchemaType;
    /// Parses the registry form with its references resolved.
    fn parse(schema: &Schema, references: &[ResolvedReference]) -> Result<Self, FormatError>;
    /// The full name `RecordNameStrategy` uses.
    fn record_name(&self) -> Option<String>;
}

/// A bounded cache (emptied when full).
#[derive(Debug)]
pub(crate) struct Memo<K, V> {
    map: Mutex<HashMap<K, V>>,
}

const MEMO_CAPACITY: usize = 1000;

impl<K: Hash + Eq, V: Clone> Memo<K, V> {
    pub(crate) fn new() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, V>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn get(&self, k: &K) -> Option<V> {
        self.lock().get(k).cloned()
    }

    pub(crate) fn put(&self, k: K, v: V) {
        let mut m = self.lock();
        if m.len() >= MEMO_CAPACITY {
            m.clear();
        }
        m.insert(k, v);
    }
}

/// Finds and parses schemas through the registry for one format.
#[derive(Debug)]
pub(crate) struct Resolver<P> {
    pub(crate) client: Arc<SchemaRegistryClient>,
    pub(crate) config: SerdeConfig,
    by_id: Memo<i32, Arc<P>>,
    /// (topic, field, given schema) → (id, schema to write with).
    writers: Memo<(String, Field, Schema), (i32, Arc<P>)>,
}

impl<P: Parsed> Resolver<P> {
    pub(crate) fn new(client: Arc<SchemaRegistryClient>, config: SerdeConfig) -> Self {
        Self {
            client,
            config,
            by_id: Memo::new(),
            writers: Memo::new(),
        }
    }

    /// Parses a registry schema, fetching its references.
    pub(crate) async fn parse(&self, schema: &Schema) -> Result<P, FormatError> {
        if schema.schema_type != P::TYPE {
            return Err(FormatError::schema(
                P::TYPE.name(),
                format!("a {} schema was given", schema.schema_type.name()),
            ));
        }
        let refs = self.client.resolve_references(schema).await?;
        P::parse(schema, &refs)
    }

    /// The parsed schema registered under `id`.
    pub(crate) async fn by_id(&self, id: i32) -> Result<Arc<P>, FormatError> {
        if let Some(p) = self.by_id.get(&id) {
            return Ok(p);
        }
        let schema = self.client.schema_by_id(id).await?;
        if schema.schema_type != P::TYPE {
            return Err(FormatError::WrongSchemaType {
                id,
                expected: P::TYPE.name(),
                found: schema.schema_type.name(),
            });
        }
        let p = Arc::new(self.parse(&schema).await?);
        self.by_id.put(id, Arc::clone(&p));
        Ok(p)
    }

    /// The latest version of `subject`: its id and parsed schema.
    pub(crate) async fn latest(&self, subject: &str) -> Result<(i32, Arc<P>), FormatError> {
        let latest = self.client.latest(subject).await?;
        Ok((latest.id, self.by_id(latest.id).await?))
    }

    /// The id and schema to serialize with when the caller gives `schema`
    /// (`parsed` parses it with its references), as Confluent's serializers choose:
    /// `use.schema.id`, else register (`auto.register.schemas`), else the
    /// latest version (`use.latest.version`), else look the schema up.
    pub(crate) async fn writer(
        &self,
        topic: &str,
        field: Field,
        schema: &Schema,
        parsed: impl FnOnce(&[ResolvedReference]) -> Result<P, FormatError>,
    ) -> Result<(i32, Arc<P>), FormatError> {
        let key = (topic.to_string(), field, schema.clone());
        if let Some(hit) = self.writers.get(&key) {
            return Ok(hit);
        }
        let c = &self.config;
        let found = if let Some(id) = c.use_schema_id {
            (id, self.by_id(id).await?)
        } else {
            let refs = self.client.resolve_references(schema).await?;
            let parsed = parsed(&refs)?;
            let subject =
                c.subject_name_strategy
                    .subject(topic, field, parsed.record_name().as_deref())?;
            if c.auto_register_schemas {
                let id = self
                    .client
                    .register(&subject, schema, c.normalize_schemas)
                    .await?;
                (id, Arc::new(parsed))
            } else if c.use_latest_version {
                if c.latest_compatibility_strict {
                    self.check_latest(&subject, schema, &refs).await?;
                }
                self.latest(&subject).await?
            } else {
                let r = self
                    .client
                    .lookup(&subject, schema, c.normalize_schemas)
                    .await?;
                (r.id, Arc::new(parsed))
            }
        };
        self.writers.put(key, found.clone());
        Ok(found)
    }

    /// `latest.compatibility.strict`: fails unless the latest version of
    /// `subject` can read data written with `given`, as the registry's
    /// BACKWARD check judges it.
    async fn check_latest(
        &self,
        subject: &str,
        given: &Schema,
        given_refs: &[ResolvedReference],
    ) -> Result<(), FormatError> {
        let latest = self.client.latest(subject).await?;
        let latest_refs = self.client.resolve_references(&latest.schema).await?;
        let ty = latest.schema.schema_type;
        let parse = |s: &Schema, refs: &[ResolvedReference]| {
            compat::parse(s.schema_type, &s.schema, refs)
                .map_err(|e| FormatError::schema(s.schema_type.name(), e))
        };
        let reader = parse(&latest.schema, &latest_refs)?;
        let writer = parse(given, given_refs)?;
        let reasons = compat::check(compat::Level::Backward, &reader, &[writer]);
        if reasons.is_empty() {
            return Ok(());
        }
        Err(FormatError::IncompatibleLatest {
            latest: latest.schema.schema,
            schema_type: ty.name(),
            given: given.schema.clone(),
            reasons,
        })
    }

    /// The reader schema a deserializer resolves to: with
    /// `use.latest.version`, the latest version of the subject the writer
    /// schema names.
    pub(crate) async fn reader(
        &self,
        topic: &str,
        field: Field,
        writer: &P,
    ) -> Result<Option<Arc<P>>, FormatError> {
        if !self.config.use_latest_version {
            return Ok(None);
        }
        let subject = self.config.subject_name_strategy.subject(
            topic,
            field,
            writer.record_name().as_deref(),
        )?;
        Ok(Some(self.latest(&subject).await?.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_by_class_name() {
        use SubjectNameStrategy::*;
        for (name, s) in [
            (
                "io.confluent.kafka.serializers.subject.TopicNameStrategy",
                TopicName,
            ),
            ("RecordNameStrategy", RecordName),
            (
                "io.confluent.kafka.serializers.subject.TopicRecordNameStrategy",
                TopicRecordName,
            ),
        ] {
            assert_eq!(SubjectNameStrategy::from_class_name(name).unwrap(), s);
        }
        assert!(SubjectNameStrategy::from_class_name("Nope").is_err());
        assert_eq!(TopicName.subject("t", Field::Key, None).unwrap(), "t-key");
        assert_eq!(
            TopicName.subject("t", Field::Value, Some("a.R")).unwrap(),
            "t-value"
        );
        assert_eq!(
            RecordName.subject("t", Field::Value, Some("a.R")).unwrap(),
            "a.R"
        );
        assert_eq!(
            TopicRecordName
                .subject("t", Field::Key, Some("a.R"))
                .unwrap(),
            "t-a.R"
        );
        assert!(RecordName.subject("t", Field::Value, None).is_err());
    }

    #[test]
    fn config_from_properties() {
        let props: HashMap<String, String> = [
            ("auto.register.schemas", "false"),
            ("use.latest.version", "TRUE"),
            (
                "value.subject.name.strategy",
                "io.confluent.kafka.serializers.subject.RecordNameStrategy",
            ),
            ("use.schema.id", "7"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let c = SerdeConfig::from_properties(&props, Field::Value).unwrap();
        assert!(!c.auto_register_schemas && c.use_latest_version);
        assert_eq!(c.use_schema_id, Some(7));
        assert_eq!(c.subject_name_strategy, SubjectNameStrategy::RecordName);
        let k = SerdeConfig::from_properties(&props, Field::Key).unwrap();
        assert_eq!(k.subject_name_strategy, SubjectNameStrategy::TopicName);
        let mut bad = props;
        bad.insert("normalize.schemas".into(), "maybe".into());
        assert!(SerdeConfig::from_properties(&bad, Field::Value).is_err());
    }
}
