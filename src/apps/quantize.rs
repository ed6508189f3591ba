//! `quantize`: a Hugging Face SmolVLM checkpoint directory → a llama.cpp GGUF pair (a text
//! model and its mmproj), laid out as llama.cpp's `convert_hf_to_gguf.py` lays out SmolVLM
//! (`LlamaModel` for the decoder, `SmolVLMModel` for the projector), so llama.cpp and this
//! runtime load the result alike.
//!
//! Tensors stream one at a time from the memory-mapped safetensors to the output; the files
//! appear under their final names only once both are complete.

mod metadata;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};

use crate::config::CheckpointConfig;
use crate::weights::gguf_writer::{GgufWriter, MetaValue, TensorSpec};
use crate::weights::{names, safetensors_files, QuantPolicy, QuantType, Target, Weights};
use crate::{Error, Result};
use metadata::{mmproj_metadata, text_metadata};

/// How to quantize.
#[derive(Debug, Clone, Default)]
pub struct QuantizeOptions {
    /// Overwrite output files that already exist.
    pub force: bool,
}

/// One tensor written.
#[derive(Debug, Clone)]
pub struct QuantizeProgress {
    /// Name of the output file (without its directory).
    pub file: String,
    /// GGUF name of the tensor just written.
    pub tensor: String,
    /// Tensors written so far, over both files.
    pub done: usize,
    /// Tensors in both files.
    pub total: usize,
}

/// One output file.
#[derive(Debug, Clone)]
pub struct QuantizedFile {
    /// Where it was written.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Number of tensors per storage type, by llama.cpp's type name (`Q8_0`, `F16`, …).
    pub types: BTreeMap<&'static str, usize>,
}

/// What [`quantize`] wrote: the text model first, then the mmproj.
#[derive(Debug, Clone)]
pub struct QuantizeReport {
    /// The files, text model first.
    pub files: Vec<QuantizedFile>,
}

/// The type as llama.cpp spells it in file names (`Q8_0`, `Q4_K_M`, `F16`, …).
fn type_label(ty: QuantType) -> &'static str {
    match ty {
        QuantType::Q8_0 => "Q8_0",
        QuantType::Q4K => "Q4_K_M",
        QuantType::Q4_0 => "Q4_0",
        QuantType::F16 => "F16",
        QuantType::Bf16 => "BF16",
    }
}

/// The file names of the pair for a model called `model` (`<model>-<TYPE>.gguf` and
/// `mmproj-<model>-<TYPE>.gguf`).
pub(crate) fn output_names(model: &str, ty: QuantType) -> (String, String) {
    let label = type_label(ty);
    (
        format!("{model}-{label}.gguf"),
        format!("mmproj-{model}-{label}.gguf"),
    )
}

/// llama.cpp's name of a storage type.
fn ggml_type_name(ty: GgmlDType) -> &'static str {
    match ty {
        GgmlDType::F32 => "F32",
        GgmlDType::F16 => "F16",
        GgmlDType::BF16 => "BF16",
        GgmlDType::Q4_0 => "Q4_0",
        GgmlDType::Q4_1 => "Q4_1",
        GgmlDType::Q5_0 => "Q5_0",
        GgmlDType::Q5_1 => "Q5_1",
        GgmlDType::Q8_0 => "Q8_0",
        GgmlDType::Q8_1 => "Q8_1",
        GgmlDType::Q2K => "Q2_K",
        GgmlDType::Q3K => "Q3_K",
        GgmlDType::Q4K => "Q4_K",
        GgmlDType::Q5K => "Q5_K",
        GgmlDType::Q6K => "Q6_K",
        GgmlDType::Q8K => "Q8_K",
    }
}

/// Writes the GGUF pair of checkpoint `dir` into `out_dir`, quantized as `ty`.
///
/// Refuses to replace existing outputs unless `opts.force`. Each file is written to
/// `<name>.partial`, synced, and renamed once both are complete; on error the partial files are
/// removed.
pub fn quantize(
    dir: &Path,
    out_dir: &Path,
    ty: QuantType,
    opts: &QuantizeOptions,
    on_progress: &mut dyn FnMut(QuantizeProgress),
) -> Result<QuantizeReport> {
    let cfg = CheckpointConfig::from_dir(dir)?;
    let model_name = model_name(dir)?;
    let weights = || {
        let files = safetensors_files(dir)?;
        Weights::from_safetensors(&files, DType::F32, &Device::Cpu, None)
    };
    write_pair(
        dir,
        &cfg,
        &model_name,
        &weights,
        out_dir,
        ty,
        opts,
        on_progress,
    )
}

