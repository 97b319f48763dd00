//! `spawn_app`: the real app on port 0 against a fresh database, and a client with typed
//! helpers.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tenancy_core::Strategy;
use tenancy_demo::settings::Settings;
use tenancy_demo::startup::{Application, Backend, FirstRun};
use tenancy_testkit::TestDatabase;

pub const ADMIN: &str = "test-admin-token";

/// What the apps of this test binary logged (warnings and errors), for tests that look for a
/// cause in the log. The first call installs the process's subscriber, writing here; every
/// test that wants logs calls this, so none installs another.
pub fn logs() -> &'static Logs {
    static LOGS: std::sync::OnceLock<&'static Logs> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs: &'static Logs = Box::leak(Box::default());
        tracing_subscriber::fmt()
            .with_env_filter("warn,sqlx=warn")
            .with_ansi(false)
            .with_writer(move || LogWriter(logs))
            .try_init()
            .ok();
        logs
    })
}

/// The log lines the apps wrote.
#[derive(Debug, Default)]
pub struct Logs(std::sync::Mutex<Vec<u8>>);

impl Logs {
    /// Whether some log line holds every one of `parts`.
    pub fn has_line_with(&self, parts: &[&str]) -> bool {
        let text = self
            .0
            .lock()
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        text.unwrap_or_default()
            .lines()
            .any(|line| parts.iter().all(|p| line.contains(p)))
    }
}

struct LogWriter(&'static Logs);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One running app.
#[derive(Debug)]
pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub first_run: Option<FirstRun>,
    pub db: Option<TestDatabase>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// The settings a test runs with: defaults, the given database, port 0, a known admin token.
pub fn settings(strategy: Strategy, url: &str) -> Result<Settings> {
    let mut s = Settings::load(None)?;
    s.strategy = Some(strategy.as_str().into());
    s.database_url = Some(url.to_owned().into());
    s.http.port = 0;
    s.admin_token = Some(ADMIN.to_owned().into());
    s.data_dir = std::env::temp_dir().join(format!("tenancy-demo-test-{}", uuid::Uuid::now_v7()));
    // No static tenant unless a test asks for the configuration's ([`with_statics`]): most
    // tests count their own tenants, and each static one is a database under separate-db.
    s.tenants.clear();
    // Tests write more rows into one tenant than the shipped free plan allows (the fault tests
    // a thousand projects): the paid plan, whose limits are still checked on every write. The
    // quota tests set plans of their own.
    s.default_plan = "pro".into();
    // The shipped per-tenant rate (200 a second, a second's queue) would pace the tests that
    // write as fast as they can into one tenant; the neighbours tests set rates of their own.
    s.rate_limit.per_tenant = 0;
    // Tests run side by side on one server: separate-db's budget as small as it was before the
    // shipped one grew to 64 (the budget tests set theirs).
    s.connections_per_server = 10;
    Ok(s)
}

/// Settings change: the static tenants of the shipped configuration (`www`, the sign-up).
pub fn with_statics(s: &mut Settings) {
    s.tenants = Settings::load(None).expect("the default settings").tenants;
}

/// The app on a fresh database (dropped by [`TestApp::finish`]), with the test's settings
/// changed by `change`.
pub async fn spawn_app_with(
    strategy: Strategy,
    change: impl FnOnce(&mut Settings),
) -> Result<TestApp> {
    let db = TestDatabase::create().await?;
    let mut app = spawn_with(strategy, db.url(), change).await?;
    app.db = Some(db);
    Ok(app)
}

pub async fn spawn_app(strategy: Strategy) -> Result<TestApp> {
    let db = TestDatabase::create().await?;
    let mut app = spawn_on(strategy, db.url()).await?;
    app.db = Some(db);
    Ok(app)
}

/// The app on the database at `url` (which the caller owns).
pub async fn spawn_on(strategy: Strategy, url: &str) -> Result<TestApp> {
    spawn_with(strategy, url, |_| {}).await
}

/// The app on the database at `url`, with the test's settings changed by `change`.
pub async fn spawn_with(
    strategy: Strategy,
    url: &str,
    change: impl FnOnce(&mut Settings),
) -> Result<TestApp> {
    let mut settings = settings(strategy, url)?;
    change(&mut settings);
    let backend = Backend::open(strategy, url, &settings).await?;
    // As `serve` does: the static tenants, then the first run's sample data.
    backend.ensure_static_tenants(&settings).await?;
    let first_run = backend.first_run().await?;
    let app = Application::build(&settings, &backend, ADMIN)?;
    let port = app.port();
    let server = tokio::spawn(app.run_until_stopped());
    Ok(TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        client: reqwest::Client::new(),
        first_run,
        db: None,
        server,
    })
}

