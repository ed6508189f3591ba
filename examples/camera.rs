//! Raw RGB frames in a loop on one engine, as a camera or video app would feed them: each
//! frame is a `width × height × 3` byte buffer, checked by [`ImageInput::rgb8`], asked about in
//! a session that is reset between frames; the model is loaded once.
//!
//! ```text
//! cargo run --release --example camera -- 5 tests/fixtures/models/tiny-smolvlm
//! ```
//!
//! Arguments: `[FRAMES [MODEL [MMPROJ]]]`; without MODEL, the registry's default model
//! (downloaded once) when built with the `hub` feature. The frames are generated (a square
//! moving over a gradient), so the example needs no camera.

use std::error::Error;
use std::io::Write;
use std::time::Instant;

use vlm::{Engine, EngineOptions, GenerateOptions, Generation, ImageInput, Message};

/// Frame `t` of a synthetic camera: a gradient with a white square moving to the right.
pub fn frame(t: u32, width: u32, height: u32) -> Vec<u8> {
    let side = (width.min(height) / 4).max(1);
    let left = (t * side / 2) % width.max(1);
    let top = (height - side) / 2;
    let mut pixels = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            let inside = x >= left && x < left + side && y >= top && y < top + side;
            if inside {
                pixels.extend_from_slice(&[255, 255, 255]);
            } else {
                pixels.extend_from_slice(&[(x * 255 / width) as u8, (y * 255 / height) as u8, 96]);
            }
        }
    }
    pixels
}

/// Asks about `frames` frames of `width × height` pixels, one after the other, on one engine
/// and one session; prints each answer and its latency to `out`.
pub fn watch(
    engine: &Engine,
    frames: u32,
    (width, height): (u32, u32),
    opts: &GenerateOptions,
    out: &mut dyn Write,
) -> Result<Vec<Generation>, Box<dyn Error>> {
    let mut session = engine.session();
    let mut answers = Vec::new();
    for t in 0..frames {
        let image = ImageInput::rgb8(width, height, frame(t, width, height))?;
        let started = Instant::now();
        session.reset();
        let answer = session.send(Message::user([image], "Where is the white square?"), opts)?;
        writeln!(
            out,
            "frame {t}: {} [{} ms]",
            answer.text.trim(),
            started.elapsed().as_millis()
        )?;
        answers.push(answer);
    }
    Ok(answers)
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let frames = match args.next() {
        Some(n) => n
            .parse()
            .map_err(|_| format!("FRAMES `{n}` is not a count"))?,
        None => 5,
    };
    let source =
        vlm::embed::model_or_default(args.next().map(Into::into), args.next().map(Into::into))?;
    let engine = Engine::load(source, EngineOptions::default())?;
    let opts = GenerateOptions {
        max_new_tokens: 32,
        ..Default::default()
    };
    watch(&engine, frames, (640, 480), &opts, &mut std::io::stdout())?;
    Ok(())
}
