//! Access tokens: HS256 JWTs in the claim layout moq-relay's tokens use (`root`, `put`, `get`,
//! `exp`, `iat`), signed with an `oct` JWK, so one key file and one token work against our relay
//! and moq-relay's auth server alike.
//!
//! `root` is a path; `put` and `get` are paths relative to it that the bearer may publish and
//! subscribe under. A session dialing path P gets the grants rebased onto P.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

use crate::address::normalize;

/// Why a token or key was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The key file could not be read or written.
    #[error("{path}: {source}")]
    KeyFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key is not an HS256 `oct` JWK.
    #[error("key: {0}")]
    Key(String),
    /// The token is not a well-formed JWT.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The signature does not match the key.
    #[error("token signature does not match the key")]
    Signature,
    /// The token's `exp` has passed.
    #[error("token expired")]
    Expired,
    /// The token grants nothing at the requested path.
    #[error("token grants nothing at '{0}'")]
    NoAccess(String),
    /// The token's root and the requested path are unrelated.
    #[error("token root does not cover '{0}'")]
    RootMismatch(String),
}

/// The shortest secret we accept (moq-token's minimum too).
const MIN_SECRET: usize = 32;

/// An HMAC-SHA256 signing key.
#[derive(Clone)]
pub struct Key {
    secret: Vec<u8>,
    kid: Option<String>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key(HS256, kid {:?})", self.kid)
    }
}

impl Key {
    /// A fresh random 256-bit key.
    pub fn generate() -> Result<Self, TokenError> {
        use ring::rand::SecureRandom;
        let mut secret = vec![0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut secret)
            .map_err(|_| TokenError::Key("no system randomness".into()))?;
        Ok(Self { secret, kid: None })
    }

    /// Parses a JWK (`{"kty":"oct","alg":"HS256","k":…}`).
    pub fn from_jwk(text: &str) -> Result<Self, TokenError> {
        let jwk: Value =
            serde_json::from_str(text).map_err(|e| TokenError::Key(format!("not JSON: {e}")))?;
        let field = |name: &str| jwk.get(name).and_then(Value::as_str);
        if field("kty").is_some_and(|k| k != "oct") {
            return Err(TokenError::Key(format!(
                "kty '{}' is not supported (only oct, for HS256)",
                field("kty").unwrap_or_default()
            )));
        }
        if field("alg") != Some("HS256") {
            return Err(TokenError::Key(format!(
                "alg '{}' is not supported (only HS256)",
                field("alg").unwrap_or("none")
            )));
        }
        let secret = B64
            .decode(field("k").ok_or_else(|| TokenError::Key("no 'k'".into()))?)
            .map_err(|e| TokenError::Key(format!("'k' is not base64url: {e}")))?;
        if secret.len() < MIN_SECRET {
            return Err(TokenError::Key(format!(
                "secret of {} bytes is shorter than {MIN_SECRET}",
                secret.len()
            )));
        }
        Ok(Self {
            secret,
            kid: field("kid").map(str::to_string),
        })
    }

    /// The key as a JWK.
    pub fn to_jwk(&self) -> String {
        let mut jwk = json!({
            "kty": "oct",
            "alg": "HS256",
            "key_ops": ["sign", "verify"],
            "k": B64.encode(&self.secret),
        });
        if let Some(kid) = &self.kid {
            jwk["kid"] = json!(kid);
        }
        jwk.to_string()
    }

    /// Reads a JWK file.
    pub fn load(path: &Path) -> Result<Self, TokenError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenError::KeyFile {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_jwk(&text)
    }

    fn hmac(&self) -> ring::hmac::Key {
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.secret)
    }

    /// Signs `claims` into a compact JWT.
    pub fn sign(&self, claims: &Claims) -> String {
        let mut header = json!({"typ": "JWT", "alg": "HS256"});
        if let Some(kid) = &self.kid {
            header["kid"] = json!(kid);
        }
        let signing_input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_json().to_string())
        );
        let tag = ring::hmac::sign(&self.hmac(), signing_input.as_bytes());
        format!("{signing_input}.{}", B64.encode(tag.as_ref()))
    }

    /// Checks a token's signature and expiry at `now` and returns its claims.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Claims, TokenError> {
        let malformed = |m: &str| TokenError::Malformed(m.into());
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("a JWT has three dot-separated parts"));
        };
        let header: Value = B64
            .decode(header)
            .ok()
            .and_then(|h| serde_json::from_slice(&h).ok())
            .ok_or_else(|| malformed("header is not base64url JSON"))?;
        if header.get("alg").and_then(Value::as_str) != Some("HS256") {
            return Err(malformed("only HS256 tokens are accepted"));
        }
        let signature = B64
            .decode(signature)
            .map_err(|_| malformed("signature is not base64url"))?;
        let (signing_input, _) = token.rsplit_once('.').expect("three parts");
        ring::hmac::verify(&self.hmac(), signing_input.as_bytes(), &signature)
            .map_err(|_| TokenError::Signature)?;
        let claims: Value = B64
            .decode(payload)
            .ok()
            .and_then(|p| serde_json::from_slice(&p).ok())
            .ok_or_else(|| malformed("claims are not base64url JSON"))?;
        let claims = Claims::from_json(&claims)?;
        if let Some(exp) = claims.expires
            && UNIX_EPOCH + Duration::from_secs(exp) <= now
        {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// What a token grants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claims {
    /// The path the grants are relative to.
    pub root: String,
    /// Paths (relative to `root`) the bearer may publish under; `""` is all of `root`.
    pub publish: Vec<String>,
    /// Paths (relative to `root`) the bearer may subscribe under.
    pub subscribe: Vec<String>,
    /// Expiry, seconds since the Unix epoch.
    pub expires: Option<u64>,
    /// Issue time, seconds since the Unix epoch.
    pub issued: Option<u64>,
}

