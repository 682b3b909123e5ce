//! `harness baseline save` and `harness regress`: the two halves of a nightly sweep's check
//! (README "Nightly regression sweeps").

use std::path::Path;

use super::args::{BaselineCommand, GlobalArgs, RegressFormat, RegressQuantity};
use crate::error::{Error, Result};
use crate::report::regression::{compare, render_json, render_markdown, Settings};
use crate::store::baseline::{find_manifest, load, only_experiment, read_sweep, save};
use crate::util::fs::write_atomic;

pub fn cmd_baseline(g: &GlobalArgs, what: &BaselineCommand) -> Result<u8> {
    match what {
        BaselineCommand::Save {
            name,
            experiment,
            profile,
            force,
        } => {
            let experiment = match experiment {
                Some(e) => e.clone(),
                None => only_experiment(&g.results_dir)?,
            };
            let manifest = find_manifest(&g.results_dir, &experiment, profile.as_deref())?;
            let sweep = read_sweep(&g.results_dir, &manifest)?;
            let saved = save(&g.results_dir, name, &sweep, *force)?;
            println!(
                "saved baseline `{name}`: {} ({} runs, {} rows of their last epochs; experiment {experiment}, profile {}, data {})",
                saved.path.display(),
                saved.runs,
                saved.rows,
                manifest.profile,
                saved.data_kinds.join(" + ")
            );
            if saved.left_out > 0 {
                eprintln!(
                    "warning: --force: {} runs that are not done were left out",
                    saved.left_out
                );
            }
            Ok(0)
        }
    }
}

pub struct RegressArgs<'a> {
    pub baseline: &'a str,
    pub experiment: Option<&'a str>,
    pub format: RegressFormat,
    pub confidence: f64,
    pub min_accuracy_change: f64,
    pub min_speed_change: f64,
    pub only: Option<RegressQuantity>,
    pub reports_dir: &'a Path,
}

fn settings(a: &RegressArgs) -> Result<Settings> {
    if !(a.confidence > 0.0 && a.confidence < 1.0) {
        return Err(Error::input(format!(
            "--confidence {}: must be between 0 and 1 (e.g. 0.95)",
            a.confidence
        )));
    }
    for (flag, v) in [
        ("--min-accuracy-change", a.min_accuracy_change),
        ("--min-speed-change", a.min_speed_change),
    ] {
        if !(v.is_finite() && v > 0.0) {
            return Err(Error::input(format!(
                "{flag} {v}: must be a positive number"
            )));
        }
    }
    Ok(Settings {
        confidence: a.confidence,
        min_accuracy_points: a.min_accuracy_change,
        min_speed_fraction: a.min_speed_change / 100.0,
        accuracy: a.only != Some(RegressQuantity::Speed),
        speed: a.only != Some(RegressQuantity::Accuracy),
    })
}

pub fn cmd_regress(g: &GlobalArgs, a: &RegressArgs) -> Result<u8> {
    let settings = settings(a)?;
    let (path, rows) = load(&g.results_dir, a.baseline)?;
    let mut experiments: Vec<&str> = rows.iter().map(|r| r.experiment.as_str()).collect();
    experiments.sort_unstable();
    experiments.dedup();
    let [saved_for] = experiments[..] else {
        return Err(Error::input(format!(
            "baseline {} holds rows of several experiments ({}); it was not written by `harness baseline save`",
            path.display(),
            experiments.join(", ")
        )));
    };
    if let Some(e) = a.experiment {
        if e != saved_for {
            return Err(Error::input(format!(
                "baseline {} is of experiment `{saved_for}`, not `{e}`; compare `{e}` with a baseline saved from it (`harness baseline save NAME --experiment {e}`)",
                path.display()
            )));
        }
    }
    let mut profiles: Vec<&str> = rows.iter().map(|r| r.profile.as_str()).collect();
    profiles.sort_unstable();
    profiles.dedup();
    let profile = (profiles.len() == 1).then(|| profiles[0]);
    let manifest = find_manifest(&g.results_dir, saved_for, profile)?;
    let sweep = read_sweep(&g.results_dir, &manifest)?;
    let cmp = compare(path, &rows, &sweep, settings)?;
    let markdown = render_markdown(&cmp);
    let json = render_json(&cmp);
    print!(
        "{}",
        match a.format {
            RegressFormat::Markdown => &markdown,
            RegressFormat::Json => &json,
        }
    );
    // Both files whatever --format says: a CI artefact wants the page and the data.
    let dir = a.reports_dir.join(&cmp.experiment);
    let written = [
        (dir.join("regress.md"), markdown),
        (dir.join("regress.json"), json),
    ];
    for (path, text) in &written {
        write_atomic(path, text.as_bytes())?;
    }
    for w in &cmp.warnings {
        eprintln!("warning: {w}");
    }
    eprintln!(
        "wrote {} and {}",
        written[0].0.display(),
        written[1].0.display()
    );
    Ok(u8::from(cmp.regressed()))
}
