//! The broker's own metadata: cluster id, topics (name, id, partition
//! count, config overrides) and dynamic broker configs.
//!
//! One JSON file, replaced atomically (write a temporary file, fsync,
//! rename, fsync the directory), so a crash leaves either the old or the
//! new catalog. In cluster mode the same JSON is one row in PostgreSQL,
//! shared by every broker (the topics service's `shared` catalog).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::BrokerError;

/// One topic's metadata.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopicRecord {
    /// The topic's name.
    pub name: String,
    /// The topic's id (KIP-516).
    pub id: Uuid,
    /// Number of partitions.
    pub partitions: i32,
    /// Config overrides set on the topic.
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
    /// The replication factor it was created with, reported by Metadata
    /// (data is stored once whatever it says). Absent means 1, and 1 is
    /// not written, so older builds read the catalog unchanged.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub replication_factor: i16,
    /// Manual replica assignments, by partition, in the order given (an
    /// empty list: none given for that partition).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assignments: Vec<Vec<i32>>,
}

fn one() -> i16 {
    1
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde passes a reference
fn is_one(rf: &i16) -> bool {
    *rf == 1
}

/// The catalog format this build reads and writes. Bumped by any change
/// an older build would misread; an unknown version refuses to start.
pub const CATALOG_FORMAT_VERSION: u32 = 1;

/// A catalog written before the field existed is version 1.
fn version_one() -> u32 {
    1
}

/// Everything the catalog holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Catalog {
    /// The format version ([`CATALOG_FORMAT_VERSION`]).
    #[serde(default = "version_one")]
    pub format_version: u32,
    /// The cluster id reported in Metadata and DescribeCluster.
    pub cluster_id: String,
    /// Topics by name.
    #[serde(default)]
    pub topics: BTreeMap<String, TopicRecord>,
    /// Dynamic configs set on this broker.
    #[serde(default)]
    pub dynamic_broker: BTreeMap<String, String>,
    /// Dynamic cluster-wide default configs.
    #[serde(default)]
    pub dynamic_default: BTreeMap<String, String>,
    /// Group configs (`share.*`) set on groups, by group id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub group_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Producer ids below this are handed out (or lost to a crash); the
    /// broker reserves them in blocks so each id is used once.
    #[serde(default)]
    pub producer_id_block_end: i64,
}

/// Where the catalog lives inside the data directory.
pub fn catalog_path(data_dir: &Path) -> PathBuf {
    data_dir.join("meta").join("catalog.json")
}

fn err(path: &Path, reason: impl std::fmt::Display) -> BrokerError {
    BrokerError::Catalog {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

impl Catalog {
    /// Loads the catalog, or makes a new one with a fresh cluster id.
    pub fn load_or_create(path: &Path) -> Result<Self, BrokerError> {
        match fs::read(path) {
            Ok(bytes) => Self::parse(&bytes, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let catalog = Catalog::fresh();
                catalog.save(path)?;
                Ok(catalog)
            }
            Err(e) => Err(err(path, e)),
        }
    }

    /// A new, empty catalog with a fresh cluster id.
    pub fn fresh() -> Self {
        Catalog {
            format_version: CATALOG_FORMAT_VERSION,
            cluster_id: new_cluster_id(),
            ..Catalog::default()
        }
    }

    /// Parses a stored catalog (`origin` names it in errors), refusing a
    /// format version this build does not read.
    pub fn parse(bytes: &[u8], origin: &Path) -> Result<Self, BrokerError> {
        let catalog: Catalog = serde_json::from_slice(bytes).map_err(|e| err(origin, e))?;
        if catalog.format_version != CATALOG_FORMAT_VERSION {
            return Err(err(
                origin,
                format!(
                    "catalog format version {} is not the version {CATALOG_FORMAT_VERSION} this build of Weir reads; start the Weir that wrote it",
                    catalog.format_version
                ),
            ));
        }
        Ok(catalog)
    }

    /// Replaces the catalog on disk atomically and durably.
    pub fn save(&self, path: &Path) -> Result<(), BrokerError> {
        let dir = path
            .parent()
            .ok_or_else(|| err(path, "no parent directory"))?;
        fs::create_dir_all(dir).map_err(|e| err(dir, e))?;
        let tmp = path.with_extension("json.tmp");
        let body = serde_json::to_vec_pretty(self).map_err(|e| err(path, e))?;
        let mut f = fs::File::create(&tmp).map_err(|e| err(&tmp, e))?;
        f.write_all(&body)
            .and_then(|()| f.sync_all())
            .map_err(|e| err(&tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| err(path, e))?;
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| err(dir, e))
    }
}

/// A cluster id as Kafka makes them: a random UUID in URL-safe base64.
fn new_cluster_id() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Uuid::new_v4().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_keeps_cluster_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = catalog_path(dir.path());
        let mut c = Catalog::load_or_create(&path).unwrap();
        assert_eq!(c.cluster_id.len(), 22);
        c.topics.insert(
            "t".into(),
            TopicRecord {
                name: "t".into(),
                id: Uuid::new_v4(),
                partitions: 3,
                configs: BTreeMap::new(),
                replication_factor: 3,
                assignments: vec![vec![2, 3, 1], vec![], vec![1, 2, 3]],
            },
        );
        c.save(&path).unwrap();
        assert_eq!(Catalog::load_or_create(&path).unwrap(), c);
        // A topic written before replication factors were kept reads as 1.
        let json = r#"{"cluster_id": "abc", "topics": {"old": {"name": "old", "id": "6ba7b810-9dad-11d1-80b4-00c04fd430c8", "partitions": 1}}}"#;
        let old = Catalog::parse(json.as_bytes(), &path).unwrap();
        assert_eq!(old.topics["old"].replication_factor, 1);
        assert!(old.topics["old"].assignments.is_empty());
    }

    #[test]
    fn format_versions_are_written_defaulted_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = catalog_path(dir.path());
        let c = Catalog::load_or_create(&path).unwrap();
        assert_eq!(c.format_version, CATALOG_FORMAT_VERSION);
        let json: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(json["format_version"], 1);
        // Written before the field existed: version 1.
        fs::write(&path, br#"{"cluster_id": "abc"}"#).unwrap();
        assert_eq!(Catalog::load_or_create(&path).unwrap().format_version, 1);
        fs::write(&path, br#"{"format_version": 2, "cluster_id": "abc"}"#).unwrap();
        let e = Catalog::load_or_create(&path).unwrap_err().to_string();
        assert!(e.contains("catalog format version 2"), "{e}");
        // Refused, not rewritten.
        assert!(fs::read_to_string(&path)
            .unwrap()
            .contains("\"format_version\": 2"));
    }

    #[test]
    fn a_corrupt_catalog_is_an_error_not_a_reset() {
        let dir = tempfile::tempdir().unwrap();
        let path = catalog_path(dir.path());
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, b"{not json").unwrap();
        assert!(Catalog::load_or_create(&path).is_err());
    }
}
