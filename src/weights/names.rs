//! Hugging Face tensor names ↔ llama.cpp GGUF tensor names, as a table.
//!
//! One model definition asks for weights by their Hugging Face names; a GGUF pair answers
//! through this table (text tensors from the model file, vision and connector tensors from the
//! mmproj file). Ref: llama.cpp `convert_hf_to_gguf.py` (LlamaModel, SmolVLMModel) and
//! `gguf-py/gguf/tensor_mapping.py`.

/// Which file of a GGUF pair holds a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum GgufPart {
    /// The text-model GGUF (`general.architecture = llama`).
    Text,
    /// The projector GGUF (`general.architecture = clip`).
    Mmproj,
}

/// Whole-model tensors: (Hugging Face name, GGUF name).
const GLOBAL: &[(&str, &str, GgufPart)] = &[
    (
        "model.text_model.embed_tokens.weight",
        "token_embd.weight",
        GgufPart::Text,
    ),
    (
        "model.text_model.norm.weight",
        "output_norm.weight",
        GgufPart::Text,
    ),
    ("lm_head.weight", "output.weight", GgufPart::Text),
    (
        "model.vision_model.embeddings.patch_embedding.weight",
        "v.patch_embd.weight",
        GgufPart::Mmproj,
    ),
    (
        "model.vision_model.embeddings.patch_embedding.bias",
        "v.patch_embd.bias",
        GgufPart::Mmproj,
    ),
    (
        "model.vision_model.embeddings.position_embedding.weight",
        "v.position_embd.weight",
        GgufPart::Mmproj,
    ),
    (
        "model.vision_model.post_layernorm.weight",
        "v.post_ln.weight",
        GgufPart::Mmproj,
    ),
    (
        "model.vision_model.post_layernorm.bias",
        "v.post_ln.bias",
        GgufPart::Mmproj,
    ),
    (
        "model.connector.modality_projection.proj.weight",
        "mm.model.fc.weight",
        GgufPart::Mmproj,
    ),
];

/// Per-layer tensors of the decoder: `model.text_model.layers.N.<hf>` ↔ `blk.N.<gguf>`.
const TEXT_LAYER: &[(&str, &str)] = &[
    ("input_layernorm.weight", "attn_norm.weight"),
    ("self_attn.q_proj.weight", "attn_q.weight"),
    ("self_attn.k_proj.weight", "attn_k.weight"),
    ("self_attn.v_proj.weight", "attn_v.weight"),
    ("self_attn.o_proj.weight", "attn_output.weight"),
    ("post_attention_layernorm.weight", "ffn_norm.weight"),
    ("mlp.gate_proj.weight", "ffn_gate.weight"),
    ("mlp.up_proj.weight", "ffn_up.weight"),
    ("mlp.down_proj.weight", "ffn_down.weight"),
];

/// Per-layer tensors of the vision tower:
/// `model.vision_model.encoder.layers.N.<hf>` ↔ `v.blk.N.<gguf>`.
const VISION_LAYER: &[(&str, &str)] = &[
    ("layer_norm1.weight", "ln1.weight"),
    ("layer_norm1.bias", "ln1.bias"),
    ("self_attn.q_proj.weight", "attn_q.weight"),
    ("self_attn.q_proj.bias", "attn_q.bias"),
    ("self_attn.k_proj.weight", "attn_k.weight"),
    ("self_attn.k_proj.bias", "attn_k.bias"),
    ("self_attn.v_proj.weight", "attn_v.weight"),
    ("self_attn.v_proj.bias", "attn_v.bias"),
    ("self_attn.out_proj.weight", "attn_out.weight"),
    ("self_attn.out_proj.bias", "attn_out.bias"),
    ("layer_norm2.weight", "ln2.weight"),
    ("layer_norm2.bias", "ln2.bias"),
    // Legacy files name fc1 `ffn_down`; the loader resolves that by shape.
    ("mlp.fc1.weight", "ffn_up.weight"),
    ("mlp.fc1.bias", "ffn_up.bias"),
    ("mlp.fc2.weight", "ffn_down.weight"),
    ("mlp.fc2.bias", "ffn_down.bias"),
];

