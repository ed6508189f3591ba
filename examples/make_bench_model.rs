//! Writes a real-size SmolVLM2 checkpoint with random weights, for benchmarks: the architecture
//! and shapes of the published models, the tokenizer and processor files of the committed tiny
//! fixture (token ids stay valid because they index the real-size embedding table).
//!
//! ```text
//! cargo run --release --example make_bench_model -- 256m target/bench-models/smolvlm2-256m
//! ```
//! Layouts: `256m`, `500m`, `2.2b` (spec: smolvlm-spec.md §2.1).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

struct Layout {
    text_hidden: usize,
    text_inter: usize,
    text_layers: usize,
    heads: usize,
    kv_heads: usize,
    vision_hidden: usize,
    vision_inter: usize,
    vision_layers: usize,
    vision_heads: usize,
    image_size: usize,
    patch: usize,
    scale: usize,
}

fn layout(name: &str) -> Option<Layout> {
    Some(match name {
        "256m" => Layout {
            text_hidden: 576,
            text_inter: 1536,
            text_layers: 30,
            heads: 9,
            kv_heads: 3,
            vision_hidden: 768,
            vision_inter: 3072,
            vision_layers: 12,
            vision_heads: 12,
            image_size: 512,
            patch: 16,
            scale: 4,
        },
        "500m" => Layout {
            text_hidden: 960,
            text_inter: 2560,
            text_layers: 32,
            heads: 15,
            kv_heads: 5,
            vision_hidden: 768,
            vision_inter: 3072,
            vision_layers: 12,
            vision_heads: 12,
            image_size: 512,
            patch: 16,
            scale: 4,
        },
        "2.2b" => Layout {
            text_hidden: 2048,
            text_inter: 8192,
            text_layers: 24,
            heads: 32,
            kv_heads: 32,
            vision_hidden: 1152,
            vision_inter: 4304,
            vision_layers: 27,
            vision_heads: 16,
            image_size: 384,
            patch: 14,
            scale: 3,
        },
        _ => return None,
    })
}

