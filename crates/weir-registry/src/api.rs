//! The REST API, path for path as Confluent Schema Registry serves it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use weir_formats::protobuf::{is_descriptor, ProtobufSchema};

use crate::schema::{self, Level, Parsed, Reference, SchemaType};
use crate::store::{self, Mode, SchemaValue};
use crate::{Registry, RegistryError};

/// The media type of every response.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

const ACCEPTED: &[&str] = &[
    "application/vnd.schemaregistry.v1+json",
    "application/vnd.schemaregistry+json",
    "application/json",
    "application/octet-stream",
];

type Reg = State<Arc<Registry>>;
type Params = Query<HashMap<String, String>>;
type Answer = Result<Response, RegistryError>;

/// A JSON response with the registry's media type.
pub fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    r
}

fn ok(body: Value) -> Answer {
    Ok(json_response(StatusCode::OK, &body))
}

/// The routes.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/", get(|| async { ok(json!({})) }))
        .route("/schemas", get(list_schemas))
        .route("/schemas/types", get(types))
        .route("/contexts", get(|| async { ok(json!(["."])) }))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_by_id))
        .route("/schemas/ids/{id}/versions", get(versions_by_id))
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(get_version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_raw_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(referenced_by),
        )
        .route(
            "/config",
            get(get_global_config)
                .put(put_global_config)
                .delete(delete_global_config),
        )
        .route(
            "/config/{subject}",
            get(get_config).put(put_config).delete(delete_config),
        )
        .route(
            "/mode",
            get(get_global_mode)
                .put(put_global_mode)
                .delete(delete_global_mode),
        )
        .route(
            "/mode/{subject}",
            get(get_mode).put(put_mode).delete(delete_mode),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(check_version),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(check_all),
        )
        .fallback(|| async { RegistryError::NoSuchEndpoint })
        .method_not_allowed_fallback(|| async { RegistryError::MethodNotAllowed })
        .with_state(registry)
}

fn flag(q: &HashMap<String, String>, name: &str) -> bool {
    q.get(name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Parses a request body of one of the accepted media types.
fn body<T: for<'de> Deserialize<'de>>(
    headers: &HeaderMap,
    raw: &Bytes,
) -> Result<T, RegistryError> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("");
        let mime = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !mime.is_empty() && !ACCEPTED.contains(&mime.as_str()) {
            return Err(RegistryError::UnsupportedMediaType);
        }
    }
    serde_json::from_slice(raw)
        .map_err(|e| RegistryError::BadRequest(format!("Unrecognized request body: {e}")))
}

#[derive(Debug, Deserialize)]
struct SchemaRequest {
    schema: Option<String>,
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
    #[serde(default)]
    references: Option<Vec<Reference>>,
    version: Option<i32>,
    id: Option<i32>,
}

/// A request's schema: its type, references and canonical text.
struct Candidate {
    ty: SchemaType,
    refs: Vec<Reference>,
    canonical: String,
    parsed: Parsed,
}

fn candidate(
    reg: &Registry,
    req: &SchemaRequest,
    normalize: bool,
) -> Result<Candidate, RegistryError> {
    let ty = match &req.schema_type {
        None => SchemaType::Avro,
        Some(t) => SchemaType::from_name(t)
            .ok_or_else(|| RegistryError::InvalidSchema(format!("unknown schema type {t}")))?,
    };
    let text = req
        .schema
        .as_deref()
        .ok_or_else(|| RegistryError::InvalidSchema("no schema given".into()))?;
    let refs = req.references.clone().unwrap_or_default();
    let deps = reg.resolve(&refs)?;
    let parsed = schema::parse(ty, text, &deps)
        .map_err(|e| RegistryError::InvalidSchema(format!("{text}, details: {e}")))?;
    let canonical = schema::canonical(ty, text, normalize)
        .map_err(|e| RegistryError::InvalidSchema(format!("{text}, details: {e}")))?;
    Ok(Candidate {
        ty,
        refs,
        canonical,
        parsed,
    })
}

