//! Command-line front end: clap definitions, dispatch, output and exit codes.
//!
//! Exit codes: 0 success, 1 when the model cannot be loaded or run, 2 for bad input or usage
//! (clap also uses 2). A closed stdout (`vlm ask … | head`) is a success.

mod args;
mod run;

use std::process::ExitCode;

use clap::Parser;

/// Run SmolVLM / SmolVLM2 vision-language models locally.
#[derive(Parser, Debug)]
#[command(name = "vlm", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Describe one or more images.
    Describe(args::DescribeArgs),
    /// Ask a question about images, or a text-only question.
    Ask(args::AskArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Describe(a) => run::describe(a),
        Command::Ask(a) => run::ask(a),
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
