//! A model → the groups of files to fetch (one revision of one repository each) and how they
//! make a [`ModelSource`](crate::ModelSource): registry variants by their manifest, other
//! repositories by their file list.

use super::cache::{is_commit, is_safe_repo_path};
use super::Need;
use crate::registry::{ModelEntry, RemoteFile, Variant};

/// Files of one revision of one repository, fetched as a unit.
pub(super) struct Group {
    pub(crate) repo: String,
    pub(crate) revision: String,
    pub(crate) files: Vec<RemoteFile>,
    /// The files are read from one directory, so they must come from one commit.
    pub(crate) one_dir: bool,
    /// The branch or tag to point at the fetched commit, so offline runs find it.
    pub(crate) record_ref: Option<String>,
}

impl Group {
    fn new(repo: &str, revision: &str, files: Vec<RemoteFile>, one_dir: bool) -> Self {
        Group {
            repo: repo.to_string(),
            revision: revision.to_string(),
            files,
            one_dir,
            record_ref: (!is_commit(revision)).then(|| revision.to_string()),
        }
    }
}

/// How fetched groups become a [`crate::ModelSource`].
pub(super) enum Layout {
    /// A checkpoint directory: group 0's snapshot.
    Dir,
    /// Group 0 holds the text GGUF (and the mmproj when `mmproj`); group 1, when `config`,
    /// the original JSON files.
    Gguf { mmproj: bool, config: bool },
}

/// The JSON files a checkpoint directory may hold, as the loader reads them.
const JSON_FILES: &[&str] = &[
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "preprocessor_config.json",
    "processor_config.json",
    "generation_config.json",
    "chat_template.json",
    "chat_template.jinja",
];

/// The groups of a registry variant.
pub(super) fn registry_groups(
    model: &ModelEntry,
    variant: &Variant,
    need: Need,
) -> (Vec<Group>, Layout) {
    let config = Group::new(
        &model.config.repo,
        &model.config.revision,
        model.config.files.clone(),
        true,
    );
    match (variant, need) {
        (_, Need::Processor) => (vec![config], Layout::Dir),
        (Variant::Safetensors { files, .. }, Need::Everything) => {
            let mut group = config;
            group.files.extend(files.iter().cloned());
            (vec![group], Layout::Dir)
        }
        (
            Variant::Gguf {
                repo,
                revision,
                model,
                mmproj,
            },
            Need::Everything,
        ) => {
            let weights = Group::new(repo, revision, vec![model.clone(), mmproj.clone()], false);
            (
                vec![weights, config],
                Layout::Gguf {
                    mmproj: true,
                    config: true,
                },
            )
        }
    }
}

/// The file whose name carries `quant` (case-insensitive), else the first preference found,
/// else the first file.
pub(super) fn pick_quant<'a>(
    files: &[&'a String],
    quant: Option<&str>,
    prefer: &[&str],
) -> Option<&'a String> {
    let contains = |f: &&String, q: &str| f.to_ascii_lowercase().contains(&q.to_ascii_lowercase());
    if let Some(q) = quant {
        return files.iter().copied().find(|f| contains(f, q));
    }
    prefer
        .iter()
        .find_map(|q| files.iter().copied().find(|f| contains(f, q)))
        .or_else(|| files.first().copied())
}

/// Groups for a repository outside the registry, from its file list at `commit`: a
/// checkpoint directory when it has `config.json` and safetensors, otherwise a GGUF pair (the
/// file matching `quant`, or the first of Q8_0, Q4_K_M, F16). `Err` says why nothing fits.
pub(super) fn from_listing(
    repo: &str,
    revision: &str,
    commit: &str,
    files: Vec<String>,
    quant: Option<&str>,
    need: Need,
) -> Result<(Vec<Group>, Layout), String> {
    let files: Vec<String> = files.into_iter().filter(|f| is_safe_repo_path(f)).collect();
    let top: Vec<&String> = files.iter().filter(|f| !f.contains('/')).collect();
    let has = |name: &str| top.iter().any(|f| f.as_str() == name);
    let safetensors: Vec<&String> = top
        .iter()
        .copied()
        .filter(|f| f.ends_with(".safetensors") || f.as_str() == "model.safetensors.index.json")
        .collect();
    // Fetching at the listed commit keeps the files and the listing consistent.
    let record = (!is_commit(revision)).then(|| revision.to_string());
    let revision = commit.to_string();
    if has("config.json") && safetensors.iter().any(|f| f.ends_with(".safetensors")) {
        let mut wanted: Vec<RemoteFile> = JSON_FILES
            .iter()
            .filter(|f| has(f))
            .map(|f| RemoteFile::named(*f))
            .collect();
        if need == Need::Everything {
            wanted.extend(safetensors.iter().map(|f| RemoteFile::named(f.as_str())));
        }
        let group = Group {
            record_ref: record,
            ..Group::new(repo, &revision, wanted, true)
        };
        return Ok((vec![group], Layout::Dir));
    }
    let ggufs: Vec<&String> = top
        .iter()
        .copied()
        .filter(|f| f.to_ascii_lowercase().ends_with(".gguf"))
        .collect();
    let (projectors, texts): (Vec<&String>, Vec<&String>) = ggufs
        .iter()
        .partition(|f| f.to_ascii_lowercase().starts_with("mmproj"));
    let Some(text) = pick_quant(&texts, quant, &["q8_0", "q4_k_m", "f16"]) else {
        let kinds = if texts.is_empty() {
            "no config.json + safetensors checkpoint and no GGUF model".to_string()
        } else {
            let names: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
            format!(
                "no GGUF matching `{}`; it has {}",
                quant.unwrap_or(""),
                names.join(", ")
            )
        };
        return Err(format!("{kinds} at revision {revision}"));
    };
    let mmproj = pick_quant(&projectors, quant, &["q8_0", "f16"])
        .or_else(|| pick_quant(&projectors, None, &["q8_0", "f16"]));
    let mut wanted = vec![RemoteFile::named(text.as_str())];
    if let Some(m) = mmproj {
        wanted.push(RemoteFile::named(m.as_str()));
    }
    let group = Group {
        record_ref: record,
        ..Group::new(repo, &revision, wanted, false)
    };
    Ok((
        vec![group],
        Layout::Gguf {
            mmproj: mmproj.is_some(),
            config: false,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantizations_are_picked_by_name_then_preference() {
        let files: Vec<String> = ["m-F16.gguf", "m-Q4_K_M.gguf", "m-Q8_0.gguf"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let refs: Vec<&String> = files.iter().collect();
        assert_eq!(
            pick_quant(&refs, Some("q4_k_m"), &[]).unwrap(),
            "m-Q4_K_M.gguf"
        );
        assert_eq!(pick_quant(&refs, None, &["q8_0"]).unwrap(), "m-Q8_0.gguf");
        assert!(pick_quant(&refs, Some("q2_k"), &[]).is_none());
    }
}
