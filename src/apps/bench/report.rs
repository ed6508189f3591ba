//! Benchmark results → statistics, the machine's description, and Markdown / JSON / CSV.

use serde::Serialize;

use crate::{CpuFeatures, TilePermission};

/// Samples of one test with their statistics.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    /// Test name (`pp512`, `enc`, …).
    pub test: String,
    /// Unit of the samples.
    pub unit: &'static str,
    /// Whether larger values are better (rates) or worse (times).
    pub higher_is_better: bool,
    /// Mean of the samples.
    pub mean: f64,
    /// Sample standard deviation (0 for one sample).
    pub stddev: f64,
    /// Median of the samples.
    pub median: f64,
    /// The samples, in run order.
    pub samples: Vec<f64>,
}

impl BenchResult {
    /// Computes the statistics of `samples`.
    pub fn new(
        test: String,
        unit: &'static str,
        higher_is_better: bool,
        samples: Vec<f64>,
    ) -> Self {
        let n = samples.len().max(1) as f64;
        let mean = samples.iter().sum::<f64>() / n;
        let var = if samples.len() > 1 {
            samples.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (samples.len() - 1) as f64
        } else {
            0.0
        };
        let mut sorted = samples.clone();
        sorted.sort_by(f64::total_cmp);
        let median = match sorted.len() {
            0 => 0.0,
            l if l % 2 == 1 => sorted[l / 2],
            l => (sorted[l / 2 - 1] + sorted[l / 2]) / 2.0,
        };
        BenchResult {
            test,
            unit,
            higher_is_better,
            mean,
            stddev: var.sqrt(),
            median,
            samples,
        }
    }
}

/// What the numbers were measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    /// CPU model name.
    pub cpu: String,
    /// SIMD and matrix features that the kernels can use (AMX read from CPUID).
    pub cpu_features: Vec<&'static str>,
    /// Whether AMX tiles can run here: absent, granted, or refused by the OS.
    pub amx: String,
    /// The kernel family of each stage (`avx512-bf16`, `vnni-int8`, `f32`; block-dot
    /// `avx512`, `avx2`, `portable`).
    pub kernels: String,
    /// Worker threads (rayon's global pool, which runs this crate's kernels).
    pub threads: usize,
    /// Tasks Candle's matmul splits into (equal to `threads` unless the pool was sized outside
    /// [`crate::threads::init`]).
    pub candle_threads: usize,
    /// Model id: its path, repository or `synthetic:<preset>`.
    pub model: String,
    /// Whether the weights are random (a synthetic model, no download).
    pub synthetic: bool,
    /// Compute dtype.
    pub dtype: String,
    /// Quantization applied at load (`--quant`), if any.
    pub quant: Option<String>,
    /// How the vision tower, the prompt pass and decode steps multiply: `reference`,
    /// `bf16-dot` (vision, prefill) or `int8-dot` (vision, decode) (see
    /// [`crate::VisionCompute`], [`crate::PrefillCompute`], [`crate::DecodeCompute`]).
    pub compute: String,
    /// `vlm` version and build commit.
    pub build: String,
}

/// Describes this machine and build for a loaded model.
pub fn environment(info: &crate::ModelInfo) -> Environment {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let features = CpuFeatures::detect();
    Environment {
        cpu,
        cpu_features: features.names(),
        amx: TilePermission::request().to_string(),
        kernels: kernels(info),
        threads: crate::threads::current(),
        candle_threads: crate::threads::candle_threads(),
        model: info.source.clone(),
        synthetic: info.synthetic,
        dtype: info.dtype.clone(),
        quant: info.quant.clone(),
        compute: format!(
            "{}: vision {}, prefill {}, decode {}",
            info.precision, info.vision_compute, info.prefill_compute, info.decode_compute
        ),
        build: format!(
            "{} ({})",
            env!("CARGO_PKG_VERSION"),
            option_env!("VLM_BUILD_COMMIT").unwrap_or("unknown commit")
        ),
    }
}

/// The kernel family each stage runs on, as chosen at load for this CPU and model.
fn kernels(info: &crate::ModelInfo) -> String {
    let gemm = |compute: &str| match compute {
        "bf16-dot" => "avx512-bf16",
        "int8-dot" => "vnni-int8 (attention avx512-bf16)",
        _ => "f32",
    };
    let decode = match (info.decode_compute, CpuFeatures::int8_block_dot_family()) {
        ("int8-dot", Some(family)) => family,
        _ => CpuFeatures::block_dot_family(),
    };
    format!(
        "vision {}, prefill {}, quantized decode block-dot {decode}",
        gemm(info.vision_compute),
        gemm(info.prefill_compute),
    )
}

