//! Keystone token validation (`auth = "keystone"`), as keystonemiddleware does it: Glass
//! holds a service token of its own (password auth with the `[keystone]` credentials,
//! renewed before it expires or when Keystone refuses it) and asks
//! `GET /v3/auth/tokens` with the user's token as `X-Subject-Token`. Valid tokens are cached
//! (bounded, keyed by the token's SHA-256, never past the token's expiry), and so, for a
//! few seconds, are invalid ones (`invalid_token_cache_time_s`); a missing,
//! invalid, expired or revoked token is a 401 with `WWW-Authenticate`, an unreachable
//! Keystone a 503 (the API crate's middleware puts the caller's [`Identity`] in the
//! request's extensions).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::auth::identity::Identity;
use crate::config::KeystoneConfig;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("The request you have made requires authentication.")]
    Invalid,
    #[error("Keystone is unavailable: {0}")]
    Unavailable(String),
}

/// The validator: one per server.
pub struct Keystone {
    config: KeystoneConfig,
    http: reqwest::Client,
    service_token: tokio::sync::Mutex<Option<ServiceToken>>,
    cache: Mutex<TokenCache<Identity>>,
    /// Tokens Keystone just called invalid, for `invalid_token_cache_time_s`: a flood of one
    /// bogus token costs one validation, not one per request. Apart from `cache` so bogus
    /// tokens never push valid ones out.
    invalid: Mutex<TokenCache<()>>,
    /// Validations asked of Keystone, by result (`glass_keystone_validations`).
    validations: crate::metrics::KeystoneCounter,
}

struct ServiceToken {
    token: String,
    /// Renewed from this instant on (a minute before Keystone's expiry).
    renew_at: Instant,
}

impl Keystone {
    pub fn new(
        config: KeystoneConfig,
        validations: crate::metrics::KeystoneCounter,
    ) -> Result<Keystone, String> {
        // No redirects: they would carry the tokens (and the service password) elsewhere.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_millis(config.timeout_ms))
            .connect_timeout(Duration::from_millis(config.timeout_ms))
            .build()
            .map_err(|e| format!("keystone: HTTP client: {e}"))?;
        let cache = TokenCache::new(config.token_cache_size);
        let invalid = TokenCache::new(config.token_cache_size);
        Ok(Keystone {
            config,
            http,
            service_token: tokio::sync::Mutex::new(None),
            cache: Mutex::new(cache),
            invalid: Mutex::new(invalid),
            validations,
        })
    }

    /// Each call's deadline (`timeout_ms`).
    fn deadline(&self) -> Duration {
        Duration::from_millis(self.config.timeout_ms)
    }

    /// `Keystone uri="…"`, for 401 answers.
    pub fn www_authenticate(&self) -> String {
        let uri = self
            .config
            .www_authenticate_uri
            .as_deref()
            .unwrap_or(&self.config.auth_url);
        format!("Keystone uri=\"{}\"", uri.trim_end_matches('/'))
    }

    fn url(&self, path: &str) -> String {
        let base = self.config.auth_url.trim_end_matches('/');
        let base = base.strip_suffix("/v3").unwrap_or(base);
        format!("{base}/v3{path}")
    }

