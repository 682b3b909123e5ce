use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use kdbench::model::{build_backbone, init::SeededInit};
use kdbench::spec::run::{ModelConfig, Stem};
use std::time::Instant;
fn main() {
    let dev = Device::Cpu;
    let map = VarMap::new();
    let vb = SeededInit::var_builder(&map, 1, &dev);
    let cfg = ModelConfig {
        arch: "resnet".into(),
        widths: vec![16, 32, 64],
        depths: vec![1, 1, 1],
        stem: Stem::Cifar,
    };
    let m = build_backbone(&cfg, vb).unwrap();
    let x = Tensor::randn(0f32, 1.0, (64, 3, 28, 28), &dev).unwrap();
    for _ in 0..3 {
        let t = Instant::now();
        let f = m.forward_t(&x, true).unwrap();
        let l = f.sqr().unwrap().sum_all().unwrap();
        let t1 = t.elapsed();
        let _g = l.backward().unwrap();
        let t2 = t.elapsed();
        let t3 = Instant::now();
        let _ = m.forward_t(&x, false).unwrap();
        println!("fwd {:?} fwd+bwd {:?} eval-fwd {:?}", t1, t2, t3.elapsed());
    }
    // raw ops
    let a = Tensor::randn(0f32, 1.0, (64, 16, 30, 30), &dev).unwrap();
    let t = Instant::now();
    for _ in 0..10 {
        let _ = a
            .narrow(2, 1, 28)
            .unwrap()
            .narrow(3, 1, 28)
            .unwrap()
            .contiguous()
            .unwrap();
    }
    println!("narrow+contig x10 {:?}", t.elapsed());
    let w = Tensor::randn(0f32, 1.0, (16, 144), &dev).unwrap();
    let c = Tensor::randn(0f32, 1.0, (64, 144, 784), &dev).unwrap();
    let t = Instant::now();
    for _ in 0..10 {
        let _ = w.broadcast_left(64).unwrap().matmul(&c).unwrap();
    }
    println!("bmm x10 {:?}", t.elapsed());
    let t = Instant::now();
    for _ in 0..10 {
        let _ = c.sum_keepdim(0).unwrap();
    }
    println!("sum x10 {:?}", t.elapsed());
    let _ = DType::F32;
}
