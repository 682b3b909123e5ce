//! Where a run's numbers come from besides its spec: the code (git commit and whether the
//! tree was dirty, candle and polars versions, cargo features, all fixed at build time) and
//! the machine (host, CPU model, the vector instructions the kernels use). The same run id
//! can give different last bits on an AVX-512 and an AVX2 machine, so every run records
//! these; they are provenance, not part of the run id (README "Provenance").

use serde::{Deserialize, Serialize};

/// `harness --version`: the package version, then the build's provenance.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("KDBENCH_GIT_COMMIT"),
    ", ",
    env!("KDBENCH_GIT_STATE"),
    "; candle ",
    env!("KDBENCH_CANDLE_VERSION"),
    ", polars ",
    env!("KDBENCH_POLARS_VERSION"),
    "; features: ",
    env!("KDBENCH_FEATURES"),
    ")"
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub git_commit: String,
    /// `clean`, `dirty`, or `built outside git`.
    pub git_state: String,
    pub candle: String,
    pub polars: String,
    pub features: String,
    pub host: String,
    pub cpu_model: String,
    /// `AVX-512`, `AVX2+FMA`, …: what the CPU kernels run with.
    pub instruction_set: String,
}

/// This machine's host name (what claims and provenance record).
pub fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_string())
}

/// The CPU's model name (`/proc/cpuinfo`), else the architecture.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// What rows and statuses written before provenance was recorded read as.
pub const UNRECORDED: &str = "unrecorded";

impl Default for Provenance {
    /// Every field [`UNRECORDED`]: the provenance of a row from an older results folder.
    fn default() -> Self {
        let u = || UNRECORDED.to_string();
        Provenance {
            git_commit: u(),
            git_state: u(),
            candle: u(),
            polars: u(),
            features: u(),
            host: u(),
            cpu_model: u(),
            instruction_set: u(),
        }
    }
}

impl Provenance {
    /// Column names of the provenance in the metrics Parquet files, in field order.
    pub const COLUMNS: [&'static str; 8] = [
        "git_commit",
        "git_state",
        "candle",
        "polars",
        "features",
        "host",
        "cpu_model",
        "instruction_set",
    ];

    /// The fields in [`Self::COLUMNS`] order.
    pub fn fields(&self) -> [&str; 8] {
        [
            &self.git_commit,
            &self.git_state,
            &self.candle,
            &self.polars,
            &self.features,
            &self.host,
            &self.cpu_model,
            &self.instruction_set,
        ]
    }

    /// Rebuilds a provenance from values in [`Self::COLUMNS`] order.
    pub fn from_fields(mut f: [String; 8]) -> Self {
        let mut take = |i: usize| std::mem::take(&mut f[i]);
        Provenance {
            git_commit: take(0),
            git_state: take(1),
            candle: take(2),
            polars: take(3),
            features: take(4),
            host: take(5),
            cpu_model: take(6),
            instruction_set: take(7),
        }
    }
}

/// The provenance of this binary on this machine.
pub fn current() -> Provenance {
    Provenance {
        git_commit: env!("KDBENCH_GIT_COMMIT").to_string(),
        git_state: env!("KDBENCH_GIT_STATE").to_string(),
        candle: env!("KDBENCH_CANDLE_VERSION").to_string(),
        polars: env!("KDBENCH_POLARS_VERSION").to_string(),
        features: env!("KDBENCH_FEATURES").to_string(),
        host: host(),
        cpu_model: cpu_model(),
        instruction_set: super::cpu::instruction_set().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_and_the_machine_are_named() {
        let p = current();
        assert!(["clean", "dirty", "built outside git"].contains(&p.git_state.as_str()));
        assert!(
            p.git_commit == "unknown" || p.git_commit.len() == 40,
            "{}",
            p.git_commit
        );
        assert!(
            p.candle.starts_with("0.") && p.polars.starts_with("0."),
            "{p:?}"
        );
        assert!(!p.host.is_empty() && !p.cpu_model.is_empty());
        assert!(VERSION.starts_with(env!("CARGO_PKG_VERSION")) && VERSION.contains("candle"));
    }
}