/// Whether a stored version holds the candidate's schema: the same type
/// and references, and the same text as given or once normalized (as
/// Confluent compares Avro's own re-serialisation of both).
fn same_schema(v: &SchemaValue, c: &Candidate) -> bool {
    v.schema_type == c.ty
        && v.references == c.refs
        && (v.schema == c.canonical
            || schema::canonical(c.ty, &v.schema, true).ok()
                == schema::canonical(c.ty, &c.canonical, true).ok())
}

fn parse_stored(reg: &Registry, v: &SchemaValue) -> Result<Parsed, RegistryError> {
    let deps = reg.resolve(&v.references)?;
    schema::parse(v.schema_type, &v.schema, &deps).map_err(|e| {
        RegistryError::Store(format!(
            "stored schema {} of {} version {} no longer parses: {e}",
            v.id, v.subject, v.version
        ))
    })
}

fn version_json(v: &SchemaValue) -> Value {
    let mut o = json!({"subject": v.subject, "version": v.version, "id": v.id});
    if !v.schema_type.is_avro() {
        o["schemaType"] = json!(v.schema_type.name());
    }
    if !v.references.is_empty() {
        o["references"] = json!(v.references);
    }
    o["schema"] = json!(v.schema);
    o
}

async fn types() -> Answer {
    ok(json!(["JSON", "PROTOBUF", "AVRO"]))
}

fn parse_id(id: &str) -> Result<i32, RegistryError> {
    id.parse()
        .map_err(|_| RegistryError::SchemaNotFound(format!("Schema {id} not found")))
}

fn schema_of(reg: &Registry, id: &str) -> Result<SchemaValue, RegistryError> {
    let n = parse_id(id)?;
    reg.state()
        .by_id(n)
        .cloned()
        .ok_or_else(|| RegistryError::SchemaNotFound(format!("Schema {n} not found")))
}

/// With `format=serialized`, a Protobuf schema stored as `.proto` text is
/// served as a base64 `FileDescriptorProto`, as Confluent's registry does
/// (confluent-kafka's Python deserializer asks for it).
fn formatted(
    reg: &Registry,
    mut v: SchemaValue,
    q: &HashMap<String, String>,
) -> Result<SchemaValue, RegistryError> {
    let serialized = q.get("format").is_some_and(|f| f == "serialized");
    if serialized && v.schema_type == SchemaType::Protobuf && !is_descriptor(&v.schema) {
        let deps = reg.resolve(&v.references)?;
        v.schema = ProtobufSchema::parse_with_references(&v.schema, &deps)
            .map_err(|e| RegistryError::Store(format!("stored schema {}: {e}", v.id)))?
            .to_descriptor_base64();
    }
    Ok(v)
}

async fn schema_by_id(State(reg): Reg, Path(id): Path<String>, Query(q): Params) -> Answer {
    let v = formatted(&reg, schema_of(&reg, &id)?, &q)?;
    let mut o = json!({"schema": v.schema});
    if !v.schema_type.is_avro() {
        o["schemaType"] = json!(v.schema_type.name());
    }
    if !v.references.is_empty() {
        o["references"] = json!(v.references);
    }
    ok(o)
}

async fn raw_schema_by_id(State(reg): Reg, Path(id): Path<String>) -> Answer {
    let v = schema_of(&reg, &id)?;
    Ok(raw(&v.schema))
}

