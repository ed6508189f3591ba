//! GGUF metadata (a llama.cpp text model and its mmproj) → the same [`CheckpointConfig`] a
//! Hugging Face directory gives.
//!
//! Ref: llama.cpp `convert_hf_to_gguf.py` (keys written), `tools/mtmd/clip.cpp` (keys read and
//! their defaults).

use crate::config::{
    Activation, CheckpointConfig, Family, GenerationConfig, ModelConfig, PreprocessorConfig,
    SpecialTokenNames, TextConfig, TokenizerConfig, VisionConfig,
};
use crate::error::{Error, Result};
use crate::weights::gguf::{GgufFile, Value};

/// The SmolVLM chat template (with the video branch), for GGUF files that carry none.
const SMOLVLM_CHAT_TEMPLATE: &str = "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% elif line['type'] == 'video' %}{{ '<video>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

fn bad(file: &GgufFile, problem: String) -> Error {
    Error::WeightFile {
        path: file.path().to_path_buf(),
        problem,
    }
}

/// Checks a text GGUF is a llama-architecture model and not something else.
pub(crate) fn check_text_file(file: &GgufFile) -> Result<()> {
    let arch = file.str("general.architecture")?;
    if arch == "clip" {
        return Err(bad(
            file,
            "this is a vision projector (mmproj) file; give it with --mmproj and the text model GGUF with --model".into(),
        ));
    }
    if arch != "llama" {
        return Err(bad(
            file,
            format!("architecture `{arch}` is not supported (SmolVLM text models are `llama`)"),
        ));
    }
    Ok(())
}

/// Checks an mmproj GGUF is an Idefics3/SmolVLM projector.
fn check_mmproj_file(file: &GgufFile) -> Result<()> {
    let arch = file.str("general.architecture")?;
    if arch != "clip" {
        return Err(bad(
            file,
            format!("architecture `{arch}` is not a vision projector (expected `clip`)"),
        ));
    }
    let projector = file.str("clip.projector_type")?;
    if projector != "idefics3" {
        return Err(bad(
            file,
            format!(
                "projector type `{projector}` is not supported (SmolVLM projectors are `idefics3`)"
            ),
        ));
    }
    Ok(())
}

fn text_config(file: &GgufFile) -> Result<TextConfig> {
    let hidden_size = file.usize("llama.embedding_length")?;
    let heads = file.usize("llama.attention.head_count")?;
    let vocab_size = match file.get("llama.vocab_size").and_then(Value::as_u64) {
        Some(v) => v as usize,
        None => file
            .get("tokenizer.ggml.tokens")
            .and_then(Value::as_array)
            .map_or(0, <[_]>::len),
    };
    let head_dim = match file
        .get("llama.attention.key_length")
        .and_then(Value::as_u64)
    {
        Some(k) => k as usize,
        None if heads > 0 => hidden_size / heads,
        None => 0,
    };
    Ok(TextConfig {
        vocab_size,
        hidden_size,
        intermediate_size: file.usize("llama.feed_forward_length")?,
        num_hidden_layers: file.usize("llama.block_count")?,
        num_attention_heads: heads,
        num_key_value_heads: match file.get("llama.attention.head_count_kv") {
            Some(v) => v.as_u64().map_or(heads, |v| v as usize),
            None => heads,
        },
        head_dim,
        rms_norm_eps: file.f64("llama.attention.layer_norm_rms_epsilon")?,
        rope_theta: file
            .get("llama.rope.freq_base")
            .and_then(Value::as_f64)
            .unwrap_or(10_000.0),
        max_position_embeddings: file.usize("llama.context_length")?,
        hidden_act: Activation::Silu,
    })
}