impl TestApp {
    /// Stops the server and drops the database (call at the end of a passing test).
    pub async fn finish(self) -> Result<()> {
        self.server.abort();
        if let Some(db) = self.db {
            db.drop_database().await?;
        }
        Ok(())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> Result<Response> {
        Ok(self
            .client
            .post(self.url(path))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await?)
    }

    /// An admin GET: its status and its JSON body.
    pub async fn admin_get(&self, path: &str) -> Result<(StatusCode, Value)> {
        let res = self
            .client
            .get(self.url(path))
            .bearer_auth(ADMIN)
            .send()
            .await?;
        let status = res.status();
        Ok((status, res.json().await?))
    }

    /// The text of `/metrics`.
    pub async fn metrics(&self) -> Result<String> {
        Ok(self
            .client
            .get(self.url("/metrics"))
            .send()
            .await?
            .text()
            .await?)
    }

    pub async fn admin_delete(&self, path: &str) -> Result<Response> {
        Ok(self
            .client
            .delete(self.url(path))
            .bearer_auth(ADMIN)
            .send()
            .await?)
    }

    /// Creates a tenant, a user who owns it and a token; returns the token.
    pub async fn tenant_with_owner(&self, slug: &str) -> Result<String> {
        let res = self
            .admin_post("/admin/tenants", json!({"slug": slug, "name": slug}))
            .await?;
        ensure!(
            res.status() == StatusCode::CREATED,
            "create tenant: {}",
            res.status()
        );
        let user = self.user(&format!("{slug}@example.com")).await?;
        self.grant(slug, &user, "owner").await?;
        self.token(&user).await
    }

    pub async fn user(&self, email: &str) -> Result<String> {
        let res = self
            .admin_post("/admin/users", json!({"email": email, "name": "Someone"}))
            .await?;
        ensure!(
            res.status() == StatusCode::CREATED,
            "create user: {}",
            res.status()
        );
        let body: Value = res.json().await?;
        Ok(body["id"].as_str().context("user id")?.to_owned())
    }

    pub async fn token(&self, user: &str) -> Result<String> {
        let res = self
            .admin_post(&format!("/admin/users/{user}/tokens"), json!({}))
            .await?;
        ensure!(
            res.status() == StatusCode::CREATED,
            "create token: {}",
            res.status()
        );
        let body: Value = res.json().await?;
        Ok(body["token"].as_str().context("token")?.to_owned())
    }

    pub async fn grant(&self, slug: &str, user: &str, role: &str) -> Result<()> {
        let res = self
            .client
            .put(self.url(&format!("/admin/tenants/{slug}/members/{user}")))
            .bearer_auth(ADMIN)
            .json(&json!({"role": role}))
            .send()
            .await?;
        ensure!(
            res.status() == StatusCode::NO_CONTENT,
            "grant: {}",
            res.status()
        );
        Ok(())
    }

    /// A request to tenant route `path` (after `/api`) of `slug`, by path prefix.
    pub fn tenant(
        &self,
        method: reqwest::Method,
        slug: &str,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(&format!("/t/{slug}/api{path}")))
            .bearer_auth(token)
    }

    /// Names of the tenant's projects, read through the API.
    pub async fn project_names(&self, slug: &str, token: &str) -> Result<Vec<String>> {
        let res = self
            .tenant(reqwest::Method::GET, slug, "/projects?limit=500", token)
            .send()
            .await?;
        ensure!(res.status() == StatusCode::OK, "list: {}", res.status());
        let body: Value = res.json().await?;
        Ok(body["items"]
            .as_array()
            .context("items")?
            .iter()
            .filter_map(|p| p["name"].as_str().map(str::to_owned))
            .collect())
    }