/// Writes the GGUF pair of a checkpoint whose JSON files (tokenizer and configuration, read for
/// the metadata) are in `dir` and whose f32 weights `weights` opens, once the outputs are known
/// not to clash.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_pair(
    dir: &Path,
    cfg: &CheckpointConfig,
    model_name: &str,
    weights: &dyn Fn() -> Result<Weights>,
    out_dir: &Path,
    ty: QuantType,
    opts: &QuantizeOptions,
    on_progress: &mut dyn FnMut(QuantizeProgress),
) -> Result<QuantizeReport> {
    let (text_name, mmproj_name) = output_names(model_name, ty);
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let mut outputs = vec![text_name];
    if cfg.model.vision.is_some() {
        outputs.push(mmproj_name);
    }
    for name in &outputs {
        let path = out_dir.join(name);
        if !opts.force && std::fs::symlink_metadata(&path).is_ok() {
            return Err(Error::InvalidOption {
                name: "out",
                reason: format!(
                    "{} already exists (use --force to overwrite it)",
                    path.display()
                ),
            });
        }
    }

    let policy = QuantPolicy::new(ty);
    let text = text_tensors(cfg, &policy)?;
    let mut jobs = vec![Job {
        name: outputs[0].clone(),
        metadata: text_metadata(dir, cfg, model_name, ty, parameters(&text))?,
        tensors: text,
    }];
    if let Some(name) = outputs.get(1) {
        let vision = vision_tensors(cfg, &policy)?;
        jobs.push(Job {
            name: name.clone(),
            metadata: mmproj_metadata(cfg, model_name, &policy, parameters(&vision)),
            tensors: vision,
        });
    }

    let weights = weights()?;
    let mut partials = Vec::new();
    let result = write_jobs(&jobs, out_dir, &weights, &mut partials, on_progress);
    if result.is_err() {
        for p in &partials {
            // The error being returned matters more than a leftover we could not remove.
            let _ = std::fs::remove_file(p);
        }
    }
    result
}

struct Job {
    name: String,
    metadata: Vec<(String, MetaValue)>,
    tensors: Vec<Planned>,
}

/// A tensor to convert: its checkpoint name, its place in the file, and whether its rows are
/// permuted for llama.cpp's interleaved RoPE (with this many heads).
struct Planned {
    hf: String,
    spec: TensorSpec,
    rope_heads: Option<usize>,
}

fn write_jobs(
    jobs: &[Job],
    out_dir: &Path,
    weights: &Weights,
    partials: &mut Vec<PathBuf>,
    on_progress: &mut dyn FnMut(QuantizeProgress),
) -> Result<QuantizeReport> {
    let total = jobs.iter().map(|j| j.tensors.len()).sum();
    let mut done = 0;
    for job in jobs {
        let partial = out_dir.join(format!("{}.partial", job.name));
        partials.push(partial.clone());
        let specs = job.tensors.iter().map(|t| t.spec.clone()).collect();
        let mut writer = GgufWriter::create(&partial, &job.metadata, specs)?;
        for t in &job.tensors {
            let q = convert(weights, t)?;
            writer.write_tensor(&t.spec.name, &q.data()?)?;
            done += 1;
            on_progress(QuantizeProgress {
                file: job.name.clone(),
                tensor: t.spec.name.clone(),
                done,
                total,
            });
        }
        let file = writer
            .finish()?
            .into_inner()
            .map_err(|e| Error::io(&partial, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&partial, e))?;
    }
    let mut files = Vec::new();
    for (job, partial) in jobs.iter().zip(partials.iter()) {
        let path = out_dir.join(&job.name);
        std::fs::rename(partial, &path).map_err(|e| Error::io(&path, e))?;
        let bytes = std::fs::metadata(&path)
            .map_err(|e| Error::io(&path, e))?
            .len();
        let mut types = BTreeMap::new();
        for t in &job.tensors {
            *types.entry(ggml_type_name(t.spec.dtype)).or_insert(0) += 1;
        }
        files.push(QuantizedFile { path, bytes, types });
    }
    partials.clear();
    // Make the renames durable too; not every platform can open a directory for this.
    if let Ok(d) = std::fs::File::open(out_dir) {
        let _ = d.sync_all();
    }
    Ok(QuantizeReport { files })
}

