//! Client quotas (KIP-546): DescribeClientQuotas and AlterClientQuotas.

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{AlterClientQuotasRequest, DescribeClientQuotasRequest};
use kafka_protocol::protocol::StrBytes;

use crate::error::check;
use crate::{Admin, Result};

/// One quota entity part: (`user`, `client-id` or `ip`; a name, or `None`
/// for the default entity).
pub type QuotaEntity = Vec<(String, Option<String>)>;

/// An entity's quotas, (key, value) each (`producer_byte_rate`, ...).
#[derive(Debug, Clone)]
pub struct QuotaEntry {
    pub entity: QuotaEntity,
    pub values: Vec<(String, f64)>,
}

impl Admin {
    /// Every quota of every entity.
    pub async fn describe_quotas(&mut self) -> Result<Vec<QuotaEntry>> {
        let req = DescribeClientQuotasRequest::default()
            .with_components(Vec::<ComponentData>::new())
            .with_strict(false);
        let (resp, _) = self.send(req, 1).await?;
        check(
            resp.error_code,
            "cannot describe client quotas",
            resp.error_message.as_deref(),
        )?;
        Ok(resp
            .entries
            .unwrap_or_default()
            .iter()
            .map(|e| QuotaEntry {
                entity: e
                    .entity
                    .iter()
                    .map(|d| {
                        (
                            d.entity_type.to_string(),
                            d.entity_name.as_ref().map(|n| n.to_string()),
                        )
                    })
                    .collect(),
                values: e
                    .values
                    .iter()
                    .map(|v| (v.key.to_string(), v.value))
                    .collect(),
            })
            .collect())
    }

    /// Sets (`Some`) or removes (`None`) quota `key` of `entity`.
    pub async fn alter_quota(
        &mut self,
        entity: &QuotaEntity,
        key: &str,
        value: Option<f64>,
    ) -> Result<()> {
        let req = AlterClientQuotasRequest::default().with_entries(vec![EntryData::default()
            .with_entity(
                entity
                    .iter()
                    .map(|(t, n)| {
                        EntityData::default()
                            .with_entity_type(StrBytes::from_string(t.clone()))
                            .with_entity_name(n.as_ref().map(|n| StrBytes::from_string(n.clone())))
                    })
                    .collect(),
            )
            .with_ops(vec![OpData::default()
                .with_key(StrBytes::from_string(key.to_string()))
                .with_value(value.unwrap_or(0.0))
                .with_remove(value.is_none())])]);
        let (resp, _) = self.send(req, 1).await?;
        for e in &resp.entries {
            check(
                e.error_code,
                "cannot alter client quotas",
                e.error_message.as_deref(),
            )?;
        }
        Ok(())
    }
}
