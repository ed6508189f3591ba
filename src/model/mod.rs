//! The SmolVLM model: pixels and token ids → logits. Composition only; each part lives in its
//! own file (vision tower, connector, decoder, cache).

mod connector;
mod kv_cache;
mod layers;
mod text;
pub mod vision;

use candle_core::{DType, Device, Tensor};

pub use kv_cache::KvCache;
pub(crate) use text::RopeLayout;
pub use vision::PatchMask;

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::weights::Weights;
use connector::Connector;
use text::TextModel;
use vision::VisionModel;

/// Views encoded per vision-tower call.
const VIEWS_PER_BATCH: usize = 1;

/// Vision tower → connector → decoder, with immutable weights (`&self` everywhere).
pub struct SmolVlm {
    /// Vision tower and connector; absent for text-only models.
    vision: Option<(VisionModel, Connector)>,
    text: TextModel,
    image_token_id: u32,
    image_seq_len: usize,
    dtype: DType,
    device: Device,
}

impl SmolVlm {
    /// Loads the model from Hugging Face-named weights (`model.vision_model`, `model.connector`,
    /// `model.text_model`, `lm_head`).
    pub(crate) fn load(w: &Weights, cfg: &ModelConfig, layout: RopeLayout) -> Result<Self> {
        let model = w.pp("model");
        let vision = match &cfg.vision {
            Some(v) => Some((
                VisionModel::load(&model.pp("vision_model"), v)?,
                Connector::load(
                    &model.pp("connector"),
                    v.hidden_size,
                    cfg.text.hidden_size,
                    cfg.scale_factor,
                )?,
            )),
            None => None,
        };
        let text = TextModel::load(
            &model.pp("text_model"),
            &w.pp("lm_head"),
            &cfg.text,
            cfg.tie_word_embeddings,
            layout,
        )?;
        Ok(SmolVlm {
            vision,
            text,
            image_token_id: cfg.image_token_id,
            image_seq_len: cfg.image_seq_len(),
            dtype: w.dtype(),
            device: w.device().clone(),
        })
    }

    /// Moves the vision tower's encoder layers onto packed CPU kernels: matrices on `kernel`
    /// (BF16 dot products, or int8 VNNI), attention on the BF16 kernel. Returns false,
    /// changing nothing, when the CPU lacks them or the model has no vision tower.
    pub(crate) fn use_packed_vision(&mut self, kernel: vision::MatrixKernel) -> Result<bool> {
        match &mut self.vision {
            Some((vision, _)) => vision.use_packed(kernel),
            None => Ok(false),
        }
    }

    /// Multiplies the decoder's prompt blocks on the BF16 dot-product GEMM (activations
    /// rounded to bf16, f32 sums). Returns false, changing nothing, when the CPU lacks it.
    pub(crate) fn use_bf16_prefill(&mut self) -> bool {
        self.text.use_bf16_prefill()
    }

    /// See `TextModel::use_int8_decode`.
    pub(crate) fn use_int8_decode(&mut self) -> bool {
        self.text.use_int8_decode()
    }

    /// Compute dtype.
    pub(crate) fn dtype(&self) -> DType {
        self.dtype
    }

    /// Device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// A fresh, empty cache for this model: f16 where the model decodes on 8-bit activations
    /// (`DecodeCompute::Int8Dot`, llama.cpp's arithmetic, whose cache is f16 too), else in
    /// the dtype of the keys and values.
    pub fn new_cache(&self) -> KvCache {
        if self.text.decodes_int8() {
            KvCache::with_storage(self.text.num_layers(), candle_core::DType::F16)
        } else {
            KvCache::new(self.text.num_layers())
        }
    }

    /// Views `[n, 3, M, M]` (any float dtype) → image tokens `[n, image_seq_len, D_t]`.
    /// Ref: `SmolVLMModel.get_image_features`.
    pub fn encode_images(&self, pixels: &Tensor, mask: Option<&PatchMask>) -> Result<Tensor> {
        let (vision, connector) = self.vision_parts()?;
        let pixels = pixels.to_device(&self.device)?.to_dtype(self.dtype)?;
        let n = pixels.dim(0)?;
        if mask.is_some() || n <= VIEWS_PER_BATCH {
            return connector.forward(&vision.forward(&pixels, mask)?);
        }
        // Attention scores grow with the batch (views × heads × patches²: 650 MB of f32 for 13
        // SigLIP-B tiles); a few views at a time keep them in cache-sized pieces.
        let mut out = Vec::with_capacity(n.div_ceil(VIEWS_PER_BATCH));
        for start in (0..n).step_by(VIEWS_PER_BATCH) {
            let chunk = pixels.narrow(0, start, VIEWS_PER_BATCH.min(n - start))?;
            out.push(connector.forward(&vision.forward(&chunk, None)?)?);
        }
        Ok(Tensor::cat(&out, 0)?)
    }

