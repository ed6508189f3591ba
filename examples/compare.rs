//! Screenshots of two or more tools → a comparison card through the library API, with
//! per-field progress on stderr and the time split (encode vs questions) at the end.
//!
//! ```text
//! cargo run --release --example compare -- tests/fixtures/models/tiny-smolvlm \
//!     examples/screenshots/quillwise.png examples/screenshots/inkpot.png
//! ```

use vlm::apps::compare::{compare_with_progress, render, CompareEvent, CompareOptions};
use vlm::{Engine, EngineOptions, ImageInput, ModelSource};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let Some(model) = args.next() else {
        return Err("usage: compare MODEL_DIR SCREENSHOT SCREENSHOT...".into());
    };
    let shots: Vec<ImageInput> = args.map(|p| ImageInput::Path(p.into())).collect();
    let engine = Engine::load(ModelSource::dir(model), EngineOptions::default())?;
    let card = compare_with_progress(
        &engine,
        &shots,
        &CompareOptions::default(),
        &mut |e| match e {
            CompareEvent::Screenshot { index, total, name } => {
                eprintln!("[{}/{total}] {name}", index + 1)
            }
            CompareEvent::Field { field, .. } => eprintln!("  {}", field.label()),
            CompareEvent::Warning(w) => eprintln!("warning: {w}"),
            _ => {}
        },
    )?;
    println!("{}", render::markdown(&card));
    let s = &card.stats;
    eprintln!(
        "encode {:.3}s ({} from cache), image prefill {:.3}s, {} questions {:.3}s",
        s.encode.as_secs_f64(),
        s.cache_hits,
        s.prefill.as_secs_f64(),
        s.fields,
        s.questions.as_secs_f64()
    );
    Ok(())
}
