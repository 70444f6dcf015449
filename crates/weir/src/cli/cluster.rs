//! `weir cluster info`: brokers, cluster id, controller, features and the
//! APIs (with version ranges) the broker serves.

use anyhow::Result;
use clap::{Args, Subcommand};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest};
use kafka_protocol::protocol::StrBytes;
use serde_json::json;

use super::output::{self, check, OutputFormat};
use super::Common;

/// `weir cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Show the cluster id, brokers, controller, feature levels and the
    /// APIs the bootstrap broker serves with their version ranges.
    ///
    /// Examples:
    ///   weir cluster info
    ///   weir cluster info --bootstrap kafka:9092 --output json
    #[command(verbatim_doc_comment)]
    Info {
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
        #[command(flatten)]
        common: Common,
    },
}

/// Runs `weir cluster ...`.
pub async fn run(args: ClusterArgs) -> Result<()> {
    let ClusterCommand::Info {
        output: fmt,
        common,
    } = args.command;
    let mut admin = common.admin().await?;
    let md = admin.metadata(Some(&[])).await?;
    // ApiVersions v3+ adds the software name and feature levels.
    let req = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("weir"))
        .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
    let (av, _) = admin.send(req, 3).await?;
    check(av.error_code, "ApiVersions", None)?;
    let apis: Vec<(String, i16, i16, i16)> = admin
        .api_versions()
        .into_iter()
        .map(|(k, min, max)| {
            let name = ApiKey::try_from(k)
                .map(|a| format!("{a:?}"))
                .unwrap_or_else(|()| format!("Unknown({k})"));
            (name, k, min, max)
        })
        .collect();
    let features: Vec<(String, i16, i16)> = av
        .finalized_features
        .iter()
        .map(|f| (f.name.to_string(), f.min_version_level, f.max_version_level))
        .collect();
    let cluster_id = md.cluster_id.as_ref().map(|c| c.to_string());
    let nodes = admin.nodes();
    match fmt {
        OutputFormat::Json => output::json(&json!({
            "bootstrap": admin.bootstrap_addr(),
            "cluster_id": cluster_id,
            "controller_id": md.controller_id.0,
            "brokers": nodes.iter().map(|n| json!({"id": n.id, "host": n.host, "port": n.port})).collect::<Vec<_>>(),
            "finalized_features": features.iter().map(|(n, a, b)| json!({"name": n, "min_level": a, "max_level": b})).collect::<Vec<_>>(),
            "apis": apis.iter().map(|(n, k, a, b)| json!({"name": n, "key": k, "min_version": a, "max_version": b})).collect::<Vec<_>>(),
        })),
        OutputFormat::Table => {
            let mut text = format!(
                "CLUSTER {}  CONTROLLER {}\n\n",
                cluster_id.as_deref().unwrap_or("-"),
                md.controller_id.0
            );
            let brokers: Vec<Vec<String>> = nodes
                .iter()
                .map(|n| vec![n.id.to_string(), n.host.clone(), n.port.to_string()])
                .collect();
            text.push_str(&output::table(&["BROKER", "HOST", "PORT"], &brokers));
            if !features.is_empty() {
                text.push('\n');
                let rows: Vec<Vec<String>> = features
                    .iter()
                    .map(|(n, a, b)| vec![n.clone(), a.to_string(), b.to_string()])
                    .collect();
                text.push_str(&output::table(
                    &["FEATURE", "MIN-LEVEL", "MAX-LEVEL"],
                    &rows,
                ));
            }
            text.push('\n');
            let rows: Vec<Vec<String>> = apis
                .iter()
                .map(|(n, k, a, b)| vec![n.clone(), k.to_string(), a.to_string(), b.to_string()])
                .collect();
            text.push_str(&output::table(&["API", "KEY", "MIN", "MAX"], &rows));
            output::out(&text);
        }
    }
    Ok(())
}
