//! Checksums of a run's artefacts, recorded in its `status.json` whenever they are written
//! (every epoch and at the end), so that a truncated or bit-flipped file is detected and the
//! run redone instead of used. Parquet and safetensors have some checks of their own, not
//! over every byte; the sha256 covers all formats the same way.
//!
//! A plan checks the small files of every finished run (spec, metrics, task weights, CKA)
//! and the size of its checkpoint; the checkpoint's sha256 (up to hundreds of MB) is checked
//! where it is used (a teacher, a run fine-tuned, an export) and by `harness verify`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::claim::utc_timestamp;
use super::run_dir::RunDir;
use super::status::{now, Artefact, Status};
use crate::error::{Error, Result};
use crate::util::hash::hex;

/// The files of a run folder that results depend on.
pub const ARTEFACTS: [&str; 5] = [
    "spec.json",
    "metrics.parquet",
    "task_weights.parquet",
    "cka.parquet",
    "checkpoint.safetensors",
];
const CHECKPOINT: &str = "checkpoint.safetensors";

/// sha256 and size of a file, read in blocks.
pub fn digest(path: &Path) -> Result<Artefact> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        h.update(&buf[..n]);
    }
    Ok(Artefact {
        bytes,
        sha256: hex(&h.finalize()),
    })
}

/// The checksums of the artefacts present in `dir` now.
pub fn record(dir: &RunDir) -> Result<BTreeMap<String, Artefact>> {
    let mut out = BTreeMap::new();
    for name in ARTEFACTS {
        let p = dir.path.join(name);
        if p.is_file() {
            out.insert(name.to_string(), digest(&p)?);
        }
    }
    Ok(out)
}

/// How thoroughly to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Every file's sha256 but the checkpoint's, whose size only is compared.
    Plan,
    /// Every file's sha256.
    Full,
}

/// What is wrong with the recorded artefacts of `status` in `dir` (empty: nothing).
pub fn problems(dir: &RunDir, status: &Status, depth: Depth) -> Vec<String> {
    let mut out = Vec::new();
    if status.writing {
        // Killed while replacing an epoch's files: each is whole (atomic renames), the old
        // one or the new one, and the new ones have no checksum yet. The run resumes from
        // them, and loading them checks their structure.
        return out;
    }
    for (name, want) in &status.artefacts {
        let p = dir.path.join(name);
        let Ok(meta) = std::fs::metadata(&p) else {
            out.push(format!("{} is missing", p.display()));
            continue;
        };
        if meta.len() != want.bytes {
            out.push(format!(
                "{} has {} bytes, {} were recorded (truncated or overwritten)",
                p.display(),
                meta.len(),
                want.bytes
            ));
            continue;
        }
        if name == CHECKPOINT && depth == Depth::Plan {
            continue;
        }
        match digest(&p) {
            Ok(got) if got.sha256 == want.sha256 => {}
            Ok(got) => out.push(format!(
                "{} fails its checksum (sha256 {}…, recorded {}…)",
                p.display(),
                &got.sha256[..12],
                &want.sha256[..12.min(want.sha256.len())]
            )),
            Err(e) => out.push(e.to_string()),
        }
    }
    out
}

/// The checkpoint of a finished run, checked in full before it is used.
pub fn verified_checkpoint(dir: &RunDir) -> Result<PathBuf> {
    let path = dir.checkpoint_path();
    if let Ok(Some(status)) = dir.read_status() {
        if let Some(want) = status.artefacts.get(CHECKPOINT) {
            let got = digest(&path)?;
            if &got != want {
                return Err(Error::Failed(format!(
                    "{} fails its checksum (sha256 {}…, {} bytes; recorded {}…, {} bytes): it is corrupt; `harness verify --repair` sets the run aside so that the next `harness run` redoes it",
                    path.display(),
                    &got.sha256[..12],
                    got.bytes,
                    &want.sha256[..12.min(want.sha256.len())],
                    want.bytes
                )));
            }
        }
    }
    Ok(path)
}

/// Move every file of the run folder (the claim excepted) into `corrupt-<UTC time>/` inside
/// it, so that the run starts afresh and nothing is deleted; returns that folder.
pub fn quarantine(dir: &RunDir) -> Result<PathBuf> {
    let to = dir
        .path
        .join(format!("corrupt-{}", utc_timestamp(now()).replace(':', "")));
    std::fs::create_dir_all(&to).map_err(|e| Error::io(&to, e))?;
    let entries = std::fs::read_dir(&dir.path).map_err(|e| Error::io(&dir.path, e))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("claim.lock") || name.starts_with("corrupt-") || !e.path().is_file() {
            continue;
        }
        std::fs::rename(e.path(), to.join(&name)).map_err(|err| Error::io(e.path(), err))?;
    }
    Ok(to)
}

/// What is wrong with a run folder's status and recorded artefacts: an unreadable
/// `status.json` counts, a missing one does not (the run never started).
pub fn folder_problems(dir: &RunDir, depth: Depth) -> Vec<String> {
    match dir.read_status() {
        Err(e) => vec![format!(
            "{} is unreadable: {e}",
            dir.status_path().display()
        )],
        Ok(None) => Vec::new(),
        Ok(Some(s)) => problems(dir, &s, depth),
    }
}
