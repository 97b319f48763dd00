//! The `tenants` commands: create, list and delete a tenant here; an export, an import or a
//! move is handed to its own file.

use anyhow::Result;
use tenancy_core::{NewTenant, PageRequest, PlacementKind, Slug};

use super::args::TenantsCommand;
use super::{moves, transfer};
use crate::settings::Settings;
use crate::startup::Backend;

pub(super) async fn tenants(
    settings: &Settings,
    backend: &Backend,
    cmd: TenantsCommand,
) -> Result<()> {
    let statics = crate::statics::StaticTenants::new(&settings.tenants);
    match cmd {
        TenantsCommand::Create {
            slug,
            name,
            server,
            placement,
        } => {
            let slug = Slug::parse(&slug)?;
            let mut new = NewTenant::new(slug.clone(), name.unwrap_or_else(|| slug.to_string()));
            new.server = server;
            new.placement = placement
                .as_deref()
                .map(str::parse::<PlacementKind>)
                .transpose()?;
            let t = backend.store.create_tenant(new).await?;
            println!(
                "{} {} {}",
                t.slug,
                t.state.as_str(),
                serde_json::to_string(&t.placement)?
            );
        }
        TenantsCommand::List => {
            // Static tenants first, apart from the customers'.
            let mut all = Vec::new();
            let mut page = PageRequest::first(500);
            loop {
                let got = backend.store.list_tenants(page).await?;
                all.extend(got.items);
                match got.next {
                    Some(next) => page.after = Some(next),
                    None => break,
                }
            }
            let (fixed, customers): (Vec<_>, Vec<_>) = all
                .into_iter()
                .partition(|t| statics.purpose(t.slug.as_str()).is_some());
            for (heading, group) in [("static", fixed), ("dynamic", customers)] {
                println!("{heading} tenants: {}", group.len());
                for t in &group {
                    let purpose = statics
                        .purpose(t.slug.as_str())
                        .map(|p| format!("\tpurpose {}", p.as_str()))
                        .unwrap_or_default();
                    let suspended = if t.suspended_at.is_some() {
                        "\tsuspended"
                    } else {
                        ""
                    };
                    println!(
                        "  {}\t{}\t{}\t{}{purpose}{suspended}",
                        t.slug,
                        t.state.as_str(),
                        t.name,
                        serde_json::to_string(&t.placement)?
                    );
                }
            }
        }
        TenantsCommand::Delete { slug } => {
            statics.refuse(&slug, "deleted")?;
            let t = backend.store.tenant_by_slug(&Slug::parse(&slug)?).await?;
            backend.store.delete_tenant(t.id).await?;
            println!("deleted {slug}");
        }
        TenantsCommand::Run {
            task,
            run,
            only,
            per_server,
            days,
        } => super::run::run(backend, &task, run, &only, per_server, days).await?,
        TenantsCommand::Suspend { slug } => {
            statics.refuse(&slug, "suspended")?;
            let t = backend.store.tenant_by_slug(&Slug::parse(&slug)?).await?;
            backend.store.suspend(t.id).await?;
            println!("suspended {slug}: its data stays; `tenants resume {slug}` serves it again");
        }
        TenantsCommand::Resume { slug } => {
            let t = backend.store.tenant_by_slug(&Slug::parse(&slug)?).await?;
            backend.store.resume(t.id).await?;
            println!("resumed {slug}");
        }
        TenantsCommand::Plan { slug, plan } => {
            let plans = settings.plans()?;
            let plan = (plan != "default").then_some(plan);
            if let Some(name) = &plan {
                plans.get(name)?;
            }
            let t = backend.store.tenant_by_slug(&Slug::parse(&slug)?).await?;
            backend.store.set_plan(t.id, plan.as_deref()).await?;
            let on = plan.unwrap_or_else(|| format!("{} (the default)", plans.default_plan().name));
            println!("{slug} is on plan {on}");
        }
        TenantsCommand::Usage { slug } => {
            let t = backend.store.tenant_by_slug(&Slug::parse(&slug)?).await?;
            let usage = backend.store.usage(&t).await?;
            let plan = settings.plans()?.of(&t).clone();
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "slug": t.slug,
                    "plan": plan,
                    "storage": usage.storage,
                    "citus": usage.citus,
                }))?
            );
        }
        TenantsCommand::Export { slug, out } => transfer::export(backend, &slug, &out).await?,
        TenantsCommand::Import {
            file,
            slug,
            name,
            placement,
        } => transfer::import(backend, &file, slug, name, placement).await?,
        TenantsCommand::Move {
            slug,
            to,
            server,
            node,
        } => {
            statics.refuse(&slug, "moved")?;
            match (node, to) {
                (Some(node), _) => moves::move_to_node(backend, &slug, &node).await?,
                (None, Some(to)) => moves::move_tenant(backend, &slug, &to, server).await?,
                (None, None) => anyhow::bail!("say where to: --to PLACEMENT or --node HOST:PORT"),
            }
        }
    }
    Ok(())
}