const TEXT_LAYERS: &str = "model.text_model.layers.";
const VISION_LAYERS: &str = "model.vision_model.encoder.layers.";

/// The GGUF name and file of a Hugging Face tensor name.
pub(crate) fn to_gguf(hf: &str) -> Option<(GgufPart, String)> {
    if let Some((_, g, part)) = GLOBAL.iter().find(|(h, _, _)| *h == hf) {
        return Some((*part, (*g).to_string()));
    }
    let layered = [
        (TEXT_LAYERS, TEXT_LAYER, "blk.", GgufPart::Text),
        (VISION_LAYERS, VISION_LAYER, "v.blk.", GgufPart::Mmproj),
    ];
    for (hf_prefix, table, gguf_prefix, part) in layered {
        if let Some(rest) = hf.strip_prefix(hf_prefix) {
            let (index, suffix) = rest.split_once('.')?;
            let index: usize = index.parse().ok()?;
            let (_, g) = table.iter().find(|(h, _)| *h == suffix)?;
            return Some((part, format!("{gguf_prefix}{index}.{g}")));
        }
    }
    None
}

/// The Hugging Face name of a GGUF tensor name (the inverse of [`to_gguf`]).
#[cfg(test)]
fn to_hf(part: GgufPart, gguf: &str) -> Option<String> {
    if let Some((h, _, _)) = GLOBAL.iter().find(|(_, g, p)| *g == gguf && *p == part) {
        return Some((*h).to_string());
    }
    let (hf_prefix, table, gguf_prefix) = match part {
        GgufPart::Text => (TEXT_LAYERS, TEXT_LAYER, "blk."),
        GgufPart::Mmproj => (VISION_LAYERS, VISION_LAYER, "v.blk."),
    };
    let rest = gguf.strip_prefix(gguf_prefix)?;
    let (index, suffix) = rest.split_once('.')?;
    let index: usize = index.parse().ok()?;
    let (h, _) = table.iter().find(|(_, g)| *g == suffix)?;
    Some(format!("{hf_prefix}{index}.{h}"))
}

/// Every Hugging Face tensor name of a model with the given layer counts (lm_head included).
#[cfg(test)]
fn hf_names(text_layers: usize, vision_layers: usize) -> Vec<String> {
    let mut names: Vec<String> = GLOBAL.iter().map(|(h, _, _)| (*h).to_string()).collect();
    for i in 0..text_layers {
        names.extend(
            TEXT_LAYER
                .iter()
                .map(|(h, _)| format!("{TEXT_LAYERS}{i}.{h}")),
        );
    }
    for i in 0..vision_layers {
        names.extend(
            VISION_LAYER
                .iter()
                .map(|(h, _)| format!("{VISION_LAYERS}{i}.{h}")),
        );
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn the_table_is_a_bijection_over_a_whole_model() {
        let names = hf_names(30, 12);
        assert_eq!(names.len(), 9 + 30 * 9 + 12 * 16);
        let mut seen = HashSet::new();
        for hf in &names {
            let (part, g) = to_gguf(hf).unwrap_or_else(|| panic!("{hf} has no GGUF name"));
            assert!(seen.insert((part, g.clone())), "{g} is used twice");
            assert_eq!(
                to_hf(part, &g).as_deref(),
                Some(hf.as_str()),
                "{g} does not map back"
            );
        }
    }

    #[test]
    fn names_follow_llama_cpp() {
        assert_eq!(
            to_gguf("model.text_model.layers.7.self_attn.o_proj.weight"),
            Some((GgufPart::Text, "blk.7.attn_output.weight".into()))
        );
        assert_eq!(
            to_gguf("model.vision_model.encoder.layers.11.mlp.fc1.bias"),
            Some((GgufPart::Mmproj, "v.blk.11.ffn_up.bias".into()))
        );
        assert_eq!(
            to_gguf("model.text_model.layers.x.mlp.up_proj.weight"),
            None
        );
        assert_eq!(
            to_hf(GgufPart::Mmproj, "mm.model.fc.weight").as_deref(),
            Some("model.connector.modality_projection.proj.weight")
        );
    }
}