    /// Creates a project; returns its id.
    pub async fn project(&self, slug: &str, token: &str, name: &str) -> Result<String> {
        let res = self
            .tenant(reqwest::Method::POST, slug, "/projects", token)
            .json(&json!({"name": name}))
            .send()
            .await?;
        ensure!(
            res.status() == StatusCode::CREATED,
            "create project: {}",
            res.status()
        );
        let body: Value = res.json().await?;
        Ok(body["id"].as_str().context("id")?.to_owned())
    }

    /// Slugs of all tenants, through the admin API.
    pub async fn tenant_slugs(&self) -> Result<Vec<String>> {
        let res = self
            .client
            .get(self.url("/admin/tenants?limit=500"))
            .bearer_auth(ADMIN)
            .send()
            .await?;
        ensure!(res.status() == StatusCode::OK);
        let body: Value = res.json().await?;
        Ok(body["items"]
            .as_array()
            .context("items")?
            .iter()
            .filter_map(|t| t["slug"].as_str().map(str::to_owned))
            .collect())
    }
}

/// Where a tenant's `table` is: a URL of its database and the table's qualified name.
pub async fn tenant_table(app: &TestApp, slug: &str, table: &str) -> Result<(String, String)> {
    let res = app
        .client
        .get(app.url(&format!("/admin/tenants/{slug}")))
        .bearer_auth(ADMIN)
        .send()
        .await?;
    let tenant: Value = res.json().await?;
    let db_url = app
        .db
        .as_ref()
        .context("the test database")?
        .url()
        .to_owned();
    let placement = &tenant["placement"];
    Ok(match placement["kind"].as_str() {
        Some("schema") => {
            let schema = placement["schema"].as_str().context("schema")?;
            (db_url, format!("\"{schema}\".{table}"))
        }
        Some("database") => {
            let database = placement["database"].as_str().context("database")?;
            let mut url = url::Url::parse(&db_url)?;
            url.set_path(database);
            (url.to_string(), table.to_owned())
        }
        _ => (db_url, format!("public.{table}")),
    })
}

/// Checks that a response is a problem document with `status`; returns the body.
pub async fn problem(res: Response, status: StatusCode) -> Result<Value> {
    let got = res.status();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body: Value = res.json().await.context("a JSON body")?;
    ensure!(got == status, "expected {status}, got {got}: {body}");
    ensure!(
        content_type == "application/problem+json",
        "content type {content_type:?}"
    );
    for field in ["type", "title", "status", "detail"] {
        ensure!(!body[field].is_null(), "problem without {field}: {body}");
    }
    ensure!(body["status"] == status.as_u16(), "{body}");
    Ok(body)
}

/// Generates one test per compiled strategy for each named async fn taking a `Strategy`.
#[macro_export]
macro_rules! per_strategy {
    ($($name:ident),+ $(,)?) => {
        #[cfg(feature = "shared-schema")]
        mod shared_schema {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> anyhow::Result<()> {
                    super::$name(tenancy_core::Strategy::SharedSchema).await
                }
            )+
        }
        #[cfg(feature = "separate-schema")]
        mod separate_schema {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> anyhow::Result<()> {
                    super::$name(tenancy_core::Strategy::SeparateSchema).await
                }
            )+
        }
        #[cfg(feature = "separate-db")]
        mod separate_db {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> anyhow::Result<()> {
                    super::$name(tenancy_core::Strategy::SeparateDb).await
                }
            )+
        }
    };
}

/// Polls `status` of a request until it is `want`; returns how long that took, or fails
/// after two seconds.
pub async fn until(
    want: StatusCode,
    what: &str,
    request: impl Fn() -> reqwest::RequestBuilder,
) -> Result<Duration> {
    let start = Instant::now();
    loop {
        let got = request().send().await?.status();
        if got == want {
            return Ok(start.elapsed());
        }
        if start.elapsed() > Duration::from_secs(2) {
            bail!("{what}: still {got} after two seconds, not {want}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
