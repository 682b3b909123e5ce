//! Before training: does one training step of the profile's networks fit in the memory each
//! device has free? A batch far too large would otherwise be killed by the operating system
//! mid-run on the CPU (exit 137, no message), or fail with CUDA's out-of-memory error only
//! once a run reaches its first step on a GPU. The estimate is the sum of the
//! networks' convolution outputs for one image (measured by running each network once on a
//! 1-image batch), times the batch, 4 bytes each, times [`FACTOR`] for what a training step
//! keeps besides (normalised and activated copies, their gradients), times the workers that
//! share the device (`--jobs`). It is a floor more than a bound (a GPU's convolution
//! workspaces come on top); the check only refuses what cannot fit.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::model::cost::probe_backbone;
use crate::spec::run::ModelConfig;
use crate::spec::validate::Experiment;

/// Tensors a step holds per convolution output: the output, its normalised and activated
/// copies, and the gradients of the backward pass.
const FACTOR: u64 = 4;

/// Bytes of memory this process may still use: the machine's `MemAvailable`, or less where
/// the process runs in a control group with a memory limit (a Slurm job's `--mem`, a
/// container's limit), which kills at its limit whatever the machine has free. `None` where
/// unknown.
fn available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    let machine = kb * 1024;
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    Some(
        match cgroup_headroom(Path::new("/sys/fs/cgroup"), &cgroups) {
            Some(room) => room.min(machine),
            None => machine,
        },
    )
}

/// Limit minus usage of the memory control group named in `proc_cgroup` (the text of
/// `/proc/self/cgroup`), under the cgroup file system mounted at `root`: version 2
/// (`0::/path`, `memory.max` and `memory.current`) or version 1 (`N:memory:/path`,
/// `memory/path/memory.limit_in_bytes` and `memory.usage_in_bytes`). `None` without a limit.
fn cgroup_headroom(root: &Path, proc_cgroup: &str) -> Option<u64> {
    let read = |p: PathBuf| -> Option<u64> { std::fs::read_to_string(p).ok()?.trim().parse().ok() };
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let rel = path.trim_start_matches('/');
        let (dir, limit, usage) = if controllers.is_empty() {
            (root.join(rel), "memory.max", "memory.current")
        } else if controllers.split(',').any(|c| c == "memory") {
            (
                root.join("memory").join(rel),
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
            )
        } else {
            continue;
        };
        // "max" (v2) does not parse: no limit. v1 writes a huge number instead, which the
        // machine's own figure then undercuts.
        if let (Some(limit), Some(usage)) = (read(dir.join(limit)), read(dir.join(usage))) {
            return Some(limit.saturating_sub(usage));
        }
    }
    None
}

/// Values of all convolution outputs of `model` for one image of side `size`.
fn activations_per_image(model: &ModelConfig, size: usize) -> Result<u64> {
    let probe = probe_backbone(model, size)?;
    Ok(probe
        .convs
        .iter()
        .map(|s| (s.d_out * s.positions) as u64)
        .sum())
}

/// Bytes free on a GPU, as its driver reports them (`None` where the query fails: the run
/// itself then reports the device's error).
#[cfg(feature = "cuda")]
fn cuda_free(ordinal: usize) -> Option<u64> {
    let device = candle_core::Device::new_cuda(ordinal).ok()?;
    let cuda = device.as_cuda_device().ok()?;
    let (free, _total) = cuda.cuda_stream().context().mem_get_info().ok()?;
    Some(free as u64)
}

#[cfg(not(feature = "cuda"))]
fn cuda_free(_ordinal: usize) -> Option<u64> {
    None
}

/// Bytes free to a worker on `device` (`cpu`, `cuda:N`), `None` where unknown.
fn free_on(device: &str) -> Option<u64> {
    match device.strip_prefix("cuda:") {
        Some(n) => cuda_free(n.parse().ok()?),
        None => available(),
    }
}

/// Refuse a profile whose training step cannot fit in the free memory of a device its
/// workers train on; `workers` holds each worker's device (`cpu` or `cuda:N`, repeated per
/// job).
pub fn check_memory(exp: &Experiment, profile: &str, workers: &[String]) -> Result<()> {
    let Some(p) = exp.profiles.get(profile) else {
        return Ok(());
    };
    let mut devices: Vec<(&str, u64, u64)> = Vec::new();
    for d in workers {
        match devices.iter_mut().find(|(name, _, _)| name == d) {
            Some(entry) => entry.2 += 1,
            None => {
                if let Some(free) = free_on(d) {
                    devices.push((d, free, 1));
                }
            }
        }
    }
    if devices.is_empty() {
        return Ok(());
    }
    let mut nets: Vec<(String, &ModelConfig)> = vec![("student".into(), &p.model)];
    for name in &exp.foundation {
        if let Some(f) = p.foundations.get(name) {
            nets.push((format!("foundation model `{name}`"), &f.model));
        }
    }
    for (what, model) in nets {
        let per_image = activations_per_image(model, p.image_size)?;
        let per_step = per_image * 4 * FACTOR;
        for &(device, free, jobs) in &devices {
            let need = per_step * p.batch_size as u64 * jobs;
            if need <= free {
                continue;
            }
            let fits = (free / (per_step * jobs).max(1)).max(1);
            let (times_jobs, or_jobs) = if jobs > 1 {
                (format!(" × {jobs} workers"), ", or fewer --jobs,")
            } else {
                (String::new(), "")
            };
            let free_what = if device == "cpu" {
                "free to this process (the machine's free memory, or its control group's limit, e.g. a Slurm job's --mem)".to_string()
            } else {
                format!("free on {device}")
            };
            return Err(Error::input(format!(
                "{}: profile.{profile}: a training step of the {what} at batch_size {} and image_size {} needs about {:.1} GiB ({} activation values per image × {} images × 4 bytes × {FACTOR}{times_jobs}), more than the {:.1} GiB {free_what}; set batch_size to {fits} or less in [profile.{profile}]{or_jobs} (or run it where there is more memory)",
                exp.path.display(),
                p.batch_size,
                p.image_size,
                need as f64 / (1u64 << 30) as f64,
                per_image,
                p.batch_size,
                free as f64 / (1u64 << 30) as f64,
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::cgroup_headroom;

    fn write(dir: &std::path::Path, name: &str, text: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn a_control_groups_limit_caps_what_is_free() {
        let root = tempfile::tempdir().unwrap();
        let v2 = root.path().join("system.slice/slurmstepd.scope/job_7");
        write(&v2, "memory.max", "8589934592\n");
        write(&v2, "memory.current", "1073741824\n");
        let text = "0::/system.slice/slurmstepd.scope/job_7\n";
        assert_eq!(cgroup_headroom(root.path(), text), Some(7 << 30));

        write(&v2, "memory.max", "max\n");
        assert_eq!(cgroup_headroom(root.path(), text), None);

        let v1 = root.path().join("memory/slurm/uid_0/job_8");
        write(&v1, "memory.limit_in_bytes", "4294967296\n");
        write(&v1, "memory.usage_in_bytes", "5368709120\n");
        let text = "12:cpu,cpuacct:/slurm/uid_0/job_8\n4:memory:/slurm/uid_0/job_8\n";
        assert_eq!(cgroup_headroom(root.path(), text), Some(0));
        assert_eq!(cgroup_headroom(root.path(), "4:memory:/gone\n"), None);
        assert_eq!(cgroup_headroom(root.path(), ""), None);
    }
}
