//! A [`Layout`] → every tensor of its checkpoint (Hugging Face name, shape, how it is drawn) →
//! seeded random f32 values, the same for a seed on every machine and at any thread count.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::{Layout, Preset};
use crate::error::Result;

impl Preset {
    /// The random weights, as Hugging Face-named f32 tensors on the CPU (see
    /// [`Layout::weights`]).
    pub(crate) fn weights(self, seed: u64) -> Result<HashMap<String, Tensor>> {
        self.layout().weights(seed)
    }
}

/// How a tensor's values are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Init {
    /// All ones (norm scales).
    Ones,
    /// Approximately normal with mean 0 and this standard deviation.
    Normal(f32),
}

/// One tensor of a synthetic checkpoint.
#[derive(Debug, Clone, PartialEq)]
struct TensorPlan {
    /// Hugging Face name (`model.text_model.layers.0.mlp.up_proj.weight`).
    name: String,
    /// Shape, PyTorch order (`[out, in]` for matrices).
    shape: Vec<usize>,
    /// How its values are drawn.
    init: Init,
}

/// Standard deviation of random matrices, embeddings and biases. Small enough that activations
/// stay finite through every layer of the 2.2B layout; large enough that attention and MLP
/// outputs are not negligible next to the residual stream.
const WEIGHT_STD: f32 = 0.02;

impl Layout {
    /// Every tensor of the checkpoint, in a fixed order: decoder, then vision tower, then
    /// connector. Norm scales are ones; everything else is drawn with standard deviation 0.02.
    fn tensors(&self) -> Vec<TensorPlan> {
        let mut out = Vec::new();
        let mut put = |name: String, shape: &[usize], init: Init| {
            out.push(TensorPlan {
                name,
                shape: shape.to_vec(),
                init,
            })
        };
        let w = Init::Normal(WEIGHT_STD);
        let (d, f, hd) = (self.text_hidden, self.text_intermediate, self.head_dim());
        let (q_rows, kv_rows) = (self.heads * hd, self.kv_heads * hd);
        let t = "model.text_model";
        put(format!("{t}.embed_tokens.weight"), &[self.vocab_size, d], w);
        for i in 0..self.text_layers {
            let p = format!("{t}.layers.{i}");
            put(format!("{p}.input_layernorm.weight"), &[d], Init::Ones);
            put(format!("{p}.self_attn.q_proj.weight"), &[q_rows, d], w);
            put(format!("{p}.self_attn.k_proj.weight"), &[kv_rows, d], w);
            put(format!("{p}.self_attn.v_proj.weight"), &[kv_rows, d], w);
            put(format!("{p}.self_attn.o_proj.weight"), &[d, q_rows], w);
            put(
                format!("{p}.post_attention_layernorm.weight"),
                &[d],
                Init::Ones,
            );
            put(format!("{p}.mlp.gate_proj.weight"), &[f, d], w);
            put(format!("{p}.mlp.up_proj.weight"), &[f, d], w);
            put(format!("{p}.mlp.down_proj.weight"), &[d, f], w);
        }
        put(format!("{t}.norm.weight"), &[d], Init::Ones);
        put("lm_head.weight".into(), &[self.vocab_size, d], w);

        let (dv, fv, p) = (
            self.vision_hidden,
            self.vision_intermediate,
            self.patch_size,
        );
        let n = self.patches_per_side();
        let v = "model.vision_model";
        put(
            format!("{v}.embeddings.patch_embedding.weight"),
            &[dv, 3, p, p],
            w,
        );
        put(format!("{v}.embeddings.patch_embedding.bias"), &[dv], w);
        put(
            format!("{v}.embeddings.position_embedding.weight"),
            &[n * n, dv],
            w,
        );
        for i in 0..self.vision_layers {
            let l = format!("{v}.encoder.layers.{i}");
            for ln in ["layer_norm1", "layer_norm2"] {
                put(format!("{l}.{ln}.weight"), &[dv], Init::Ones);
                put(format!("{l}.{ln}.bias"), &[dv], w);
            }
            for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                put(format!("{l}.self_attn.{proj}.weight"), &[dv, dv], w);
                put(format!("{l}.self_attn.{proj}.bias"), &[dv], w);
            }
            put(format!("{l}.mlp.fc1.weight"), &[fv, dv], w);
            put(format!("{l}.mlp.fc1.bias"), &[fv], w);
            put(format!("{l}.mlp.fc2.weight"), &[dv, fv], w);
            put(format!("{l}.mlp.fc2.bias"), &[dv], w);
        }
        put(format!("{v}.post_layernorm.weight"), &[dv], Init::Ones);
        put(format!("{v}.post_layernorm.bias"), &[dv], w);
        let s = self.scale_factor;
        put(
            "model.connector.modality_projection.proj.weight".into(),
            &[d, dv * s * s],
            w,
        );
        out
    }

    /// Number of weights.
    pub fn parameters(&self) -> usize {
        self.tensors()
            .iter()
            .map(|t| t.shape.iter().product::<usize>())
            .sum()
    }

    /// Draws every tensor of [`Layout::tensors`]. Deterministic: the values depend only on
    /// `seed` and each tensor's name (not on the thread count), so the same seed gives the same
    /// checkpoint on every machine. Normal values are Irwin–Hall sums of four uniforms (within
    /// ±3.5 standard deviations), which keeps drawing cheaper than memory bandwidth.
    fn weights(&self, seed: u64) -> Result<HashMap<String, Tensor>> {
        self.tensors()
            .into_iter()
            .map(|t| {
                let data = draw(&t, seed);
                let tensor = Tensor::from_vec(data, t.shape.as_slice(), &Device::Cpu)?;
                Ok((t.name, tensor))
            })
            .collect()
    }
}

