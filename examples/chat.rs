//! A multi-turn conversation about two images in one session: each turn runs only the tokens
//! the session's cache does not hold, and the first image is encoded once.
//!
//! ```text
//! cargo run --release --example chat -- tests/fixtures/images/landscape.png tests/fixtures/images/portrait.png tests/fixtures/models/tiny-smolvlm
//! ```
//!
//! Arguments: `IMAGE_A IMAGE_B [MODEL [MMPROJ]]`; without MODEL, the registry's default model
//! (downloaded once) when built with the `hub` feature.

use std::error::Error;
use std::io::Write;

use vlm::{Engine, EngineOptions, GenerateOptions, Generation, ImageInput, Message};

/// Three turns: the first image, the second image, then a text-only follow-up. Prints each
/// question, answer and token count to `out`; returns the answers.
pub fn chat(
    engine: &Engine,
    first: ImageInput,
    second: ImageInput,
    opts: &GenerateOptions,
    out: &mut dyn Write,
) -> Result<Vec<Generation>, Box<dyn Error>> {
    let turns = [
        (vec![first], "What is in this image?"),
        (
            vec![second],
            "And in this one? What differs between the two?",
        ),
        (vec![], "Summarise both images in one sentence."),
    ];
    let mut session = engine.session();
    let mut answers = Vec::new();
    for (images, question) in turns {
        writeln!(out, "> {question}")?;
        let answer = session.send(Message::user(images, question), opts)?;
        let usage = answer.usage;
        writeln!(out, "{}", answer.text.trim())?;
        writeln!(
            out,
            "  [{} prompt tokens, {} run for this turn, {} generated]",
            usage.prompt_tokens, usage.prefill_tokens, usage.completion_tokens
        )?;
        answers.push(answer);
    }
    Ok(answers)
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(a), Some(b)) = (args.next(), args.next()) else {
        return Err("usage: chat IMAGE_A IMAGE_B [MODEL [MMPROJ]]".into());
    };
    let source =
        vlm::embed::model_or_default(args.next().map(Into::into), args.next().map(Into::into))?;
    let engine = Engine::load(source, EngineOptions::default())?;
    let opts = GenerateOptions {
        max_new_tokens: 128,
        ..Default::default()
    };
    chat(
        &engine,
        ImageInput::Path(a.into()),
        ImageInput::Path(b.into()),
        &opts,
        &mut std::io::stdout(),
    )?;
    Ok(())
}
