//! Streaming with cancellation from another thread: the answer is printed as it is generated,
//! progress goes to stderr, and a watcher thread (standing in for an app's Stop button) cancels
//! the generation once it has seen enough pieces. The partial text is the result, not an error.
//!
//! ```text
//! cargo run --release --example stream -- tests/fixtures/images/landscape.png 12 tests/fixtures/models/tiny-smolvlm
//! ```
//!
//! Arguments: `IMAGE [STOP_AFTER [MODEL [MMPROJ]]]`; without MODEL, the registry's default
//! model (downloaded once) when built with the `hub` feature.

use std::error::Error;
use std::io::Write;
use std::ops::ControlFlow;
use std::sync::mpsc;
use std::thread;

use vlm::{
    CancelToken, Engine, EngineOptions, Event, GenerateOptions, Generation, ImageInput, Message,
    Progress,
};

/// Streams a description of `image` to `out`; another thread cancels the generation once
/// `stop_after` pieces of text have arrived.
pub fn stream(
    engine: &Engine,
    image: ImageInput,
    opts: &GenerateOptions,
    stop_after: usize,
    out: &mut dyn Write,
) -> Result<Generation, Box<dyn Error>> {
    let cancel = CancelToken::new();
    let (seen_tx, seen_rx) = mpsc::channel::<usize>();
    let watcher = {
        let cancel = cancel.clone();
        thread::spawn(move || {
            for seen in seen_rx {
                if seen >= stop_after {
                    cancel.cancel();
                    break;
                }
            }
        })
    };
    let message = Message::user([image], "Can you describe this image?");
    let mut seen = 0;
    let mut write_error = None;
    let result = engine
        .session()
        .send_streaming(message, opts, &cancel, &mut |event| {
            match event {
                Event::Token(text) => {
                    seen += 1;
                    if let Err(e) = out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
                        write_error = Some(e);
                        return ControlFlow::Break(());
                    }
                    let _ = seen_tx.send(seen);
                }
                Event::Progress(Progress::EncodeViews { done, total }) => {
                    eprintln!("[vision: {done}/{total} views]")
                }
                Event::Progress(Progress::Prefill { tokens }) => {
                    eprintln!("[prefill: {tokens} tokens]")
                }
                _ => {}
            }
            ControlFlow::Continue(())
        });
    // Closing the channel ends the watcher when the generation finished on its own.
    drop(seen_tx);
    let _ = watcher.join();
    if let Some(e) = write_error {
        return Err(e.into());
    }
    Ok(result?)
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let Some(image) = args.next() else {
        return Err("usage: stream IMAGE [STOP_AFTER [MODEL [MMPROJ]]]".into());
    };
    let stop_after = match args.next() {
        Some(n) => n
            .parse()
            .map_err(|_| format!("STOP_AFTER `{n}` is not a count"))?,
        None => 20,
    };
    let source =
        vlm::embed::model_or_default(args.next().map(Into::into), args.next().map(Into::into))?;
    let engine = Engine::load(source, EngineOptions::default())?;
    let answer = stream(
        &engine,
        ImageInput::Path(image.into()),
        &GenerateOptions::default(),
        stop_after,
        &mut std::io::stdout(),
    )?;
    println!(
        "\n[{:?} after {} tokens]",
        answer.finish, answer.usage.completion_tokens
    );
    Ok(())
}
