use candle_core::{Device, Module, Tensor, Var};
use candle_nn::VarMap;
use kdbench::model::{conv::conv2d_no_bias, init::SeededInit};
use std::time::Instant;
fn main() {
    let dev = Device::Cpu;
    let map = VarMap::new();
    let vb = SeededInit::var_builder(&map, 1, &dev);
    let conv = conv2d_no_bias(16, 16, 3, 1, 1, vb.pp("c")).unwrap();
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (64, 16, 28, 28), &dev).unwrap()).unwrap();
    let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (16, 144), &dev).unwrap()).unwrap();
    let cols = Var::from_tensor(&Tensor::randn(0f32, 1.0, (64, 144, 784), &dev).unwrap()).unwrap();
    for _ in 0..3 {
        let t = Instant::now();
        let y = conv.forward(x.as_tensor()).unwrap();
        let t1 = t.elapsed();
        let g = y.sum_all().unwrap().backward().unwrap();
        let t2 = t.elapsed();
        drop(g);
        let t = Instant::now();
        let y = w
            .as_tensor()
            .broadcast_left(64)
            .unwrap()
            .matmul(cols.as_tensor())
            .unwrap();
        let t3 = t.elapsed();
        let _g = y.sum_all().unwrap().backward().unwrap();
        let t4 = t.elapsed();
        let t = Instant::now();
        // one big gemm alternative
        let c2 = Tensor::randn(0f32, 1.0, (144, 64 * 784), &dev).unwrap();
        let t5a = t.elapsed();
        let _y2 = w.as_tensor().matmul(&c2).unwrap();
        let t5 = t.elapsed();
        println!(
            "conv fwd {:?} f+b {:?} | bmm fwd {:?} f+b {:?} | big gemm {:?}",
            t1,
            t2,
            t3,
            t4,
            t5 - t5a
        );
    }
}
