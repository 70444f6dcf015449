//! `weir-auth` owns Weir's security model as logic without I/O: who a
//! client is ([`KafkaPrincipal`], [`Session`]), how it proves it (the
//! server side of each SASL mechanism, behind [`sasl::SaslServer`]), and
//! what it may do (ACLs). [`scram`] holds SCRAM-SHA-256/512: the
//! credential format the broker stores and the server state machine.
//!
//! Sockets, TLS handshakes and persistence live elsewhere: `weir-server`
//! drives the SASL exchange on a connection, `weir-broker` stores
//! credentials and ACLs in the log and checks each request.

pub mod acl;
mod error;
pub mod listener;
pub mod oauth;
pub mod plain;
mod principal;
pub mod sasl;
pub mod scram;
pub mod ssl_mapping;

pub use error::AuthError;
pub use principal::{KafkaPrincipal, SecurityProtocol, Session};
