//! One decode step of the synthetic SmolVLM2-256M (random weights, built in memory) at context
//! depths 0, 256 and 900, with f32 weights and with Q8_0 weights (quantized at load): embedding
//! of one token, the 30 decoder layers against a KV cache holding `depth` positions, the final
//! norm and the `[49280]` logits. The cache is filled once, untimed, and rewound to `depth`
//! after every step, so each iteration is the same step. Sampling is not included.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::time::Duration;
use vlm::synthetic::Preset;
use vlm::weights::QuantType;
use vlm::{Engine, EngineOptions, ModelSource};

const DEPTHS: [usize; 3] = [0, 256, 900];

/// Token ids below the compiled-in tokenizer's `<image>` id (508), never the image token.
fn ids(n: usize) -> Vec<u32> {
    (0..n).map(|i| (i * 37 % 500) as u32 + 3).collect()
}

fn bench(c: &mut Criterion) {
    let threads = vlm::threads::init(None).expect("thread pool");
    let mut group = c.benchmark_group(format!("decode_step_256m_{threads}t"));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (label, quant) in [("f32", None), ("q8_0", Some(QuantType::Q8_0))] {
        let opts = EngineOptions {
            quant,
            ..Default::default()
        };
        let engine = Engine::load(ModelSource::synthetic(Preset::SmolVlm2_256M), opts)
            .expect("synthetic 256m");
        let model = engine.model();
        for depth in DEPTHS {
            let mut cache = model.new_cache();
            if depth > 0 {
                let embeds = model.embed(&ids(depth), None, 0).expect("embed");
                model.forward(&embeds, &mut cache).expect("prefill");
            }
            let token = [42u32];
            group.bench_with_input(BenchmarkId::new(label, depth), &depth, |b, &depth| {
                b.iter(|| {
                    let embeds = model.embed(&token, None, 0).expect("embed");
                    let logits = model.forward(&embeds, &mut cache).expect("step");
                    cache.truncate(depth);
                    logits
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
