//! Video input against transformers (`scripts/make_video_fixtures.py`, transformers 5.24):
//! frame sampling and prompt text as golden strings, torchvision's LANCZOS resize, and a
//! frame directory end to end on the tiny checkpoint; plus the inputs' bad cases.

use std::path::PathBuf;

use serde_json::Value;
use vlm::processor::video::{sample_indices, video_prompt, FrameSampling, VideoMetadata};
use vlm::processor::video_pixels::resize_lanczos_torch;
use vlm::processor::{prompt::ImageTokens, MediaLayout};
use vlm::{GenerateOptions, Message, ModelSource, VideoInput};

use crate::common::{engine, fixtures, max_abs_diff, model_dir};

fn video_fixtures() -> PathBuf {
    fixtures().join("video")
}

fn json(name: &str) -> Value {
    let text = std::fs::read_to_string(video_fixtures().join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn processor() -> vlm::processor::Processor {
    vlm::engine::load_processor(&ModelSource::dir(model_dir("tiny-smolvlm"))).unwrap()
}

const TOKENS: ImageTokens<'static> = ImageTokens {
    image: "<image>",
    fake: "<fake_token_around_image>",
    global: "<global-img>",
};

#[test]
fn sampling_and_prompt_text_match_transformers() {
    let doc = json("prompts.json");
    let seq_len = doc["image_seq_len"].as_u64().unwrap() as usize;
    assert_eq!(seq_len, processor().image_seq_len());
    let clips = doc["clips"].as_array().unwrap();
    // 1, 7 and 64 frames, a 65-second clip (not long enough for the skip rule: 65 - 2 is not
    // more than 64), a 90-second clip (skips a second at each end), and fractional rates.
    assert!(clips.len() >= 7);
    for clip in clips {
        let name = clip["name"].as_str().unwrap();
        let meta = VideoMetadata {
            total_frames: clip["total_frames"].as_u64().unwrap() as usize,
            fps: clip["fps"].as_f64().unwrap(),
            duration: clip["duration"].as_f64().unwrap(),
        };
        let sampling = FrameSampling {
            fps: clip["sample_fps"].as_f64().unwrap(),
            max_frames: clip["max_frames"].as_u64().unwrap() as usize,
        };
        let indices = sample_indices(&meta, &sampling);
        let expected: Vec<usize> = clip["indices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(indices, expected, "{name}: frame indices");
        let timestamps: Vec<f64> = indices.iter().map(|&i| meta.timestamp(i)).collect();
        let prompt = video_prompt(&timestamps, Some(meta.duration), seq_len, &TOKENS);
        assert_eq!(prompt, clip["prompt"].as_str().unwrap(), "{name}: prompt");
    }
    let counts: Vec<usize> = clips
        .iter()
        .map(|c| c["indices"].as_array().unwrap().len())
        .collect();
    for n in [1, 7, 64] {
        assert!(counts.contains(&n), "no golden with {n} frames: {counts:?}");
    }
}

#[test]
fn video_conversations_use_the_video_chat_template() {
    let doc = json("prompts.json");
    let golden = &doc["chat_template_rendering"];
    let processor = processor();
    let message = Message::user_video(
        VideoInput::path("unused.mp4"),
        golden["question"].as_str().unwrap(),
    );
    let layout = MediaLayout::Video(vlm::processor::video::VideoLayout {
        timestamps: vec![0.0],
        duration: Some(1.0),
    });
    let (rendered, expanded, _) = processor
        .tokenize_media(&[message], &[layout], true)
        .unwrap();
    assert_eq!(rendered, golden["prompt"].as_str().unwrap());
    // The text turn starts "User: " (with a space) because the first part is not an image.
    assert!(expanded.starts_with(
        "<|im_start|>User: You are provided the following series of one frames from a 0:00:01"
    ));
}

#[test]
fn frames_are_resized_as_torchvision_does() {
    let doc = json("resize.json");
    let (w, h) = (
        doc["width"].as_u64().unwrap(),
        doc["height"].as_u64().unwrap(),
    );
    let bytes = |v: &Value| -> Vec<u8> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_u64().unwrap() as u8)
            .collect()
    };
    let src = image::RgbImage::from_raw(w as u32, h as u32, bytes(&doc["rgb"])).unwrap();
    for case in doc["outputs"].as_array().unwrap() {
        let (ow, oh) = (
            case["width"].as_u64().unwrap() as u32,
            case["height"].as_u64().unwrap() as u32,
        );
        let out = resize_lanczos_torch(&src, ow, oh).unwrap();
        // Exact: the int16 fixed-point arithmetic is reproduced, not approximated.
        assert_eq!(out.into_raw(), bytes(&case["rgb"]), "{w}x{h} -> {ow}x{oh}");
    }
}

