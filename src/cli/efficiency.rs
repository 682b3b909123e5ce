//! `harness efficiency FILE`: the efficiency table of an experiment under one profile. It
//! needs no data (the networks are built from the profile), so a paper profile gets its
//! parameter, MAC and cost-model columns on any machine; the speed columns come from the
//! profile's finished runs, the measured EKS forms from a `harness bench eks --json` file.

use std::path::Path;

use super::args::GlobalArgs;
use super::experiment::load_registry;
use crate::error::{Error, Result};
use crate::method;
use crate::report::efficiency::{efficiency, render_markdown, EksMeasured};
use crate::spec::validate;
use crate::util::fs::{read_json, write_atomic};

/// Step seconds per form, summed over the shapes, of a `harness bench eks --json` file.
fn read_eks_bench(path: &Path) -> Result<EksMeasured> {
    let bad = |why: &str| {
        Error::input(format!(
            "{}: not a `harness bench eks --json` file ({why}); write one with `harness bench eks --json {}`",
            path.display(),
            path.display()
        ))
    };
    let v: serde_json::Value = read_json(path)?;
    let (Some(opts), Some(results)) = (v.get(0), v.get(1).and_then(|r| r.as_array())) else {
        return Err(bad("expected [options, results]"));
    };
    let field = |k: &str| opts.get(k).map(|x| x.to_string()).unwrap_or_default();
    let mut forms: Vec<(String, f64)> = Vec::new();
    for r in results {
        let seconds = r
            .get("seconds")
            .and_then(|s| s.as_array())
            .ok_or_else(|| bad("a result has no `seconds`"))?;
        for pair in seconds {
            let (Some(name), Some(secs)) = (
                pair.get(0).and_then(|n| n.as_str()),
                pair.get(1).and_then(|s| s.as_f64()),
            ) else {
                return Err(bad("a `seconds` entry is not [form, seconds]"));
            };
            match forms.iter_mut().find(|(n, _)| n == name) {
                Some(f) => f.1 += secs,
                None => forms.push((name.to_string(), secs)),
            }
        }
    }
    Ok(EksMeasured {
        source: path.display().to_string(),
        description: format!(
            "batch {} over {} tasks, rank {}, {} threads, {}, {} shapes of the ShuffleNetV2 1.0× student",
            field("batch"),
            field("tasks"),
            field("rank"),
            field("threads"),
            opts.get("instruction_set")
                .and_then(|v| v.as_str())
                .unwrap_or("instruction set not recorded"),
            results.len()
        ),
        forms,
    })
}

pub(super) fn cmd_efficiency(
    g: &GlobalArgs,
    file: &Path,
    profile: Option<&str>,
    eks_bench: Option<&Path>,
    reports_dir: &Path,
) -> Result<u8> {
    let registry = load_registry(&g.registry)?;
    let exp = validate::load(file, &registry, &method::CATALOG)?;
    let (profile, _) = exp.select_profile(profile)?;
    let e = efficiency(&exp, &profile, &registry, &g.results_dir)?;
    let default_bench = g.results_dir.join("bench").join("eks.json");
    let measured = match eks_bench {
        Some(p) => Some(read_eks_bench(p)?),
        None if default_bench.is_file() => Some(read_eks_bench(&default_bench)?),
        None => None,
    };
    let text = render_markdown(&e, &method::display_name, measured.as_ref());
    print!("{text}");
    let path = reports_dir
        .join(&exp.name)
        .join(format!("efficiency_{profile}.md"));
    write_atomic(&path, text.as_bytes())?;
    eprintln!("wrote {}", path.display());
    Ok(0)
}