/// One tensor in its storage type.
fn convert(weights: &Weights, t: &Planned) -> Result<QTensor> {
    let dense = weights.get(t.spec.shape.as_slice(), &t.hf)?;
    let dense = match t.rope_heads {
        Some(heads) => permute_for_rope(&dense, heads)?,
        None => dense,
    };
    QTensor::quantize(&dense, t.spec.dtype).map_err(|e| Error::Weight {
        name: t.hf.clone(),
        problem: format!("cannot store as {}: {e}", ggml_type_name(t.spec.dtype)),
    })
}

/// Reorders each head's rows from Hugging Face's split-half RoPE layout to llama.cpp's
/// interleaved one: `w.reshape(heads, 2, hd/2, in).swapaxes(1, 2).reshape(w.shape)`, as
/// `LlamaModel.permute` in the converter.
fn permute_for_rope(w: &Tensor, heads: usize) -> Result<Tensor> {
    let (rows, cols) = w.dims2()?;
    if heads == 0 || !rows.is_multiple_of(2 * heads) {
        return Err(Error::Weight {
            name: format!("[{rows}, {cols}] projection"),
            problem: format!("rows do not split into {heads} heads of even width"),
        });
    }
    Ok(w.reshape((heads, 2, rows / heads / 2, cols))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((rows, cols))?)
}

fn model_name(dir: &Path) -> Result<String> {
    let full = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
    full.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| Error::InvalidOption {
            name: "dir",
            reason: format!(
                "{} has no directory name to name the output after",
                dir.display()
            ),
        })
}

fn storage(target: Target) -> GgmlDType {
    match target {
        Target::Quant(t) => t,
        Target::Dense(DType::F16) => GgmlDType::F16,
        Target::Dense(DType::BF16) => GgmlDType::BF16,
        Target::Dense(_) => GgmlDType::F32,
    }
}

fn parameters(tensors: &[Planned]) -> usize {
    tensors
        .iter()
        .map(|t| t.spec.shape.iter().product::<usize>())
        .sum()
}

fn plan(
    hf: String,
    shape: Vec<usize>,
    dtype: GgmlDType,
    rope_heads: Option<usize>,
) -> Result<Planned> {
    let (_, name) = names::to_gguf(&hf).ok_or_else(|| Error::Weight {
        name: hf.clone(),
        problem: "has no GGUF name".into(),
    })?;
    Ok(Planned {
        hf,
        spec: TensorSpec { name, shape, dtype },
        rope_heads,
    })
}

/// The decoder's tensors with their shapes from the config; 1-D tensors stay F32.
fn text_tensors(cfg: &CheckpointConfig, policy: &QuantPolicy) -> Result<Vec<Planned>> {
    let t = &cfg.model.text;
    let (d, ff, hd) = (t.hidden_size, t.intermediate_size, t.head_dim);
    let (q_rows, kv_rows) = (t.num_attention_heads * hd, t.num_key_value_heads * hd);
    let matrix = |hf: String, rows: usize, cols: usize, rope: Option<usize>| {
        let ty = storage(policy.matrix(&hf, cols));
        plan(hf, vec![rows, cols], ty, rope)
    };
    let vector = |hf: String, n: usize| plan(hf, vec![n], GgmlDType::F32, None);
    let embed = storage(policy.embedding(d));
    let mut out = vec![plan(
        "model.text_model.embed_tokens.weight".into(),
        vec![t.vocab_size, d],
        embed,
        None,
    )?];
    for i in 0..t.num_hidden_layers {
        let p = |s: &str| format!("model.text_model.layers.{i}.{s}");
        out.push(vector(p("input_layernorm.weight"), d)?);
        out.push(matrix(
            p("self_attn.q_proj.weight"),
            q_rows,
            d,
            Some(t.num_attention_heads),
        )?);
        out.push(matrix(
            p("self_attn.k_proj.weight"),
            kv_rows,
            d,
            Some(t.num_key_value_heads),
        )?);
        out.push(matrix(p("self_attn.v_proj.weight"), kv_rows, d, None)?);
        out.push(matrix(p("self_attn.o_proj.weight"), d, q_rows, None)?);
        out.push(vector(p("post_attention_layernorm.weight"), d)?);
        out.push(matrix(p("mlp.gate_proj.weight"), ff, d, None)?);
        out.push(matrix(p("mlp.up_proj.weight"), ff, d, None)?);
        out.push(matrix(p("mlp.down_proj.weight"), d, ff, None)?);
    }
    out.push(vector("model.text_model.norm.weight".into(), d)?);
    if !cfg.model.tie_word_embeddings {
        out.push(matrix("lm_head.weight".into(), t.vocab_size, d, None)?);
    }
    Ok(out)
}

