//! Knowledge-distillation losses shared by STL-KD, MTL-KD, KF and LoRKD (METHODS.md,
//! "Feature KD" and "Logit KD").
//!
//! Both are the same quantity, `T² · KL(softmax(teacher/T) ‖ softmax(student/T))` summed
//! over the last axis and averaged over the batch (PyTorch's `KLDivLoss(reduction =
//! "batchmean")` on `log_softmax(student/T)` and `softmax(teacher/T)`): over feature
//! dimensions for LoRKD's feature KD (the teacher's feature first projected to the
//! student's width), over class logits for Hinton's logit KD. The teacher side carries no
//! gradient. Checked against PyTorch: `tests/reference/kd_losses.py`.

use candle_core::{Result, Tensor, D};
use candle_nn::ops::log_softmax;

/// `T² · KL(softmax(teacher/T) ‖ softmax(student/T))`, batch mean. Both `(B, N)`.
pub fn soft_kl(student: &Tensor, teacher: &Tensor, temperature: f64) -> Result<Tensor> {
    if student.dims() != teacher.dims() || student.rank() != 2 {
        candle_core::bail!(
            "distillation needs student and teacher of the same (batch, width) shape, got {:?} and {:?}",
            student.dims(),
            teacher.dims()
        );
    }
    if !(temperature.is_finite() && temperature > 0.0) {
        candle_core::bail!("distillation temperature must be positive, got {temperature}");
    }
    let log_q = log_softmax(&(student / temperature)?, D::Minus1)?;
    let log_p = log_softmax(&(teacher.detach() / temperature)?, D::Minus1)?;
    let kl = (log_p.exp()? * (log_p - log_q)?)?
        .sum(D::Minus1)?
        .mean_all()?;
    kl * (temperature * temperature)
}

/// Hinton's loss: `α · soft_kl(logits, teacher_logits, T) + (1 − α) · CE(logits, labels)`.
pub fn hinton(
    logits: &Tensor,
    teacher_logits: &Tensor,
    labels: &Tensor,
    temperature: f64,
    alpha: f64,
) -> Result<Tensor> {
    if !(0.0..=1.0).contains(&alpha) {
        candle_core::bail!("logit-KD weight alpha must be in [0, 1], got {alpha}");
    }
    let kd = soft_kl(logits, teacher_logits, temperature)?;
    let ce = candle_nn::loss::cross_entropy(logits, labels)?;
    (kd * alpha)? + (ce * (1.0 - alpha))?
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Var};

    use super::*;

    const STUDENT: [f64; 12] = [
        0.5, -1.0, 2.0, 0.25, 1.5, 0.0, -0.5, 3.0, -2.0, 1.0, 0.0, 0.5,
    ];
    const TEACHER: [f64; 12] = [
        1.0, 0.0, 1.0, -1.0, 0.5, 2.5, -1.0, 1.0, 0.0, 0.0, 3.0, -0.5,
    ];

    fn inputs() -> (Var, Tensor) {
        let dev = Device::Cpu;
        let s = Var::from_tensor(&Tensor::from_slice(&STUDENT, (3, 4), &dev).unwrap()).unwrap();
        let t = Tensor::from_slice(&TEACHER, (3, 4), &dev).unwrap();
        (s, t)
    }

    fn assert_close(got: &[f64], want: &[f64]) {
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() <= 1e-10 * (1.0 + w.abs()),
                "{got:?}\nvs {want:?}"
            );
        }
    }

    /// Values and gradients printed by `tests/reference/kd_losses.py` (f64).
    #[test]
    fn soft_kl_matches_pytorch() {
        let cases: [(f64, f64, [f64; 12]); 2] = [
            (
                1.0,
                1.131420895717e+00,
                [
                    -8.175049312205e-02,
                    -3.751611908143e-02,
                    9.724874203041e-02,
                    2.201787017306e-02,
                    2.459035994966e-02,
                    -2.273036671035e-01,
                    4.758604222025e-04,
                    2.022374467316e-01,
                    -6.490768331595e-03,
                    1.499849192589e-01,
                    -2.344646029523e-01,
                    9.097045202503e-02,
                ],
            ),
            (
                10.0,
                1.201957708226e+00,
                [
                    -6.141763940651e-02,
                    -9.236727026633e-02,
                    7.351668484062e-02,
                    8.026822483222e-02,
                    6.132573705883e-02,
                    -2.380959244741e-01,
                    1.635706460973e-02,
                    1.604131228055e-01,
                    -8.846083425567e-02,
                    1.517301224221e-01,
                    -2.075994451973e-01,
                    1.443301570310e-01,
                ],
            ),
        ];
        for (t, value, grad) in cases {
            let (s, te) = inputs();
            let loss = soft_kl(s.as_tensor(), &te, t).unwrap();
            assert_close(&[loss.to_scalar::<f64>().unwrap()], &[value]);
            let g = loss.backward().unwrap();
            let got: Vec<f64> = g.get(&s).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            assert_close(&got, &grad);
        }
    }

    #[test]
    fn hinton_matches_pytorch() {
        let (s, te) = inputs();
        let labels = Tensor::from_slice(&[2u32, 3, 1], 3, &Device::Cpu).unwrap();
        let loss = hinton(s.as_tensor(), &te, &labels, 4.0, 0.9).unwrap();
        assert_close(&[loss.to_scalar::<f64>().unwrap()], &[1.176745413031e+00]);
        let g = loss.backward().unwrap();
        let got: Vec<f64> = g.get(&s).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let want = [
            -5.533370219051e-02,
            -7.285470214276e-02,
            6.299836138329e-02,
            6.519004294998e-02,
            5.730218148225e-02,
            -2.214171823478e-01,
            1.038188384015e-02,
            1.537331170254e-01,
            -5.831704883636e-02,
            1.260482324393e-01,
            -2.038404658295e-01,
            1.361092822265e-01,
        ];
        assert_close(&got, &want);
    }

    /// The teacher gets no gradient, and mismatched shapes and bad settings are errors.
    #[test]
    fn teacher_is_constant_and_bad_input_is_refused() {
        let dev = Device::Cpu;
        let (s, _) = inputs();
        let te = Var::from_tensor(&Tensor::from_slice(&TEACHER, (3, 4), &dev).unwrap()).unwrap();
        let g = soft_kl(s.as_tensor(), te.as_tensor(), 2.0)
            .unwrap()
            .backward()
            .unwrap();
        assert!(g.get(&te).is_none());
        let other = Tensor::zeros((3, 5), DType::F64, &dev).unwrap();
        assert!(soft_kl(s.as_tensor(), &other, 1.0)
            .unwrap_err()
            .to_string()
            .contains("same (batch, width)"));
        assert!(soft_kl(s.as_tensor(), te.as_tensor(), 0.0)
            .unwrap_err()
            .to_string()
            .contains("temperature"));
        let labels = Tensor::from_slice(&[0u32, 1, 2], 3, &dev).unwrap();
        assert!(hinton(s.as_tensor(), te.as_tensor(), &labels, 4.0, 1.5).is_err());
    }
}
