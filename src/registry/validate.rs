//! Parsed manifests → accepted or rejected: aliases unique and usable in `--model`, defaults
//! that exist, required config files present, and file lists that stay inside their repository.

use std::collections::BTreeMap;
use std::path::Path;

use super::{is_gguf, Registry, RemoteFile, Variant};
use crate::error::{Error, Result};

impl Registry {
    pub(super) fn validate(&self, manifests: &[(&str, &str)]) -> Result<()> {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (i, model) in self.models.iter().enumerate() {
            let file = manifests.get(i).map_or("?", |(f, _)| *f);
            let bad = |problem: String| Error::InvalidConfig {
                path: Path::new("models").join(file),
                problem,
            };
            if model.aliases.is_empty() {
                return Err(bad("no aliases".into()));
            }
            let names = model.aliases.iter().chain(std::iter::once(&model.name));
            for alias in names {
                let key = alias.to_ascii_lowercase();
                if alias.is_empty() || alias.contains([':', '@', '/']) {
                    return Err(bad(format!(
                        "alias `{alias}` is empty or contains `:`, `@` or `/`"
                    )));
                }
                if let Some(other) = seen.insert(key, i) {
                    if other != i || !alias.eq_ignore_ascii_case(&model.name) {
                        return Err(bad(format!("alias `{alias}` is used twice")));
                    }
                }
            }
            if model.variant(&model.default_variant).is_none() {
                return Err(bad(format!(
                    "default_variant `{}` is not a variant",
                    model.default_variant
                )));
            }
            for required in ["config.json", "tokenizer.json", "preprocessor_config.json"] {
                if !model
                    .config
                    .files
                    .iter()
                    .any(|f| f.name == required && !f.optional)
                {
                    return Err(bad(format!("config files lack a required `{required}`")));
                }
            }
            check_files(&model.config.files).map_err(bad)?;
            for (key, variant) in &model.variants {
                let files = variant.files();
                check_files(&files.iter().map(|f| (*f).clone()).collect::<Vec<_>>())
                    .map_err(|p| bad(format!("variant `{key}`: {p}")))?;
                match variant {
                    Variant::Safetensors {
                        repo,
                        revision,
                        files,
                    } => {
                        if repo != &model.config.repo || revision != &model.config.revision {
                            return Err(bad(format!(
                                "variant `{key}`: safetensors weights must come from the config repository and revision"
                            )));
                        }
                        if !files.iter().any(|f| f.name.ends_with(".safetensors")) {
                            return Err(bad(format!("variant `{key}` names no .safetensors file")));
                        }
                    }
                    Variant::Gguf { model, mmproj, .. } => {
                        if !is_gguf(Path::new(&model.name)) || !is_gguf(Path::new(&mmproj.name)) {
                            return Err(bad(format!(
                                "variant `{key}`: the model and mmproj must be .gguf files"
                            )));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn check_files(files: &[RemoteFile]) -> std::result::Result<(), String> {
    if files.is_empty() {
        return Err("names no files".into());
    }
    let mut names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("`{}` is listed twice", w[0]));
    }
    for f in files {
        if f.name.is_empty() || f.name.starts_with('/') || f.name.split('/').any(|c| c == "..") {
            return Err(format!("`{}` is not a path inside the repository", f.name));
        }
        if let Some(sha) = &f.sha256 {
            if !is_sha256(sha) {
                return Err(format!(
                    "`{}`: sha256 must be 64 lowercase hex digits",
                    f.name
                ));
            }
        }
    }
    Ok(())
}

/// Whether `s` is a lowercase hex SHA-256 digest.
pub(crate) fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_and_dangling_defaults_are_rejected() {
        let one = r#"
            name = "A"
            aliases = ["a"]
            description = ""
            family = "smolvlm"
            context_length = 8
            license = "x"
            default_variant = "q"
            [config]
            repo = "o/a"
            files = [{ name = "config.json" }, { name = "tokenizer.json" }, { name = "preprocessor_config.json" }]
            [variants.q]
            format = "gguf"
            repo = "o/a-GGUF"
            model = { name = "a.gguf" }
            mmproj = { name = "mmproj-a.gguf" }
        "#;
        assert!(Registry::from_toml(&[("a.toml", one)]).is_ok());
        let twice = Registry::from_toml(&[("a.toml", one), ("b.toml", one)]).unwrap_err();
        assert!(twice.to_string().contains("used twice"), "{twice}");
        let dangling = one.replace("default_variant = \"q\"", "default_variant = \"z\"");
        let err = Registry::from_toml(&[("a.toml", &dangling)]).unwrap_err();
        assert!(err.to_string().contains("`z`"), "{err}");
        let no_files = one.replace(
            "model = { name = \"a.gguf\" }",
            "model = { name = \"a.bin\" }",
        );
        assert!(Registry::from_toml(&[("a.toml", &no_files)]).is_err());
        let unknown_key = one.replace("license = \"x\"", "licence = \"x\"");
        let err = Registry::from_toml(&[("a.toml", &unknown_key)]).unwrap_err();
        assert!(err.to_string().contains("a.toml"), "{err}");
    }
}
