//! The examples run against the tiny fixture model: their logic is compiled into this binary
//! from `examples/*.rs` (their `main`s unused), so no example binary is built or started.

use vlm::{FinishReason, GenerateOptions, ImageInput};

use crate::common::{engine, fixtures};

#[allow(dead_code)]
#[path = "../examples/stream.rs"]
mod stream;

#[allow(dead_code)]
#[path = "../examples/chat.rs"]
mod chat;

#[allow(dead_code)]
#[path = "../examples/camera.rs"]
mod camera;

fn image(name: &str) -> ImageInput {
    ImageInput::Path(fixtures().join("images").join(name))
}

#[test]
fn stream_example_is_cancelled_from_another_thread() {
    let opts = GenerateOptions {
        max_new_tokens: 200,
        ignore_eos: true,
        ..Default::default()
    };
    let mut out = Vec::new();
    let engine = engine("tiny-smolvlm");
    let answer = stream::stream(engine, image("landscape.png"), &opts, 3, &mut out).unwrap();
    assert_eq!(answer.finish, FinishReason::Cancelled);
    assert!(answer.usage.completion_tokens >= 3);
    assert!(answer.usage.completion_tokens < 200);
    assert_eq!(String::from_utf8(out).unwrap(), answer.text);
}

#[test]
fn chat_example_reuses_the_conversation() {
    let opts = GenerateOptions {
        max_new_tokens: 8,
        ignore_eos: true,
        ..Default::default()
    };
    let mut out = Vec::new();
    let engine = engine("tiny-smolvlm");
    let answers = chat::chat(
        engine,
        image("landscape.png"),
        image("portrait.png"),
        &opts,
        &mut out,
    )
    .unwrap();
    assert_eq!(answers.len(), 3);
    for later in &answers[1..] {
        let u = later.usage;
        assert!(u.prefill_tokens < u.prompt_tokens, "{u:?}");
    }
    assert!(answers[2].usage.image_tokens > answers[0].usage.image_tokens);
    let out = String::from_utf8(out).unwrap();
    assert_eq!(out.matches("> ").count(), 3, "{out}");
}

#[test]
fn camera_example_feeds_raw_frames_to_one_engine() {
    let opts = GenerateOptions {
        max_new_tokens: 4,
        ignore_eos: true,
        ..Default::default()
    };
    let mut out = Vec::new();
    let engine = engine("tiny-smolvlm");
    let answers = camera::watch(engine, 3, (96, 64), &opts, &mut out).unwrap();
    assert_eq!(answers.len(), 3);
    assert!(answers.iter().all(|a| a.usage.completion_tokens == 4));
    assert_ne!(camera::frame(0, 96, 64), camera::frame(1, 96, 64));
    assert_eq!(String::from_utf8(out).unwrap().lines().count(), 3);
}
