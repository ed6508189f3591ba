//! Argument groups shared by subcommands, and their conversion into library options.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};

/// Which model to run and how.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Model to run: a checkpoint directory, a llama.cpp text-model GGUF file, a registry alias
    /// with an optional variant (`smolvlm2-500m`, `smolvlm2-2.2b:q4_k_m`; see `vlm models`), or
    /// a Hugging Face repository (`owner/name[@revision]`). Registry models and repositories are
    /// downloaded once into the Hugging Face cache. Default: $VLM_MODEL, else smolvlm2-256m.
    // VLM_MODEL is read in `spec` rather than by clap, so that it does not conflict with
    // --synthetic the way a --model on the command line does.
    #[arg(long, short = 'm', value_name = "MODEL")]
    pub model: Option<String>,
    /// Instead of --model, build a published architecture with random weights in memory: 256m,
    /// 500m, 2.2b (or tiny, for smoke tests). No download, no files; its answers are noise, its
    /// speed is the real model's. Memory for the f32 weights: about 1 GB (256m), 2 GB (500m),
    /// 9 GB (2.2b). `vlm synth` writes the same weights to disk.
    #[arg(long, value_name = "PRESET", conflicts_with_all = ["model", "mmproj"])]
    pub synthetic: Option<vlm::synthetic::Preset>,
    /// The vision projector GGUF (mmproj) that goes with a text-model GGUF.
    #[arg(long, value_name = "FILE.gguf")]
    pub mmproj: Option<PathBuf>,
    /// Use only models already in the Hugging Face cache; never touch the network (the same as
    /// HF_HUB_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
    /// Quantize a safetensors checkpoint at load: q8_0, q4_k, q4_0, f16 or bf16. The vision
    /// tower and connector stay at 8 bits when the text model goes to 4.
    #[arg(long, value_name = "TYPE")]
    pub quant: Option<String>,
    /// The float type of weights and activations (f32 is the reference and the CPU default).
    #[arg(long, value_enum, default_value_t = DtypeArg::F32)]
    pub dtype: DtypeArg,
    /// `exact` (the default) keeps transformers' f32 arithmetic in every stage; `fast` runs
    /// the vision tower and the prompt pass of f32 models on BF16 dot products with f32 sums
    /// where the CPU has AVX-512 BF16 (about twice as fast there), and decodes Q8_0/Q4_0/Q4_1
    /// models on 8-bit activations as llama.cpp does (AVX2); answers may differ.
    #[arg(long, value_enum, default_value_t = PrecisionArg::Exact)]
    pub precision: PrecisionArg,
    /// Override `--precision` for the vision tower alone (`int8` only this way).
    #[arg(long, value_enum, value_name = "MODE", hide = true)]
    pub vision_compute: Option<VisionComputeArg>,
    /// Override `--precision` for the prompt pass alone.
    #[arg(long, value_enum, value_name = "MODE", hide = true)]
    pub prefill_compute: Option<ComputeArg>,
    /// Override `--precision` for decode steps alone (block-quantized models).
    #[arg(long, value_enum, value_name = "MODE", hide = true)]
    pub decode_compute: Option<DecodeComputeArg>,
    /// Cap the context window (tokens).
    #[arg(long, value_name = "TOKENS")]
    pub ctx: Option<usize>,
    /// Refuse images whose header declares more pixels than this.
    #[arg(long, value_name = "PIXELS", default_value_t = 100_000_000)]
    pub max_image_pixels: u64,
    /// Where to compute: cpu, cuda[:N] or metal[:N]. A GPU needs vlm built with the `cuda` or
    /// `metal` feature. On x86-64 CPUs the AVX-512 or AVX2 kernels are picked at run time.
    #[arg(long, value_name = "DEVICE", default_value = "cpu")]
    pub device: String,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComputeArg {
    Reference,
    Bf16,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisionComputeArg {
    Reference,
    Bf16,
    Int8,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeComputeArg {
    Reference,
    Int8,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrecisionArg {
    Exact,
    Fast,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtypeArg {
    F32,
    Bf16,
    F16,
}

impl ModelArgs {
    /// The model as named: `--synthetic`, `--model`, `VLM_MODEL`, or the default.
    pub fn spec(&self) -> String {
        if let Some(preset) = self.synthetic {
            return preset.model_id();
        }
        self.model
            .clone()
            .or_else(|| std::env::var("VLM_MODEL").ok().filter(|m| !m.is_empty()))
            .unwrap_or_else(|| vlm::registry::DEFAULT_MODEL.to_string())
    }

    /// The local files of the model, fetched from the Hub when it is a registry alias or a
    /// repository. `weights: false` fetches only what the processor reads.
    pub fn source(&self, weights: bool) -> Result<vlm::ModelSource> {
        if let Some(preset) = self.synthetic {
            return Ok(vlm::ModelSource::synthetic(preset));
        }
        let spec = self.spec();
        let spec = spec.as_str();
        let model = vlm::registry::Registry::builtin()?.resolve(spec)?;
        let source = match model {
            vlm::registry::ModelRef::Local(source) => source,
            #[cfg(feature = "hub")]
            remote => {
                if self.mmproj.is_some() {
                    bail!("invalid option `--mmproj`: it goes with a local text-model GGUF given to --model, not with `{spec}`");
                }
                return crate::cli::hub::fetch(&remote, spec, weights, self.offline);
            }
            #[cfg(not(feature = "hub"))]
            _ => {
                let _ = weights;
                bail!("`{spec}` names a model on the Hugging Face Hub, but this vlm was built without the `hub` feature; give a checkpoint directory or a GGUF file");
            }
        };
        match source {
            vlm::ModelSource::Gguf { model, .. } => {
                Ok(vlm::ModelSource::gguf(model, self.mmproj.clone()))
            }
            _ if self.mmproj.is_some() => {
                bail!("invalid option `--mmproj`: it goes with a text-model GGUF given to --model, not with a checkpoint directory")
            }
            source => Ok(source),
        }
    }

    pub fn image_limits(&self) -> vlm::ImageLimits {
        vlm::ImageLimits {
            max_pixels: self.max_image_pixels,
        }
    }

    pub fn engine_options(&self) -> Result<vlm::EngineOptions> {
        let quant = match &self.quant {
            Some(q) => Some(q.parse::<vlm::weights::QuantType>()?),
            None => None,
        };
        Ok(vlm::EngineOptions {
            dtype: Some(match self.dtype {
                DtypeArg::F32 => vlm::Dtype::F32,
                DtypeArg::Bf16 => vlm::Dtype::Bf16,
                DtypeArg::F16 => vlm::Dtype::F16,
            }),
            precision: match self.precision {
                PrecisionArg::Exact => vlm::Precision::Exact,
                PrecisionArg::Fast => vlm::Precision::Fast,
            },
            processor: vlm::ProcessorOptions {
                image_limits: self.image_limits(),
                ..Default::default()
            },
            max_context: self.ctx,
            device: self.device.parse()?,
            quant,
            vision_compute: self.vision_compute.map(|v| match v {
                VisionComputeArg::Reference => vlm::VisionCompute::Reference,
                VisionComputeArg::Bf16 => vlm::VisionCompute::Bf16Dot,
                VisionComputeArg::Int8 => vlm::VisionCompute::Int8Dot,
            }),
            prefill_compute: self.prefill_compute.map(|v| match v {
                ComputeArg::Reference => vlm::PrefillCompute::Reference,
                ComputeArg::Bf16 => vlm::PrefillCompute::Bf16Dot,
            }),
            decode_compute: self.decode_compute.map(|v| match v {
                DecodeComputeArg::Reference => vlm::DecodeCompute::Reference,
                DecodeComputeArg::Int8 => vlm::DecodeCompute::Int8Dot,
            }),
        })
    }
}

/// How to generate.
#[derive(Args, Debug, Clone)]
pub struct GenerateArgs {
    /// Most tokens to generate.
    #[arg(long, short = 'n', default_value_t = 512, value_name = "N")]
    pub max_tokens: usize,
    /// Sampling temperature; 0 (the default) decodes greedily.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Sample only among the K most likely tokens.
    #[arg(long, value_name = "K")]
    pub top_k: Option<usize>,
    /// Sample only among the most likely tokens whose probabilities add up to P.
    #[arg(long, value_name = "P")]
    pub top_p: Option<f32>,
    /// Drop tokens less likely than P times the most likely one.
    #[arg(long, value_name = "P")]
    pub min_p: Option<f32>,
    /// Penalise tokens already in the context (1 = off).
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// Random seed for sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop when this text appears (may be repeated).
    #[arg(long, value_name = "TEXT")]
    pub stop: Vec<String>,
    /// Keep generating past the end-of-utterance token.
    #[arg(long)]
    pub ignore_eos: bool,
    /// Feed each image as one downscaled view instead of tiles plus a global view.
    #[arg(long)]
    pub no_splitting: bool,
}

impl GenerateArgs {
    pub fn options(&self) -> Result<vlm::GenerateOptions> {
        if self.temperature < 0.0 || !self.temperature.is_finite() {
            bail!(
                "invalid option `--temperature`: {} must be 0 (greedy) or positive",
                self.temperature
            );
        }
        let sampling = if self.temperature == 0.0 {
            vlm::Sampling::Greedy
        } else {
            vlm::Sampling::Random {
                temperature: self.temperature,
                top_k: self.top_k,
                top_p: self.top_p,
                min_p: self.min_p,
            }
        };
        let opts = vlm::GenerateOptions {
            max_new_tokens: self.max_tokens,
            sampling,
            repetition_penalty: self.repeat_penalty,
            seed: self.seed,
            ignore_eos: self.ignore_eos,
            stop: self.stop.clone(),
            constraint: None,
        };
        opts.validate()?;
        Ok(opts)
    }

    /// The image splitting asked for; `None` leaves it to the checkpoint.
    pub fn image_splitting(&self) -> Option<bool> {
        self.no_splitting.then_some(false)
    }
}

/// How to print.
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Print one JSON object (text, token ids, counts, timings) instead of streaming text.
    #[arg(long)]
    pub json: bool,
    /// Print timings and speed to stderr after the answer.
    #[arg(long, short = 'v')]
    pub verbose: bool,
}

/// `vlm describe IMAGE...`
#[derive(Args, Debug)]
pub struct DescribeArgs {
    /// Images (PNG, JPEG, WebP, GIF) or videos (MP4/MOV H.264, animated GIF/PNG/WebP, or a
    /// directory of frames) to describe.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    #[command(flatten)]
    pub video: crate::cli::video::VideoArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub generate: GenerateArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `vlm ask [IMAGE...] QUESTION`
#[derive(Args, Debug)]
pub struct AskArgs {
    /// Zero or more images or videos followed by the question.
    #[arg(required = true, value_name = "IMAGE... QUESTION", num_args = 1..)]
    pub inputs: Vec<String>,
    #[command(flatten)]
    pub video: crate::cli::video::VideoArgs,
    /// Constrain the answer to JSON valid under this JSON schema file.
    #[arg(long, value_name = "FILE.json")]
    pub schema: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub generate: GenerateArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

impl AskArgs {
    /// The images and the question (the last positional argument).
    pub fn split(&self) -> (Vec<PathBuf>, &str) {
        match self.inputs.split_last() {
            Some((question, images)) => (images.iter().map(PathBuf::from).collect(), question),
            None => (Vec::new(), ""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        g: GenerateArgs,
    }

    #[derive(Parser)]
    struct M {
        #[command(flatten)]
        m: ModelArgs,
    }

    #[test]
    fn synthetic_presets_are_models_of_their_own() {
        let t = M::try_parse_from(["t", "--synthetic", "2.2b"]).unwrap();
        assert_eq!(t.m.spec(), "synthetic:2.2b");
        assert_eq!(
            t.m.source(true).unwrap(),
            vlm::ModelSource::synthetic(vlm::synthetic::Preset::SmolVlm2_2_2B)
        );
        assert!(M::try_parse_from(["t", "--synthetic", "7b"]).is_err());
        assert!(M::try_parse_from(["t", "--synthetic", "256m", "--model", "d"]).is_err());
    }

    #[test]
    fn zero_max_tokens_is_an_error() {
        let t = T::try_parse_from(["t", "--max-tokens", "0"]).unwrap();
        let err = t.g.options().unwrap_err();
        assert!(err.to_string().contains("max-tokens"), "{err}");
    }

    #[test]
    fn temperature_selects_sampling() {
        let t = T::try_parse_from(["t"]).unwrap();
        assert_eq!(t.g.options().unwrap().sampling, vlm::Sampling::Greedy);
        let t = T::try_parse_from(["t", "--temperature", "0.7", "--top-p", "0.9"]).unwrap();
        assert!(matches!(
            t.g.options().unwrap().sampling,
            vlm::Sampling::Random { .. }
        ));
        assert!(T::try_parse_from(["t", "--temperature=-1"])
            .unwrap()
            .g
            .options()
            .is_err());
    }
}
