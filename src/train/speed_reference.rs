//! The reference throughput every run measures on its own machine after each epoch: a fixed
//! matrix product, timed. Images/s alone cannot tell a slower commit from a slower machine
//! (or a busier one); images/s divided by this number can, which is how `harness regress`
//! compares speed between a baseline and tonight's sweep (README "Nightly regression
//! sweeps"). It costs about 10 ms an epoch.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};

use crate::error::Result;

/// Metric name of the reference in the metrics log (split `train`, task `all`).
pub const METRIC: &str = "reference_gflops";

/// Rows, inner dimension and columns of the timed product: a 1×1 convolution's GEMM at a
/// small network's scale (big enough to use the vector units, small enough to stay in cache).
const M: usize = 256;
const K: usize = 256;
const N: usize = 256;

/// Time spent timing, at least.
const MIN_SECONDS: f64 = 0.01;

/// GFLOP/s of the reference product on `device` (best of the timed repetitions: the least
/// disturbed by other work on the machine).
pub fn measure(device: &Device) -> Result<f64> {
    let a = Tensor::ones((M, K), DType::F32, device)?;
    let b = Tensor::ones((K, N), DType::F32, device)?;
    // Once untimed: the first product pays for allocation and thread start-up.
    a.matmul(&b)?.sum_all()?.to_scalar::<f32>()?;
    let flops = 2.0 * (M * K * N) as f64;
    let started = Instant::now();
    let mut best = f64::INFINITY;
    let mut reps = 0;
    while reps < 5 || started.elapsed().as_secs_f64() < MIN_SECONDS {
        let t = Instant::now();
        // Reading one value back waits for the product on asynchronous devices.
        a.matmul(&b)?.sum_all()?.to_scalar::<f32>()?;
        best = best.min(t.elapsed().as_secs_f64());
        reps += 1;
        if reps >= 10_000 {
            break;
        }
    }
    Ok(flops / best.max(1e-12) / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_is_a_positive_finite_rate() {
        let g = measure(&Device::Cpu).unwrap();
        assert!(g.is_finite() && g > 0.0, "{g}");
    }
}
