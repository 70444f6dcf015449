//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions.

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::error::check;
use crate::{Admin, Result};

/// A topic to create. `-1` partitions or replication factor take the
/// broker's defaults.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
}

/// What CreateTopics reports about a created (or validated) topic.
#[derive(Debug, Clone)]
pub struct CreatedTopic {
    pub name: String,
    /// `-1` when the broker does not say (CreateTopics before v5).
    pub partitions: i32,
    pub replication_factor: i16,
}

pub(crate) fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

impl Admin {
    /// The client's timeout in ms, as admin requests carry it.
    pub(crate) fn timeout_ms(&self) -> i32 {
        i32::try_from(self.timeout().as_millis()).unwrap_or(i32::MAX)
    }

    /// Creates `topic`, or with `validate_only` checks that it could be.
    pub async fn create_topic(
        &mut self,
        topic: &NewTopic,
        validate_only: bool,
    ) -> Result<CreatedTopic> {
        let t = CreatableTopic::default()
            .with_name(topic_name(&topic.name))
            .with_num_partitions(topic.partitions)
            .with_replication_factor(topic.replication_factor)
            .with_configs(
                topic
                    .configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.clone()))
                            .with_value(Some(StrBytes::from_string(v.clone())))
                    })
                    .collect(),
            );
        let req = CreateTopicsRequest::default()
            .with_topics(vec![t])
            .with_timeout_ms(self.timeout_ms())
            .with_validate_only(validate_only);
        let (resp, _) = self.send(req, 7).await?;
        let mut out = CreatedTopic {
            name: topic.name.clone(),
            partitions: -1,
            replication_factor: -1,
        };
        for t in &resp.topics {
            check(
                t.error_code,
                &format!("cannot create topic `{}`", topic.name),
                t.error_message.as_deref(),
            )?;
            out.partitions = t.num_partitions;
            out.replication_factor = t.replication_factor;
        }
        Ok(out)
    }

    /// Deletes `topics`, one result per topic in the broker's order.
    pub async fn delete_topics(&mut self, topics: &[String]) -> Result<Vec<(String, Result<()>)>> {
        let v = self.version::<DeleteTopicsRequest>(6)?;
        let mut req = DeleteTopicsRequest::default().with_timeout_ms(self.timeout_ms());
        if v >= 6 {
            req.topics = topics
                .iter()
                .map(|t| DeleteTopicState::default().with_name(Some(topic_name(t))))
                .collect();
        } else {
            req.topic_names = topics.iter().map(|t| topic_name(t)).collect();
        }
        let (resp, _) = self.send(req, 6).await?;
        Ok(resp
            .responses
            .iter()
            .map(|r| {
                let n = r.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
                let result = check(
                    r.error_code,
                    &format!("cannot delete topic `{n}`"),
                    r.error_message.as_deref(),
                );
                (n, result)
            })
            .collect())
    }

    /// Deletes one topic.
    pub async fn delete_topic(&mut self, topic: &str) -> Result<()> {
        for (_, r) in self.delete_topics(&[topic.to_string()]).await? {
            r?;
        }
        Ok(())
    }

    /// Grows `topic` to `total` partitions (or checks that it could).
    pub async fn create_partitions(
        &mut self,
        topic: &str,
        total: i32,
        validate_only: bool,
    ) -> Result<()> {
        let req = CreatePartitionsRequest::default()
            // No assignments: null, as Kafka's AdminClient sends it (an
            // empty list would name none for the new partitions).
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name(topic))
                .with_count(total)
                .with_assignments(None)])
            .with_timeout_ms(self.timeout_ms())
            .with_validate_only(validate_only);
        let (resp, _) = self.send(req, 3).await?;
        for r in &resp.results {
            check(
                r.error_code,
                &format!("cannot add partitions to topic `{topic}`"),
                r.error_message.as_deref(),
            )?;
        }
        Ok(())
    }
}
