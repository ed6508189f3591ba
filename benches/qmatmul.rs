//! The quantized matmul kernels (`vlm::bench_api::QMatrix`: ggml blocks × f32 activations)
//! on the SmolVLM2-256M MLP shape, a `[1536, 576]` weight matrix: matrix-vector (1 × 576, a
//! decode step) and matrix-matrix (64 × 576, a prefill slice), for Q8_0, Q4_0 and Q4_1. In the
//! same run, the baselines: Candle's own `QMatMul` on the same blocks (it rounds activations
//! to 8 bits) and the dense f32 `Tensor::matmul` with the unquantized matrix. Quantization and
//! activation set-up are outside the timed loop. For the matrix-vector case also vlm's
//! `matvec_int8` (activations rounded to 8-bit blocks, integer block dots: llama.cpp's decode
//! arithmetic), where the CPU has AVX2.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::time::Duration;
use vlm::bench_api::QMatrix;

const IN: usize = 576;
const OUT: usize = 1536;

fn bench(c: &mut Criterion) {
    let threads = vlm::threads::init(None).expect("thread pool");
    let dev = Device::Cpu;
    let w = Tensor::randn(0f32, 0.02, (OUT, IN), &dev).expect("weights");
    for rows in [1usize, 64] {
        let x = Tensor::randn(0f32, 1.0, (rows, IN), &dev).expect("activations");
        let mut group = c.benchmark_group(format!("qmatmul_{rows}x{IN}x{OUT}_{threads}t"));
        group
            .sample_size(20)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1));
        for (label, ty) in [
            ("q8_0", GgmlDType::Q8_0),
            ("q4_0", GgmlDType::Q4_0),
            ("q4_1", GgmlDType::Q4_1),
        ] {
            let q = QTensor::quantize(&w, ty).expect("quantize");
            let ours = QMatrix::new(&q).expect("blocks");
            let candle = QMatMul::from_qtensor(q).expect("candle qmatmul");
            group.bench_with_input(BenchmarkId::new("vlm", label), &x, |b, x| {
                b.iter(|| ours.forward(x).expect("vlm qmatmul"))
            });
            group.bench_with_input(BenchmarkId::new("candle", label), &x, |b, x| {
                b.iter(|| candle.forward(x).expect("candle qmatmul"))
            });
            let row: Vec<f32> = x.flatten_all().expect("flat").to_vec1().expect("row");
            if rows == 1 && ours.matvec_int8(&row).is_some() {
                group.bench_with_input(BenchmarkId::new("vlm_int8_act", label), &row, |b, x| {
                    b.iter(|| ours.matvec_int8(x).expect("vlm int8 matvec"))
                });
            }
        }
        group.bench_with_input(BenchmarkId::new("f32_matmul", "f32"), &x, |b, x| {
            b.iter(|| x.matmul(&w.t().expect("t")).expect("matmul"))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
