//! The packed GEMMs on the vision tower's MLP shape, one 512 px tile: `[1024, 768] ·
//! [3072, 768]ᵀ` — BF16 dot products (`vlm::bench_api::PackedBf16`) and int8 VNNI
//! (`PackedI8`) — and the fused block attention of one layer (12 heads of 64 over 1024
//! patches). Baseline in the same run: Candle's f32 `matmul` (the `gemm` crate) on the same
//! shape. Packing the weights is outside the timed loop (it happens once at load); rounding or
//! quantizing the activations is inside (it happens on every call). Kernels the CPU lacks
//! are skipped with a note.

use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::Duration;
use vlm::bench_api::{
    attention, bf16_available, i8_available, AttentionShape, PackedBf16, PackedI8,
};

const M: usize = 1024;
const K: usize = 768;
const N: usize = 3072;

fn values(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| (((i * seed) % 251) as f32 - 125.0) / 500.0)
        .collect()
}

fn bench(c: &mut Criterion) {
    let threads = vlm::threads::init(None).expect("thread pool");
    let mut group = c.benchmark_group(format!("gemm_{M}x{K}x{N}_{threads}t"));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements((2 * M * K * N) as u64));
    let a = values(M * K, 31);
    let w = values(N * K, 17);
    let dev = Device::Cpu;
    let at = Tensor::from_vec(a.clone(), (M, K), &dev).expect("a");
    let wt = Tensor::from_vec(w.clone(), (N, K), &dev).expect("w");
    group.bench_function("candle_f32", |b| {
        b.iter(|| at.matmul(&wt.t().expect("t")).expect("matmul"))
    });
    if bf16_available() {
        let packed = PackedBf16::from_rows(&w, N, K).expect("pack");
        group.bench_function("vlm_bf16_dot", |b| {
            b.iter(|| packed.matmul(&a, M).expect("bf16 matmul"))
        });
    } else {
        eprintln!("note: no AVX-512 BF16 on this CPU; vlm_bf16_dot skipped");
    }
    if i8_available() {
        let packed = PackedI8::from_rows(&w, N, K).expect("pack");
        group.bench_function("vlm_int8_vnni", |b| {
            b.iter(|| packed.matmul(&a, M).expect("int8 matmul"))
        });
    } else {
        eprintln!("note: no AVX-512 VNNI on this CPU; vlm_int8_vnni skipped");
    }
    group.finish();

    if bf16_available() {
        let shape = AttentionShape {
            tokens: M,
            heads: 12,
            head_dim: 64,
        };
        let qkv = values(M * 3 * K, 7);
        let mut group = c.benchmark_group(format!("vision_attention_{M}x12x64_{threads}t"));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        group.bench_function("vlm_bf16_fused", |b| {
            b.iter(|| attention(&qkv, shape, 0.125, None).expect("attention"))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
