//! The `serve` command: finish what a stopped process left, then serve the HTTP API, telling
//! the learner where it is and writing the files psql and the book's commands read.

use anyhow::{Context, Result};

use crate::settings::Settings;
use crate::startup::{Application, Backend, admin_token};

/// Writes `content` to `path`, readable by its owner only, replacing what was there.
fn replace_private(path: &std::path::Path, content: &str) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    tenancy_core::embedded::write_private(path, content)
}

pub(super) async fn serve(
    settings: &Settings,
    backend: &Backend,
    strategy: tenancy_core::Strategy,
    database_url: &str,
) -> Result<()> {
    if let Some(mover) = &backend.mover {
        let resumed = mover.resume().await?;
        if resumed > 0 {
            eprintln!("tenancy-demo: {resumed} interrupted moves rolled back or finished");
        }
    }
    // On a Citus cluster: node moves a stopped process left, finished.
    let resumed = backend.store.resume_node_moves().await?;
    if !resumed.is_empty() {
        eprintln!(
            "tenancy-demo: {} interrupted node moves finished",
            resumed.len()
        );
    }
    backend.ensure_static_tenants(settings).await?;
    let first = if settings.sample_data {
        backend.first_run().await?
    } else {
        None
    };
    let (admin, new_admin) = admin_token(settings)?;
    let app = Application::build(settings, backend, &admin)?;
    let base = app.base_url();
    // For psql and the book's commands: where the database is, and the sample owner's token.
    std::fs::create_dir_all(&settings.data_dir)?;
    let url_file = settings.data_dir.join("database-url");
    replace_private(&url_file, database_url)
        .with_context(|| format!("writing {}", url_file.display()))?;
    if let Some(first) = &first {
        let token_file = settings.data_dir.join("sample-token");
        replace_private(&token_file, &first.token)
            .with_context(|| format!("writing {}", token_file.display()))?;
    }
    println!("tenancy-demo: strategy {strategy}, listening on {base}");
    println!("  API page: {base}/docs/   explorer: {base}/explorer   OpenAPI: {base}/openapi.json");
    println!(
        "  psql: psql \"$(cat {})\"   metrics: {base}/metrics",
        url_file.display()
    );
    if new_admin {
        println!(
            "  admin token (saved in {}): {admin}",
            settings.data_dir.join("admin-token").display()
        );
    }
    if let Some(first) = first {
        println!(
            "first run: created tenant {:?}, user demo@example.com (owner) and a token (saved \
             in {}). Try:",
            first.tenant,
            settings.data_dir.join("sample-token").display()
        );
        println!(
            "  curl -H 'Authorization: Bearer {}' {base}/t/{}/api/projects",
            first.token, first.tenant
        );
    }
    app.run_until_stopped().await?;
    eprintln!("tenancy-demo: stopped");
    Ok(())
}
