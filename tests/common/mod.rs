//! Fixtures: the committed tiny checkpoints and the reference outputs transformers produced for
//! them (see `scripts/make_fixtures.py`).

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::{Device, Tensor};
use serde_json::Value;
use vlm::{Content, Engine, EngineOptions, ImageInput, Message, ModelSource, Role, VisionCompute};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn model_dir(name: &str) -> PathBuf {
    fixtures().join("models").join(name)
}

/// One reference case of `reference/cases.json`.
pub struct Case {
    pub json: Value,
}

impl Case {
    pub fn name(&self) -> &str {
        self.json["name"].as_str().unwrap()
    }

    pub fn model(&self) -> &str {
        self.json["model"].as_str().unwrap()
    }

    pub fn str(&self, key: &str) -> &str {
        self.json[key]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no string `{key}`", self.name()))
    }

    pub fn ids(&self, key: &str) -> Vec<u32> {
        self.json[key]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no array `{key}`", self.name()))
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect()
    }

    pub fn floats(&self, key: &str) -> Vec<f64> {
        self.json[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    }

    pub fn splitting(&self) -> bool {
        self.json["do_image_splitting"].as_bool().unwrap_or(true)
    }

    /// The case's chat messages, image paths resolved against the fixture directory.
    pub fn messages(&self) -> Vec<Message> {
        self.json["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let role = match m["role"].as_str().unwrap() {
                    "system" => Role::System,
                    "user" => Role::User,
                    "assistant" => Role::Assistant,
                    other => panic!("role {other}"),
                };
                let content = m["content"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|part| match part["type"].as_str().unwrap() {
                        "text" => Content::Text(part["text"].as_str().unwrap().to_string()),
                        "image" => Content::Image(ImageInput::Path(
                            fixtures().join(part["path"].as_str().unwrap()),
                        )),
                        other => panic!("part type {other}"),
                    })
                    .collect();
                Message::new(role, content)
            })
            .collect()
    }

    /// A reference tensor of this case (`<case>.<name>`).
    pub fn tensor(&self, name: &str) -> Tensor {
        let key = format!("{}.{name}", self.name());
        reference_tensors(self.model())
            .get(&key)
            .unwrap_or_else(|| panic!("reference tensor {key} missing"))
            .clone()
    }

    pub fn has_tensor(&self, name: &str) -> bool {
        reference_tensors(self.model()).contains_key(&format!("{}.{name}", self.name()))
    }
}

pub fn cases() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(|| {
        let text = std::fs::read_to_string(fixtures().join("reference/cases.json")).unwrap();
        let json: Value = serde_json::from_str(&text).unwrap();
        json["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| Case { json: c.clone() })
            .collect()
    })
}

pub fn case(name: &str) -> &'static Case {
    cases()
        .iter()
        .find(|c| c.name() == name)
        .unwrap_or_else(|| panic!("no reference case {name}"))
}

fn reference_tensors(model: &str) -> &'static HashMap<String, Tensor> {
    static SMOL: OnceLock<HashMap<String, Tensor>> = OnceLock::new();
    static IDEFICS: OnceLock<HashMap<String, Tensor>> = OnceLock::new();
    let cell = match model {
        "tiny-smolvlm" => &SMOL,
        "tiny-idefics3" => &IDEFICS,
        other => panic!("no reference tensors for {other}"),
    };
    cell.get_or_init(|| {
        let path = fixtures().join(format!("reference/{model}.safetensors"));
        candle_core::safetensors::load(path, &Device::Cpu).unwrap()
    })
}

/// The engine of a fixture model (loaded once per test binary).
pub fn engine(model: &str) -> &'static Engine {
    static SMOL: OnceLock<Engine> = OnceLock::new();
    static IDEFICS: OnceLock<Engine> = OnceLock::new();
    let cell = match model {
        "tiny-smolvlm" => &SMOL,
        "tiny-idefics3" => &IDEFICS,
        other => panic!("no fixture model {other}"),
    };
    cell.get_or_init(|| {
        // The reference kernels: the parity tests hold transformers' arithmetic to f32 rounding.
        let opts = EngineOptions {
            vision_compute: Some(VisionCompute::Reference),
            prefill_compute: Some(vlm::PrefillCompute::Reference),
            ..Default::default()
        };
        Engine::load(ModelSource::dir(model_dir(model)), opts)
            .unwrap_or_else(|e| panic!("loading {model}: {e}"))
    })
}

/// Largest absolute difference between two tensors of the same shape.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    let a = a
        .to_dtype(candle_core::DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap();
    let b = b
        .to_dtype(candle_core::DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap();
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// The first `n` greedy tokens `engine` generates for the last message of `case` (end of
/// sequence ignored), in a fresh session.
pub fn greedy_tokens(engine: &Engine, case: &Case, n: usize) -> Vec<u32> {
    let opts = vlm::GenerateOptions {
        max_new_tokens: n,
        ignore_eos: true,
        ..Default::default()
    };
    let message = case.messages().pop().expect("a case has messages");
    engine
        .session()
        .send(message, &opts)
        .unwrap_or_else(|e| panic!("{}: {e}", case.name()))
        .token_ids
}