fn vision_config(file: &GgufFile) -> Result<(VisionConfig, usize)> {
    let hidden_size = file.usize("clip.vision.embedding_length")?;
    let vision = VisionConfig {
        hidden_size,
        intermediate_size: file.usize("clip.vision.feed_forward_length")?,
        num_hidden_layers: file.usize("clip.vision.block_count")?,
        num_attention_heads: file.usize("clip.vision.attention.head_count")?,
        num_channels: 3,
        image_size: file.usize("clip.vision.image_size")?,
        patch_size: file.usize("clip.vision.patch_size")?,
        // clip.cpp runs this projector with tanh-approximated GELU (`clip.use_gelu`).
        hidden_act: Activation::GeluTanh,
        layer_norm_eps: file
            .get("clip.vision.attention.layer_norm_epsilon")
            .and_then(Value::as_f64)
            .unwrap_or(1e-6),
    };
    let scale_factor = match file
        .get("clip.vision.projector.scale_factor")
        .and_then(Value::as_u64)
    {
        Some(s) => s as usize,
        // Without the key, the projection's input width D_v·s² gives s.
        None => {
            let fc = file.tensors.get("mm.model.fc.weight").ok_or_else(|| {
                bad(
                    file,
                    "neither clip.vision.projector.scale_factor nor mm.model.fc.weight is present"
                        .into(),
                )
            })?;
            let in_dim = fc.shape.last().copied().unwrap_or(0);
            let s2 = in_dim / hidden_size.max(1);
            let s = (s2 as f64).sqrt().round() as usize;
            if s * s * hidden_size != in_dim {
                return Err(bad(
                    file,
                    format!("projection input width {in_dim} is not {hidden_size}·s²"),
                ));
            }
            s
        }
    };
    Ok((vision, scale_factor))
}

fn three_floats(file: &GgufFile, key: &str) -> Result<[f32; 3]> {
    match file.get(key).and_then(Value::as_array) {
        None => Ok([0.5; 3]),
        Some(values) => {
            let v: Vec<f32> = values
                .iter()
                .filter_map(Value::as_f64)
                .map(|x| x as f32)
                .collect();
            match v.as_slice() {
                [a, b, c] => Ok([*a, *b, *c]),
                _ => Err(bad(
                    file,
                    format!("`{key}` should hold 3 numbers, found {values:?}"),
                )),
            }
        }
    }
}

fn preprocessor(file: &GgufFile, vision: &VisionConfig) -> Result<PreprocessorConfig> {
    let tile = vision.image_size as u32;
    Ok(PreprocessorConfig {
        do_convert_rgb: true,
        do_resize: true,
        // Files converted before llama.cpp wrote `preproc_image_size` lack it; every SmolVLM
        // checkpoint resizes to 4 tiles on the long side (2048 for 512 px tiles, 1536 for 384).
        longest_edge: file
            .get("clip.vision.preproc_image_size")
            .and_then(Value::as_u64)
            .map_or(4 * tile, |v| v as u32),
        tile_size: tile,
        do_image_splitting: true,
        do_rescale: true,
        rescale_factor: 1.0 / 255.0,
        do_normalize: true,
        image_mean: three_floats(file, "clip.vision.image_mean")?,
        image_std: three_floats(file, "clip.vision.image_std")?,
        resample: 1,
        video_sampling: None,
    })
}