/// A schema as the response body itself (the `/schema` endpoints).
fn raw(schema: &str) -> Response {
    let mut r = (StatusCode::OK, schema.to_string()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    r
}

fn uses_of(
    reg: &Registry,
    id: &str,
    q: &HashMap<String, String>,
) -> Result<Vec<(String, i32)>, RegistryError> {
    let n = parse_id(id)?;
    let deleted = flag(q, "deleted");
    let st = reg.state();
    let uses: Vec<(String, i32)> = st
        .subjects
        .values()
        .flat_map(|vs| vs.values())
        .filter(|v| v.id == n && (deleted || !v.deleted))
        .map(|v| (v.subject.clone(), v.version))
        .collect();
    if st.by_id(n).is_none() {
        return Err(RegistryError::SchemaNotFound(format!(
            "Schema {n} not found"
        )));
    }
    Ok(uses)
}

async fn subjects_by_id(State(reg): Reg, Path(id): Path<String>, Query(q): Params) -> Answer {
    let mut subjects: Vec<String> = uses_of(&reg, &id, &q)?
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    subjects.dedup();
    ok(json!(subjects))
}

async fn versions_by_id(State(reg): Reg, Path(id): Path<String>, Query(q): Params) -> Answer {
    let uses: Vec<Value> = uses_of(&reg, &id, &q)?
        .into_iter()
        .map(|(s, v)| json!({"subject": s, "version": v}))
        .collect();
    ok(json!(uses))
}

fn page<T>(items: Vec<T>, q: &HashMap<String, String>) -> Vec<T> {
    let offset = q
        .get("offset")
        .and_then(|o| o.parse::<usize>().ok())
        .unwrap_or(0);
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<i64>().ok())
        .filter(|l| *l >= 0)
        .and_then(|l| usize::try_from(l).ok())
        .unwrap_or(usize::MAX);
    items.into_iter().skip(offset).take(limit).collect()
}

async fn list_schemas(State(reg): Reg, Query(q): Params) -> Answer {
    let deleted = flag(&q, "deleted");
    let latest_only = flag(&q, "latestOnly");
    let prefix = q.get("subjectPrefix").cloned().unwrap_or_default();
    let st = reg.state();
    let mut out = Vec::new();
    for (subject, vs) in st.subjects.range(prefix.clone()..) {
        if !subject.starts_with(&prefix) {
            break;
        }
        let visible: Vec<&SchemaValue> = vs.values().filter(|v| deleted || !v.deleted).collect();
        let chosen: &[&SchemaValue] = if latest_only {
            visible.last().map_or(&[], std::slice::from_ref)
        } else {
            &visible
        };
        out.extend(chosen.iter().map(|v| version_json(v)));
    }
    ok(json!(page(out, &q)))
}

async fn list_subjects(State(reg): Reg, Query(q): Params) -> Answer {
    let deleted = flag(&q, "deleted");
    let deleted_only = flag(&q, "deletedOnly");
    let prefix = q
        .get("subjectPrefix")
        .filter(|p| p.as_str() != ":*:")
        .cloned()
        .unwrap_or_default();
    let st = reg.state();
    let names: Vec<String> = st
        .subjects
        .iter()
        .filter(|(s, _)| s.starts_with(&prefix))
        .filter(|(_, vs)| {
            let live = vs.values().any(|v| !v.deleted);
            if deleted_only {
                !live
            } else {
                live || deleted
            }
        })
        .map(|(s, _)| s.clone())
        .collect();
    ok(json!(page(names, &q)))
}

async fn lookup(
    State(reg): Reg,
    Path(subject): Path<String>,
    Query(q): Params,
    headers: HeaderMap,
    raw: Bytes,
) -> Answer {
    let req: SchemaRequest = body(&headers, &raw)?;
    let deleted = flag(&q, "deleted");
    if !reg.state().subjects.contains_key(&subject) {
        return Err(RegistryError::SubjectNotFound(subject));
    }
    let c = candidate(&reg, &req, flag(&q, "normalize"))?;
    let st = reg.state();
    let found = st.subjects.get(&subject).and_then(|vs| {
        vs.values()
            .rev()
            .find(|v| (deleted || !v.deleted) && same_schema(v, &c))
    });
    match found {
        Some(v) => ok(version_json(v)),
        None if st.live(&subject).is_empty() && !deleted => {
            Err(RegistryError::SubjectNotFound(subject))
        }
        None => Err(RegistryError::SchemaNotFound("Schema not found".into())),
    }
}

