//! A real Keystone for the auth tests: started (idempotently, once per test process) by
//! `../shared/tempest/start-keystone.sh` on 127.0.0.1:5000 (SQLite, admin `admin` /
//! `secretadmin`, service user `glance` / `secretglance` with admin and service roles on
//! project `service`), and the few identity admin calls the tests need to make projects,
//! users, role assignments and tokens of their own.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{Value, json};
use uuid::Uuid;

pub const KEYSTONE_URL: &str = "http://127.0.0.1:5000";
pub const SERVICE_USER: &str = "glance";
pub const SERVICE_PASSWORD: &str = "secretglance";
const ADMIN_PASSWORD: &str = "secretadmin";

static STARTED: OnceLock<Result<(), String>> = OnceLock::new();

/// `$GLASS_TEMPEST_DIR`, else `../shared/tempest` from the repository root.
pub fn tempest_dir() -> PathBuf {
    match std::env::var_os("GLASS_TEMPEST_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/tempest"),
    }
}

/// Starts Keystone unless it runs; panics with the script's output if it cannot.
pub async fn keystone() -> Admin {
    let started = tokio::task::spawn_blocking(|| {
        STARTED
            .get_or_init(|| {
                let lock = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(std::env::temp_dir().join("glass-keystone-start.lock"))
                    .map_err(|e| e.to_string())?;
                lock.lock().map_err(|e| e.to_string())?;
                let out = Command::new("bash")
                    .arg(tempest_dir().join("start-keystone.sh"))
                    .output()
                    .map_err(|e| format!("start-keystone.sh: {e}"))?;
                if out.status.success() {
                    Ok(())
                } else {
                    Err(format!(
                        "start-keystone.sh failed:\n{}\n{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    ))
                }
            })
            .clone()
    })
    .await
    .expect("keystone start task");
    if let Err(e) = started {
        panic!("{e}");
    }
    // A new connection for each call: gunicorn closes idle keep-alive connections after
    // 2 s, and a call sent on one just as it closes fails with no answer.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("HTTP client");
    let token = password_token(&http, "admin", ADMIN_PASSWORD, "admin")
        .await
        .expect("admin token");
    Admin { http, token }
}

/// A project-scoped token for `user` on `project` (names in the Default domain).
pub async fn password_token(
    http: &reqwest::Client,
    user: &str,
    password: &str,
    project: &str,
) -> Result<String, String> {
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}
    }});
    let r = http
        .post(format!("{KEYSTONE_URL}/v3/auth/tokens?nocatalog"))
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status().as_u16() != 201 {
        return Err(format!("token for {user}: {}", r.status()));
    }
    r.headers()
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| "no X-Subject-Token".into())
}

/// Keystone's admin, for setting up the tests' projects and users.
pub struct Admin {
    http: reqwest::Client,
    token: String,
}

/// A user with a role on a project, and a token for it.
pub struct Account {
    pub project_id: String,
    pub user_id: String,
    pub token: String,
}

impl Admin {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut rb = self
            .http
            .request(method.clone(), format!("{KEYSTONE_URL}/v3{path}"))
            .header("X-Auth-Token", &self.token);
        if let Some(body) = body {
            rb = rb.json(&body);
        }
        let r = rb.send().await.expect("keystone call");
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// A new project with a unique name made of `label`.
    pub async fn project(&self, label: &str) -> (String, String) {
        let name = format!(
            "glass-{label}-{}",
            &Uuid::new_v4().simple().to_string()[..8]
        );
        let v = self
            .call(
                reqwest::Method::POST,
                "/projects",
                Some(json!({"project": {"name": name, "domain_id": "default"}})),
            )
            .await;
        (v["project"]["id"].as_str().unwrap().to_owned(), name)
    }

    /// A new user holding `role` on the project `(id, name)`, with a token for it.
    pub async fn account(&self, project: &(String, String), role: &str) -> Account {
        let name = format!("glass-{role}-{}", &Uuid::new_v4().simple().to_string()[..8]);
        let password = Uuid::new_v4().simple().to_string();
        let v = self
            .call(
                reqwest::Method::POST,
                "/users",
                Some(json!({"user": {"name": name, "password": password, "domain_id": "default"}})),
            )
            .await;
        let user_id = v["user"]["id"].as_str().unwrap().to_owned();
        let roles = self
            .call(reqwest::Method::GET, &format!("/roles?name={role}"), None)
            .await;
        let role_id = roles["roles"][0]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no role {role} in keystone"))
            .to_owned();
        self.call(
            reqwest::Method::PUT,
            &format!("/projects/{}/users/{user_id}/roles/{role_id}", project.0),
            None,
        )
        .await;
        let token = password_token(&self.http, &name, &password, &project.1)
            .await
            .expect("user token");
        Account {
            project_id: project.0.clone(),
            user_id,
            token,
        }
    }

    /// Revokes a token (`DELETE /v3/auth/tokens`).
    pub async fn revoke(&self, token: &str) {
        let r = self
            .http
            .delete(format!("{KEYSTONE_URL}/v3/auth/tokens"))
            .header("X-Auth-Token", &self.token)
            .header("X-Subject-Token", token)
            .send()
            .await
            .expect("revoke");
        assert_eq!(r.status().as_u16(), 204, "revoke a token");
    }
}
