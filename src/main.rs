//! The `vlm` command-line tool: parse arguments, call the library, print results.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