/// What a session at one path may do, relative to that path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Permissions {
    /// Sub-paths it may publish under (`""`: anything).
    pub publish: Vec<String>,
    /// Sub-paths it may subscribe under.
    pub subscribe: Vec<String>,
}

impl Claims {
    fn to_json(&self) -> Value {
        let mut v = json!({});
        if !self.root.is_empty() {
            v["root"] = json!(self.root);
        }
        if !self.publish.is_empty() {
            v["put"] = json!(self.publish);
        }
        if !self.subscribe.is_empty() {
            v["get"] = json!(self.subscribe);
        }
        if let Some(exp) = self.expires {
            v["exp"] = json!(exp);
        }
        if let Some(iat) = self.issued {
            v["iat"] = json!(iat);
        }
        v
    }

    fn from_json(v: &Value) -> Result<Self, TokenError> {
        let paths = |name: &str| -> Result<Vec<String>, TokenError> {
            match v.get(name) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::String(s)) => Ok(vec![s.clone()]),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| {
                        i.as_str().map(str::to_string).ok_or_else(|| {
                            TokenError::Malformed(format!("'{name}' holds a non-string"))
                        })
                    })
                    .collect(),
                Some(_) => Err(TokenError::Malformed(format!(
                    "'{name}' is not a path list"
                ))),
            }
        };
        let seconds = |name: &str| v.get(name).and_then(Value::as_u64);
        Ok(Self {
            root: v
                .get("root")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .into(),
            publish: paths("put")?,
            subscribe: paths("get")?,
            expires: seconds("exp"),
            issued: seconds("iat"),
        })
    }

    /// The grants rebased onto a session that dialed `path`.
    pub fn authorize(&self, path: &str) -> Result<Permissions, TokenError> {
        let path = normalize(path);
        let root = normalize(&self.root);
        // Either the path reaches below the root, or the root below the path.
        let (below, above) = if let Some(s) = strip(&path, &root) {
            (s.to_string(), String::new())
        } else if let Some(p) = strip(&root, &path) {
            (String::new(), p.to_string())
        } else {
            return Err(TokenError::RootMismatch(path));
        };
        let rebase = |grants: &[String]| -> Vec<String> {
            grants
                .iter()
                .filter_map(|g| {
                    let g = join(&above, &normalize(g));
                    match strip(&g, &below) {
                        Some(rest) => Some(rest.to_string()),
                        // The grant covers a prefix of the path: everything below it.
                        None => strip(&below, &g).map(|_| String::new()),
                    }
                })
                .collect()
        };
        let permissions = Permissions {
            publish: rebase(&self.publish),
            subscribe: rebase(&self.subscribe),
        };
        if permissions.publish.is_empty() && permissions.subscribe.is_empty() {
            return Err(TokenError::NoAccess(path));
        }
        Ok(permissions)
    }
}

/// `path` without the segment-aligned `prefix`, if it has it.
fn strip<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix.is_empty() {
        return Some(path);
    }
    let rest = path.strip_prefix(prefix)?;
    if rest.is_empty() {
        Some(rest)
    } else {
        rest.strip_prefix('/')
    }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.into(),
        (_, true) => a.into(),
        _ => format!("{a}/{b}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(root: &str, publish: &[&str], subscribe: &[&str]) -> Claims {
        Claims {
            root: root.into(),
            publish: publish.iter().map(|s| s.to_string()).collect(),
            subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
            ..Claims::default()
        }
    }

    #[test]
    fn signs_and_verifies() {
        let key = Key::generate().unwrap();
        let key = Key::from_jwk(&key.to_jwk()).unwrap();
        let now = SystemTime::now();
        let mut c = claims("rooms/r", &["alice"], &[""]);
        c.expires = Some(now.duration_since(UNIX_EPOCH).unwrap().as_secs() + 60);
        let token = key.sign(&c);
        assert_eq!(key.verify(&token, now).unwrap(), c);
        // Expired, tampered, other key.
        assert!(matches!(
            key.verify(&token, now + Duration::from_secs(120)),
            Err(TokenError::Expired)
        ));
        let mut bad = token.clone();
        bad.insert(token.find('.').unwrap() + 3, 'x');
        assert!(key.verify(&bad, now).is_err());
        let other = Key::generate().unwrap();
        assert!(matches!(
            other.verify(&token, now),
            Err(TokenError::Signature)
        ));
        assert!(key.verify("a.b", now).is_err());
        assert!(Key::from_jwk(r#"{"kty":"oct","alg":"HS256","k":"c2hvcnQ"}"#).is_err());
    }

    #[test]
    fn claims_rebase_onto_the_dialed_path() {
        let c = claims("rooms/r", &["alice"], &[""]);
        let p = c.authorize("rooms/r/alice").unwrap();
        assert_eq!(p.publish, vec![""]);
        assert_eq!(p.subscribe, vec![""]);
        let p = c.authorize("/rooms/r/").unwrap();
        assert_eq!(p.publish, vec!["alice"]);
        let p = c.authorize("rooms/r/bob").unwrap();
        assert!(p.publish.is_empty());
        assert_eq!(p.subscribe, vec![""]);
        let p = c.authorize("rooms").unwrap();
        assert_eq!(p.publish, vec!["r/alice"]);
        assert!(c.authorize("rooms/rr").is_err());
        assert!(
            claims("rooms/r", &["alice"], &[])
                .authorize("rooms/r/bob")
                .is_err()
        );
        // A single string where a list is expected, as some issuers write.
        let v = json!({"root": "x", "put": "y"});
        assert_eq!(Claims::from_json(&v).unwrap().publish, vec!["y"]);
    }
}
