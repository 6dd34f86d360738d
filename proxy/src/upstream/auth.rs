//! The proxy's own SCRAM-SHA-256 login on each pooled upstream connection, with the credentials
//! of `upstream.uri` (`mongodb://user:password@host/?authSource=admin`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bson::{Binary, RawDocumentBuf, rawdoc, spec::BinarySubtype};

use crate::auth::scram::{Mechanism, ScramKeys, client_proof};

/// Credentials from the URI.
#[derive(Clone)]
pub struct UpstreamCredentials {
    /// The username (percent-decoded).
    pub username: String,
    /// The password (percent-decoded).
    pub password: String,
    /// `authSource`, default `admin`.
    pub source: String,
}

impl std::fmt::Debug for UpstreamCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamCredentials")
            .field("username", &self.username)
            .field("source", &self.source)
            .finish()
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Credentials in a `mongodb://` URI, if any.
pub fn parse(uri: &str) -> Option<UpstreamCredentials> {
    let rest = uri.strip_prefix("mongodb://")?;
    let (authority, tail) = rest
        .split_once(['/', '?'])
        .map_or((rest, ""), |(a, t)| (a, t));
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let source = tail
        .split_once('?')
        .map_or(tail, |(_, q)| q)
        .split('&')
        .find_map(|kv| kv.strip_prefix("authSource="))
        .and_then(percent_decode)
        .unwrap_or_else(|| "admin".into());
    Some(UpstreamCredentials {
        username: percent_decode(user)?,
        password: percent_decode(password)?,
        source,
    })
}

/// The SCRAM exchange as a sequence of commands: `first` builds `saslStart`; `step` consumes each
/// reply and says what to send next.
#[allow(missing_debug_implementations)] // holds the password: never printed
pub struct Login {
    creds: UpstreamCredentials,
    client_first_bare: String,
    client_nonce: String,
    expected_server_signature: Option<Vec<u8>>,
}

fn binary(bytes: &[u8]) -> Binary {
    Binary {
        subtype: BinarySubtype::Generic,
        bytes: bytes.to_vec(),
    }
}

impl Login {
    /// Starts a login.
    pub fn new(creds: UpstreamCredentials) -> Self {
        let nonce: [u8; 24] = rand::random();
        let client_nonce = B64.encode(nonce);
        let escaped = creds.username.replace('=', "=3D").replace(',', "=2C");
        Login {
            client_first_bare: format!("n={escaped},r={client_nonce}"),
            client_nonce,
            creds,
            expected_server_signature: None,
        }
    }

    /// The `saslStart` command.
    pub fn first(&self) -> RawDocumentBuf {
        rawdoc! {
            "saslStart": 1, "mechanism": "SCRAM-SHA-256",
            "payload": binary(format!("n,,{}", self.client_first_bare).as_bytes()),
            "options": { "skipEmptyExchange": true },
            "$db": self.creds.source.as_str(),
        }
    }

    /// Consumes a reply; `Ok(Some(cmd))` to send next, `Ok(None)` when authenticated.
    pub fn step(&mut self, reply: &bson::Document) -> Result<Option<RawDocumentBuf>, String> {
        if reply.get_f64("ok").unwrap_or(0.0) != 1.0 {
            return Err(format!(
                "upstream refused the proxy's credentials: {}",
                reply.get_str("errmsg").unwrap_or("?")
            ));
        }
        let conversation = reply.get_i32("conversationId").unwrap_or(1);
        let payload = reply
            .get_binary_generic("payload")
            .cloned()
            .unwrap_or_default();
        let text = String::from_utf8(payload)
            .map_err(|_| "server SCRAM message is not UTF-8".to_string())?;
        let done = reply.get_bool("done").unwrap_or(false);
        match self.expected_server_signature.take() {
            None => {
                let attr = |k: char| {
                    text.split(',')
                        .find_map(|p| p.strip_prefix(k).and_then(|p| p.strip_prefix('=')))
                };
                let nonce = attr('r')
                    .filter(|n| n.starts_with(&self.client_nonce))
                    .ok_or("server nonce does not extend ours")?;
                let salt = B64
                    .decode(attr('s').ok_or("no salt")?)
                    .map_err(|_| "bad salt")?;
                let iterations: u32 = attr('i')
                    .and_then(|i| i.parse().ok())
                    .filter(|i| *i >= 4096)
                    .ok_or("bad iteration count")?;
                let keys = ScramKeys::derive_with_salt(
                    Mechanism::Sha256,
                    &self.creds.username,
                    &self.creds.password,
                    &salt,
                    iterations,
                );
                let (client_final, server_signature) = client_proof(
                    Mechanism::Sha256,
                    &keys,
                    &self.client_first_bare,
                    &text,
                    nonce,
                );
                self.expected_server_signature = Some(server_signature);
                Ok(Some(rawdoc! {
                    "saslContinue": 1, "conversationId": conversation,
                    "payload": binary(client_final.as_bytes()), "$db": self.creds.source.as_str(),
                }))
            }
            Some(expected) => {
                if !text.is_empty() {
                    let v = text.strip_prefix("v=").ok_or("no server signature")?;
                    if B64.decode(v).map_err(|_| "bad server signature")? != expected {
                        return Err("the upstream's SCRAM server signature is wrong".into());
                    }
                }
                if done {
                    Ok(None)
                } else {
                    self.expected_server_signature = Some(expected);
                    Ok(Some(rawdoc! {
                        "saslContinue": 1, "conversationId": conversation, "payload": binary(b""),
                        "$db": self.creds.source.as_str(),
                    }))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_the_uri() {
        let c = parse("mongodb://proxy%40x:p%3Ass@h1:27017,h2/db?replicaSet=rs&authSource=ops")
            .expect("creds");
        assert_eq!(
            (c.username.as_str(), c.password.as_str(), c.source.as_str()),
            ("proxy@x", "p:ss", "ops")
        );
        let c = parse("mongodb://u:p@h/").expect("creds");
        assert_eq!(c.source, "admin");
        assert!(parse("mongodb://h:1/").is_none());
    }

    #[test]
    fn logs_in_against_our_own_scram_server() {
        let creds = UpstreamCredentials {
            username: "proxy".into(),
            password: "s3cret".into(),
            source: "admin".into(),
        };
        let keys = ScramKeys::derive(Mechanism::Sha256, "proxy", "s3cret", 4096);
        let mut login = Login::new(creds);
        let start = login.first();
        let payload = start.get_binary("payload").expect("payload").bytes.to_vec();
        let (conv, server_first) =
            crate::auth::scram::start(Mechanism::Sha256, &payload, |_| Some(keys.clone()))
                .expect("server starts");
        let reply = bson::doc! { "ok": 1.0, "conversationId": 1, "done": false, "payload": binary(&server_first) };
        let next = login
            .step(&reply)
            .expect("client final")
            .expect("a command");
        let client_final = next.get_binary("payload").expect("payload").bytes.to_vec();
        let server_final =
            crate::auth::scram::finish(&conv, &client_final).expect("proof accepted");
        let reply = bson::doc! { "ok": 1.0, "conversationId": 1, "done": true, "payload": binary(&server_final) };
        assert_eq!(login.step(&reply), Ok(None));
    }
}
