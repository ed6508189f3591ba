//! Running subcommands: load the engine, stream the answer, print results.

use std::io::Write;
use std::ops::ControlFlow;

use anyhow::{Context, Result};
use serde_json::json;
use vlm::{apps, CancelToken, Engine, Event, Generation};

use crate::cli::args::{AskArgs, DescribeArgs, ModelArgs, OutputArgs};

/// Loads the engine; `image_splitting` becomes the default of its sessions.
pub(crate) fn load(model: &ModelArgs, image_splitting: Option<bool>) -> Result<Engine> {
    let mut opts = model.engine_options()?;
    opts.processor.image_splitting = image_splitting;
    let source = model.source(true)?;
    Engine::load(source, opts).with_context(|| format!("loading model {}", model.spec()))
}

pub(crate) fn describe(args: DescribeArgs) -> Result<()> {
    let opts = args.generate.options()?;
    let engine = load(&args.model, args.generate.image_splitting())?;
    let parts = args.video.parts(&args.images);
    run_streaming(&engine, &args.output, |on_event| {
        apps::describe_parts(&engine, parts, &opts, &CancelToken::new(), on_event)
    })
}

pub(crate) fn ask(args: AskArgs) -> Result<()> {
    let mut opts = args.generate.options()?;
    if let Some(path) = &args.schema {
        opts.constraint = Some(vlm::Constraint::json_schema(read_schema(path)?));
    }
    let (paths, question) = args.split();
    let engine = load(&args.model, args.generate.image_splitting())?;
    let parts = args.video.parts(&paths);
    run_streaming(&engine, &args.output, |on_event| {
        apps::ask_parts(
            &engine,
            parts,
            question,
            &opts,
            &CancelToken::new(),
            on_event,
        )
    })
}

/// A JSON schema file, checked to be a JSON object.
fn read_schema(path: &std::path::Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| vlm::Error::InvalidOption {
        name: "schema",
        reason: format!("{}: {e}", path.display()),
    })?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| vlm::Error::InvalidOption {
            name: "schema",
            reason: format!("{}: not JSON: {e}", path.display()),
        })?;
    if !value.is_object() {
        return Err(vlm::Error::InvalidOption {
            name: "schema",
            reason: format!("{}: a JSON schema must be an object", path.display()),
        }
        .into());
    }
    Ok(value)
}

/// Streams tokens to stdout (or collects them for `--json`) and prints the summary.
fn run_streaming(
    engine: &Engine,
    output: &OutputArgs,
    run: impl FnOnce(&mut dyn FnMut(Event<'_>) -> ControlFlow<()>) -> vlm::Result<Generation>,
) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut write_error: Option<std::io::Error> = None;
    let stream = !output.json;
    let generation = run(&mut |event| {
        if let Event::Token(text) = event {
            if stream {
                if let Err(e) = out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
                    write_error = Some(e);
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    })?;
    if let Some(e) = write_error {
        return Err(e.into());
    }
    if output.json {
        let value = json_report(engine, &generation);
        serde_json::to_writer_pretty(&mut out, &value)?;
        writeln!(out)?;
    } else {
        writeln!(out)?;
    }
    out.flush()?;
    if output.verbose {
        let t = &generation.timings;
        let info = engine.info();
        eprintln!(
            "precision {}: vision {}, prefill {}, decode {}; dtype {}",
            info.precision,
            info.vision_compute,
            info.prefill_compute,
            info.decode_compute,
            info.dtype
        );
        eprintln!(
            "cpu [{}]; AMX {}",
            vlm::CpuFeatures::detect().names().join(" "),
            vlm::TilePermission::request()
        );
        eprintln!(
            "prompt {} tokens ({} image), generated {} ({:?}); preprocess {:.2}s, vision {:.2}s, prefill {:.2}s, decode {:.2}s ({:.1} tok/s)",
            generation.usage.prompt_tokens,
            generation.usage.image_tokens,
            generation.usage.completion_tokens,
            generation.finish,
            t.preprocess.as_secs_f64(),
            t.vision.as_secs_f64(),
            t.prefill.as_secs_f64(),
            t.decode.as_secs_f64(),
            t.decode_tokens_per_second(generation.usage.completion_tokens),
        );
    }
    Ok(())
}

fn json_report(engine: &Engine, g: &Generation) -> serde_json::Value {
    let t = &g.timings;
    json!({
        "text": g.text,
        "token_ids": g.token_ids,
        "finish_reason": g.finish,
        "usage": {
            "prompt_tokens": g.usage.prompt_tokens,
            "image_tokens": g.usage.image_tokens,
            "completion_tokens": g.usage.completion_tokens,
        },
        "timings": {
            "preprocess_s": t.preprocess.as_secs_f64(),
            "vision_s": t.vision.as_secs_f64(),
            "prefill_s": t.prefill.as_secs_f64(),
            "decode_s": t.decode.as_secs_f64(),
            "time_to_first_token_s": t.time_to_first_token().as_secs_f64(),
            "decode_tokens_per_second": t.decode_tokens_per_second(g.usage.completion_tokens),
        },
        "model": engine.info(),
    })
}