/// A Markdown table (llama-bench layout) with the environment as a header.
pub fn markdown(env: &Environment, results: &[BenchResult]) -> String {
    let candle = if env.candle_threads == env.threads {
        String::new()
    } else {
        format!(" (Candle matmul: {})", env.candle_threads)
    };
    let quant = env
        .quant
        .as_deref()
        .map_or(String::new(), |q| format!(", weights {q}"));
    let synthetic = if env.synthetic {
        " [synthetic: random weights, no download; the architecture's speed, not its answers]"
    } else {
        ""
    };
    let mut s = format!(
        "CPU: {} [{}], {} threads{candle}\nkernels: {}; AMX {}\nmodel: {} ({}{quant}; {}){synthetic}\n\n| test | value | unit | median | samples |\n|---|---:|---|---:|---:|\n",
        env.cpu,
        env.cpu_features.join(" "),
        env.threads,
        env.kernels,
        env.amx,
        env.model,
        env.dtype,
        env.compute
    );
    for r in results {
        s.push_str(&format!(
            "| {} | {:.2} ± {:.2} | {} | {:.2} | {} |\n",
            r.test,
            r.mean,
            r.stddev,
            r.unit,
            r.median,
            r.samples.len()
        ));
    }
    s.push_str(&format!("\nbuild: {}\n", env.build));
    s
}

/// CSV with a header row; the environment repeats on every row so rows stand alone.
pub fn csv(env: &Environment, results: &[BenchResult]) -> String {
    let quote = |v: &str| format!("\"{}\"", v.replace('"', "\"\""));
    let mut s = String::from(
        "cpu,threads,model,synthetic,dtype,quant,compute,build,test,unit,mean,stddev,median,samples\n",
    );
    for r in results {
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            quote(&env.cpu),
            env.threads,
            quote(&env.model),
            env.synthetic,
            env.dtype,
            env.quant.as_deref().unwrap_or(""),
            quote(&env.compute),
            quote(&env.build),
            quote(&r.test),
            r.unit,
            r.mean,
            r.stddev,
            r.median,
            r.samples.len()
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics() {
        let r = BenchResult::new("t".into(), "ms", false, vec![1.0, 2.0, 3.0, 10.0]);
        assert_eq!(r.mean, 4.0);
        assert_eq!(r.median, 2.5);
        assert!((r.stddev - 4.0825).abs() < 1e-3);
        let one = BenchResult::new("t".into(), "ms", false, vec![5.0]);
        assert_eq!((one.mean, one.stddev, one.median), (5.0, 0.0, 5.0));
    }

    #[test]
    fn renders_tables() {
        let env = Environment {
            cpu: "cpu, \"x\"".into(),
            cpu_features: vec!["avx2"],
            amx: "absent".into(),
            kernels: "vision f32, prefill f32, quantized decode block-dot avx2".into(),
            threads: 2,
            candle_threads: 2,
            model: "synthetic:256m".into(),
            synthetic: true,
            dtype: "f32".into(),
            quant: Some("q8_0".into()),
            compute: "vision bf16-dot, prefill reference".into(),
            build: "0.1.0 (abc)".into(),
        };
        let r = vec![BenchResult::new(
            "pp512".into(),
            "tok/s",
            true,
            vec![100.0, 110.0],
        )];
        let md = markdown(&env, &r);
        assert!(
            md.contains("| pp512 | 105.00 ± 7.07 | tok/s | 105.00 | 2 |"),
            "{md}"
        );
        assert!(md.ends_with("build: 0.1.0 (abc)\n"));
        assert!(md.contains("CPU: cpu, \"x\" [avx2], 2 threads\n"), "{md}");
        assert!(md.contains(
            "\nkernels: vision f32, prefill f32, quantized decode block-dot avx2; AMX absent\n"
        ));
        assert!(
            md.contains(
                "model: synthetic:256m (f32, weights q8_0; vision bf16-dot, prefill reference) \
                 [synthetic: random weights"
            ),
            "{md}"
        );
        let c = csv(&env, &r);
        assert!(
            c.lines()
                .nth(1)
                .unwrap()
                .starts_with("\"cpu, \"\"x\"\"\",2,"),
            "{c}"
        );
    }
}
