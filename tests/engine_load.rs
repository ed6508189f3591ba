//! Loading through the public API: progress steps in order, and devices whose backend is not
//! compiled in refused with an error that names the feature.

use vlm::{Category, DeviceChoice, Engine, EngineOptions, Error, LoadStage, ModelSource, Progress};

use crate::common::model_dir;

fn tiny() -> ModelSource {
    ModelSource::dir(model_dir("tiny-smolvlm"))
}

#[test]
fn load_reports_each_step_in_order() {
    let mut seen = Vec::new();
    let engine =
        Engine::load_with_progress(tiny(), EngineOptions::default(), &mut |p| seen.push(p))
            .unwrap();
    let expected: Vec<Progress> = LoadStage::ALL
        .iter()
        .enumerate()
        .map(|(i, &stage)| Progress::Load {
            stage,
            done: i + 1,
            total: 3,
        })
        .collect();
    assert_eq!(seen, expected);
    assert!(engine.info().vision);

    // A GGUF pair reports the same steps.
    let gguf = crate::common::fixtures().join("gguf");
    let source = ModelSource::gguf(
        gguf.join("tiny-smolvlm-q8_0.gguf"),
        Some(gguf.join("mmproj-tiny-smolvlm-q8_0.gguf")),
    );
    seen.clear();
    Engine::load_with_progress(source, EngineOptions::default(), &mut |p| seen.push(p)).unwrap();
    assert_eq!(seen, expected);
}

#[test]
fn a_failed_load_reports_only_the_steps_before_it() {
    let mut seen = Vec::new();
    let missing = ModelSource::dir(model_dir("no-such-model"));
    let result =
        Engine::load_with_progress(missing, EngineOptions::default(), &mut |p| seen.push(p));
    assert!(matches!(result, Err(Error::MissingFile { .. })));
    assert!(seen.is_empty(), "{seen:?}");
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_without_the_feature_is_a_load_error_naming_it() {
    let opts = EngineOptions {
        device: DeviceChoice::Cuda(0),
        ..Default::default()
    };
    let mut seen = Vec::new();
    match Engine::load_with_progress(tiny(), opts, &mut |p| seen.push(p)) {
        Err(
            e @ Error::DeviceNotCompiled {
                feature: "cuda", ..
            },
        ) => {
            assert_eq!(e.category(), Category::Load);
            assert!(e.to_string().contains("--features cuda"), "{e}");
        }
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("cuda:0 loaded without the cuda feature"),
    }
    assert!(
        seen.is_empty(),
        "the device is checked before any file is read"
    );
}

#[cfg(not(feature = "metal"))]
#[test]
fn metal_without_the_feature_is_a_load_error_naming_it() {
    let opts = EngineOptions {
        device: DeviceChoice::Metal(0),
        ..Default::default()
    };
    match Engine::load(tiny(), opts) {
        Err(e) => assert_eq!(
            e.to_string(),
            "device `metal:0` is not compiled in; rebuild vlm with `--features metal`"
        ),
        Ok(_) => panic!("metal:0 loaded without the metal feature"),
    }
}