    /// The identity a user token stands for.
    pub async fn validate(&self, token: &str) -> Result<Identity, AuthError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(identity) = self.cache.lock().unwrap().get(&key) {
            return Ok(identity);
        }
        if self.invalid.lock().unwrap().get(&key).is_some() {
            return Err(AuthError::Invalid);
        }
        let result = self.ask(token, key).await;
        let outcome = match &result {
            Ok(_) => "valid",
            Err(AuthError::Invalid) => {
                let ttl = Duration::from_secs(self.config.invalid_token_cache_time_s);
                if !ttl.is_zero() {
                    self.invalid
                        .lock()
                        .unwrap()
                        .insert(key, (), Instant::now() + ttl);
                }
                "invalid"
            }
            Err(AuthError::Unavailable(_)) => "unavailable",
        };
        self.validations.inc(outcome);
        result
    }

    /// Asks Keystone about `token` (whose SHA-256 is `key`); caches it if valid.
    async fn ask(&self, token: &str, key: [u8; 32]) -> Result<Identity, AuthError> {
        let mut renewed = false;
        loop {
            let service = self.service_token(renewed).await?;
            let request = self
                .http
                .get(self.url("/auth/tokens?nocatalog"))
                .header("X-Auth-Token", &service)
                .header("X-Subject-Token", token);
            let response = send(request, self.deadline())
                .await
                .map_err(|e| AuthError::Unavailable(e.to_string()))?;
            match response.status() {
                StatusCode::OK => {
                    let body: TokenBody = response
                        .json()
                        .await
                        .map_err(|e| AuthError::Unavailable(format!("token body: {e}")))?;
                    let (identity, expires_at) = body.token.identity()?;
                    let ttl = (expires_at - Utc::now())
                        .to_std()
                        .map_err(|_| AuthError::Invalid)?
                        .min(Duration::from_secs(self.config.token_cache_time_s));
                    if !ttl.is_zero() {
                        self.cache.lock().unwrap().insert(
                            key,
                            identity.clone(),
                            Instant::now() + ttl,
                        );
                    }
                    return Ok(identity);
                }
                StatusCode::NOT_FOUND => return Err(AuthError::Invalid),
                // Our own token was refused: get a new one, once.
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN if !renewed => {
                    renewed = true;
                    continue;
                }
                other => {
                    return Err(AuthError::Unavailable(format!(
                        "token validation answered {other}"
                    )));
                }
            }
        }
    }

    /// Glass's own token, obtained with the service credentials.
    async fn service_token(&self, renew: bool) -> Result<String, AuthError> {
        let mut held = self.service_token.lock().await;
        if let Some(t) = held.as_ref()
            && !renew
            && Instant::now() < t.renew_at
        {
            return Ok(t.token.clone());
        }
        let c = &self.config;
        let body = serde_json::json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": c.username,
                "domain": {"name": c.user_domain_name},
                "password": c.password,
            }}},
            "scope": {"project": {
                "name": c.project_name,
                "domain": {"name": c.project_domain_name},
            }},
        }});
        let request = self
            .http
            .post(self.url("/auth/tokens?nocatalog"))
            .json(&body);
        let response = send(request, self.deadline())
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        if response.status() != StatusCode::CREATED {
            return Err(AuthError::Unavailable(format!(
                "the service user {} could not authenticate: {}",
                c.username,
                response.status()
            )));
        }
        let token = response
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| AuthError::Unavailable("no X-Subject-Token".into()))?;
        let body: TokenBody = response
            .json()
            .await
            .map_err(|e| AuthError::Unavailable(format!("service token body: {e}")))?;
        let lifetime = (body.token.expires_at - Utc::now())
            .to_std()
            .unwrap_or_default();
        let renew_at = Instant::now() + lifetime.saturating_sub(Duration::from_secs(60));
        *held = Some(ServiceToken {
            token: token.clone(),
            renew_at,
        });
        Ok(token)
    }
}

/// Sends `request` (whose client gives each try `deadline`), and once more if the first
/// try reached Keystone but got no answer, with what is left of the deadline: a keep-alive
/// connection Keystone closed just as it was reused (gunicorn and Apache close idle ones
/// after a few seconds) fails the first try only. A refused connection or a timeout is not
/// tried again, and both calls are safe to repeat.
async fn send(
    request: reqwest::RequestBuilder,
    deadline: Duration,
) -> Result<reqwest::Response, reqwest::Error> {
    let started = Instant::now();
    let again = request.try_clone();
    match (request.send().await, again) {
        (Err(e), Some(again)) if e.is_request() && !e.is_connect() && !e.is_timeout() => {
            match deadline.checked_sub(started.elapsed()) {
                Some(left) if left >= Duration::from_millis(10) => again.timeout(left).send().await,
                _ => Err(e),
            }
        }
        (result, _) => result,
    }
}

#[derive(Deserialize)]
struct TokenBody {
    token: TokenInfo,
}

#[derive(Deserialize)]
struct TokenInfo {
    expires_at: DateTime<Utc>,
    #[serde(default)]
    user: Option<Named>,
    #[serde(default)]
    project: Option<Named>,
    #[serde(default)]
    roles: Vec<Named>,
}

