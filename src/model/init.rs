//! Seeded parameter initialisation. candle's CPU random generator cannot be seeded, so
//! variables are created here from a splitmix64 stream derived from (run seed, parameter
//! name). Because each parameter's values depend only on its own name, adding a layer does
//! not shift the initialisation of the others, and construction order does not matter.

use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::init::NormalOrUniform;
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};

use crate::util::rng::SplitMix64;

/// A `VarBuilder` backend that stores variables in a [`VarMap`] and fills new ones
/// deterministically.
pub struct SeededInit {
    map: VarMap,
    seed: u64,
}

impl SeededInit {
    /// A builder whose new variables land in `map`, seeded by `seed`.
    pub fn var_builder(map: &VarMap, seed: u64, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(
            Box::new(SeededInit {
                map: map.clone(),
                seed,
            }),
            DType::F32,
            device.clone(),
        )
    }

    fn values(&self, shape: &Shape, name: &str, init: Init) -> Vec<f32> {
        let n = shape.elem_count();
        let mut rng = SplitMix64::derive(self.seed, name, &[]);
        let mut uniform = |lo: f64, up: f64| {
            let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            lo + (up - lo) * u
        };
        match init {
            Init::Const(c) => vec![c as f32; n],
            Init::Uniform { lo, up } => (0..n).map(|_| uniform(lo, up) as f32).collect(),
            Init::Randn { mean, stdev } => normals(n, &mut uniform, mean, stdev),
            Init::Kaiming {
                dist,
                fan,
                non_linearity,
            } => {
                let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
                match dist {
                    NormalOrUniform::Uniform => {
                        let bound = 3f64.sqrt() * std;
                        (0..n).map(|_| uniform(-bound, bound) as f32).collect()
                    }
                    NormalOrUniform::Normal => normals(n, &mut uniform, 0.0, std),
                }
            }
        }
    }
}

fn normals(n: usize, uniform: &mut impl FnMut(f64, f64) -> f64, mean: f64, std: f64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            // Box–Muller; 1 - u keeps the logarithm finite.
            let u1 = 1.0 - uniform(0.0, 1.0);
            let u2 = uniform(0.0, 1.0);
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            (mean + std * z) as f32
        })
        .collect()
}

impl SimpleBackend for SeededInit {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let mut data = self.map.data().lock().expect("var map lock");
        if let Some(existing) = data.get(name) {
            let t = existing.as_tensor();
            if t.shape() != &s {
                candle_core::bail!(
                    "shape mismatch for {name}: stored {:?}, expected {:?}",
                    t.shape(),
                    s
                );
            }
            return t.to_dtype(dtype);
        }
        let values = self.values(&s, name, h);
        let var = Var::from_tensor(&Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?)?;
        let t = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, _dev: &Device) -> Result<Tensor> {
        let data = self.map.data().lock().expect("var map lock");
        match data.get(name) {
            Some(v) => v.as_tensor().to_dtype(dtype),
            None => candle_core::bail!("cannot find tensor {name}"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.map
            .data()
            .lock()
            .expect("var map lock")
            .contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_values_and_names_are_independent() {
        let dev = Device::Cpu;
        let a = VarMap::new();
        let b = VarMap::new();
        let va = SeededInit::var_builder(&a, 3, &dev);
        let vb = SeededInit::var_builder(&b, 3, &dev);
        let init = Init::Randn {
            mean: 0.0,
            stdev: 1.0,
        };
        let x = va.get_with_hints((4, 5), "w", init).unwrap();
        // Create another variable first in `b`: `w` must not change.
        vb.get((2,), "other").unwrap();
        let y = vb.get_with_hints((4, 5), "w", init).unwrap();
        let xv: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        let yv: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(xv, yv);
        let c = VarMap::new();
        let z = SeededInit::var_builder(&c, 4, &dev)
            .get((4, 5), "w")
            .unwrap();
        let zv: Vec<f32> = z.flatten_all().unwrap().to_vec1().unwrap();
        assert_ne!(xv, zv);
    }
}