fn parity_video() -> VideoInput {
    let doc = json("parity.json");
    VideoInput::path(video_fixtures().join("frames")).with_frame_rate(doc["fps"].as_f64().unwrap())
}

#[test]
fn a_frame_directory_matches_transformers() {
    let doc = json("parity.json");
    let engine = engine("tiny-smolvlm");
    let message = Message::user_video(parity_video(), doc["question"].as_str().unwrap());
    let prepared = engine
        .prepare(std::slice::from_ref(&message), engine.processor_options())
        .unwrap();
    assert_eq!(prepared.prompt, doc["prompt"].as_str().unwrap());
    let expected_ids: Vec<u32> = doc["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(prepared.input_ids, expected_ids, "prompt token ids");

    // Frames 4 and 9 are wider than the rest; both kinds are resized on their own, and
    // frame 4 is among the six sampled.
    let reference = candle_core::safetensors::load(
        video_fixtures().join("parity_pixels.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let reference = &reference["pixel_values"];
    let views: Vec<candle_core::Tensor> = prepared
        .images()
        .iter()
        .map(|img| vlm::engine::pixels_tensor(&img.pixels, &candle_core::Device::Cpu).unwrap())
        .collect();
    let ours = candle_core::Tensor::cat(&views, 0).unwrap();
    // The bytes after resizing are identical (see `frames_are_resized_as_torchvision_does`);
    // what is left is float32 rounding of `(x - 127.5) / 127.5`, computed the same way.
    let diff = max_abs_diff(&ours, reference);
    assert!(diff <= 1e-6, "pixel values differ by {diff}");

    // Greedy tokens: every reference step has a top-2 logit gap of at least 0.19, far above
    // the f32 summation-order noise of the tiny model (about 1e-5), so all must agree.
    let margins = doc["greedy_margins"].as_array().unwrap();
    assert!(margins.iter().all(|m| m.as_f64().unwrap() > 1e-3));
    let expected: Vec<u32> = doc["greedy_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let opts = GenerateOptions {
        max_new_tokens: expected.len(),
        ignore_eos: true,
        ..Default::default()
    };
    let answer = engine.session().send(message, &opts).unwrap();
    assert_eq!(answer.token_ids, expected, "greedy tokens");
    assert_eq!(answer.usage.image_tokens, 6 * 4);
}

#[test]
fn a_second_question_about_a_clip_reuses_its_frames() {
    let engine = engine("tiny-smolvlm");
    let opts = GenerateOptions {
        max_new_tokens: 2,
        ignore_eos: true,
        ..Default::default()
    };
    // The vision tower reports each batch of views it encodes.
    let encoded = |session: &mut vlm::Session, question: &str| {
        let mut views = 0;
        let g = session
            .send_streaming(
                Message::user_video(parity_video(), question),
                &opts,
                &vlm::CancelToken::new(),
                &mut |e| {
                    if let vlm::Event::Progress(vlm::Progress::EncodeViews { done, .. }) = e {
                        views = done;
                    }
                    std::ops::ControlFlow::Continue(())
                },
            )
            .unwrap();
        (g, views)
    };
    let mut session = engine.session();
    let (first, views) = encoded(&mut session, "What happens?");
    assert_eq!(views, 6);
    let (_, views) = encoded(&mut session, "And then?");
    assert_eq!(views, 0, "the second question encoded frames again");

    // Embeddings computed ahead of time are used as supplied.
    let embedding = engine
        .embed_video(&parity_video(), engine.processor_options())
        .unwrap();
    assert_eq!(embedding.timestamps(), &[0.0, 1.0, 2.0, 3.0, 4.0, 5.5]);
    let mut fresh = engine.session();
    fresh.provide_video(parity_video(), embedding);
    let (third, views) = encoded(&mut fresh, "What happens?");
    assert_eq!(views, 0);
    assert_eq!(third.token_ids, first.token_ids);
}

#[test]
fn bench_times_a_clip_per_sampled_frame() {
    use vlm::apps::bench::{run, BenchOptions, BenchTest};
    let opts = BenchOptions {
        tests: vec![BenchTest::Video],
        repetitions: 2,
        warmup: false,
        image: vlm::ImageInput::Encoded(Vec::new()),
        prompt: String::new(),
        video: Some(parity_video()),
    };
    let results = run(engine("tiny-smolvlm"), &opts, &mut |_| {}).unwrap();
    assert_eq!(
        (results[0].test.as_str(), results[0].unit),
        ("video", "ms/frame")
    );
    assert!(results[0].mean > 0.0);
    let without = BenchOptions {
        video: None,
        ..opts
    };
    let err = run(engine("tiny-smolvlm"), &without, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("needs a clip"), "{err}");
}

fn video_error(input: &VideoInput) -> String {
    let processor = processor();
    match processor.prepare_video(input, &Default::default()) {
        Ok(v) => panic!("expected an error, got {} frames", v.pixels.n_views),
        Err(e) => e.to_string(),
    }
}

#[test]
fn frame_directories_skip_other_files_and_reject_empty_ones() {
    // `notes.txt` sits among the parity frames: skipped, the twelve PNGs are the clip.
    let processor = processor();
    let v = processor
        .prepare_video(
            &VideoInput::path(video_fixtures().join("frames")).with_max_frames(64),
            &Default::default(),
        )
        .unwrap();
    assert_eq!(v.layout.duration, Some(12.0));
    assert_eq!(v.pixels.n_views, 12);

    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("readme.md"), "no frames").unwrap();
    let err = video_error(&VideoInput::path(empty.path()));
    assert!(
        err.contains("has no PNG, JPEG, WebP or GIF frames"),
        "{err}"
    );

    let broken = tempfile::tempdir().unwrap();
    std::fs::write(broken.path().join("0001.png"), b"not a png").unwrap();
    let err = video_error(&VideoInput::path(broken.path()));
    assert!(err.contains("0001.png"), "{err}");

    let err = video_error(&VideoInput::path(video_fixtures().join("no-such-clip.mp4")));
    assert!(
        err.contains("no-such-clip.mp4") && err.contains("not found"),
        "{err}"
    );
    let err = video_error(&VideoInput::path(video_fixtures().join("frames")).with_fps(0.0));
    assert!(err.contains("fps"), "{err}");
}

#[test]
fn sampling_follows_the_input_then_the_options_then_the_checkpoint() {
    let processor = processor();
    let frames = || VideoInput::path(video_fixtures().join("frames"));
    let count = |input: &VideoInput, opts: &vlm::ProcessorOptions| {
        processor.prepare_video(input, opts).unwrap().pixels.n_views
    };
    let checkpoint = count(&frames(), &Default::default());
    let three = vlm::ProcessorOptions {
        video_max_frames: Some(3),
        ..Default::default()
    };
    assert!(checkpoint > 3, "the checkpoint keeps {checkpoint} frames");
    assert_eq!(count(&frames(), &three), 3);
    assert_eq!(count(&frames().with_max_frames(5), &three), 5);
    let slow = vlm::ProcessorOptions {
        video_fps: Some(0.25),
        ..Default::default()
    };
    // Twelve one-second frames at a quarter frame per second: three.
    assert_eq!(count(&frames().with_max_frames(64), &slow), 3);
}

#[test]
fn vlm_ask_reads_a_frame_directory_and_names_skipped_files() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vlm"))
        .arg("ask")
        .arg(video_fixtures().join("frames"))
        .args([
            "What happens?",
            "--fps",
            "2",
            "--max-tokens",
            "2",
            "--json",
            "--model",
        ])
        .arg(model_dir("tiny-smolvlm"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning:") && stderr.contains("skipping notes.txt"),
        "{stderr}"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Twelve frames at 2 per second: a 6-second clip, 6 frames of 4 image tokens.
    assert_eq!(report["usage"]["image_tokens"], 24);
}

#[test]
fn animated_gifs_are_videos() {
    use image::codecs::gif::{GifEncoder, Repeat};
    use image::{Delay, Frame, RgbaImage};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("anim.gif");
    {
        let file = std::fs::File::create(&path).unwrap();
        let mut enc = GifEncoder::new(file);
        enc.set_repeat(Repeat::Infinite).unwrap();
        // Eight frames of 250 ms: a 2-second clip at 4 fps.
        for i in 0..8u8 {
            let img = RgbaImage::from_pixel(20, 10, image::Rgba([i * 30, 100, 200, 255]));
            let frame = Frame::from_parts(img, 0, 0, Delay::from_numer_denom_ms(250, 1));
            enc.encode_frame(frame).unwrap();
        }
    }
    assert!(vlm::video::is_video_path(&path));
    assert!(!vlm::video::is_video_path(
        &fixtures().join("images/landscape.png")
    ));
    let v = processor()
        .prepare_video(&VideoInput::path(&path), &Default::default())
        .unwrap();
    // round(1 fps × 2 s) = 2 frames: the first and the last.
    assert_eq!(v.layout.timestamps, vec![0.0, 1.75]);
    assert_eq!(v.layout.duration, Some(2.0));
    let err = video_error(&VideoInput::path(fixtures().join("images/landscape.png")));
    assert!(err.contains("still PNG"), "{err}");
}

#[cfg(feature = "video")]
mod mp4_files {
    use super::*;
    use vlm::video::load_video;

    fn clip(name: &str) -> PathBuf {
        video_fixtures().join("clips").join(name)
    }

    fn sampled(path: &std::path::Path) -> vlm::Result<vlm::video::SampledVideo> {
        load_video(
            &VideoInput::path(path),
            &FrameSampling::default(),
            &vlm::ImageLimits::default(),
        )
    }

    fn error(path: &std::path::Path) -> String {
        match sampled(path) {
            Ok(v) => panic!(
                "{}: expected an error, got {} frames",
                path.display(),
                v.frames.len()
            ),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn h264_frames_match_ffmpeg() {
        // High profile with B-frames: frames are decoded in decode order and kept by
        // presentation index.
        let v = sampled(&clip("clip.mp4")).unwrap();
        assert_eq!(
            (v.metadata.total_frames, v.metadata.fps, v.metadata.duration),
            (40, 10.0, 4.0)
        );
        assert_eq!(v.indices, vec![0, 13, 26, 39]);
        for (frame, index) in v.frames.iter().zip(&v.indices) {
            let reference = image::open(clip(&format!("clip_ref_{index}.png")))
                .unwrap()
                .to_rgb8();
            assert_eq!(frame.dimensions(), reference.dimensions());
            let diffs: Vec<i32> = frame
                .as_raw()
                .iter()
                .zip(reference.as_raw())
                .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
                .collect();
            let max = diffs.iter().copied().max().unwrap_or(0);
            let mean = diffs.iter().sum::<i32>() as f64 / diffs.len() as f64;
            // H.264 decoding is exact (any conformant decoder gives the same YUV); what is
            // left is the YUV → RGB step, where FFmpeg's swscale uses low-precision
            // fixed-point tables and we use the BT.601 matrix in f32 with rounding. Applying
            // our formula to FFmpeg's own YUV of frame 13 gives max 3 and mean 0.75 against
            // its RGB, so these bounds are the conversion's, with a little room.
            assert!(
                max <= 3 && mean < 1.0,
                "frame {index}: max {max}, mean {mean:.3}"
            );
        }
    }

    #[test]
    fn display_rotation_is_applied() {
        let plain = sampled(&clip("clip.mp4")).unwrap();
        let rotated = sampled(&clip("clip_rotated.mp4")).unwrap();
        // The track header turns the picture 90° counter-clockwise, as FFmpeg shows it.
        for (p, r) in plain.frames.iter().zip(&rotated.frames) {
            assert_eq!(r.dimensions(), (72, 128));
            assert_eq!(r, &image::imageops::rotate270(p));
        }
    }

    #[test]
    fn other_codecs_and_broken_files_are_clear_errors() {
        let err = error(&clip("hevc.mp4"));
        assert!(
            err.contains("hevc.mp4") && err.contains("HEVC (H.265)") && err.contains("libx264"),
            "{err}"
        );
        assert!(err.contains("directory of frames"), "{err}");

        let err = error(&clip("audio_only.mp4"));
        assert!(err.ends_with("has no video track"), "{err}");

        let bytes = std::fs::read(clip("clip.mp4")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        // The sample data cut short (the header, at the front, is whole).
        let cut = dir.path().join("cut.mp4");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let err = error(&cut);
        assert!(
            err.contains("cut.mp4") && err.contains("truncated"),
            "{err}"
        );
        // The header itself cut short.
        let stub = dir.path().join("stub.mp4");
        std::fs::write(&stub, &bytes[..200]).unwrap();
        let err = error(&stub);
        assert!(
            err.contains("stub.mp4") && err.contains("truncated"),
            "{err}"
        );

        // A video track with no frames.
        let empty = dir.path().join("empty.mp4");
        {
            let file = std::fs::File::create(&empty).unwrap();
            let config = mp4::Mp4Config {
                major_brand: str::parse("isom").unwrap(),
                minor_version: 512,
                compatible_brands: vec![str::parse("isom").unwrap()],
                timescale: 1000,
            };
            let mut writer = mp4::Mp4Writer::write_start(file, &config).unwrap();
            writer
                .add_track(&mp4::TrackConfig {
                    track_type: mp4::TrackType::Video,
                    timescale: 1000,
                    language: "und".into(),
                    media_conf: mp4::MediaConfig::AvcConfig(mp4::AvcConfig {
                        width: 64,
                        height: 64,
                        seq_param_set: vec![0x67, 0x64, 0, 0x0a],
                        pic_param_set: vec![0x68, 0xee, 0x3c, 0x80],
                    }),
                })
                .unwrap();
            writer.write_end().unwrap();
        }
        let err = error(&empty);
        assert!(err.contains("empty.mp4") && err.contains("empty"), "{err}");
    }

    #[test]
    fn vlm_describe_reads_an_mp4() {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vlm"))
            .args(["describe", clip("clip.mp4").to_str().unwrap(), "--model"])
            .arg(model_dir("tiny-smolvlm"))
            .args(["--max-tokens", "3", "--max-frames", "2", "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        // Two frames of four image tokens each.
        assert_eq!(report["usage"]["image_tokens"], 8);
    }
}
