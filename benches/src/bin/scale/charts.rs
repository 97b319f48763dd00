//! The charts: an SVG figure per measure and tenant count, drawn from the result files alone
//! (`--charts-only` redraws them without measuring).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::results::Results;

/// Each strategy's colour, the same in every chart (and in the book's diagrams' legend).
fn colour(strategy: &str) -> plotters::style::RGBColor {
    use plotters::style::RGBColor;
    match strategy {
        "shared-schema" => RGBColor(0x3b, 0x5b, 0xa5),
        "separate-schema" => RGBColor(0xd9, 0x7b, 0x1e),
        "separate-db" => RGBColor(0x2e, 0x8b, 0x57),
        _ => RGBColor(0x88, 0x88, 0x88),
    }
}

/// The physical limit's bars (psql running the same statements): grey.
const LIMIT: plotters::style::RGBColor = plotters::style::RGBColor(0x9a, 0x9a, 0x9a);

/// One measure the charts show: a figure per tenant count.
struct Measure {
    file: &'static str,
    title: &'static str,
    unit: &'static str,
    /// What the figure is: which statistic of how many runs.
    what: fn(&Results) -> String,
    metric: fn(&Results) -> Option<f64>,
    /// The same work done by psql, where the run measured it (separate-schema).
    limit: Option<fn(&Results) -> Option<f64>>,
}

const MEASURES: &[Measure] = &[
    Measure {
        file: "tenants-per-second",
        title: "Tenants created per second",
        unit: "tenants/s, higher is better",
        what: |r| {
            format!(
                "one run: {} tenants ({} projects each), 4 at a time",
                label(r.tenants as f64),
                r.projects_per_tenant
            )
        },
        metric: |r| Some(r.tenants_created_per_second),
        limit: None,
    },
    Measure {
        file: "create-one",
        title: "One more tenant, created alone",
        unit: "ms, lower is better",
        what: |r| format!("the mean of one run's creations, {} present", r.tenants),
        metric: |r| Some(r.create_one_ms),
        limit: Some(|r| r.psql_create_one_ms),
    },
    Measure {
        file: "migrate-one-column",
        title: "migrate_all, one new column",
        unit: "ms, lower is better",
        what: |r| match r.rounds {
            // Files from before `--rounds` record none: one run.
            0 | 1 => "one run".into(),
            n => format!("the median of {n} runs"),
        },
        metric: |r| Some(r.migrate_one_column_ms),
        limit: Some(|r| r.psql_add_column_ms),
    },
    Measure {
        file: "read-p99",
        title: "Scoped read under load, p99",
        unit: "µs, lower is better",
        what: |r| {
            format!(
                "the p99 of {} reads by {} at once, one run",
                label(r.reads as f64),
                r.concurrency
            )
        },
        metric: |r| Some(r.read_p99_us),
        limit: None,
    },
    Measure {
        file: "backend-memory",
        title: "Server backend memory after the load",
        unit: "MB (PSS), lower is better",
        what: |_| "one run, summed over the store's backends".into(),
        metric: |r| r.backend_memory_mb,
        limit: None,
    },
    Measure {
        file: "disk-per-tenant",
        title: "Disk per tenant",
        unit: "kB, lower is better",
        what: |_| "one run: the databases' size over the tenants".into(),
        metric: |r| Some(r.disk_per_tenant_kb),
        limit: None,
    },
];

/// A value as a bar's label: three significant digits at most, thousands grouped.
fn label(v: f64) -> String {
    let digits = if v >= 100.0 || v == 0.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{v:.digits$}");
    let (int, frac) = text
        .split_once('.')
        .map_or((text.as_str(), ""), |(i, f)| (i, f));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if frac.is_empty() {
        grouped
    } else {
        format!("{grouped}.{frac}")
    }
}