async fn register(
    State(reg): Reg,
    Path(subject): Path<String>,
    Query(q): Params,
    headers: HeaderMap,
    raw: Bytes,
) -> Answer {
    let req: SchemaRequest = body(&headers, &raw)?;
    if subject.is_empty() || subject.chars().any(char::is_control) {
        return Err(RegistryError::BadRequest(format!(
            "Invalid subject {subject:?}"
        )));
    }
    let c = candidate(&reg, &req, flag(&q, "normalize"))?;
    let _writer = reg.lock_writer().await?;
    let (mode, level, live, next_version, existing_id) = {
        let st = reg.state();
        let live: Vec<SchemaValue> = st.live(&subject).into_iter().cloned().collect();
        let next_version = st
            .subjects
            .get(&subject)
            .and_then(|vs| vs.keys().next_back().copied())
            .unwrap_or(0)
            .saturating_add(1);
        (
            st.mode(&subject),
            st.level(&subject),
            live,
            next_version,
            st.id_of(c.ty, &c.canonical, &c.refs),
        )
    };
    if mode == Mode::ReadOnly {
        return Err(RegistryError::NotPermitted(format!(
            "Subject {subject} is in read-only mode"
        )));
    }
    // Already registered under this subject, in any spelling that
    // normalizes the same: its id, no new version.
    if let Some(v) = live.iter().find(|v| same_schema(v, &c)) {
        if req.id.is_none_or(|id| id < 0 || id == v.id) {
            return ok(json!({"id": v.id}));
        }
    }
    let import = mode == Mode::Import;
    let id = match req.id.filter(|id| *id >= 0) {
        Some(id) if import => {
            let st = reg.state();
            if let Some(other) = st.by_id(id) {
                if other.schema != c.canonical || other.schema_type != c.ty {
                    return Err(RegistryError::NotPermitted(format!(
                        "Overwrite new schema with id {id} is not permitted."
                    )));
                }
            }
            id
        }
        Some(id) if Some(id) != existing_id => {
            return Err(RegistryError::NotPermitted(format!(
                "Subject {subject} is not in import mode; cannot register with id {id}"
            )))
        }
        _ => match existing_id {
            Some(id) => id,
            None => reg
                .state()
                .max_id
                .checked_add(1)
                .ok_or_else(|| RegistryError::Store("schema ids are exhausted".into()))?,
        },
    };
    let version = match req.version.filter(|v| *v > 0) {
        Some(v) if import => v,
        Some(v) if v != next_version => {
            return Err(RegistryError::InvalidVersion(v.to_string()));
        }
        _ => next_version,
    };
    if !import && level != Level::None {
        let mut previous = Vec::with_capacity(live.len());
        for v in &live {
            previous.push(parse_stored(&reg, v)?);
        }
        let issues = schema::check(level, &c.parsed, &previous);
        if !issues.is_empty() {
            return Err(RegistryError::Incompatible(format!(
                "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]",
                issues.join(", ")
            )));
        }
    }
    let value = SchemaValue {
        subject: subject.clone(),
        version,
        id,
        schema_type: c.ty,
        references: c.refs,
        schema: c.canonical,
        deleted: false,
    };
    let encoded = serde_json::to_string(&value).map_err(|e| RegistryError::Store(e.to_string()))?;
    reg.write(vec![(store::schema_key(&subject, version), Some(encoded))])
        .await?;
    ok(json!({"id": id}))
}

async fn list_versions(State(reg): Reg, Path(subject): Path<String>, Query(q): Params) -> Answer {
    let deleted = flag(&q, "deleted");
    let deleted_only = flag(&q, "deletedOnly");
    let st = reg.state();
    let versions: Vec<i32> = st
        .subjects
        .get(&subject)
        .map(|vs| {
            vs.values()
                .filter(|v| {
                    if deleted_only {
                        v.deleted
                    } else {
                        deleted || !v.deleted
                    }
                })
                .map(|v| v.version)
                .collect()
        })
        .unwrap_or_default();
    if versions.is_empty() {
        return Err(RegistryError::SubjectNotFound(subject));
    }
    ok(json!(page(versions, &q)))
}

