use candle_core::{Device, Module, Tensor, Var};
use candle_nn::VarMap;
use kdbench::model::{batch_norm::batch_norm2d, conv::conv2d_no_bias, init::SeededInit};
use std::time::Instant;
fn main() {
    let dev = Device::Cpu;
    let map = VarMap::new();
    let vb = SeededInit::var_builder(&map, 1, &dev);
    let conv = conv2d_no_bias(16, 16, 3, 1, 1, vb.pp("c")).unwrap();
    let bn = batch_norm2d(16, vb.pp("b")).unwrap();
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (64, 16, 28, 28), &dev).unwrap()).unwrap();
    for _ in 0..3 {
        let t = Instant::now();
        let y = conv.forward(x.as_tensor()).unwrap();
        let t1 = t.elapsed();
        let g = y.sum_all().unwrap().backward().unwrap();
        let t2 = t.elapsed();
        drop(g);
        let t = Instant::now();
        let y = bn.forward_t(x.as_tensor(), true).unwrap();
        let t3 = t.elapsed();
        let _g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let t4 = t.elapsed();
        let t = Instant::now();
        let y = x.as_tensor().relu().unwrap();
        let _g = y.sum_all().unwrap().backward().unwrap();
        let t5 = t.elapsed();
        let t = Instant::now();
        let y = x
            .as_tensor()
            .pad_with_zeros(2, 1, 1)
            .unwrap()
            .pad_with_zeros(3, 1, 1)
            .unwrap();
        let t6 = t.elapsed();
        let mut p = vec![];
        for i in 0..3 {
            for j in 0..3 {
                p.push(y.narrow(2, i, 28).unwrap().narrow(3, j, 28).unwrap());
            }
        }
        let s = Tensor::stack(&p, 2).unwrap();
        let t7 = t.elapsed();
        let _ = s.reshape((64, 144, 784)).unwrap();
        println!("conv fwd {:?} fwd+bwd {:?} | bn fwd {:?} fwd+bwd {:?} | relu f+b {:?} | pad {:?} stack {:?}", t1, t2, t3, t4, t5, t6, t7);
    }
}
