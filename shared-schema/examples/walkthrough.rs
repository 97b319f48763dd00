//! Run with `cargo run -p tenancy-shared-schema --example walkthrough`.
//!
//! Two tenants, a project with tasks each, proof that neither sees the other, and where the
//! rows went. Uses `DATABASE_URL` when set, otherwise an embedded PostgreSQL from the binaries
//! installed on this machine.

use anyhow::Context;
use tenancy_core::PageRequest;
use tenancy_core::embedded::{EmbeddedOptions, EmbeddedPostgres};
use tenancy_core::sea_orm::{ConnectionTrait, DbBackend, Statement};
use tenancy_core::{Error, NewTenant, Slug, TenantStore};
use tenancy_example::projects::{self, NewProject};
use tenancy_example::tasks::{self, NewTask, TaskPatch};
use tenancy_shared_schema::{SharedSchemaOptions, SharedSchemaStore};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (url, embedded) = match std::env::var("DATABASE_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let server = EmbeddedPostgres::start(EmbeddedOptions::default()).await?;
            println!(
                "started an embedded PostgreSQL in {}",
                server.data_dir().display()
            );
            (server.url("postgres"), Some(server))
        }
    };
    let store = SharedSchemaStore::connect(
        &url,
        SharedSchemaOptions {
            migrations: tenancy_example::migrations(),
            ..SharedSchemaOptions::default()
        },
    )
    .await
    .with_context(|| "connecting (set DATABASE_URL to a PostgreSQL you can create tables in)")?;

    let mut first_project = None;
    for (slug, project, titles) in [
        ("acme", "Rocket", ["Design", "Build", "Launch"]),
        ("globex", "Volcano lair", ["Dig", "Decorate", "Move in"]),
    ] {
        let tenant = store
            .create_tenant(NewTenant::new(Slug::parse(slug)?, slug))
            .await?;
        let scope = store.scope(&tenant).await?;
        let p = projects::create(&scope, NewProject::named(project)).await?;
        for (i, title) in titles.iter().enumerate() {
            let t = tasks::create(
                &scope,
                p.id,
                NewTask {
                    title: (*title).into(),
                },
            )
            .await?;
            if i == 0 {
                tasks::update(
                    &scope,
                    t.id,
                    TaskPatch {
                        title: None,
                        done: Some(true),
                    },
                )
                .await?;
            }
        }
        scope.commit().await?;
        println!(
            "tenant {slug} ({}) created project {:?} with {} tasks",
            tenant.id,
            project,
            titles.len()
        );
        first_project.get_or_insert(p.id);
    }

    for slug in ["acme", "globex"] {
        let tenant = store.tenant_by_slug(&Slug::parse(slug)?).await?;
        let scope = store.scope(&tenant).await?;
        for s in projects::summary(&scope, PageRequest::default())
            .await?
            .items
        {
            println!(
                "{slug} sees: {} (open {}, done {})",
                s.name, s.open_tasks, s.done_tasks
            );
        }
        if let Some(id) = first_project.filter(|_| slug == "globex") {
            match projects::get(&scope, id).await {
                Err(Error::NotFound(_)) => {
                    println!("globex asking for acme's project {id}: not found")
                }
                other => anyhow::bail!("isolation broken: {other:?}"),
            }
        }
        scope.commit().await?;
    }

    println!("\nwhere the rows live (one shared table, told apart by tenant_id):");
    // The catalog through the store; the shared table counted directly, as an operator would.
    for tenant in store.list_tenants(PageRequest::default()).await?.items {
        let n: i64 = store
            .connection(tenancy_core::plumbing::StrategyDoor)
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT count(*) AS n FROM public.projects WHERE tenant_id = $1",
                [tenant.id.as_uuid().into()],
            ))
            .await?
            .map(|r| r.try_get("", "n"))
            .transpose()?
            .unwrap_or(0);
        println!(
            "  public.projects: {n} row(s) with tenant_id of {}",
            tenant.slug
        );
    }

    if let Some(server) = embedded {
        server.stop().await?;
    }
    Ok(())
}
