//! `vlm bench`: stage-split timings in the style of llama-bench, repeated, with statistics.
//!
//! What each test times (and nothing else):
//! - `img`: decoding one image file plus preprocessing (EXIF, the two resizes, tiling,
//!   normalisation); milliseconds per image.
//! - `enc`: the vision tower and connector over all views of that image; milliseconds per
//!   view (tile or global image).
//! - `pp<N>`: prefill of N text tokens into an empty cache (embedding, decoder, last-position
//!   logits); tokens per second. Tokenization is excluded.
//! - `tg<N>` (at depth `d`): N single-token decode steps (embedding, decoder with the cache,
//!   logits, greedy argmax; the image token, should it win, is replaced by its neighbour) after
//!   `max(d, 1)` prefilled tokens (the prefill is not timed); tokens per second.
//! - `ttft`: the whole path from the image file and a prompt to the first generated token
//!   (decode, preprocess, template, tokenize, vision, prefill, first sample); milliseconds.
//! - `video`: a clip's decoding and frame sampling, the sampled frames' preprocessing and the
//!   vision tower and connector over them; milliseconds per sampled frame.
//!
//! Each test runs once untimed (warm-up, unless disabled) and then `repetitions` times.

pub mod report;

use std::time::Instant;

use crate::{Engine, GenerateOptions, ImageInput, Message, Result, VideoInput};

pub use report::{environment, BenchResult, Environment};

/// One benchmark test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchTest {
    /// Decode + preprocess one image.
    Img,
    /// Vision tower + connector, per view.
    Enc,
    /// Prefill of N tokens.
    Pp(usize),
    /// N decode steps after `depth` cached tokens.
    Tg {
        /// Tokens generated.
        n: usize,
        /// Tokens already in the cache.
        depth: usize,
    },
    /// Image + prompt to first token.
    Ttft,
    /// Decode + sample + preprocess + encode a clip, per sampled frame.
    Video,
}

impl BenchTest {
    /// The llama-bench-style name (`pp512`, `tg128 @ d900`, …).
    pub fn name(&self) -> String {
        match self {
            BenchTest::Img => "img".into(),
            BenchTest::Enc => "enc".into(),
            BenchTest::Pp(n) => format!("pp{n}"),
            BenchTest::Tg { n, depth: 0 } => format!("tg{n}"),
            BenchTest::Tg { n, depth } => format!("tg{n} @ d{depth}"),
            BenchTest::Ttft => "ttft".into(),
            BenchTest::Video => "video".into(),
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Tests, in order.
    pub tests: Vec<BenchTest>,
    /// Timed repetitions per test.
    pub repetitions: usize,
    /// Run each test once untimed first.
    pub warmup: bool,
    /// The image for `img`, `enc` and `ttft`.
    pub image: ImageInput,
    /// The prompt for `ttft`.
    pub prompt: String,
    /// The clip for `video`.
    pub video: Option<VideoInput>,
}

/// Runs the tests; `on_result` sees each result as it completes.
pub fn run(
    engine: &Engine,
    opts: &BenchOptions,
    on_result: &mut dyn FnMut(&BenchResult),
) -> Result<Vec<BenchResult>> {
    let mut results = Vec::new();
    for test in &opts.tests {
        let mut samples = Vec::with_capacity(opts.repetitions);
        let runs = opts.repetitions.max(1) + usize::from(opts.warmup);
        for i in 0..runs {
            let value = run_once(engine, *test, opts)?;
            if !(opts.warmup && i == 0) {
                samples.push(value);
            }
        }
        let (unit, higher_is_better) = match test {
            BenchTest::Pp(_) | BenchTest::Tg { .. } => ("tok/s", true),
            BenchTest::Img => ("ms/image", false),
            BenchTest::Enc => ("ms/view", false),
            BenchTest::Ttft => ("ms", false),
            BenchTest::Video => ("ms/frame", false),
        };
        let result = BenchResult::new(test.name(), unit, higher_is_better, samples);
        on_result(&result);
        results.push(result);
    }
    Ok(results)
}

fn run_once(engine: &Engine, test: BenchTest, opts: &BenchOptions) -> Result<f64> {
    let processor = engine.processor();
    let model = engine.model();
    Ok(match test {
        BenchTest::Img => {
            let t = Instant::now();
            processor.prepare_image(&opts.image, engine.processor_options())?;
            t.elapsed().as_secs_f64() * 1e3
        }
        BenchTest::Enc => {
            let image = processor.prepare_image(&opts.image, engine.processor_options())?;
            let pixels = crate::engine::pixels_tensor(&image.pixels, model.device())?;
            let t = Instant::now();
            model.encode_images(&pixels, None)?;
            t.elapsed().as_secs_f64() * 1e3 / image.pixels.n_views as f64
        }
        BenchTest::Pp(n) => {
            let ids = synthetic_ids(engine, n);
            let mut cache = model.new_cache();
            let t = Instant::now();
            let embeds = model.embed(&ids, None, 0)?;
            model.forward(&embeds, &mut cache)?;
            n as f64 / t.elapsed().as_secs_f64()
        }
        BenchTest::Tg { n, depth } => {
            let mut cache = model.new_cache();
            let prompt = synthetic_ids(engine, depth.max(1));
            let embeds = model.embed(&prompt, None, 0)?;
            let mut logits = model.forward(&embeds, &mut cache)?.to_vec1::<f32>()?;
            let t = Instant::now();
            let image = model.image_token_id();
            for _ in 0..n {
                let next = crate::generate::sampler::argmax(&logits);
                // A random-weight model may well pick the image token, which would demand
                // image features; its neighbour costs the same.
                let next = if next == image { next ^ 1 } else { next };
                let embeds = model.embed(&[next], None, 0)?;
                logits = model.forward(&embeds, &mut cache)?.to_vec1::<f32>()?;
            }
            n as f64 / t.elapsed().as_secs_f64()
        }
        BenchTest::Video => {
            let Some(video) = &opts.video else {
                return Err(crate::Error::InvalidOption {
                    name: "tests",
                    reason: "the video test needs a clip".into(),
                });
            };
            let t = Instant::now();
            let embedding = engine.embed_video(video, engine.processor_options())?;
            t.elapsed().as_secs_f64() * 1e3 / embedding.timestamps().len() as f64
        }
        BenchTest::Ttft => {
            let opts_gen = GenerateOptions {
                max_new_tokens: 1,
                ..Default::default()
            };
            let message = Message::user([opts.image.clone()], opts.prompt.clone());
            let t = Instant::now();
            engine.session().send(message, &opts_gen)?;
            t.elapsed().as_secs_f64() * 1e3
        }
    })
}

/// Deterministic token ids spread over the vocabulary, avoiding the image token (which would
/// demand image features).
fn synthetic_ids(engine: &Engine, n: usize) -> Vec<u32> {
    let vocab = engine.config().model.text.vocab_size.max(2) as u64;
    let image = engine.model().image_token_id();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let id = ((state >> 33) % vocab) as u32;
            if id == image {
                (id + 1) % vocab as u32
            } else {
                id
            }
        })
        .collect()
}
