//! `harness verify [--repair]`: check every run folder of the store against the checksums
//! its status recorded (every byte, checkpoints included) and say what is corrupt; with
//! `--repair`, set the files of each corrupt run aside (`corrupt-<time>/` in its folder) so
//! that the next `harness run` redoes it. Runs another live process holds are skipped.

use super::args::GlobalArgs;
use crate::error::Result;
use crate::store::artefacts::{folder_problems, quarantine, Depth};
use crate::store::claim::{inspect, try_claim, Attempt, ClaimSettings, ClaimView};
use crate::store::run_dir::RunDir;

pub(super) fn cmd_verify(g: &GlobalArgs, repair: bool) -> Result<u8> {
    let claims = ClaimSettings::from_env()?;
    let mut dirs: Vec<RunDir> = std::fs::read_dir(&g.results_dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| RunDir { path: e.path() })
                .filter(|d| d.status_path().exists() || d.spec_path().exists())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort_by(|a, b| a.path.cmp(&b.path));
    let (mut corrupt, mut repaired, mut busy) = (0, 0, 0);
    for dir in &dirs {
        let id = dir
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // A live run rewrites its files as it goes: not ours to judge.
        if let ClaimView::Live(h) = inspect(&dir.path, &claims) {
            busy += 1;
            println!("{id}  skipped: running ({})", h.describe());
            continue;
        }
        let bad = folder_problems(dir, Depth::Full);
        if bad.is_empty() {
            continue;
        }
        corrupt += 1;
        for b in &bad {
            println!("{id}  CORRUPT  {b}");
        }
        if !repair {
            continue;
        }
        match try_claim(&dir.path, "verify --repair", &claims)? {
            Attempt::Claimed { claim, .. } => {
                let to = quarantine(dir)?;
                drop(claim);
                repaired += 1;
                println!(
                    "{id}  set aside into {}; `harness run` redoes it",
                    to.display()
                );
            }
            Attempt::Busy(h) => {
                println!("{id}  not repaired: {} started it meanwhile", h.describe())
            }
        }
    }
    println!(
        "{} run folders checked: {} corrupt{}{}",
        dirs.len(),
        corrupt,
        if repair {
            format!(", {repaired} set aside")
        } else {
            String::new()
        },
        if busy > 0 {
            format!(", {busy} running (not checked)")
        } else {
            String::new()
        }
    );
    Ok(if corrupt > 0 && !repair { 1 } else { 0 })
}
