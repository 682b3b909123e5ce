//! The vector instruction set the kernels use, named in every speed figure: machines of one
//! kind differ (some have AVX-512, some only AVX2 + FMA), and so do their speeds.
//!
//! `HARNESS_SIMD=avx512|avx2|baseline` caps it, so that one machine measures every path
//! side by side (the benchmark's PyTorch side is capped the same way through
//! `ATEN_CPU_CAPABILITY`). A cap above what the CPU has changes nothing. The kernels give
//! the same bits on every level (fixed summation orders, FMA on all of them), so the level
//! is provenance, not part of a run's identity.

use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The environment variable that caps the instruction set.
pub const SIMD_ENV: &str = "HARNESS_SIMD";

/// Instruction-set levels, in increasing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Simd {
    /// x86-64 without AVX2 (SSE2 only), or a CPU that is not x86-64.
    Baseline,
    /// AVX2 + FMA: 16 registers of 8 f32.
    Avx2,
    /// AVX-512 F, BW and VL: 32 registers of 16 f32.
    Avx512,
}

impl Simd {
    /// The name `HARNESS_SIMD` takes.
    pub fn key(self) -> &'static str {
        match self {
            Simd::Baseline => "baseline",
            Simd::Avx2 => "avx2",
            Simd::Avx512 => "avx512",
        }
    }

    /// The name in speed figures.
    pub fn name(self) -> &'static str {
        match self {
            Simd::Avx512 => "AVX-512",
            Simd::Avx2 => "AVX2+FMA",
            Simd::Baseline if cfg!(target_arch = "x86_64") => "x86-64 without AVX2",
            Simd::Baseline if cfg!(target_arch = "aarch64") => "NEON",
            Simd::Baseline => "scalar",
        }
    }

    /// PyTorch's name for the same cap (`ATEN_CPU_CAPABILITY`).
    pub fn aten_capability(self) -> &'static str {
        match self {
            Simd::Avx512 => "avx512",
            Simd::Avx2 => "avx2",
            Simd::Baseline => "default",
        }
    }

    fn parse(value: &str) -> Option<Simd> {
        [Simd::Baseline, Simd::Avx2, Simd::Avx512]
            .into_iter()
            .find(|s| s.key() == value.trim().to_ascii_lowercase())
    }
}

/// What this CPU supports.
pub fn detected() -> Simd {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let avx2 = has!("avx2") && has!("fma");
        if avx2 && has!("avx512f") && has!("avx512bw") && has!("avx512vl") {
            return Simd::Avx512;
        }
        if avx2 {
            return Simd::Avx2;
        }
    }
    Simd::Baseline
}

/// The cap `HARNESS_SIMD` asks for, if any.
fn cap() -> Result<Option<Simd>> {
    match std::env::var(SIMD_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => Simd::parse(&v).map(Some).ok_or_else(|| {
            Error::input(format!(
                "{SIMD_ENV}={v:?} is not an instruction set; use avx512, avx2 or baseline (or unset it for the widest this CPU has, {})",
                detected().key()
            ))
        }),
        Err(e) => Err(Error::input(format!("{SIMD_ENV}: {e}"))),
    }
}

/// Checks `HARNESS_SIMD` once at start-up, so a typo is bad input, not a silent default.
pub fn check_simd_env() -> Result<()> {
    cap().map(|_| ())
}

/// The level the kernels use: the CPU's, capped by `HARNESS_SIMD` (read once).
pub fn simd() -> Simd {
    static LEVEL: OnceLock<Simd> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let found = detected();
        match cap() {
            Ok(Some(c)) => c.min(found),
            _ => found,
        }
    })
}

/// `AVX-512`, `AVX2+FMA`, or what there is below those: the level in use.
pub fn instruction_set() -> &'static str {
    simd().name()
}

/// The level in use and, when `HARNESS_SIMD` lowered it, what the CPU has.
pub fn instruction_set_detail() -> String {
    let (used, found) = (simd(), detected());
    if used == found {
        used.name().to_string()
    } else {
        format!(
            "{} ({SIMD_ENV}={}; the CPU has {})",
            used.name(),
            used.key(),
            found.name()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_order_and_name_pytorch_caps() {
        assert_eq!(Simd::parse("AVX2"), Some(Simd::Avx2));
        assert_eq!(Simd::parse(" avx512 "), Some(Simd::Avx512));
        assert_eq!(Simd::parse("baseline"), Some(Simd::Baseline));
        assert_eq!(Simd::parse("sse4"), None);
        assert!(Simd::Baseline < Simd::Avx2 && Simd::Avx2 < Simd::Avx512);
        assert_eq!(Simd::Avx2.aten_capability(), "avx2");
        assert!(simd() <= detected());
    }
}