/// Builds the configuration of a GGUF pair. `token_id` resolves token strings in the GGUF's
/// vocabulary; `token` resolves ids back to strings.
pub(crate) fn checkpoint_config(
    text: &GgufFile,
    mmproj: Option<&GgufFile>,
    token_id: &dyn Fn(&str) -> Option<u32>,
    token: &dyn Fn(u32) -> Option<String>,
) -> Result<CheckpointConfig> {
    check_text_file(text)?;
    let text_cfg = text_config(text)?;
    let special = SpecialTokenNames::default();
    let (vision, scale_factor, preprocessor, image_token_id) = match mmproj {
        None => (None, 1, None, 0),
        Some(m) => {
            check_mmproj_file(m)?;
            let (vision, scale) = vision_config(m)?;
            if let Some(proj) = m.get("clip.vision.projection_dim").and_then(Value::as_u64) {
                if proj as usize != text_cfg.hidden_size {
                    return Err(bad(
                        m,
                        format!(
                            "the projector outputs width {proj} but the text model {} has width {}; they are not a pair",
                            text.path().display(),
                            text_cfg.hidden_size
                        ),
                    ));
                }
            }
            let image_id = token_id(&special.image).ok_or_else(|| {
                bad(
                    text,
                    format!(
                        "the vocabulary has no `{}` token, so it cannot take images",
                        special.image
                    ),
                )
            })?;
            let pre = preprocessor(m, &vision)?;
            (Some(vision), scale, Some(pre), image_id)
        }
    };
    let model = ModelConfig {
        family: Family::SmolVlm,
        image_token_id,
        scale_factor,
        tie_word_embeddings: !text.tensors.contains_key("output.weight"),
        vision,
        text: text_cfg,
    };
    model.check().map_err(|p| bad(text, p))?;

    let id = |key: &str| text.get(key).and_then(Value::as_u64).map(|v| v as u32);
    let mut eos_token_ids: Vec<u32> =
        ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"]
            .iter()
            .filter_map(|k| id(k))
            .collect();
    eos_token_ids.dedup();
    let generation = GenerationConfig {
        eos_token_ids,
        pad_token_id: id("tokenizer.ggml.padding_token_id"),
        ..Default::default()
    };
    let chat_template = match text.get("tokenizer.chat_template").and_then(Value::as_str) {
        Some(t) => t.to_string(),
        None => SMOLVLM_CHAT_TEMPLATE.to_string(),
    };
    let tokenizer = TokenizerConfig {
        chat_template: Some(chat_template.clone()),
        special,
        eos_token: id("tokenizer.ggml.eos_token_id").and_then(token),
        bos_token: id("tokenizer.ggml.bos_token_id").and_then(token),
    };
    let image_seq_len = model.image_seq_len();
    Ok(CheckpointConfig {
        model,
        preprocessor,
        image_seq_len,
        generation,
        tokenizer,
        chat_template,
    })
}

/// Checks that a GGUF pair and a checkpoint's `config.json` describe the same model, so that
/// JSON files from one repository can drive weights from another.
pub(crate) fn check_same_model(
    text: &GgufFile,
    mmproj: Option<&GgufFile>,
    model: &ModelConfig,
) -> Result<()> {
    check_text_file(text)?;
    let t = text_config(text)?;
    let ours = [
        ("embedding_length", t.hidden_size, model.text.hidden_size),
        (
            "block_count",
            t.num_hidden_layers,
            model.text.num_hidden_layers,
        ),
        (
            "attention.head_count",
            t.num_attention_heads,
            model.text.num_attention_heads,
        ),
        (
            "attention.head_count_kv",
            t.num_key_value_heads,
            model.text.num_key_value_heads,
        ),
        (
            "feed_forward_length",
            t.intermediate_size,
            model.text.intermediate_size,
        ),
    ];
    for (key, gguf, json) in ours {
        if gguf != json {
            return Err(bad(text, format!("llama.{key} is {gguf} but config.json says {json}; the files belong to different models")));
        }
    }
    if let (Some(m), Some(v)) = (mmproj, &model.vision) {
        check_mmproj_file(m)?;
        let (g, scale) = vision_config(m)?;
        let pairs = [
            ("embedding_length", g.hidden_size, v.hidden_size),
            ("block_count", g.num_hidden_layers, v.num_hidden_layers),
            ("image_size", g.image_size, v.image_size),
            ("patch_size", g.patch_size, v.patch_size),
            ("projector.scale_factor", scale, model.scale_factor),
        ];
        for (key, gguf, json) in pairs {
            if gguf != json {
                return Err(bad(m, format!("clip.vision.{key} is {gguf} but config.json says {json}; the files belong to different models")));
            }
        }
    }
    Ok(())
}