const VOCAB: usize = 49280;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(name), Some(out)) = (args.next(), args.next()) else {
        return Err("usage: make_bench_model 256m|500m|2.2b OUT_DIR".into());
    };
    let l = layout(&name).ok_or("layout must be 256m, 500m or 2.2b")?;
    let out = Path::new(&out);
    std::fs::create_dir_all(out)?;
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/tiny-smolvlm");
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "chat_template.json",
        "generation_config.json",
    ] {
        std::fs::copy(fixture.join(f), out.join(f))?;
    }
    let tiny: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("config.json"))?)?;
    let image_token_id = tiny["image_token_id"].clone();
    let config = serde_json::json!({
        "architectures": ["SmolVLMForConditionalGeneration"], "model_type": "smolvlm",
        "image_token_id": image_token_id, "scale_factor": l.scale, "tie_word_embeddings": false,
        "text_config": {"model_type": "llama", "hidden_size": l.text_hidden, "intermediate_size": l.text_inter,
            "num_hidden_layers": l.text_layers, "num_attention_heads": l.heads, "num_key_value_heads": l.kv_heads,
            "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "max_position_embeddings": 8192, "vocab_size": VOCAB},
        "vision_config": {"hidden_size": l.vision_hidden, "intermediate_size": l.vision_inter,
            "num_hidden_layers": l.vision_layers, "num_attention_heads": l.vision_heads,
            "image_size": l.image_size, "patch_size": l.patch},
    });
    std::fs::write(
        out.join("config.json"),
        serde_json::to_string_pretty(&config)?,
    )?;
    let n = l.image_size / l.patch;
    std::fs::write(
        out.join("processor_config.json"),
        serde_json::json!({"image_seq_len": n * n / (l.scale * l.scale)}).to_string(),
    )?;
    std::fs::write(out.join("preprocessor_config.json"), serde_json::json!({
        "do_convert_rgb": true, "do_image_splitting": true, "do_normalize": true, "do_pad": true, "do_rescale": true,
        "do_resize": true, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 1,
        "rescale_factor": 1.0 / 255.0, "size": {"longest_edge": 4 * l.image_size},
        "max_image_size": {"longest_edge": l.image_size}}).to_string())?;

    let dev = Device::Cpu;
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let mut put = |name: String, shape: &[usize], std: f32| -> candle_core::Result<()> {
        let t = if std == 0.0 {
            Tensor::ones(shape, DType::F32, &dev)?
        } else {
            Tensor::randn(0f32, std, shape, &dev)?
        };
        tensors.insert(name, t);
        Ok(())
    };
    let (d, f, dv, fv) = (l.text_hidden, l.text_inter, l.vision_hidden, l.vision_inter);
    put(
        "model.text_model.embed_tokens.weight".into(),
        &[VOCAB, d],
        0.02,
    )?;
    put("lm_head.weight".into(), &[VOCAB, d], 0.02)?;
    put("model.text_model.norm.weight".into(), &[d], 0.0)?;
    let hd = d / l.heads;
    for i in 0..l.text_layers {
        let p = format!("model.text_model.layers.{i}");
        put(format!("{p}.input_layernorm.weight"), &[d], 0.0)?;
        put(format!("{p}.post_attention_layernorm.weight"), &[d], 0.0)?;
        put(
            format!("{p}.self_attn.q_proj.weight"),
            &[l.heads * hd, d],
            0.02,
        )?;
        put(
            format!("{p}.self_attn.k_proj.weight"),
            &[l.kv_heads * hd, d],
            0.02,
        )?;
        put(
            format!("{p}.self_attn.v_proj.weight"),
            &[l.kv_heads * hd, d],
            0.02,
        )?;
        put(
            format!("{p}.self_attn.o_proj.weight"),
            &[d, l.heads * hd],
            0.02,
        )?;
        put(format!("{p}.mlp.gate_proj.weight"), &[f, d], 0.02)?;
        put(format!("{p}.mlp.up_proj.weight"), &[f, d], 0.02)?;
        put(format!("{p}.mlp.down_proj.weight"), &[d, f], 0.02)?;
    }
    let v = "model.vision_model";
    put(
        format!("{v}.embeddings.patch_embedding.weight"),
        &[dv, 3, l.patch, l.patch],
        0.02,
    )?;
    put(format!("{v}.embeddings.patch_embedding.bias"), &[dv], 0.02)?;
    put(
        format!("{v}.embeddings.position_embedding.weight"),
        &[n * n, dv],
        0.02,
    )?;
    put(format!("{v}.post_layernorm.weight"), &[dv], 0.0)?;
    put(format!("{v}.post_layernorm.bias"), &[dv], 0.02)?;
    for i in 0..l.vision_layers {
        let p = format!("{v}.encoder.layers.{i}");
        for ln in ["layer_norm1", "layer_norm2"] {
            put(format!("{p}.{ln}.weight"), &[dv], 0.0)?;
            put(format!("{p}.{ln}.bias"), &[dv], 0.02)?;
        }
        for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            put(format!("{p}.self_attn.{proj}.weight"), &[dv, dv], 0.02)?;
            put(format!("{p}.self_attn.{proj}.bias"), &[dv], 0.02)?;
        }
        put(format!("{p}.mlp.fc1.weight"), &[fv, dv], 0.02)?;
        put(format!("{p}.mlp.fc1.bias"), &[fv], 0.02)?;
        put(format!("{p}.mlp.fc2.weight"), &[dv, fv], 0.02)?;
        put(format!("{p}.mlp.fc2.bias"), &[dv], 0.02)?;
    }
    put(
        "model.connector.modality_projection.proj.weight".into(),
        &[d, dv * l.scale * l.scale],
        0.02,
    )?;
    candle_core::safetensors::save(&tensors, out.join("model.safetensors"))?;
    println!("wrote {}", out.display());
    Ok(())
}
