//! The client side of the SASL mechanisms Weir's listeners offer: PLAIN,
//! SCRAM-SHA-256/512 and OAUTHBEARER, as exchanges of messages that the
//! connection carries in SaslAuthenticate requests.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rand::RngCore;
use weir_auth::scram::ScramAlgorithm;

use crate::security::SaslLogin;

/// One client exchange: the first message, then an answer to each
/// server message until the server is satisfied.
#[derive(Debug)]
pub(crate) enum SaslClient {
    /// Sends one message and expects an empty answer.
    Single { message: Vec<u8>, sent: bool },
    /// SCRAM's two round trips.
    Scram(ScramClient),
}

impl SaslClient {
    /// Starts an exchange for `login`.
    pub(crate) fn start(login: &SaslLogin) -> Result<Self, String> {
        Ok(match login {
            SaslLogin::Plain { username, password } => Self::Single {
                message: format!("\0{username}\0{password}").into_bytes(),
                sent: false,
            },
            SaslLogin::Scram {
                sha512,
                username,
                password,
            } => {
                let alg = if *sha512 {
                    ScramAlgorithm::Sha512
                } else {
                    ScramAlgorithm::Sha256
                };
                let mut nonce = [0u8; 24];
                rand::rng().fill_bytes(&mut nonce);
                Self::Scram(ScramClient::new(
                    alg,
                    username,
                    password,
                    &B64.encode(nonce),
                ))
            }
            SaslLogin::OAuthBearer { token_file } => {
                let token = std::fs::read_to_string(token_file)
                    .map_err(|e| format!("cannot read the token {}: {e}", token_file.display()))?;
                // RFC 7628's initial client response.
                Self::Single {
                    message: format!("n,,\x01auth=Bearer {}\x01\x01", token.trim()).into_bytes(),
                    sent: false,
                }
            }
        })
    }

    /// The next message to send given the server's last one (`None` at the
    /// start); `Ok(None)` when the exchange is complete.
    pub(crate) fn step(&mut self, server: Option<&[u8]>) -> Result<Option<Vec<u8>>, String> {
        match self {
            Self::Single { message, sent } => {
                if *sent {
                    Ok(None)
                } else {
                    *sent = true;
                    Ok(Some(std::mem::take(message)))
                }
            }
            Self::Scram(s) => s.step(server),
        }
    }
}

/// RFC 5802's client, without channel binding (`n,,`), as Kafka's.
#[derive(Debug)]
pub(crate) struct ScramClient {
    alg: ScramAlgorithm,
    password: String,
    client_first_bare: String,
    client_nonce: String,
    server_signature: Option<Vec<u8>>,
    done: bool,
}

/// `=` and `,` in a SCRAM user name are escaped as `=3D` and `=2C`.
fn saslname(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

impl ScramClient {
    pub(crate) fn new(alg: ScramAlgorithm, user: &str, password: &str, nonce: &str) -> Self {
        Self {
            alg,
            password: password.to_string(),
            client_first_bare: format!("n={},r={nonce}", saslname(user)),
            client_nonce: nonce.to_string(),
            server_signature: None,
            done: false,
        }
    }

    fn step(&mut self, server: Option<&[u8]>) -> Result<Option<Vec<u8>>, String> {
        let Some(server) = server else {
            return Ok(Some(format!("n,,{}", self.client_first_bare).into_bytes()));
        };
        let text = std::str::from_utf8(server).map_err(|_| "server message is not UTF-8")?;
        if let Some(expected) = self.server_signature.take() {
            // server-final-message: `v=<signature>` or `e=<error>`.
            if let Some(e) = text.strip_prefix("e=") {
                return Err(format!("server refused the proof: {e}"));
            }
            let v = text
                .strip_prefix("v=")
                .and_then(|v| B64.decode(v.split(',').next().unwrap_or(v)).ok())
                .ok_or("malformed server-final-message")?;
            if v != expected {
                return Err("the server's signature does not match: not the server we know".into());
            }
            self.done = true;
            return Ok(None);
        }
        if self.done {
            return Ok(None);
        }
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for attr in text.split(',') {
            match attr.split_once('=') {
                Some(("r", v)) => nonce = Some(v),
                Some(("s", v)) => salt = B64.decode(v).ok(),
                Some(("i", v)) => iterations = v.parse::<u32>().ok(),
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err("malformed server-first-message".into());
        };
        if !nonce.starts_with(&self.client_nonce) || iterations == 0 {
            return Err("server-first-message does not extend our nonce".into());
        }
        let alg = self.alg;
        let salted = alg.salted_password(self.password.as_bytes(), &salt, iterations);
        let client_key = alg.hmac(&salted, b"Client Key");
        let stored_key = alg.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{text},{without_proof}", self.client_first_bare);
        let signature = alg.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = alg.hmac(&salted, b"Server Key");
        self.server_signature = Some(alg.hmac(&server_key, auth_message.as_bytes()));
        Ok(Some(
            format!("{without_proof},p={}", B64.encode(proof)).into_bytes(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 section 3's example, from the client's side.
    #[test]
    fn rfc7677_exchange() {
        let mut c = ScramClient::new(
            ScramAlgorithm::Sha256,
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO",
        );
        assert_eq!(
            c.step(None).unwrap().unwrap(),
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
        );
        let fin = c
            .step(Some(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"))
            .unwrap()
            .unwrap();
        assert_eq!(
            fin,
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert_eq!(
            c.step(Some(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="))
                .unwrap(),
            None
        );
    }

    #[test]
    fn a_wrong_server_signature_or_nonce_fails() {
        let mut c = ScramClient::new(ScramAlgorithm::Sha256, "user", "pencil", "abc");
        c.step(None).unwrap();
        assert!(c.step(Some(b"r=xyz,s=AAAA,i=4096")).is_err());
        let mut c = ScramClient::new(ScramAlgorithm::Sha256, "user", "pencil", "abc");
        c.step(None).unwrap();
        c.step(Some(b"r=abcdef,s=AAAA,i=4096")).unwrap();
        assert!(c.step(Some(b"v=AAAA")).is_err());
    }

    #[test]
    fn names_are_escaped_and_plain_is_one_message() {
        let mut c = ScramClient::new(ScramAlgorithm::Sha512, "a=b,c", "p", "n");
        assert_eq!(c.step(None).unwrap().unwrap(), b"n,,n=a=3Db=2Cc,r=n");
        let mut p = SaslClient::start(&SaslLogin::Plain {
            username: "u".into(),
            password: "p".into(),
        })
        .unwrap();
        assert_eq!(p.step(None).unwrap().unwrap(), b"\0u\0p");
        assert_eq!(p.step(Some(b"")).unwrap(), None);
    }
}
