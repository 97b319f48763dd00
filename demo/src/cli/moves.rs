//! `tenants move`: a live tenant to another placement (hybrid) or to another worker of a
//! Citus cluster, run here with its progress on a bar.

use anyhow::Result;
use tenancy_core::{MoveStep, PlacementKind, Slug};

use super::progress::{progress, rows_bar};
use crate::startup::Backend;

pub(super) async fn move_tenant(
    backend: &Backend,
    slug: &str,
    to: &str,
    server: Option<String>,
) -> Result<()> {
    let Some(mover) = &backend.mover else {
        anyhow::bail!(
            "strategy {} moves no tenant: run with --strategy hybrid",
            backend.store.strategy()
        );
    };
    let to: PlacementKind = to.parse()?;
    let t = backend.store.tenant_by_slug(&Slug::parse(slug)?).await?;
    let job = mover.start(t.id, to, server).await?;
    eprintln!("moving {} (job {})", t.slug, job.id);
    let (bar, tell) = rows_bar("copying");
    let moved = mover.run(t.id, &tell).await;
    bar.finish_and_clear();
    let moved = moved?;
    eprintln!("moved {} to {}", moved.slug, moved.placement);
    Ok(())
}

/// A node move on a Citus cluster, its steps on a bar (`started`, `isolated` in shared
/// tables, `moved`, `done`) read from its job while it runs.
pub(super) async fn move_to_node(backend: &Backend, slug: &str, node: &str) -> Result<()> {
    const STEPS: [MoveStep; 4] = [
        MoveStep::Started,
        MoveStep::Isolated,
        MoveStep::Moved,
        MoveStep::Done,
    ];
    let store = &backend.store;
    let t = store.tenant_by_slug(&Slug::parse(slug)?).await?;
    let job = store.start_node_move(&t, node).await?;
    eprintln!("moving {} to node {node} (job {})", t.slug, job.id);
    let bar = progress(STEPS.len() as u64 - 1, MoveStep::Started.as_str());
    let mut shown: Option<MoveStep> = None;
    let run = store.run_node_move(t.id);
    tokio::pin!(run);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    let done = loop {
        tokio::select! {
            done = &mut run => break done,
            _ = tick.tick() => {
                let Ok(now) = store.job(job.id).await else { continue };
                if shown != Some(now.step) {
                    if bar.is_hidden() {
                        eprintln!("{}: {}", t.slug, now.step);
                    }
                    let at = STEPS.iter().position(|s| *s == now.step).unwrap_or(0);
                    bar.set_position(at as u64);
                    bar.set_message(now.step.as_str());
                    shown = Some(now.step);
                }
            }
        }
    };
    bar.finish_and_clear();
    let done = done?;
    if done.step != MoveStep::Done {
        anyhow::bail!(
            "the move of {} ended {}: {}",
            t.slug,
            done.step,
            done.error.unwrap_or_default()
        );
    }
    eprintln!("moved {} to node {node}", t.slug);
    Ok(())
}