/// Finds `version` ("latest", -1 or a number) of `subject`.
fn find_version(
    reg: &Registry,
    subject: &str,
    version: &str,
    deleted: bool,
) -> Result<SchemaValue, RegistryError> {
    let latest = version == "latest" || version == "-1";
    let n: Option<i32> = if latest {
        None
    } else {
        match version.parse::<i32>() {
            Ok(n) if n >= 1 => Some(n),
            _ => return Err(RegistryError::InvalidVersion(version.to_string())),
        }
    };
    let st = reg.state();
    let Some(vs) = st.subjects.get(subject) else {
        return Err(RegistryError::SubjectNotFound(subject.to_string()));
    };
    if !deleted && vs.values().all(|v| v.deleted) {
        return Err(RegistryError::SubjectNotFound(subject.to_string()));
    }
    let found = match n {
        None => vs.values().rev().find(|v| deleted || !v.deleted),
        Some(n) => vs.get(&n).filter(|v| deleted || !v.deleted),
    };
    found
        .cloned()
        .ok_or_else(|| RegistryError::VersionNotFound(version.to_string()))
}

async fn get_version(
    State(reg): Reg,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Params,
) -> Answer {
    let v = find_version(&reg, &subject, &version, flag(&q, "deleted"))?;
    ok(version_json(&formatted(&reg, v, &q)?))
}

async fn get_raw_version(
    State(reg): Reg,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Params,
) -> Answer {
    let v = find_version(&reg, &subject, &version, flag(&q, "deleted"))?;
    Ok(raw(&v.schema))
}

async fn referenced_by(
    State(reg): Reg,
    Path((subject, version)): Path<(String, String)>,
) -> Answer {
    let v = find_version(&reg, &subject, &version, true)?;
    ok(json!(reg.state().referenced_by(&subject, v.version)))
}

fn writable(reg: &Registry, subject: &str) -> Result<(), RegistryError> {
    if reg.state().mode(subject) == Mode::ReadOnly {
        return Err(RegistryError::NotPermitted(format!(
            "Subject {subject} is in read-only mode"
        )));
    }
    Ok(())
}

async fn delete_version(
    State(reg): Reg,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Params,
) -> Answer {
    let permanent = flag(&q, "permanent");
    let _writer = reg.lock_writer().await?;
    writable(&reg, &subject)?;
    let v = find_version(&reg, &subject, &version, permanent)?;
    if !reg.state().referenced_by(&subject, v.version).is_empty() {
        return Err(RegistryError::ReferenceExists(subject, v.version));
    }
    let key = store::schema_key(&subject, v.version);
    if permanent {
        if !v.deleted {
            return Err(RegistryError::VersionNotSoftDeleted(subject, v.version));
        }
        reg.write(vec![(key, None)]).await?;
    } else {
        let mut d = v.clone();
        d.deleted = true;
        let encoded = serde_json::to_string(&d).map_err(|e| RegistryError::Store(e.to_string()))?;
        reg.write(vec![(key, Some(encoded))]).await?;
    }
    ok(json!(v.version))
}

async fn delete_subject(State(reg): Reg, Path(subject): Path<String>, Query(q): Params) -> Answer {
    let permanent = flag(&q, "permanent");
    let _writer = reg.lock_writer().await?;
    writable(&reg, &subject)?;
    let all: Vec<SchemaValue> = reg
        .state()
        .subjects
        .get(&subject)
        .map(|vs| vs.values().cloned().collect())
        .unwrap_or_default();
    if all.is_empty() {
        return Err(RegistryError::SubjectNotFound(subject));
    }
    let live: Vec<&SchemaValue> = all.iter().filter(|v| !v.deleted).collect();
    let versions: Vec<i32>;
    let mut records = Vec::new();
    if permanent {
        if !live.is_empty() {
            return Err(RegistryError::SubjectNotSoftDeleted(subject));
        }
        versions = all.iter().map(|v| v.version).collect();
        for v in &all {
            records.push((store::schema_key(&subject, v.version), None));
        }
        let st = reg.state();
        if st.subject_level.contains_key(&subject) {
            records.push((store::config_key(Some(&subject)), None));
        }
        if st.subject_mode.contains_key(&subject) {
            records.push((store::mode_key(Some(&subject)), None));
        }
    } else {
        if live.is_empty() {
            return Err(RegistryError::SubjectSoftDeleted(subject));
        }
        for v in &live {
            if !reg.state().referenced_by(&subject, v.version).is_empty() {
                return Err(RegistryError::ReferenceExists(subject, v.version));
            }
        }
        versions = live.iter().map(|v| v.version).collect();
        for v in &live {
            let mut d = (*v).clone();
            d.deleted = true;
            let encoded =
                serde_json::to_string(&d).map_err(|e| RegistryError::Store(e.to_string()))?;
            records.push((store::schema_key(&subject, v.version), Some(encoded)));
        }
    }
    reg.write(records).await?;
    ok(json!(versions))
}

