//! SCRAM-SHA-256 and SCRAM-SHA-1 (RFC 5802, RFC 7677) on the server side, as MongoDB speaks
//! them in `saslStart` / `saslContinue`.
//!
//! Credentials are derived once at start-up (salt, iteration count, `StoredKey`, `ServerKey`);
//! the password itself is not kept. SCRAM-SHA-1 uses MongoDB's legacy password digest
//! `hex(md5("<user>:mongo:<password>"))` as its password, as every driver does. An unknown user
//! gets a plausible server-first message and fails at the proof, so usernames cannot be probed.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// A SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// SCRAM-SHA-1 (with MongoDB's password digest).
    Sha1,
    /// SCRAM-SHA-256 (with SASLprep).
    Sha256,
}

impl Mechanism {
    /// From the `mechanism` field of `saslStart`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "SCRAM-SHA-1" => Some(Mechanism::Sha1),
            "SCRAM-SHA-256" => Some(Mechanism::Sha256),
            _ => None,
        }
    }

    /// The mechanism's name.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha1 => "SCRAM-SHA-1",
            Mechanism::Sha256 => "SCRAM-SHA-256",
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha1 => match <Hmac<Sha1> as KeyInit>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(data);
                    m.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            },
            Mechanism::Sha256 => match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(data);
                    m.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            },
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha1 => Sha1::digest(data).to_vec(),
            Mechanism::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Mechanism::Sha1 => {
                let mut out = [0u8; 20];
                pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, &mut out);
                out.to_vec()
            }
            Mechanism::Sha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out.to_vec()
            }
        }
    }
}

/// Derived credentials for one mechanism.
#[derive(Clone)]
pub struct ScramKeys {
    /// Salt sent to the client.
    pub salt: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// `H(ClientKey)`.
    pub stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Client Key")`: only known when derived from a password here (the
    /// client side needs it; a server never keeps it for stored credentials).
    pub client_key: Vec<u8>,
}

impl std::fmt::Debug for ScramKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramKeys")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// Why an exchange failed (reported to the client only as "Authentication failed").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// The client's message does not follow the protocol.
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    /// Channel binding was requested; the proxy does not support it.
    #[error("channel binding is not supported")]
    ChannelBinding,
    /// The nonce changed between messages.
    #[error("nonce mismatch")]
    Nonce,
    /// The proof is wrong (wrong password, or unknown user).
    #[error("invalid proof")]
    Proof,
}

impl ScramKeys {
    /// Derives keys from a password for `username` with a fresh random salt.
    pub fn derive(
        mechanism: Mechanism,
        username: &str,
        password: &str,
        iterations: u32,
    ) -> ScramKeys {
        let salt: [u8; 16] = rand::random();
        Self::derive_with_salt(mechanism, username, password, &salt, iterations)
    }