/// One figure: `measure` at one tenant count, a bar per strategy in its colour (and psql's
/// bar where the run measured the physical limit), each with its value, on a logarithmic
/// axis when the values span more than a decade.
fn chart(results: &[&Results], out: &Path, measure: &Measure) -> Result<Option<PathBuf>> {
    use plotters::prelude::*;
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    let mut bars: Vec<(String, f64, RGBColor)> = Vec::new();
    for r in results {
        if let Some(v) = (measure.metric)(r) {
            bars.push((r.label(), v, colour(&r.strategy)));
        }
        if let Some(v) = measure.limit.and_then(|limit| limit(r)) {
            bars.push((format!("psql ({})", r.label()), v, LIMIT));
        }
    }
    let Some(first) = results.first() else {
        return Ok(None);
    };
    if bars.is_empty() {
        return Ok(None);
    }
    let top = bars.iter().map(|b| b.1).fold(f64::MIN, f64::max);
    let low = bars.iter().map(|b| b.1).fold(f64::MAX, f64::min);
    let path = out.join(format!("{}-{}.svg", measure.file, first.tenants));
    let file = path.clone();
    let root = SVGBackend::new(&file, (640, 404)).into_drawing_area();
    root.fill(&WHITE)?;
    let caption = format!(
        "{}, {} tenants ({})",
        measure.title,
        label(first.tenants as f64),
        measure.unit
    );
    // What each bar is, said once for the strategies it is the same for.
    let mut whats: Vec<(String, Vec<&str>)> = Vec::new();
    for r in results {
        let what = (measure.what)(r);
        match whats.iter_mut().find(|(w, _)| *w == what) {
            Some((_, strategies)) => strategies.push(&r.strategy),
            None => whats.push((what, vec![&r.strategy])),
        }
    }
    let what = if whats.len() == 1 {
        whats[0].0.clone()
    } else {
        whats
            .iter()
            .map(|(w, s)| format!("{}: {w}", s.join(", ")))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let mut dates: Vec<&str> = results.iter().map(|r| r.date.as_str()).collect();
    dates.sort();
    dates.dedup();
    let note = format!(
        "{}, {}, PostgreSQL {}; from scale-*-{}.json",
        dates.join(" and "),
        first.machine,
        first.postgres.split(' ').next().unwrap_or(""),
        first.tenants
    );
    let (plot, foot) = root.split_vertically(368);
    foot.draw(&Text::new(what, (12, 2), ("sans-serif", 11).into_font()))?;
    foot.draw(&Text::new(note, (12, 16), ("sans-serif", 11).into_font()))?;
    let mut builder = ChartBuilder::on(&plot);
    builder
        .caption(&caption, ("sans-serif", 15))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64);
    let x = (0..bars.len().saturating_sub(1)).into_segmented();
    let labels = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) => bars.get(*i).map(|b| b.0.clone()).unwrap_or_default(),
        _ => String::new(),
    };
    let value_style = ("sans-serif", 12)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    if top / low.max(f64::MIN_POSITIVE) > 10.0 && low > 0.0 {
        // Log axis: from the decade below the smallest bar to above the largest.
        let floor = 10f64.powf(low.log10().floor());
        let ceil = 10f64.powf((top * 3.0).log10().ceil());
        let mut c = builder.build_cartesian_2d(x, (floor..ceil).log_scale())?;
        c.configure_mesh()
            .disable_x_mesh()
            .x_labels(bars.len())
            .x_label_formatter(&labels)
            .y_label_formatter(&|v| label(*v))
            .y_desc("log scale")
            .draw()?;
        c.draw_series(bars.iter().enumerate().map(|(i, (_, v, col))| {
            let mut bar = Rectangle::new(
                [
                    (SegmentValue::Exact(i), floor),
                    (SegmentValue::Exact(i + 1), *v),
                ],
                col.filled(),
            );
            bar.set_margin(0, 0, 12, 12);
            bar
        }))?;
        c.draw_series(bars.iter().enumerate().map(|(i, (_, v, _))| {
            Text::new(
                label(*v),
                (SegmentValue::CenterOf(i), *v),
                value_style.clone(),
            )
        }))?;
    } else {
        let mut c = builder.build_cartesian_2d(x, 0.0..(top * 1.15).max(1e-9))?;
        c.configure_mesh()
            .disable_x_mesh()
            .x_labels(bars.len())
            .x_label_formatter(&labels)
            .y_label_formatter(&|v| label(*v))
            .draw()?;
        c.draw_series(bars.iter().enumerate().map(|(i, (_, v, col))| {
            let mut bar = Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0.0),
                    (SegmentValue::Exact(i + 1), *v),
                ],
                col.filled(),
            );
            bar.set_margin(0, 0, 12, 12);
            bar
        }))?;
        c.draw_series(bars.iter().enumerate().map(|(i, (_, v, _))| {
            Text::new(
                label(*v),
                (SegmentValue::CenterOf(i), *v),
                value_style.clone(),
            )
        }))?;
    }
    root.present()?;
    Ok(Some(path))
}

/// A figure per measure and tenant count from every result file in `out`, as
/// `<measure>-<tenants>.svg`.
pub(crate) fn charts(out: &Path) -> Result<Vec<PathBuf>> {
    let mut results: Vec<Results> = Vec::new();
    for entry in std::fs::read_dir(out)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path)?;
            results.push(
                serde_json::from_str(&text)
                    .with_context(|| format!("reading {}", path.display()))?,
            );
        }
    }
    let order = |s: &str| {
        tenancy_benches::STRATEGIES
            .iter()
            .position(|x| x.as_str() == s)
            .unwrap_or(usize::MAX)
    };
    results.sort_by_key(|r| (r.tenants, order(&r.strategy), r.cluster.clone()));
    let mut sizes: Vec<usize> = results.iter().map(|r| r.tenants).collect();
    sizes.dedup();
    let mut written = Vec::new();
    for n in sizes {
        let at: Vec<&Results> = results.iter().filter(|r| r.tenants == n).collect();
        for measure in MEASURES {
            written.extend(chart(&at, out, measure)?);
        }
    }
    Ok(written)
}
