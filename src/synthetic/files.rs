//! A preset → its checkpoint files other than the weights: `config.json` and the processor
//! configs written from its layout, and the compiled-in tokenizer, chat template and
//! generation config of the tiny test checkpoint.

use std::path::PathBuf;

use serde_json::json;

use super::Preset;

/// `<image>`'s id in the compiled-in tokenizer (checked by a test).
const IMAGE_TOKEN_ID: u32 = 508;

const TOKENIZER_JSON: &str =
    include_str!("../../tests/fixtures/models/tiny-smolvlm/tokenizer.json");
const TOKENIZER_CONFIG_JSON: &str =
    include_str!("../../tests/fixtures/models/tiny-smolvlm/tokenizer_config.json");
const SPECIAL_TOKENS_MAP_JSON: &str =
    include_str!("../../tests/fixtures/models/tiny-smolvlm/special_tokens_map.json");
const CHAT_TEMPLATE_JSON: &str =
    include_str!("../../tests/fixtures/models/tiny-smolvlm/chat_template.json");
const GENERATION_CONFIG_JSON: &str =
    include_str!("../../tests/fixtures/models/tiny-smolvlm/generation_config.json");

impl Preset {
    /// The checkpoint's files other than the weights, as (file name, contents): `config.json`,
    /// `preprocessor_config.json`, `processor_config.json` and the tokenizer's files.
    pub(crate) fn config_files(self) -> Vec<(&'static str, String)> {
        let l = self.layout();
        let config = json!({
            "architectures": ["SmolVLMForConditionalGeneration"],
            "model_type": "smolvlm",
            "image_token_id": IMAGE_TOKEN_ID,
            "pad_token_id": 2,
            "scale_factor": l.scale_factor,
            "tie_word_embeddings": false,
            "torch_dtype": "float32",
            "use_cache": true,
            "text_config": {
                "model_type": "llama",
                "architectures": ["VLlama3ForCausalLM"],
                "hidden_act": "silu",
                "hidden_size": l.text_hidden,
                "intermediate_size": l.text_intermediate,
                "num_hidden_layers": l.text_layers,
                "num_attention_heads": l.heads,
                "num_key_value_heads": l.kv_heads,
                "head_dim": l.head_dim(),
                "rms_norm_eps": 1e-5,
                "rope_theta": l.rope_theta,
                "max_position_embeddings": l.max_position_embeddings,
                "vocab_size": l.vocab_size,
                "attention_bias": false,
                "mlp_bias": false,
                "pad_token_id": 2,
                "tie_word_embeddings": false,
            },
            "vision_config": {
                "model_type": "smolvlm_vision",
                "hidden_act": "gelu_pytorch_tanh",
                "hidden_size": l.vision_hidden,
                "intermediate_size": l.vision_intermediate,
                "num_hidden_layers": l.vision_layers,
                "num_attention_heads": l.vision_heads,
                "num_channels": 3,
                "image_size": l.image_size,
                "patch_size": l.patch_size,
                "layer_norm_eps": 1e-6,
            },
            "vocab_size": l.vocab_size,
        });
        let preprocessor = json!({
            "image_processor_type": "SmolVLMImageProcessor",
            "processor_class": "SmolVLMProcessor",
            "do_convert_rgb": true,
            "do_image_splitting": true,
            "do_normalize": true,
            "do_pad": true,
            "do_rescale": true,
            "do_resize": true,
            "image_mean": [0.5, 0.5, 0.5],
            "image_std": [0.5, 0.5, 0.5],
            "resample": 1,
            "rescale_factor": 1.0 / 255.0,
            "size": {"longest_edge": 4 * l.image_size},
            "max_image_size": {"longest_edge": l.image_size},
            "video_sampling": {
                "fps": 1,
                "max_frames": 64,
                "video_size": {"longest_edge": l.image_size},
            },
        });
        let processor = json!({
            "image_seq_len": l.image_seq_len(),
            "processor_class": "SmolVLMProcessor",
        });
        let pretty = |v: &serde_json::Value| format!("{v:#}\n");
        vec![
            ("config.json", pretty(&config)),
            ("preprocessor_config.json", pretty(&preprocessor)),
            ("processor_config.json", pretty(&processor)),
            ("tokenizer.json", TOKENIZER_JSON.to_string()),
            ("tokenizer_config.json", TOKENIZER_CONFIG_JSON.to_string()),
            (
                "special_tokens_map.json",
                SPECIAL_TOKENS_MAP_JSON.to_string(),
            ),
            ("chat_template.json", CHAT_TEMPLATE_JSON.to_string()),
            ("generation_config.json", GENERATION_CONFIG_JSON.to_string()),
        ]
    }

    /// The compiled-in `tokenizer.json` (also among [`Preset::config_files`]).
    pub(crate) fn tokenizer_json(self) -> &'static str {
        TOKENIZER_JSON
    }

    /// Where errors about the preset's (in-memory) files point: `synthetic:<name>/<file>`.
    pub(crate) fn origin(self) -> PathBuf {
        PathBuf::from(self.model_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_files_parse_into_a_consistent_checkpoint() {
        for preset in Preset::ALL {
            let files = preset.config_files();
            let cfg = crate::config::CheckpointConfig::from_memory(
                &preset.origin(),
                &files
                    .iter()
                    .map(|(n, c)| (*n, c.as_str()))
                    .collect::<Vec<_>>(),
            )
            .unwrap_or_else(|e| panic!("{preset}: {e}"));
            let l = preset.layout();
            assert_eq!(cfg.image_seq_len, l.image_seq_len());
            assert_eq!(cfg.model.text.hidden_size, l.text_hidden);
            assert_eq!(cfg.model.text.vocab_size, l.vocab_size);
            assert!(!cfg.model.tie_word_embeddings);
        }
    }

    #[test]
    fn the_tokenizer_fits_the_vocabulary() {
        let tok = tokenizers::Tokenizer::from_bytes(TOKENIZER_JSON).unwrap();
        assert_eq!(tok.token_to_id("<image>"), Some(IMAGE_TOKEN_ID));
        let size = tok.get_vocab_size(true);
        assert!(Preset::ALL.iter().all(|p| p.layout().vocab_size >= size));
    }
}
