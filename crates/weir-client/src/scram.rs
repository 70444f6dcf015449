//! SCRAM users (KIP-554): listing them, and setting or removing a
//! password, salted here as Kafka's admin client does.

use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;
use weir_auth::scram::ScramAlgorithm;

use crate::error::{check, ClientError};
use crate::{Admin, Result};

/// A user's SCRAM credentials: (mechanism name, iterations) each.
#[derive(Debug, Clone)]
pub struct ScramUser {
    pub user: String,
    pub credentials: Vec<(String, i32)>,
}

fn algorithm(mechanism: &str) -> Result<ScramAlgorithm> {
    ScramAlgorithm::from_mechanism_name(mechanism).ok_or_else(|| {
        ClientError::Invalid(format!(
            "unknown SCRAM mechanism `{mechanism}`: use SCRAM-SHA-256 or SCRAM-SHA-512"
        ))
    })
}

impl Admin {
    /// Every SCRAM user and their mechanisms, sorted by user.
    pub async fn describe_scram_users(&mut self) -> Result<Vec<ScramUser>> {
        let req = DescribeUserScramCredentialsRequest::default().with_users(None);
        let (resp, _) = self.send(req, 0).await?;
        check(
            resp.error_code,
            "cannot describe SCRAM users",
            resp.error_message.as_deref(),
        )?;
        let mut out: Vec<ScramUser> = resp
            .results
            .iter()
            .filter(|r| r.error_code == 0)
            .map(|r| ScramUser {
                user: r.user.to_string(),
                credentials: r
                    .credential_infos
                    .iter()
                    .map(|c| {
                        let name = ScramAlgorithm::from_type_code(c.mechanism)
                            .map_or("UNKNOWN", |a| a.mechanism_name());
                        (name.to_string(), c.iterations)
                    })
                    .collect(),
            })
            .collect();
        out.sort_by(|a, b| a.user.cmp(&b.user));
        Ok(out)
    }

    /// Sets `user`'s password for `mechanism` (`SCRAM-SHA-256` or
    /// `SCRAM-SHA-512`), salting it here as Kafka's admin client does, so
    /// the password itself never reaches the broker.
    pub async fn upsert_scram_user(
        &mut self,
        user: &str,
        mechanism: &str,
        password: &str,
        iterations: i32,
    ) -> Result<()> {
        let alg = algorithm(mechanism)?;
        let rounds = u32::try_from(iterations)
            .map_err(|_| ClientError::Invalid("iterations must be positive".into()))?;
        let salt: [u8; 32] = rand::random();
        let salted = alg.salted_password(password.as_bytes(), &salt, rounds);
        let req = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
            ScramCredentialUpsertion::default()
                .with_name(StrBytes::from_string(user.to_string()))
                .with_mechanism(alg.type_code())
                .with_iterations(iterations)
                .with_salt(Bytes::copy_from_slice(&salt))
                .with_salted_password(Bytes::from(salted)),
        ]);
        self.alter_scram(user, req).await
    }

    /// Removes `user`'s credential for `mechanism`.
    pub async fn delete_scram_user(&mut self, user: &str, mechanism: &str) -> Result<()> {
        let alg = algorithm(mechanism)?;
        let req = AlterUserScramCredentialsRequest::default().with_deletions(vec![
            ScramCredentialDeletion::default()
                .with_name(StrBytes::from_string(user.to_string()))
                .with_mechanism(alg.type_code()),
        ]);
        self.alter_scram(user, req).await
    }

    async fn alter_scram(
        &mut self,
        user: &str,
        req: AlterUserScramCredentialsRequest,
    ) -> Result<()> {
        let (resp, _) = self.send(req, 0).await?;
        for r in &resp.results {
            check(
                r.error_code,
                &format!("cannot change the SCRAM credentials of `{user}`"),
                r.error_message.as_deref(),
            )?;
        }
        Ok(())
    }
}