    fn vision_parts(&self) -> Result<&(VisionModel, Connector)> {
        self.vision.as_ref().ok_or_else(|| Error::InvalidOption {
            name: "image",
            reason: "this model has no vision encoder; give the mmproj GGUF with --mmproj".into(),
        })
    }

    /// Views `[n, 3, H, W]` → the vision tower's output `[n, patches, D_v]`, before the
    /// connector.
    pub fn vision_features(&self, pixels: &Tensor, mask: Option<&PatchMask>) -> Result<Tensor> {
        let (vision, _) = self.vision_parts()?;
        let pixels = pixels.to_device(&self.device)?.to_dtype(self.dtype)?;
        vision.forward(&pixels, mask)
    }

    /// Generated token ids → their embeddings `[1, T, D_t]`, image token included: as in
    /// transformers' `generate`, only the prompt's image tokens take image features.
    pub(crate) fn embed_generated(&self, ids: &[u32]) -> Result<Tensor> {
        let ids_t = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        self.text.embed(&ids_t)
    }

    /// Token ids → embeddings `[1, T, D_t]`, with image tokens replaced by `image_features`
    /// rows. `first_token` is the number of image tokens that precede `ids` in the conversation
    /// (the row of `image_features`, flattened, where `ids`' first image token starts), so a
    /// suffix of a conversation can be embedded alone.
    ///
    /// Ref: `SmolVLMModel.inputs_merger`: the k-th run of `image_seq_len` image tokens receives
    /// view k, in the order the processor produced the views.
    pub fn embed(
        &self,
        ids: &[u32],
        image_features: Option<&Tensor>,
        first_token: usize,
    ) -> Result<Tensor> {
        let ids_t = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        let embeds = self.text.embed(&ids_t)?;
        let positions: Vec<usize> = ids
            .iter()
            .enumerate()
            .filter(|(_, id)| self.vision.is_some() && **id == self.image_token_id)
            .map(|(i, _)| i)
            .collect();
        if positions.is_empty() {
            return Ok(embeds);
        }
        let Some(features) = image_features else {
            return Err(Error::ImageCount {
                markers: positions.len() / self.image_seq_len.max(1),
                images: 0,
            });
        };
        let (n_views, seq, d) = features.dims3()?;
        // `first_token` counts the image tokens that precede `ids` in the conversation.
        let end = first_token + positions.len();
        if seq != self.image_seq_len || end > n_views * seq {
            return Err(Error::ImageCount {
                markers: end.div_ceil(self.image_seq_len.max(1)),
                images: n_views,
            });
        }
        let flat = features
            .reshape((n_views * seq, d))?
            .to_dtype(embeds.dtype())?;
        let rows = flat.narrow(0, first_token, positions.len())?;
        // Rebuild the sequence from contiguous runs of text and image rows.
        let embeds = embeds.squeeze(0)?;
        let mut pieces = Vec::new();
        let mut cursor = 0usize; // next token position
        let mut used = 0usize; // image rows consumed
        let mut i = 0usize;
        while i < positions.len() {
            let start = positions[i];
            let mut run = 1;
            while i + run < positions.len() && positions[i + run] == start + run {
                run += 1;
            }
            if start > cursor {
                pieces.push(embeds.narrow(0, cursor, start - cursor)?);
            }
            pieces.push(rows.narrow(0, used, run)?);
            used += run;
            cursor = start + run;
            i += run;
        }
        if cursor < ids.len() {
            pieces.push(embeds.narrow(0, cursor, ids.len() - cursor)?);
        }
        Ok(Tensor::cat(&pieces, 0)?.unsqueeze(0)?)
    }

    /// Embeddings `[1, T, D_t]` → last-position logits (f32 `[vocab]`), appending to `cache`.
    pub fn forward(&self, embeds: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        self.text.forward(embeds, cache)
    }

    /// The token id whose positions receive image features.
    pub(crate) fn image_token_id(&self) -> u32 {
        self.image_token_id
    }
}
