//! Tenants placed across two servers; the second one goes away and comes back.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use tenancy_core::sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use tenancy_core::{Error, NewTenant, Placement, Slug, Tenant, TenantStore};
use tenancy_core::{PageRequest, PoolOptions};
use tenancy_example::projects::{self, NewProject};
use tenancy_separate_db::{SeparateDbOptions, SeparateDbStore, ServerConfig};
use tenancy_testkit::{TestDatabase, TestServer};

async fn databases_on(url: &str, prefix: &str) -> Result<Vec<String>> {
    let conn = Database::connect(url).await?;
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY 1",
            [prefix.into()],
        ))
        .await?;
    conn.close().await.ok();
    rows.iter()
        .map(|r| r.try_get::<String>("", "datname").map_err(Into::into))
        .collect()
}

async fn add_project(store: &SeparateDbStore, t: &Tenant, name: &str) -> Result<(), Error> {
    let scope = store.scope(t).await?;
    projects::create(&scope, NewProject::named(name)).await?;
    scope.commit().await
}

async fn project_names(store: &SeparateDbStore, t: &Tenant) -> Result<Vec<String>, Error> {
    let scope = store.scope(t).await?;
    let page = projects::list(&scope, PageRequest::default()).await?;
    Ok(page.items.into_iter().map(|p| p.name).collect())
}

fn server_of(t: &Tenant) -> &str {
    match &t.placement {
        Placement::Database { server, .. } => server,
        _ => "",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_spread_over_two_servers_survive_an_outage() -> Result<()> {
    let db = TestDatabase::create().await?;
    let second = TestServer::start()?;
    let store = SeparateDbStore::connect(
        db.url(),
        SeparateDbOptions {
            migrations: tenancy_example::migrations(),
            servers: vec![ServerConfig {
                name: "second".into(),
                url: second.url("postgres"),
                tenant_url: None,
                replica: None,
            }],
            pool: PoolOptions {
                acquire_timeout: Duration::from_secs(2),
                ..SeparateDbOptions::default().pool
            },
            retry_after: Duration::from_millis(500),
            ..Default::default()
        },
    )
    .await?;

    // Placement: the emptier server first, so four tenants split two and two; a fifth goes
    // where the caller says.
    let mut tenants = Vec::new();
    for slug in ["alpha", "bravo", "charlie", "delta"] {
        tenants.push(
            store
                .create_tenant(NewTenant::new(Slug::parse(slug)?, slug))
                .await?,
        );
    }
    let mut echo = NewTenant::new(Slug::parse("echo")?, "echo");
    echo.server = Some("second".into());
    tenants.push(store.create_tenant(echo).await?);
    let on_second: Vec<&Tenant> = tenants
        .iter()
        .filter(|t| server_of(t) == "second")
        .collect();
    let on_main: Vec<&Tenant> = tenants.iter().filter(|t| server_of(t) == "main").collect();
    ensure!(
        on_main.len() == 2 && on_second.len() == 3,
        "placement: main {:?}, second {:?}",
        on_main.iter().map(|t| t.slug.as_str()).collect::<Vec<_>>(),
        on_second
            .iter()
            .map(|t| t.slug.as_str())
            .collect::<Vec<_>>()
    );
    let mut bad = NewTenant::new(Slug::parse("foxtrot")?, "foxtrot");
    bad.server = Some("third".into());
    let refused = store.create_tenant(bad).await;
    ensure!(
        matches!(
            refused,
            Err(Error::Invalid {
                field: "server",
                ..
            })
        ),
        "an unknown server is refused, got {refused:?}"
    );

    // Each tenant's database exists on its own server and nowhere else.
    let prefix = format!("{}_", db.name());
    let main_dbs = databases_on(db.url(), &prefix).await?;
    let second_dbs = databases_on(&second.url("postgres"), &prefix).await?;
    for t in &tenants {
        let name = store.database_for(&t.slug);
        let (here, there) = if server_of(t) == "main" {
            (&main_dbs, &second_dbs)
        } else {
            (&second_dbs, &main_dbs)
        };
        ensure!(
            here.contains(&name) && !there.contains(&name),
            "{name} must exist on {} only: main {main_dbs:?}, second {second_dbs:?}",
            server_of(t)
        );
        add_project(&store, t, &format!("{} project", t.slug)).await?;
    }

    // The second server goes away: its tenants fail with Unavailable, the others work.
    second.stop()?;
    for t in &on_second {
        let started = Instant::now();
        let res = project_names(&store, t).await;
        ensure!(
            matches!(res, Err(Error::Unavailable(_))),
            "{} on the stopped server: expected Unavailable, got {res:?}",
            t.slug
        );
        ensure!(
            started.elapsed() < Duration::from_secs(10),
            "the failure took {:?}",
            started.elapsed()
        );
        let res = add_project(&store, t, "lost?").await;
        ensure!(
            matches!(res, Err(Error::Unavailable(_))),
            "writes fail the same way, got {res:?}"
        );
    }
    for t in &on_main {
        add_project(&store, t, "during the outage").await?;
        ensure!(project_names(&store, t).await?.len() == 2);
    }

    // It comes back: the same store serves its tenants again, with their data.
    second.start_again()?;
    for t in &on_second {
        let deadline = Instant::now() + Duration::from_secs(15);
        let names = loop {
            match project_names(&store, t).await {
                Ok(names) => break names,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("{} not back yet: {e}", t.slug);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e).context("the tenant did not recover"),
            }
        };
        ensure!(
            names == vec![format!("{} project", t.slug)],
            "{} after recovery: {names:?}",
            t.slug
        );
        add_project(&store, t, "after").await?;
    }

    // Deleting a tenant on the second server drops its database there.
    let gone = on_second[0].clone();
    store.delete_tenant(gone.id).await?;
    let second_dbs = databases_on(&second.url("postgres"), &prefix).await?;
    ensure!(
        !second_dbs.contains(&store.database_for(&gone.slug)),
        "the deleted tenant's database is gone: {second_dbs:?}"
    );

    drop(store);
    second.remove()?;
    db.drop_database().await
}
