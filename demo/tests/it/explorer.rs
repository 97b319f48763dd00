//! The pages a learner opens beside the book, in a real headless Chromium (Debian's
//! `chromium` and `chromium-driver`, driven through WebDriver): the tenant explorer lists the
//! tenants the API created, shows where one tenant's tables are, its rows and the SQL its
//! requests sent, and never another tenant's rows; Swagger UI renders this API's document.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tenancy_core::Strategy;

use crate::helpers::{ADMIN, TestApp, spawn_app_with, with_statics};

crate::per_strategy!(explorer_shows_where_the_rows_went_and_no_other_tenants);

/// A chromedriver of our own on a free port, and a headless Chromium session through it.
struct Browser {
    driver: Child,
    client: Client,
}

impl Browser {
    async fn start() -> Result<Browser> {
        let chromedriver =
            std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        for (what, path) in [("chromedriver", &chromedriver), ("chromium", &chromium)] {
            if !std::path::Path::new(path).exists() {
                bail!(
                    "the page tests need {what} at {path}: install Debian's chromium and \
                     chromium-driver (`cargo xtask setup` does as root), or set CHROMEDRIVER \
                     and CHROMIUM"
                );
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {chromedriver}"))?;
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1000"],
            }),
        );
        // What the pages write to the console, for `console_errors`.
        capabilities.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let url = format!("http://127.0.0.1:{port}");
        let mut last = None;
        for _ in 0..100 {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => return Ok(Browser { driver, client }),
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("no browser session through {chromedriver}: {last:?}")
    }

    async fn text(&self, css: &str) -> Result<String> {
        Ok(self.client.find(Locator::Css(css)).await?.text().await?)
    }

    async fn finish(mut self) -> Result<()> {
        self.client.close().await.ok();
        self.driver.kill().ok();
        self.driver.wait().ok();
        Ok(())
    }
}

/// chromedriver's log command: what the pages wrote to the console since the last call.
#[derive(Debug)]
struct ConsoleLog;

impl fantoccini::wd::WebDriverCompatibleCommand for ConsoleLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (reqwest::Method, Option<String>) {
        (
            reqwest::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

/// The console's errors (level SEVERE: `console.error`, uncaught exceptions, a resource that
/// failed to load) since the last call.
async fn console_errors(browser: &Browser) -> Result<Vec<String>> {
    let log = browser
        .client
        .issue_cmd(ConsoleLog)
        .await
        .context("reading the browser's console")?;
    let entries = log.as_array().context("the console log is a list")?;
    Ok(entries
        .iter()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or("").to_owned())
        .collect())
}

/// Opens the explorer on `slug` and waits until it has shown everything.
async fn open_explorer(browser: &Browser, app: &TestApp, slug: &str) -> Result<()> {
    browser
        .client
        .goto(&app.url(&format!("/explorer#token={ADMIN}&tenant={slug}")))
        .await?;
    browser
        .client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("body[data-loaded='yes']"))
        .await
        .with_context(|| format!("the explorer did not load for {slug}"))?;
    Ok(())
}

/// What went wrong on the page: errors it caught, and the message it shows.
async fn page_errors(browser: &Browser) -> Result<Vec<String>> {
    let caught = browser
        .client
        .execute("return window.explorerErrors;", vec![])
        .await?;
    let mut errors: Vec<String> = serde_json::from_value(caught)?;
    let shown = browser.text("#error").await?;
    if !shown.is_empty() {
        errors.push(shown);
    }
    Ok(errors)
}