#[derive(Debug, Deserialize)]
struct ConfigRequest {
    compatibility: Option<String>,
    #[serde(rename = "compatibilityLevel")]
    compatibility_level: Option<String>,
}

fn requested_level(headers: &HeaderMap, raw: &Bytes) -> Result<Level, RegistryError> {
    let req: ConfigRequest = body(headers, raw)?;
    req.compatibility
        .or(req.compatibility_level)
        .as_deref()
        .and_then(Level::from_name)
        .ok_or(RegistryError::InvalidCompatibility)
}

async fn get_global_config(State(reg): Reg) -> Answer {
    let l = reg.state().global_level.unwrap_or(Level::Backward);
    ok(json!({"compatibilityLevel": l.name()}))
}

async fn put_global_config(State(reg): Reg, headers: HeaderMap, raw: Bytes) -> Answer {
    let level = requested_level(&headers, &raw)?;
    let _writer = reg.lock_writer().await?;
    reg.write(vec![(
        store::config_key(None),
        Some(store::config_value(level)),
    )])
    .await?;
    ok(json!({"compatibility": level.name()}))
}

async fn delete_global_config(State(reg): Reg) -> Answer {
    let _writer = reg.lock_writer().await?;
    let previous = reg.state().global_level.unwrap_or(Level::Backward);
    reg.write(vec![(store::config_key(None), None)]).await?;
    ok(json!({"compatibilityLevel": previous.name()}))
}

async fn get_config(State(reg): Reg, Path(subject): Path<String>, Query(q): Params) -> Answer {
    let st = reg.state();
    match st.subject_level.get(&subject) {
        Some(l) => ok(json!({"compatibilityLevel": l.name()})),
        None if flag(&q, "defaultToGlobal") => {
            ok(json!({"compatibilityLevel": st.level(&subject).name()}))
        }
        None => Err(RegistryError::SubjectConfigNotFound(subject)),
    }
}