/// Elements drawn per parallel work item (each from its own seeded stream).
const CHUNK: usize = 1 << 16;

fn draw(t: &TensorPlan, seed: u64) -> Vec<f32> {
    let n = t.shape.iter().product::<usize>();
    let std = match t.init {
        Init::Ones => return vec![1.0; n],
        Init::Normal(std) => std,
    };
    let stream = mix(seed ^ fnv1a(t.name.as_bytes()));
    // Four 16-bit uniforms sum to mean 2·65535 and standard deviation 65536/√3.
    let mean = 2.0 * 65535.0;
    let scale = std * 3f32.sqrt() / 65536.0;
    let mut out = vec![0f32; n];
    out.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, chunk)| {
            let mut state = mix(stream ^ (c as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            for x in chunk {
                state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let r = mix(state);
                let sum = (r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48);
                *x = (sum as f32 - mean) * scale;
            }
        });
    out
}

/// SplitMix64's output function.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::SEED;

    #[test]
    fn weights_are_seeded_scaled_and_complete() {
        let l = Preset::Tiny.layout();
        let a = l.weights(SEED).unwrap();
        let b = l.weights(SEED).unwrap();
        let c = l.weights(SEED + 1).unwrap();
        assert_eq!(a.len(), l.tensors().len());
        let name = "model.text_model.layers.0.mlp.up_proj.weight";
        let values =
            |w: &HashMap<String, Tensor>| w[name].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(values(&a), values(&b));
        assert_ne!(values(&a), values(&c));
        let v = values(&a);
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32).sqrt();
        assert!(mean.abs() < 1e-3, "mean {mean}");
        assert!((std - WEIGHT_STD).abs() < 1e-3, "std {std}");
        assert!(v.iter().all(|x| x.abs() <= 3.5 * WEIGHT_STD));
        let norm = a["model.text_model.norm.weight"].to_vec1::<f32>().unwrap();
        assert!(norm.iter().all(|x| *x == 1.0));
    }

    #[test]
    fn draws_do_not_depend_on_chunking_across_threads() {
        // A tensor larger than one chunk: chunk c's values come from its own stream.
        let t = TensorPlan {
            name: "x".into(),
            shape: vec![3 * CHUNK + 5],
            init: Init::Normal(1.0),
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let one = pool.install(|| draw(&t, 7));
        assert_eq!(one, draw(&t, 7));
    }
}
