//! The smallest complete program: load a checkpoint directory, describe one image, stream the
//! answer to stdout.
//!
//! ```text
//! cargo run --release --example describe -- tests/fixtures/models/tiny-smolvlm tests/fixtures/images/landscape.png
//! ```

use std::io::Write;
use std::ops::ControlFlow;

use vlm::{
    CancelToken, Engine, EngineOptions, Event, GenerateOptions, ImageInput, Message, ModelSource,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(model), Some(image)) = (args.next(), args.next()) else {
        return Err("usage: describe MODEL_DIR IMAGE".into());
    };
    let engine = Engine::load(ModelSource::dir(model), EngineOptions::default())?;
    let message = Message::user(
        [ImageInput::Path(image.into())],
        "Can you describe this image?",
    );
    let opts = GenerateOptions {
        max_new_tokens: 128,
        ..Default::default()
    };
    let mut stdout = std::io::stdout();
    let answer =
        engine
            .session()
            .send_streaming(message, &opts, &CancelToken::new(), &mut |event| {
                if let Event::Token(text) = event {
                    let _ = stdout
                        .write_all(text.as_bytes())
                        .and_then(|_| stdout.flush());
                }
                ControlFlow::Continue(())
            })?;
    println!(
        "\n[{} tokens, {:?}]",
        answer.usage.completion_tokens, answer.finish
    );
    Ok(())
}
