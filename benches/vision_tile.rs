//! One 512 px tile through the vision tower and connector of the synthetic SmolVLM2-256M
//! (f32, random weights, built in memory): `SmolVlm::encode_images` on one preprocessed view,
//! from its `[1, 3, 512, 512]` pixel tensor to the 64 image-token embeddings `[1, 64, 576]`.
//! Image decoding and preprocessing are outside the timed loop.

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use std::time::Duration;
use vlm::engine::pixels_tensor;
use vlm::synthetic::Preset;
use vlm::{Engine, EngineOptions, ImageInput, ModelSource};

fn bench(c: &mut Criterion) {
    let threads = vlm::threads::init(None).expect("thread pool");
    let engine = Engine::load(
        ModelSource::synthetic(Preset::SmolVlm2_256M),
        EngineOptions::default(),
    )
    .expect("synthetic 256m");
    // A 512×512 picture without splitting: exactly one view at the tile size.
    let picture = ImageInput::Rgb8 {
        width: 512,
        height: 512,
        pixels: (0..512 * 512 * 3).map(|i| (i * 7 % 251) as u8).collect(),
    };
    let prepared = engine
        .processor()
        .prepare_image(
            &picture,
            &vlm::ProcessorOptions {
                image_splitting: Some(false),
                ..engine.processor_options().clone()
            },
        )
        .expect("preprocess");
    assert_eq!(prepared.pixels.n_views, 1);
    let model = engine.model();
    let pixels = pixels_tensor(&prepared.pixels, model.device()).expect("pixels");

    let mut group = c.benchmark_group(format!("vision_tile_{threads}t"));
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    group.bench_function("synthetic_256m_f32", |b| {
        b.iter(|| model.encode_images(&pixels, None).expect("encode"))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