async fn explorer_shows_where_the_rows_went_and_no_other_tenants(strategy: Strategy) -> Result<()> {
    let app = spawn_app_with(strategy, with_statics).await?;
    let alpha = app.tenant_with_owner("alpha").await?;
    let bravo = app.tenant_with_owner("bravo").await?;
    app.project("alpha", &alpha, "alpha-only-row").await?;
    app.project("bravo", &bravo, "bravo-only-row").await?;
    app.project_names("alpha", &alpha).await?;

    let browser = Browser::start().await?;
    let checked = async {
        open_explorer(&browser, &app, "alpha").await?;
        let errors = page_errors(&browser).await?;
        ensure!(errors.is_empty(), "the page reported errors: {errors:?}");
        let console = console_errors(&browser).await?;
        ensure!(console.is_empty(), "errors in the console: {console:?}");
        // The tenants the API created, static apart from dynamic.
        let statics = browser.text("#static tbody").await?;
        let dynamics = browser.text("#dynamic tbody").await?;
        ensure!(
            statics.contains("www") && statics.contains("signup"),
            "{statics}"
        );
        for slug in ["acme", "alpha", "bravo"] {
            ensure!(dynamics.contains(slug), "{slug} not listed: {dynamics}");
        }
        ensure!(
            !dynamics.contains("www"),
            "www listed as dynamic: {dynamics}"
        );
        // Where alpha's tables are, as its placement says.
        let tables = browser.text("#tables").await?;
        let expected = match strategy {
            Strategy::SeparateSchema => "tenant_alpha".to_owned(),
            Strategy::SeparateDb => "_alpha".to_owned(),
            _ => "public".to_owned(),
        };
        ensure!(
            tables.contains("projects") && tables.contains("tasks") && tables.contains(&expected),
            "alpha's tables ({expected}): {tables}"
        );
        // Its rows, and never bravo's.
        ensure!(tables.contains("alpha-only-row"), "{tables}");
        ensure!(
            !tables.contains("bravo-only-row"),
            "bravo's row on alpha's page: {tables}"
        );
        let page = browser.client.source().await?;
        ensure!(
            !page.contains("bravo-only-row"),
            "bravo's row in alpha's page source"
        );
        // The SQL alpha's requests sent through its scope.
        let sent = browser.text("#statements").await?;
        ensure!(
            sent.contains("INSERT") && sent.contains("SELECT") && sent.contains("projects"),
            "{sent}"
        );
        // Its usage: its plan (the tests' default, pro), its rows against it.
        let usage = browser.text("#usage").await?;
        ensure!(
            usage.contains("pro") && usage.contains("projects 1 of 100000"),
            "alpha's usage: {usage}"
        );
        let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
        std::fs::create_dir_all(&shots)?;
        std::fs::write(
            shots.join(format!("explorer-{strategy}.png")),
            browser.client.screenshot().await?,
        )?;

        // Clicking bravo shows bravo's, and never alpha's.
        browser
            .client
            .find(Locator::Css("#dynamic tr[data-slug='bravo'] a"))
            .await?
            .click()
            .await?;
        browser
            .client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::XPath("//code[@id='slug' and text()='bravo']"))
            .await?;
        let mut tables = String::new();
        for _ in 0..100 {
            tables = browser.text("#tables").await?;
            if tables.contains("bravo-only-row") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ensure!(tables.contains("bravo-only-row"), "{tables}");
        ensure!(
            !tables.contains("alpha-only-row"),
            "alpha's row on bravo's page: {tables}"
        );
        let errors = page_errors(&browser).await?;
        ensure!(errors.is_empty(), "the page reported errors: {errors:?}");
        let console = console_errors(&browser).await?;
        ensure!(console.is_empty(), "errors in the console: {console:?}");

        // Swagger UI renders this API's document, from the binary.
        browser.client.goto(&app.url("/docs/")).await?;
        let title = browser
            .client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(".swagger-ui .info .title"))
            .await
            .context("Swagger UI did not render")?
            .text()
            .await?;
        ensure!(title.contains("tenancy demo"), "{title}");
        let operations = browser.client.find_all(Locator::Css(".opblock")).await?;
        ensure!(
            operations.len() >= 20,
            "{} operations shown",
            operations.len()
        );
        let console = console_errors(&browser).await?;
        ensure!(
            console.is_empty(),
            "errors in Swagger UI's console: {console:?}"
        );
        Ok(())
    }
    .await;
    browser.finish().await?;
    checked?;
    app.finish().await
}
