//! The app under load: the demo served in a child process of its own (this same binary started
//! with `--serve`), and the runner's side of it: starting it, its memory, its tenants, and one
//! request of the mix.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tenancy_core::Strategy;
use tenancy_testkit::TestDatabase;
use tokio::io::{AsyncBufReadExt, BufReader};

const ADMIN: &str = "load-runner-admin-token";

/// How long the runner's client keeps a connection it is not using: less than the demo's HTTP
/// keep-alive (actix-web's default, 5 s), after which the server closes an idle connection. A
/// client that keeps one longer may send a request on it at the moment the server closes it,
/// and that request fails in transport ("connection closed before message completed"), as the
/// paced runs of the sustained mode did a few times in ten minutes.
const CLIENT_IDLE: Duration = Duration::from_secs(2);

/// In the child: serve the demo on `url` with `strategy`, print the port, run until killed.
pub(crate) async fn serve(strategy: &str, url: &str) -> Result<()> {
    use tenancy_demo::settings::Settings;
    use tenancy_demo::startup::{Application, Backend};
    let mut settings = Settings::load(None)?;
    // The load writes more than the shipped free plan allows into one tenant: the paid plan,
    // whose limits are still checked on every write.
    settings.default_plan = "pro".into();
    settings.strategy = Some(strategy.to_owned());
    settings.database_url = Some(url.to_owned().into());
    settings.http.port = 0;
    settings.admin_token = Some(ADMIN.to_owned().into());
    settings.sample_data = false;
    let strategy = tenancy_demo::strategy::pick(Some(strategy))?;
    let backend = Backend::open(strategy, url, &settings).await?;
    let app = Application::build(&settings, &backend, ADMIN)?;
    println!("PORT {}", app.port());
    app.run_until_stopped().await?;
    Ok(())
}

/// The app in a child process of its own, so its memory is its own.
pub(crate) struct App {
    child: tokio::process::Child,
    base: String,
    client: reqwest::Client,
}

impl App {
    pub(crate) async fn start(
        strategy: Strategy,
        db: &TestDatabase,
        env: &[(&str, String)],
    ) -> Result<Self> {
        let mut cmd = tokio::process::Command::new(std::env::current_exe()?);
        cmd.args(["--serve", strategy.as_str(), db.url()])
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn()?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let port = loop {
            let line = lines
                .next_line()
                .await?
                .context("the app exited before serving")?;
            if let Some(port) = line.strip_prefix("PORT ") {
                break port.trim().to_owned();
            }
        };
        Ok(App {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .pool_idle_timeout(CLIENT_IDLE)
                .build()?,
        })
    }

    /// The app's resident memory, in MB.
    pub(crate) fn rss_mb(&self) -> f64 {
        let pid = self.child.id().unwrap_or(0);
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_owned();
                line.split_whitespace().nth(1)?.parse::<f64>().ok()
            })
            .map_or(0.0, |kb| kb / 1024.0)
    }

    async fn admin(&self, path: &str, body: Value) -> Result<Value> {
        let res = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await?;
        if !res.status().is_success() {
            bail!("{path}: {}", res.status());
        }
        Ok(res.json().await.unwrap_or(Value::Null))
    }

    /// A tenant with an owner, five projects named after it, and the owner's token.
    pub(crate) async fn tenant(&self, slug: &str) -> Result<(String, String)> {
        self.admin("/admin/tenants", json!({"slug": slug, "name": slug}))
            .await?;
        let user = self
            .admin(
                "/admin/users",
                json!({"email": format!("{slug}@example.com"), "name": slug}),
            )
            .await?;
        let user = user["id"].as_str().context("user id")?.to_owned();
        let res = self
            .client
            .put(format!("{}/admin/tenants/{slug}/members/{user}", self.base))
            .bearer_auth(ADMIN)
            .json(&json!({"role": "owner"}))
            .send()
            .await?;
        if !res.status().is_success() {
            bail!("membership: {}", res.status());
        }
        let token = self
            .admin(&format!("/admin/users/{user}/tokens"), json!({}))
            .await?;
        let token = token["token"].as_str().context("token")?.to_owned();
        for i in 0..5 {
            self.request(slug, &token, true, i).await?;
        }
        Ok((slug.to_owned(), token))
    }

    /// One request of the mix for `slug`: a project created (named after the tenant) or the
    /// first page read. `Ok(leak)`: whether the response showed a row of another tenant.
    pub(crate) async fn request(
        &self,
        slug: &str,
        token: &str,
        write: bool,
        n: u64,
    ) -> Result<bool> {
        let url = format!("{}/t/{slug}/api/projects", self.base);
        let req = if write {
            self.client
                .post(&url)
                .json(&json!({"name": format!("{slug}-{n}")}))
        } else {
            self.client.get(format!("{url}?limit=20"))
        };
        let res = req
            .bearer_auth(token)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            // Without the URL, the same fault reads the same for every tenant in the tally.
            .map_err(reqwest::Error::without_url)?;
        if !res.status().is_success() {
            bail!("{}", res.status());
        }
        let body: Value = res.json().await?;
        let prefix = format!("{slug}-");
        let names: Vec<&str> = if write {
            vec![body["name"].as_str().unwrap_or("")]
        } else {
            body["items"]
                .as_array()
                .map(|a| a.iter().map(|p| p["name"].as_str().unwrap_or("")).collect())
                .unwrap_or_default()
        };
        Ok(names.iter().any(|n| !n.starts_with(&prefix)))
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
