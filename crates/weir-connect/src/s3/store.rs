//! The bucket, through `object_store`'s S3 client (real signatures, any
//! S3-compatible endpoint), behind a blocking interface: sink tasks run on
//! threads of their own, each with a small Tokio runtime for its uploads.

use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, MultipartUpload, ObjectStore, PutPayload, RetryConfig,
};

use crate::connector::Props;
use crate::error::{ConnectError, Result};

/// Confluent's minimum part size (S3's minimum for all parts but the last).
pub const MIN_PART_SIZE: i64 = 5 * 1024 * 1024;

/// One bucket.
pub struct Store {
    rt: tokio::runtime::Runtime,
    s3: AmazonS3,
    bucket: String,
    endpoint: String,
    part_size: usize,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

fn setting<'a>(p: &'a Props, k: &str) -> Option<&'a str> {
    p.get(k).map(|s| s.trim()).filter(|s| !s.is_empty())
}

impl Store {
    /// The bucket of a connector config: `s3.bucket.name`, `s3.region`,
    /// `store.url`, `aws.access.key.id`/`aws.secret.access.key` (else the
    /// `AWS_*` environment, as AWS's clients), `s3.part.size`,
    /// `s3.part.retries`, `s3.retry.backoff.ms`.
    fn client(p: &Props) -> Result<(AmazonS3, String, String, i64)> {
        let bucket = setting(p, "s3.bucket.name")
            .ok_or_else(|| ConnectError::bad_config("s3.bucket.name is required"))?
            .to_string();
        let part_size = crate::config::prop_i64(p, "s3.part.size", 25 * 1024 * 1024)?;
        if part_size < MIN_PART_SIZE {
            return Err(ConnectError::bad_config(format!(
                "Invalid value {part_size} for configuration s3.part.size: Value must be at least {MIN_PART_SIZE}"
            )));
        }
        let retries = crate::config::prop_i64(p, "s3.part.retries", 3)?.max(0);
        let backoff = crate::config::prop_i64(p, "s3.retry.backoff.ms", 200)?.max(0);
        let mut b = AmazonS3Builder::from_env().with_bucket_name(&bucket);
        // Confluent's default region; the environment's when set.
        let region = setting(p, "s3.region")
            .map(str::to_string)
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-west-2".into());
        b = b.with_region(region);
        let mut endpoint = format!("https://s3.amazonaws.com/{bucket}");
        if let Some(url) = setting(p, "store.url") {
            // A custom endpoint is addressed path-style, as Confluent's
            // `s3.path.style.access.enabled` defaults to.
            b = b
                .with_endpoint(url)
                .with_virtual_hosted_style_request(false)
                .with_allow_http(url.starts_with("http://"));
            endpoint = url.to_string();
        }
        if let (Some(id), Some(secret)) = (
            setting(p, "aws.access.key.id"),
            setting(p, "aws.secret.access.key"),
        ) {
            b = b.with_access_key_id(id).with_secret_access_key(secret);
        }
        let u64_ms = |ms: i64| Duration::from_millis(u64::try_from(ms).unwrap_or(0));
        b = b
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: u64_ms(backoff.max(1)),
                    ..BackoffConfig::default()
                },
                max_retries: usize::try_from(retries).unwrap_or(3),
                retry_timeout: Duration::from_secs(60),
            })
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(10))
                    .with_timeout(Duration::from_secs(120))
                    .with_allow_http(endpoint.starts_with("http://")),
            );
        let s3 = b
            .build()
            .map_err(|e| ConnectError::bad_config(format!("S3 client for bucket {bucket}: {e}")))?;
        Ok((s3, bucket, endpoint, part_size))
    }

    /// Checks a connector config's store settings without connecting
    /// (callable from async code: it makes no runtime).
    pub fn check_config(p: &Props) -> Result<()> {
        Self::client(p).map(|_| ())
    }

    /// The store of a task (see [`Self::client`] for the settings).
    pub fn new(p: &Props) -> Result<Store> {
        let (s3, bucket, endpoint, part_size) = Self::client(p)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ConnectError::Io {
                context: "S3 sink runtime".into(),
                source: e,
            })?;
        Ok(Store {
            rt,
            s3,
            bucket,
            endpoint,
            part_size: usize::try_from(part_size).unwrap_or(usize::MAX),
        })
    }

    fn failure(&self, what: &str, e: object_store::Error) -> ConnectError {
        let text = chain(&e);
        let message =
            if matches!(e, object_store::Error::NotFound { .. }) || text.contains("NoSuchBucket") {
                format!(
                    "Non-existent S3 bucket: {} (at {}): {text}",
                    self.bucket, self.endpoint
                )
            } else {
                format!(
                    "{what} in bucket {} at {}: {text}",
                    self.bucket, self.endpoint
                )
            };
        ConnectError::Connector {
            connector: "S3SinkConnector".into(),
            message,
        }
    }

    /// Fails unless the bucket exists and answers (Confluent's task checks
    /// the same at start).
    pub fn check_bucket(&self, prefix: &str) -> Result<()> {
        let prefix = Path::from(prefix);
        self.rt
            .block_on(self.s3.list_with_delimiter(Some(&prefix)))
            .map(|_| ())
            .map_err(|e| self.failure("Listing", e))
    }

    /// Writes `key`: one PUT up to `s3.part.size`, a multipart upload of
    /// parts that size beyond.
    pub fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        let path = Path::from(key);
        let what = format!("Uploading {key}");
        let bytes = bytes::Bytes::from(bytes);
        if bytes.len() <= self.part_size {
            return self
                .rt
                .block_on(self.s3.put(&path, PutPayload::from(bytes)))
                .map(|_| ())
                .map_err(|e| self.failure(&what, e));
        }
        let part_size = self.part_size;
        self.rt
            .block_on(async {
                let mut upload = self.s3.put_multipart(&path).await?;
                let mut start = 0;
                while start < bytes.len() {
                    let end = (start + part_size).min(bytes.len());
                    if let Err(e) = upload
                        .put_part(PutPayload::from(bytes.slice(start..end)))
                        .await
                    {
                        let _ = upload.abort().await;
                        return Err(e);
                    }
                    start = end;
                }
                upload.complete().await.map(|_| ())
            })
            .map_err(|e| self.failure(&what, e))
    }
}

/// An error with its sources, so a status trace names the root cause
/// (connection refused, a DNS failure, the server's error code).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}
