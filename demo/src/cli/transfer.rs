//! `tenants export` and `tenants import`: one tenant's rows to a file and back, with a bar
//! over the rows.

use anyhow::{Context, Result};
use tenancy_core::{NewTenant, PlacementKind, Slug};

use super::progress::rows_bar;
use crate::startup::Backend;

// ANCHOR: export
pub(super) async fn export(backend: &Backend, slug: &str, out: &std::path::Path) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let t = backend.store.tenant_by_slug(&Slug::parse(slug)?).await?;
    // Written beside the target and renamed when complete: a failed export leaves no file
    // that looks like one.
    let partial = out.with_extension("partial");
    let mut file = tokio::io::BufWriter::new(
        tokio::fs::File::create(&partial)
            .await
            .with_context(|| format!("creating {}", partial.display()))?,
    );
    let (bar, tell) = rows_bar("exporting");
    let manifest = backend.store.export(&t, &mut file, &tell).await;
    bar.finish_and_clear();
    let manifest = manifest?;
    file.shutdown().await?;
    tokio::fs::rename(&partial, out).await?;
    eprintln!(
        "exported {} ({} rows in {} tables, schema version {}) to {}",
        t.slug,
        manifest.rows(),
        manifest.tables.len(),
        manifest.schema_version,
        out.display()
    );
    println!("{}", serde_json::to_string_pretty(&manifest)?);
    Ok(())
}
// ANCHOR_END: export

pub(super) async fn import(
    backend: &Backend,
    file: &std::path::Path,
    slug: Option<String>,
    name: Option<String>,
    placement: Option<String>,
) -> Result<()> {
    let mut input = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("opening {}", file.display()))?;
    let manifest = tenancy_core::plumbing::transfer::check_file(&mut input).await?;
    let slug = Slug::parse(slug.as_deref().unwrap_or(&manifest.slug))?;
    let mut new = NewTenant::new(slug, name.unwrap_or(manifest.name.clone()));
    new.placement = placement
        .as_deref()
        .map(str::parse::<PlacementKind>)
        .transpose()?;
    let (bar, tell) = rows_bar("importing");
    let t = backend.store.import(new, &mut input, &tell).await;
    bar.finish_and_clear();
    let t = t?;
    eprintln!(
        "imported {} rows into tenant {} ({})",
        manifest.rows(),
        t.slug,
        t.placement
    );
    Ok(())
}