async fn put_config(
    State(reg): Reg,
    Path(subject): Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Answer {
    let level = requested_level(&headers, &raw)?;
    let _writer = reg.lock_writer().await?;
    reg.write(vec![(
        store::config_key(Some(&subject)),
        Some(store::config_value(level)),
    )])
    .await?;
    ok(json!({"compatibility": level.name()}))
}

async fn delete_config(State(reg): Reg, Path(subject): Path<String>) -> Answer {
    let _writer = reg.lock_writer().await?;
    let (previous, known) = {
        let st = reg.state();
        (
            st.subject_level.get(&subject).copied(),
            st.subjects.contains_key(&subject),
        )
    };
    let Some(previous) = previous else {
        return Err(if known {
            RegistryError::SubjectConfigNotFound(subject)
        } else {
            RegistryError::SubjectNotFound(subject)
        });
    };
    reg.write(vec![(store::config_key(Some(&subject)), None)])
        .await?;
    ok(json!({"compatibilityLevel": previous.name()}))
}

#[derive(Debug, Deserialize)]
struct ModeRequest {
    mode: Option<String>,
}

fn requested_mode(headers: &HeaderMap, raw: &Bytes) -> Result<Mode, RegistryError> {
    let req: ModeRequest = body(headers, raw)?;
    req.mode
        .as_deref()
        .and_then(Mode::from_name)
        .ok_or(RegistryError::InvalidMode)
}

async fn get_global_mode(State(reg): Reg) -> Answer {
    let m = reg.state().global_mode.unwrap_or(Mode::ReadWrite);
    ok(json!({"mode": m.name()}))
}

async fn set_mode(reg: &Registry, subject: Option<&str>, mode: Mode, force: bool) -> Answer {
    let _writer = reg.lock_writer().await?;
    if mode == Mode::Import && !force {
        let st = reg.state();
        let has = match subject {
            Some(s) => !st.live(s).is_empty(),
            None => st
                .subjects
                .values()
                .any(|vs| vs.values().any(|v| !v.deleted)),
        };
        if has {
            return Err(RegistryError::NotPermitted(
                "Cannot import since found existing subjects".into(),
            ));
        }
    }
    reg.write(vec![(
        store::mode_key(subject),
        Some(store::mode_value(mode)),
    )])
    .await?;
    ok(json!({"mode": mode.name()}))
}

async fn put_global_mode(
    State(reg): Reg,
    Query(q): Params,
    headers: HeaderMap,
    raw: Bytes,
) -> Answer {
    let mode = requested_mode(&headers, &raw)?;
    set_mode(&reg, None, mode, flag(&q, "force")).await
}

async fn delete_global_mode(State(reg): Reg) -> Answer {
    let _writer = reg.lock_writer().await?;
    let previous = reg.state().global_mode.unwrap_or(Mode::ReadWrite);
    reg.write(vec![(store::mode_key(None), None)]).await?;
    ok(json!({"mode": previous.name()}))
}

async fn get_mode(State(reg): Reg, Path(subject): Path<String>, Query(q): Params) -> Answer {
    let st = reg.state();
    match st.subject_mode.get(&subject) {
        Some(m) => ok(json!({"mode": m.name()})),
        None if flag(&q, "defaultToGlobal") => ok(json!({"mode": st.mode(&subject).name()})),
        None => Err(RegistryError::SubjectModeNotFound(subject)),
    }
}

async fn put_mode(
    State(reg): Reg,
    Path(subject): Path<String>,
    Query(q): Params,
    headers: HeaderMap,
    raw: Bytes,
) -> Answer {
    let mode = requested_mode(&headers, &raw)?;
    set_mode(&reg, Some(&subject), mode, flag(&q, "force")).await
}

async fn delete_mode(State(reg): Reg, Path(subject): Path<String>) -> Answer {
    let _writer = reg.lock_writer().await?;
    let Some(previous) = reg.state().subject_mode.get(&subject).copied() else {
        return Err(RegistryError::SubjectModeNotFound(subject));
    };
    reg.write(vec![(store::mode_key(Some(&subject)), None)])
        .await?;
    ok(json!({"mode": previous.name()}))
}

fn compat_answer(issues: Vec<String>, verbose: bool) -> Answer {
    let mut o = json!({"is_compatible": issues.is_empty()});
    if verbose {
        o["messages"] = json!(issues);
    }
    ok(o)
}

async fn check_version(
    State(reg): Reg,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Params,
    headers: HeaderMap,
    raw: Bytes,
) -> Answer {
    let req: SchemaRequest = body(&headers, &raw)?;
    let c = candidate(&reg, &req, flag(&q, "normalize"))?;
    let old = find_version(&reg, &subject, &version, false)?;
    let level = reg.state().level(&subject);
    let previous = vec![parse_stored(&reg, &old)?];
    compat_answer(
        schema::check(level, &c.parsed, &previous),
        flag(&q, "verbose"),
    )
}

async fn check_all(
    State(reg): Reg,
    Path(subject): Path<String>,
    Query(q): Params,
    headers: HeaderMap,
    raw: Bytes,
) -> Answer {
    let req: SchemaRequest = body(&headers, &raw)?;
    let c = candidate(&reg, &req, flag(&q, "normalize"))?;
    let (live, level) = {
        let st = reg.state();
        let live: Vec<SchemaValue> = st.live(&subject).into_iter().cloned().collect();
        (live, st.level(&subject))
    };
    let mut previous = Vec::with_capacity(live.len());
    for v in &live {
        previous.push(parse_stored(&reg, v)?);
    }
    compat_answer(
        schema::check(level, &c.parsed, &previous),
        flag(&q, "verbose"),
    )
}