#[derive(Deserialize)]
struct Named {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

impl TokenInfo {
    fn identity(self) -> Result<(Identity, DateTime<Utc>), AuthError> {
        if self.expires_at <= Utc::now() {
            return Err(AuthError::Invalid);
        }
        let identity = Identity {
            project: self.project.and_then(|p| p.id),
            user: self.user.and_then(|u| u.id),
            // Keystone has already expanded implied roles.
            roles: self
                .roles
                .into_iter()
                .filter_map(|r| r.name)
                .map(|r| r.to_lowercase())
                .collect(),
        };
        Ok((identity, self.expires_at))
    }
}

/// Tokens by SHA-256 (valid ones with their identity, or invalid ones), each until its
/// deadline; the oldest entry goes when full.
struct TokenCache<V> {
    capacity: usize,
    entries: HashMap<[u8; 32], (V, Instant)>,
    order: VecDeque<[u8; 32]>,
}

impl<V: Clone> TokenCache<V> {
    fn new(capacity: usize) -> Self {
        TokenCache {
            capacity,
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn get(&mut self, key: &[u8; 32]) -> Option<V> {
        match self.entries.get(key) {
            Some((value, until)) if Instant::now() < *until => Some(value.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    fn insert(&mut self, key: [u8; 32], value: V, until: Instant) {
        if self.capacity == 0 {
            return;
        }
        while self.entries.len() >= self.capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.entries.remove(&old);
                }
                None => break,
            }
        }
        if self.entries.insert(key, (value, until)).is_none() {
            self.order.push_back(key);
        }
        // Keys whose entries expired and were removed by `get` linger in `order`: drop
        // them now and then so it stays bounded too.
        if self.order.len() > 2 * self.capacity {
            let entries = &self.entries;
            self.order.retain(|k| entries.contains_key(k));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    const TOKEN: &str = r#"{"token": {"expires_at": "2099-01-01T00:00:00Z",
        "user": {"id": "u1"}, "project": {"id": "p1"}, "roles": [{"name": "member"}]}}"#;

    /// Reads one request (head and `Content-Length` body): its method, None at end of stream.
    async fn read_request(conn: &mut TcpStream) -> Option<String> {
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            if conn.read(&mut byte).await.unwrap_or(0) == 0 {
                return None;
            }
            buf.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&buf).to_lowercase();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse::<usize>().unwrap());
        let mut body = vec![0u8; length];
        conn.read_exact(&mut body).await.ok()?;
        head.split(' ').next().map(str::to_owned)
    }

    /// Keystone's answer: 201 to a token request, 200 to a validation.
    async fn answer(conn: &mut TcpStream, method: &str) {
        let status = if method == "post" {
            "201 Created"
        } else {
            "200 OK"
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nX-Subject-Token: service\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            TOKEN.len()
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        conn.write_all(TOKEN.as_bytes()).await.unwrap();
    }

    /// A Keystone whose first connection answers one request, then closes on the next one
    /// unanswered, as a server closing an idle keep-alive connection races with its reuse.
    async fn closing_keystone() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let mut first = true;
            loop {
                let (mut conn, _) = listener.accept().await.unwrap();
                let close_second = std::mem::take(&mut first);
                tokio::spawn(async move {
                    let mut served = 0;
                    while let Some(method) = read_request(&mut conn).await {
                        if close_second && served == 1 {
                            return;
                        }
                        answer(&mut conn, &method).await;
                        served += 1;
                    }
                });
            }
        });
        url
    }

    /// A Keystone that reads a request, waits `hold`, then closes without answering; on
    /// later connections it reads and never answers.
    async fn closing_late_keystone(hold: Duration) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            read_request(&mut conn).await;
            tokio::time::sleep(hold).await;
            drop(conn);
            let mut held = Vec::new();
            loop {
                held.push(listener.accept().await.unwrap().0);
            }
        });
        url
    }

    #[tokio::test]
    async fn a_second_try_gets_only_what_is_left_of_the_deadline() {
        let config = KeystoneConfig {
            auth_url: closing_late_keystone(Duration::from_millis(500)).await,
            timeout_ms: 1_000,
            ..KeystoneConfig::default()
        };
        let keystone = Keystone::new(config, Default::default()).unwrap();
        let started = Instant::now();
        let result = keystone.validate("user-token").await;
        let took = started.elapsed();
        assert!(
            matches!(result, Err(AuthError::Unavailable(_))),
            "{result:?}"
        );
        // A fresh deadline for the second try would make it 1.5 s.
        assert!(took < Duration::from_millis(1_300), "{took:?}");
    }

    #[tokio::test]
    async fn a_connection_closed_on_reuse_is_tried_again() {
        let config = KeystoneConfig {
            auth_url: closing_keystone().await,
            ..KeystoneConfig::default()
        };
        let keystone = Keystone::new(config, Default::default()).unwrap();
        // The service token takes the first answer; the validation is sent on the same
        // connection, which closes unanswered: only a second try gets an answer.
        let identity = keystone.validate("user-token").await.unwrap();
        assert_eq!(identity.project.as_deref(), Some("p1"));
    }
}
