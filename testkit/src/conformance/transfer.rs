//! Per-tenant export and import: a round trip gives the same bytes, and a file that is
//! corrupt, cut short or of another version is refused before anything is written.

use std::io::Cursor;

use anyhow::{Result, ensure};
use tenancy_core::Manifest;
use tenancy_core::plumbing::StrategyDoor;
use tenancy_core::plumbing::catalog;
use tenancy_core::{Error, NewTenant, Tenant, TenantStore};
use tenancy_example::projects::{self, NewProject};
use tenancy_example::{seed, tasks};

use super::support::{all_projects, rows_anywhere, slug, tenant};
use super::{Harness, StoreConfig};

/// A tenant with rows of every kind a column can hold here: text with quotes, newlines and
/// non-ASCII, done and open tasks.
async fn filled(store: &dyn TenantStore, name: &str) -> Result<Tenant> {
    let t = tenant(store, name).await?;
    let scope = store.scope(&t).await?;
    let ps = seed::projects_with_tasks(&scope, "p", 3, 4).await?;
    let mut odd = NewProject::named("Ünïcødé 'quoted' \"name\"");
    odd.description = "line one\nline two\ttabbed \\ backslash".into();
    let p = projects::create(&scope, odd).await?;
    let t1 = tasks::create(&scope, p.id, tasks::NewTask::titled("first")).await?;
    tasks::update(
        &scope,
        t1.id,
        tasks::TaskPatch {
            done: Some(true),
            ..Default::default()
        },
    )
    .await?;
    ensure!(ps.len() == 3);
    scope.commit().await?;
    Ok(t)
}

async fn export(store: &dyn TenantStore, t: &Tenant) -> Result<(Vec<u8>, Manifest)> {
    let mut out = Vec::new();
    let manifest = store.export(t, &mut out, &|_| {}).await?;
    Ok((out, manifest))
}

/// Export, import under another slug, export again: every table's rows, row count and
/// checksum are the same; the source is untouched.
pub async fn export_import_round_trips(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig::default()).await?;
    let acme = filled(&*store, "acme").await?;
    let (file, first) = export(&*store, &acme).await?;
    ensure!(
        first.rows() == 3 + 12 + 1 + 1,
        "exported {} rows",
        first.rows()
    );
    ensure!(
        first
            .tables
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            == ["projects", "tasks"]
    );
    let copy = store
        .import(
            NewTenant::new(slug("acme-restored"), "Acme restored"),
            &mut Cursor::new(file),
            &|_| {},
        )
        .await?;
    ensure!(copy.id != acme.id && copy.slug.as_str() == "acme-restored");
    let (_, again) = export(&*store, &copy).await?;
    ensure!(
        again.tables == first.tables,
        "the restored tenant's tables differ:\n{:?}\n{:?}",
        first.tables,
        again.tables
    );
    let names = |ps: Vec<projects::Project>| {
        let mut n: Vec<String> = ps.into_iter().map(|p| p.name).collect();
        n.sort();
        n
    };
    ensure!(
        names(all_projects(&*store, &copy).await?) == names(all_projects(&*store, &acme).await?)
    );
    ensure!(
        rows_anywhere(h, acme.id).await? == 17,
        "the source keeps its rows"
    );
    ensure!(
        rows_anywhere(h, copy.id).await? == 17,
        "the copy has them all"
    );
    Ok(())
}

/// Rebuilds an export file from `file` with the manifest changed by `edit`.
fn with_manifest(file: &[u8], edit: impl Fn(&mut serde_json::Value)) -> Result<Vec<u8>> {
    let tail = b"TENANCY-END\n".len() + 8;
    let len_at = file.len() - tail;
    let n = u64::from_be_bytes(file[len_at..len_at + 8].try_into()?) as usize;
    let mut manifest: serde_json::Value = serde_json::from_slice(&file[len_at - n..len_at])?;
    edit(&mut manifest);
    let json = serde_json::to_vec(&manifest)?;
    let mut out = file[..len_at - n].to_vec();
    out.extend_from_slice(&json);
    out.extend_from_slice(&(json.len() as u64).to_be_bytes());
    out.extend_from_slice(b"TENANCY-END\n");
    Ok(out)
}

/// A corrupted, truncated, padded or other-version file is refused with a clear error, and
/// nothing is written: no tenant, no row.
pub async fn corrupted_export_is_refused(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig::default()).await?;
    let acme = filled(&*store, "acme").await?;
    let (file, _) = export(&*store, &acme).await?;
    let before = catalog::count(store.placements(StrategyDoor).catalog()).await?;
    let mut flipped = file.clone();
    let mid = 17 + (file.len() - 17) / 3;
    flipped[mid] ^= 0x20;
    let mut padded = file.clone();
    padded.splice(17..17, 0u32.to_be_bytes());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("a byte flipped", flipped, "checksum"),
        (
            "cut at the end",
            file[..file.len() - 5].to_vec(),
            "truncated",
        ),
        (
            "cut in the middle",
            file[..file.len() / 2].to_vec(),
            "truncated",
        ),
        ("empty", Vec::new(), "truncated"),
        (
            "not an export",
            b"hello, world, this is not an export file at all".to_vec(),
            "not a tenancy export",
        ),
        ("extra bytes", padded, ""),
        (
            "another schema version",
            with_manifest(&file, |m| m["schema_version"] = serde_json::json!(999))?,
            "schema version",
        ),
        (
            "a row count that lies",
            with_manifest(&file, |m| m["tables"][1]["rows"] = serde_json::json!(1))?,
            "rows",
        ),
    ];
    for (what, bytes, says) in cases {
        let s = slug("restored");
        let err = store
            .import(
                NewTenant::new(s.clone(), "x"),
                &mut Cursor::new(bytes),
                &|_| {},
            )
            .await
            .err();
        ensure!(
            matches!(err, Some(Error::BadExport(ref m)) if m.contains(says)),
            "{what}: expected a refusal naming {says:?}, got {err:?}"
        );
        ensure!(
            store.tenant_by_slug(&s).await.is_err(),
            "{what}: a tenant was created"
        );
        ensure!(
            catalog::count(store.placements(StrategyDoor).catalog()).await? == before,
            "{what}: the catalog changed"
        );
    }
    ensure!(
        rows_anywhere(h, acme.id).await? == 17,
        "the source keeps its rows"
    );
    Ok(())
}
