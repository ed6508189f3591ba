//! Where the Hub is and where its files go: the environment (`HF_ENDPOINT`, `HF_HOME`,
//! `HF_TOKEN`, `HF_HUB_OFFLINE`, proxies) → a [`HubConfig`].

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The public Hub.
const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Where and how to reach the Hub, and where its files are cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubConfig {
    /// Base URL, e.g. `https://huggingface.co` (`HF_ENDPOINT`).
    pub endpoint: String,
    /// The cache's `hub` directory (`HF_HUB_CACHE`, or `$HF_HOME/hub`), holding
    /// `models--owner--name` folders.
    pub cache_dir: PathBuf,
    /// Access token for gated or private repositories (`HF_TOKEN`).
    pub token: Option<String>,
    /// Never touch the network; use the cache only (`HF_HUB_OFFLINE`).
    pub offline: bool,
    /// HTTP proxy URL for the endpoint.
    pub proxy: Option<String>,
    /// Further attempts after a download breaks off, each resuming where the last stopped.
    pub retries: u32,
}

impl HubConfig {
    /// The public Hub, cached in `cache_dir`, online, with no token or proxy.
    pub fn new(endpoint: impl Into<String>, cache_dir: impl Into<PathBuf>) -> Self {
        HubConfig {
            endpoint: endpoint.into().trim_end_matches('/').to_string(),
            cache_dir: cache_dir.into(),
            token: None,
            offline: false,
            proxy: None,
            retries: 3,
        }
    }

    /// The configuration the Hugging Face tools use, from the environment: `HF_ENDPOINT`,
    /// `HF_HUB_CACHE` / `HF_HOME` / `XDG_CACHE_HOME` (default `~/.cache/huggingface/hub`),
    /// `HF_TOKEN` (or the token file `huggingface-cli login` writes), `HF_HUB_OFFLINE`, and
    /// `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` unless `NO_PROXY` exempts the endpoint.
    pub fn from_env() -> Result<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let endpoint = var("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let hf_home = match var("HF_HOME") {
            Some(home) => PathBuf::from(home),
            None => match var("XDG_CACHE_HOME") {
                Some(cache) => Path::new(&cache).join("huggingface"),
                None => {
                    let home =
                        var("HOME")
                            .or_else(|| var("USERPROFILE"))
                            .ok_or(Error::InvalidOption {
                                name: "HF_HOME",
                                reason: "no home directory to put the model cache in; set HF_HOME"
                                    .into(),
                            })?;
                    Path::new(&home).join(".cache").join("huggingface")
                }
            },
        };
        let cache_dir = var("HF_HUB_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| hf_home.join("hub"));
        let token = var("HF_TOKEN")
            .or_else(|| var("HUGGING_FACE_HUB_TOKEN"))
            .or_else(|| hf_hub::Cache::new(hf_home.join("hub")).token());
        let offline = var("HF_HUB_OFFLINE").is_some_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        });
        let host = host_of(&endpoint).to_ascii_lowercase();
        let exempt = is_loopback(&host)
            || var("NO_PROXY")
                .or_else(|| var("no_proxy"))
                .is_some_and(|list| no_proxy_matches(&list, &host));
        let proxy = if exempt {
            None
        } else if endpoint.starts_with("https:") {
            ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
                .iter()
                .find_map(|v| var(v))
        } else {
            ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
                .iter()
                .find_map(|v| var(v))
        };
        Ok(HubConfig {
            token,
            offline,
            proxy,
            ..HubConfig::new(endpoint, cache_dir)
        })
    }

    /// The same configuration, offline when `offline` is true (it never turns offline off).
    pub fn or_offline(mut self, offline: bool) -> Self {
        self.offline |= offline;
        self
    }
}

fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    authority.split(':').next().unwrap_or(authority)
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `NO_PROXY` semantics of curl and requests: `*`, exact hosts, and domain suffixes.
fn no_proxy_matches(list: &str, host: &str) -> bool {
    list.split(',')
        .map(|e| e.trim().trim_start_matches('.').to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .any(|e| e == "*" || host == e || host.ends_with(&format!(".{e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies_skip_loopback_and_no_proxy_hosts() {
        assert_eq!(host_of("http://127.0.0.1:8080/x"), "127.0.0.1");
        assert_eq!(host_of("https://user@huggingface.co"), "huggingface.co");
        assert_eq!(host_of("http://[::1]:80"), "::1");
        assert!(is_loopback("::1") && is_loopback("localhost") && !is_loopback("hf.co"));
        assert!(no_proxy_matches(
            "example.com, .huggingface.co",
            "cdn.huggingface.co"
        ));
        assert!(no_proxy_matches("*", "anything"));
        assert!(!no_proxy_matches("example.com", "huggingface.co"));
    }
}
