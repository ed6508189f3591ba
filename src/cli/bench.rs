//! `vlm bench`: parse the test list, run `apps::bench`, print Markdown, JSON or CSV.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use vlm::apps::bench::{self, report, BenchOptions, BenchTest};
use vlm::ImageInput;

use crate::cli::args::ModelArgs;

/// `vlm bench [-t img,enc,pp512,tg128,ttft] [-d 0,900] [-r 5] [-o md|json|csv]`
#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Tests to run, comma-separated: img, enc, ppN, tgN, ttft, video.
    #[arg(
        long,
        short = 't',
        default_value = "img,enc,pp512,tg128,ttft",
        value_delimiter = ','
    )]
    tests: Vec<String>,
    /// Context depths for the tgN tests (tokens already in the cache), comma-separated.
    #[arg(long, short = 'd', default_value = "0", value_delimiter = ',')]
    depth: Vec<usize>,
    /// Timed repetitions per test.
    #[arg(long, short = 'r', default_value_t = 5)]
    repetitions: usize,
    /// Skip the untimed warm-up run of each test.
    #[arg(long)]
    no_warmup: bool,
    /// Image for img, enc and ttft (default: a synthetic 1920×1080 screenshot, PNG-encoded).
    #[arg(long, value_name = "IMAGE")]
    image: Option<PathBuf>,
    /// Prompt for ttft.
    #[arg(long, default_value = "Describe this screenshot.")]
    prompt: String,
    /// Clip for the video test: an MP4/MOV, an animation or a frame directory (default: 64
    /// synthetic 1280×720 frames in memory, one per second, so no decoding is timed).
    #[arg(long, value_name = "VIDEO")]
    video: Option<PathBuf>,
    /// Output format: md, json or csv.
    #[arg(long, short = 'o', default_value = "md")]
    output: String,
}

fn parse_tests(names: &[String], depths: &[usize]) -> Result<Vec<BenchTest>> {
    let mut tests = Vec::new();
    for name in names {
        let name = name.trim();
        let number = |prefix: &str| -> Result<usize> {
            name[prefix.len()..]
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .with_context(|| format!("invalid option `--tests`: `{name}` needs a positive count, e.g. {prefix}128"))
        };
        match name {
            "img" => tests.push(BenchTest::Img),
            "enc" => tests.push(BenchTest::Enc),
            "ttft" => tests.push(BenchTest::Ttft),
            "video" => tests.push(BenchTest::Video),
            n if n.starts_with("pp") => tests.push(BenchTest::Pp(number("pp")?)),
            n if n.starts_with("tg") => {
                let count = number("tg")?;
                tests.extend(depths.iter().map(|d| BenchTest::Tg {
                    n: count,
                    depth: *d,
                }));
            }
            other => {
                bail!("invalid option `--tests`: unknown test `{other}` (img, enc, ppN, tgN, ttft, video)")
            }
        }
    }
    Ok(tests)
}

/// A screenshot-like picture: bands, boxes and sharp edges, PNG-encoded so `img` includes
/// decoding as it would for a file.
fn synthetic_screenshot() -> Result<Vec<u8>> {
    let img = image::RgbImage::from_fn(1920, 1080, |x, y| {
        let header = y < 80;
        let card = (x / 320) % 2 == 0 && (y / 200) % 2 == 1;
        let text = (x % 12 < 7) && (y % 24 < 10) && (y / 24) % 3 == 0;
        match (header, card, text) {
            (true, _, _) => image::Rgb([30, 40, 90]),
            (_, _, true) => image::Rgb([20, 20, 20]),
            (_, true, _) => image::Rgb([230, 236, 250]),
            _ => image::Rgb([250, 250, 252]),
        }
    });
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    Ok(png)
}

/// 64 seconds of 1280×720 frames, one per second: a moving bar over a gradient.
fn synthetic_clip() -> vlm::VideoInput {
    let frames = (0..64u32)
        .map(|i| {
            let img = image::RgbImage::from_fn(1280, 720, |x, y| {
                if (x + i * 20) % 1280 < 40 {
                    image::Rgb([240, 200, 40])
                } else {
                    image::Rgb([(x / 5) as u8, (y / 3) as u8, 120])
                }
            });
            ImageInput::Rgb8 {
                width: 1280,
                height: 720,
                pixels: img.into_raw(),
            }
        })
        .collect();
    vlm::VideoInput::frames(frames, 1.0)
}

pub(crate) fn run(args: BenchArgs) -> Result<()> {
    let tests = parse_tests(&args.tests, &args.depth)?;
    if !matches!(args.output.as_str(), "md" | "json" | "csv") {
        bail!(
            "invalid option `--output`: `{}` is not md, json or csv",
            args.output
        );
    }
    let engine = crate::cli::run::load(&args.model, None)?;
    let image = match &args.image {
        Some(p) => ImageInput::Path(p.clone()),
        None => ImageInput::Encoded(synthetic_screenshot()?),
    };
    // Built only when asked for: the synthetic clip holds 177 MB of frames.
    let video = match &args.video {
        Some(p) => Some(vlm::VideoInput::path(p)),
        None => tests.contains(&BenchTest::Video).then(synthetic_clip),
    };
    let opts = BenchOptions {
        tests,
        repetitions: args.repetitions.max(1),
        warmup: !args.no_warmup,
        image,
        prompt: args.prompt.clone(),
        video,
    };
    let info = engine.info();
    let env = report::environment(info);
    let results = bench::run(&engine, &opts, &mut |r| {
        eprintln!(
            "{}: {:.2} {} (median {:.2})",
            r.test, r.mean, r.unit, r.median
        );
    })?;
    match args.output.as_str() {
        "json" => println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"environment": env, "results": results})
            )?
        ),
        "csv" => print!("{}", report::csv(&env, &results)),
        _ => print!("{}", report::markdown(&env, &results)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_names_parse() {
        let t = parse_tests(&["img".into(), "pp64".into(), "tg16".into()], &[0, 900]).unwrap();
        assert_eq!(
            parse_tests(&["video".into()], &[0]).unwrap(),
            vec![BenchTest::Video]
        );
        assert_eq!(
            t,
            vec![
                BenchTest::Img,
                BenchTest::Pp(64),
                BenchTest::Tg { n: 16, depth: 0 },
                BenchTest::Tg { n: 16, depth: 900 }
            ]
        );
        assert!(parse_tests(&["pp".into()], &[0]).is_err());
        assert!(parse_tests(&["xx1".into()], &[0]).is_err());
    }
}
