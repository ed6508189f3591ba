//! Command-line front end: clap definitions, dispatch, output and exit codes.
//!
//! Exit codes: 0 success, 1 when the model cannot be loaded or run, 2 for bad input or usage
//! (clap also uses 2). A closed stdout (`vlm ask … | head`) is a success.

mod args;
mod bench;
mod compare;
#[cfg(feature = "hub")]
mod hub;
mod inspect;
mod quantize;
mod run;
#[cfg(feature = "server")]
mod serve;
mod synth;
mod video;

use std::process::ExitCode;

use clap::Parser;

/// Run SmolVLM / SmolVLM2 vision-language models locally.
#[derive(Parser, Debug)]
#[command(name = "vlm", version, about, propagate_version = true)]
struct Cli {
    /// Worker threads for every computation (one pool shared by vlm's and Candle's kernels).
    /// Default: RAYON_NUM_THREADS if set, otherwise the physical cores.
    #[arg(long, global = true, env = "VLM_THREADS", value_name = "N")]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Describe one or more images.
    Describe(args::DescribeArgs),
    /// Ask a question about images, or a text-only question.
    Ask(args::AskArgs),
    /// Compare tools from screenshots of their pages: a side-by-side card and a verdict.
    Compare(compare::CompareArgs),
    /// Time preprocessing, vision, prefill, decode and time-to-first-token.
    Bench(bench::BenchArgs),
    /// Write a llama.cpp GGUF pair (text model + mmproj) from a checkpoint directory.
    Quantize(quantize::QuantizeArgs),
    /// Write a checkpoint of a published architecture with random weights (for benchmarks).
    Synth(synth::SynthArgs),
    /// Show how images and a prompt are prepared (sizes, tiles, tokens) without running the model.
    Inspect(inspect::InspectArgs),
    /// Serve the model over an OpenAI-compatible HTTP API, with background jobs.
    #[cfg(feature = "server")]
    Serve(serve::ServeArgs),
    /// Download a model into the Hugging Face cache ahead of time, and verify it.
    #[cfg(feature = "hub")]
    Pull(hub::PullArgs),
    /// List the known models, their sizes and whether they are cached.
    #[cfg(feature = "hub")]
    Models(hub::ModelsArgs),
}

pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before anything else runs: this sizes rayon's global pool and Candle's thread counts.
    if let Err(err) = vlm::threads::init(cli.threads) {
        eprintln!("error: {err}");
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Command::Describe(a) => run::describe(a),
        Command::Ask(a) => run::ask(a),
        Command::Compare(a) => compare::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Quantize(a) => quantize::run(a),
        Command::Synth(a) => synth::run(a),
        Command::Inspect(a) => inspect::run(a),
        #[cfg(feature = "server")]
        Command::Serve(a) => serve::run(a),
        #[cfg(feature = "hub")]
        Command::Pull(a) => hub::pull(a),
        #[cfg(feature = "hub")]
        Command::Models(a) => hub::models(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {err:#}");
            ExitCode::from(exit_code(&err))
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn exit_code(err: &anyhow::Error) -> u8 {
    match err.chain().find_map(|e| e.downcast_ref::<vlm::Error>()) {
        Some(e) if e.category() == vlm::Category::Input => 2,
        Some(_) => 1,
        None => 2,
    }
}