/// The vision tower's and connector's tensors. The patch and position embeddings stay F32, as
/// llama.cpp's converter forces them (clip.cpp adds them to F32 activations).
fn vision_tensors(cfg: &CheckpointConfig, policy: &QuantPolicy) -> Result<Vec<Planned>> {
    let Some(v) = &cfg.model.vision else {
        return Ok(Vec::new());
    };
    let (d, ff, p) = (v.hidden_size, v.intermediate_size, v.patch_size);
    let s = cfg.model.scale_factor;
    let n = v.patches_per_side();
    let f32 = GgmlDType::F32;
    let matrix = |hf: String, rows: usize, cols: usize| {
        let ty = storage(policy.matrix(&hf, cols));
        plan(hf, vec![rows, cols], ty, None)
    };
    let emb = "model.vision_model.embeddings";
    let mut out = vec![
        plan(
            format!("{emb}.patch_embedding.weight"),
            vec![d, v.num_channels, p, p],
            f32,
            None,
        )?,
        plan(format!("{emb}.patch_embedding.bias"), vec![d], f32, None)?,
        plan(
            format!("{emb}.position_embedding.weight"),
            vec![n * n, d],
            f32,
            None,
        )?,
    ];
    for i in 0..v.num_hidden_layers {
        let l = |s: &str| format!("model.vision_model.encoder.layers.{i}.{s}");
        for ln in ["layer_norm1", "layer_norm2"] {
            out.push(plan(l(&format!("{ln}.weight")), vec![d], f32, None)?);
            out.push(plan(l(&format!("{ln}.bias")), vec![d], f32, None)?);
        }
        for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            out.push(matrix(l(&format!("self_attn.{proj}.weight")), d, d)?);
            out.push(plan(
                l(&format!("self_attn.{proj}.bias")),
                vec![d],
                f32,
                None,
            )?);
        }
        out.push(matrix(l("mlp.fc1.weight"), ff, d)?);
        out.push(plan(l("mlp.fc1.bias"), vec![ff], f32, None)?);
        out.push(matrix(l("mlp.fc2.weight"), d, ff)?);
        out.push(plan(l("mlp.fc2.bias"), vec![d], f32, None)?);
    }
    out.push(plan(
        "model.vision_model.post_layernorm.weight".into(),
        vec![d],
        f32,
        None,
    )?);
    out.push(plan(
        "model.vision_model.post_layernorm.bias".into(),
        vec![d],
        f32,
        None,
    )?);
    out.push(matrix(
        "model.connector.modality_projection.proj.weight".into(),
        cfg.model.text.hidden_size,
        d * s * s,
    )?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_permutation_interleaves_halves() {
        // One head of width 4 over one input: rows [x0, x1, y0, y1] → [x0, y0, x1, y1].
        let w = Tensor::new(&[[0f32], [1.], [2.], [3.]], &Device::Cpu).unwrap();
        let p = permute_for_rope(&w, 1).unwrap();
        assert_eq!(
            p.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            [0., 2., 1., 3.]
        );
        assert!(permute_for_rope(&w, 3).is_err());
    }
}
