//! Image preprocessing of a 1920×1080 screenshot at the SmolVLM2-256M settings (longest edge
//! 2048, 512 px tiles): decode-free resize + tile + normalize, against the `image` crate's own
//! Lanczos3 resize of the same two steps as the baseline in the same run.

use criterion::{criterion_group, criterion_main, Criterion};
use image::{imageops::FilterType, DynamicImage, RgbImage};
use vlm::processor::image::{load_image, ImageInput, ImageLimits};
use vlm::processor::pixels::{prepare_pixels, PixelOptions};

fn screenshot() -> RgbImage {
    RgbImage::from_fn(1920, 1080, |x, y| {
        let band = ((y / 40) % 2) as u8 * 40;
        image::Rgb([
            (x % 251) as u8,
            200u8.wrapping_sub(band),
            ((x ^ y) % 256) as u8,
        ])
    })
}

fn options() -> PixelOptions {
    PixelOptions {
        longest_edge: 2048,
        tile_size: 512,
        do_image_splitting: true,
        do_resize: true,
        do_rescale: true,
        rescale_factor: 1.0 / 255.0,
        do_normalize: true,
        image_mean: [0.5; 3],
        image_std: [0.5; 3],
        do_convert_rgb: true,
        alpha: vlm::processor::image::AlphaMode::Drop,
    }
}

fn bench(c: &mut Criterion) {
    let rgb = screenshot();
    let input = ImageInput::Rgb8 {
        width: 1920,
        height: 1080,
        pixels: rgb.as_raw().clone(),
    };
    let loaded = load_image(&input, &ImageLimits::default()).unwrap();
    let opts = options();
    let mut group = c.benchmark_group("preprocess_1920x1080");
    group.sample_size(10);
    group.bench_function("vlm_pillow_exact", |b| {
        b.iter(|| prepare_pixels(&loaded, &opts).unwrap())
    });
    let dynamic = DynamicImage::ImageRgb8(rgb);
    group.bench_function("image_crate_lanczos3_baseline", |b| {
        b.iter(|| {
            let step1 = dynamic.resize_exact(2048, 1152, FilterType::Lanczos3);
            step1.resize_exact(2048, 1536, FilterType::Lanczos3)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