    /// Derives keys from a password with a given salt.
    pub fn derive_with_salt(
        mechanism: Mechanism,
        username: &str,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> ScramKeys {
        let password = match mechanism {
            Mechanism::Sha1 => {
                let digest = md5::Md5::digest(format!("{username}:mongo:{password}").as_bytes());
                digest
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            }
            Mechanism::Sha256 => stringprep::saslprep(password)
                .map(|p| p.into_owned())
                .unwrap_or_else(|_| password.to_owned()),
        };
        let salted = mechanism.salted_password(password.as_bytes(), salt, iterations);
        let client_key = mechanism.hmac(&salted, b"Client Key");
        ScramKeys {
            salt: salt.to_vec(),
            iterations,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(&salted, b"Server Key"),
            client_key,
        }
    }
}

/// A conversation after the server-first message.
#[derive(Debug, Clone)]
pub struct Conversation {
    /// The mechanism in use.
    pub mechanism: Mechanism,
    /// The username the client named.
    pub username: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    keys: Option<ScramKeys>,
}

fn attr(message: &str, name: char) -> Option<&str> {
    message
        .split(',')
        .find_map(|part| part.strip_prefix(name).and_then(|p| p.strip_prefix('=')))
}

fn unescape_username(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let code = rest.get(i..i + 3)?;
        out.push(match code {
            "=2C" => ',',
            "=3D" => '=',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// Handles the client-first message; `lookup` finds the user's keys (`None`: unknown user).
pub fn start(
    mechanism: Mechanism,
    client_first: &[u8],
    lookup: impl FnOnce(&str) -> Option<ScramKeys>,
) -> Result<(Conversation, Vec<u8>), ScramError> {
    let text = std::str::from_utf8(client_first).map_err(|_| ScramError::Malformed("not UTF-8"))?;
    let bare = match text.strip_prefix("n,") {
        Some(rest) => rest
            .split_once(',')
            .map(|(_authzid, bare)| bare)
            .ok_or(ScramError::Malformed("gs2 header"))?,
        None if text.starts_with("p=") || text.starts_with("y,") => {
            return Err(ScramError::ChannelBinding);
        }
        None => return Err(ScramError::Malformed("gs2 header")),
    };
    let username = unescape_username(attr(bare, 'n').ok_or(ScramError::Malformed("username"))?)
        .ok_or(ScramError::Malformed("username escape"))?;
    let client_nonce = attr(bare, 'r').ok_or(ScramError::Malformed("nonce"))?;
    if client_nonce.is_empty() || attr(bare, 'm').is_some() {
        return Err(ScramError::Malformed("nonce or extension"));
    }
    let keys = lookup(&username);
    let (salt, iterations) = match &keys {
        Some(k) => (k.salt.clone(), k.iterations),
        // A stable per-username fake salt, so repeated probes look like a real user.
        None => (
            mechanism.hash(format!("tenantgate-unknown:{username}").as_bytes())[..16].to_vec(),
            15_000,
        ),
    };
    let server_nonce: [u8; 24] = rand::random();
    let nonce = format!("{client_nonce}{}", B64.encode(server_nonce));
    let server_first = format!("r={nonce},s={},i={iterations}", B64.encode(&salt));
    let conv = Conversation {
        mechanism,
        username,
        client_first_bare: bare.to_owned(),
        server_first: server_first.clone(),
        nonce,
        keys,
    };
    Ok((conv, server_first.into_bytes()))
}

/// Handles the client-final message; on success returns the server-final message.
pub fn finish(conv: &Conversation, client_final: &[u8]) -> Result<Vec<u8>, ScramError> {
    let text = std::str::from_utf8(client_final).map_err(|_| ScramError::Malformed("not UTF-8"))?;
    let (without_proof, proof) = text
        .rsplit_once(",p=")
        .ok_or(ScramError::Malformed("proof"))?;
    if attr(without_proof, 'c') != Some("biws") {
        return Err(ScramError::ChannelBinding);
    }
    if attr(without_proof, 'r') != Some(conv.nonce.as_str()) {
        return Err(ScramError::Nonce);
    }
    let proof = B64
        .decode(proof)
        .map_err(|_| ScramError::Malformed("proof encoding"))?;
    let keys = conv.keys.as_ref().ok_or(ScramError::Proof)?;
    let auth_message = format!(
        "{},{},{}",
        conv.client_first_bare, conv.server_first, without_proof
    );
    let signature = conv
        .mechanism
        .hmac(&keys.stored_key, auth_message.as_bytes());
    if proof.len() != signature.len() {
        return Err(ScramError::Proof);
    }
    let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
    let computed = conv.mechanism.hash(&client_key);
    // Constant-time comparison of H(ClientKey) with StoredKey.
    let diff = computed
        .iter()
        .zip(&keys.stored_key)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff != 0 || computed.len() != keys.stored_key.len() {
        return Err(ScramError::Proof);
    }
    let server_signature = conv
        .mechanism
        .hmac(&keys.server_key, auth_message.as_bytes());
    Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
}

/// The client side of the final step: the client-final message and the server signature to
/// expect, from keys derived with the server's salt and iteration count.
pub fn client_proof(
    mechanism: Mechanism,
    keys: &ScramKeys,
    client_first_bare: &str,
    server_first: &str,
    nonce: &str,
) -> (String, Vec<u8>) {
    let without_proof = format!("c=biws,r={nonce}");
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let signature = mechanism.hmac(&keys.stored_key, auth_message.as_bytes());
    let proof: Vec<u8> = keys
        .client_key
        .iter()
        .zip(&signature)
        .map(|(a, b)| a ^ b)
        .collect();
    let server_signature = mechanism.hmac(&keys.server_key, auth_message.as_bytes());
    (
        format!("{without_proof},p={}", B64.encode(proof)),
        server_signature,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's SCRAM-SHA-256 example, driven from the client side.
    fn client_final(
        mech: Mechanism,
        password_input: &str,
        server_first: &str,
        client_first_bare: &str,
    ) -> String {
        let nonce = attr(server_first, 'r').expect("nonce");
        let salt = B64
            .decode(attr(server_first, 's').expect("salt"))
            .expect("b64");
        let iterations: u32 = attr(server_first, 'i').expect("i").parse().expect("number");
        let salted = mech.salted_password(password_input.as_bytes(), &salt, iterations);
        let client_key = mech.hmac(&salted, b"Client Key");
        let stored = mech.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let sig = mech.hmac(&stored, auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        format!("{without_proof},p={}", B64.encode(proof))
    }

    #[test]
    fn sha256_round_trip_and_wrong_password() {
        let keys = ScramKeys::derive(Mechanism::Sha256, "user", "pencil", 4096);
        let (conv, first) = start(
            Mechanism::Sha256,
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            |u| (u == "user").then(|| keys.clone()),
        )
        .expect("starts");
        let first = String::from_utf8(first).expect("utf8");
        let good = client_final(
            Mechanism::Sha256,
            "pencil",
            &first,
            "n=user,r=rOprNGfwEbeRWgbNEkqO",
        );
        let server_final = finish(&conv, good.as_bytes()).expect("authenticates");
        assert!(server_final.starts_with(b"v="));
        let bad = client_final(
            Mechanism::Sha256,
            "wrong",
            &first,
            "n=user,r=rOprNGfwEbeRWgbNEkqO",
        );
        assert_eq!(finish(&conv, bad.as_bytes()), Err(ScramError::Proof));
    }

    #[test]
    fn sha1_uses_the_mongodb_password_digest() {
        let keys = ScramKeys::derive(Mechanism::Sha1, "user", "pencil", 4096);
        let (conv, first) =
            start(Mechanism::Sha1, b"n,,n=user,r=abc", |_| Some(keys.clone())).expect("starts");
        let first = String::from_utf8(first).expect("utf8");
        let digest: String = md5::Md5::digest(b"user:mongo:pencil")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let good = client_final(Mechanism::Sha1, &digest, &first, "n=user,r=abc");
        assert!(finish(&conv, good.as_bytes()).is_ok());
    }

    #[test]
    fn unknown_users_and_malformed_messages_fail_cleanly() {
        let (conv, first) =
            start(Mechanism::Sha256, b"n,,n=ghost,r=xyz", |_| None).expect("plausible start");
        let first = String::from_utf8(first).expect("utf8");
        assert!(first.contains(",s=") && first.contains(",i=15000"));
        let attempt = client_final(Mechanism::Sha256, "x", &first, "n=ghost,r=xyz");
        assert_eq!(finish(&conv, attempt.as_bytes()), Err(ScramError::Proof));
        for bad in [
            &b""[..],
            b"garbage",
            b"n,,r=x",
            b"n,,n=u",
            b"p=tls-unique,,n=u,r=x",
            b"n,,n=a=2Xb,r=x",
            &[0xff, 0xfe],
        ] {
            assert!(start(Mechanism::Sha256, bad, |_| None).is_err(), "{bad:?}");
        }
        assert_eq!(
            finish(&conv, b"c=biws,r=other,p=AAAA"),
            Err(ScramError::Nonce)
        );
        assert!(finish(&conv, b"no proof").is_err());
        assert_eq!(unescape_username("a=2Cb=3Dc"), Some("a,b=c".into()));
    }
}
