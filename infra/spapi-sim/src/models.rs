//! Where Amazon's SP-API models come from. They are Amazon's files, not ours, so the repository
//! does not carry them; it carries where they come from (a pinned commit of Amazon's public
//! models repository) and the SHA-256 of each file.
//!
//! In order: `$SPAPI_MODELS_DIR`; else `../shared/spapi-models` beside the checkout; else the
//! project cache `<checkout>/.cache/spapi-models/<commit>/`, filled on first use by downloading
//! the five files from `$SPAPI_MODELS_BASE_URL` (default: Amazon's repository at the pinned
//! commit) and checking each against its SHA-256. A failed or mismatching download is one error
//! that names the file, the URL and how to provide the folder by hand; nothing unverified is
//! ever left in the cache.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};

/// Environment variable naming a folder that holds the five files.
pub const MODELS_DIR_ENV: &str = "SPAPI_MODELS_DIR";
/// Environment variable replacing the download's base URL (a mirror, or a test's file server).
/// The files are fetched from `<base>/<path in Amazon's repository>`.
pub const BASE_URL_ENV: &str = "SPAPI_MODELS_BASE_URL";
/// The commit of github.com/amzn/selling-partner-api-models whose files the simulator follows.
pub const PINNED_COMMIT: &str = "34dc93fe45f37c9a0b2e56823c808f68b4f81754";

/// One model file: its name in the models folder, its path in Amazon's repository, its SHA-256.
#[derive(Debug, Clone, Copy)]
pub struct ModelFile {
    pub name: &'static str,
    pub source_path: &'static str,
    pub sha256: &'static str,
}

/// The five files, at [`PINNED_COMMIT`].
pub const MODEL_FILES: [ModelFile; 5] = [
    ModelFile {
        name: "externalFulfillmentShipments_2024-09-11.json",
        source_path: "models/external-fulfillment/externalFulfillmentShipments_2024-09-11.json",
        sha256: "ef70db38e07dd21cfebba29a9d9e25651c9e5162633b27483bfd3d079fb5ccf3",
    },
    ModelFile {
        name: "externalFulfillmentInventory_2024-09-11.json",
        source_path: "models/external-fulfillment/externalFulfillmentInventory_2024-09-11.json",
        sha256: "fee550b27663952c564d856b75b5af7e7098170147be0441bc95e53f6c661019",
    },
    ModelFile {
        name: "externalFulfillmentReturns_2024-09-11.json",
        source_path: "models/external-fulfillment/externalFulfillmentReturns_2024-09-11.json",
        sha256: "ee9f81766819607fa5fee4dcb5069f75dd0ec4762ad87e927017e0a27341980f",
    },
    ModelFile {
        name: "listingsItems_2021-08-01.json",
        source_path: "models/listings-items-api-model/listingsItems_2021-08-01.json",
        sha256: "ddba7322661a227b6148dabadaf93da15dde6dfe0eb828c04e9f8b653b8d2557",
    },
    ModelFile {
        name: "notifications.json",
        source_path: "models/notifications-api-model/notifications.json",
        sha256: "6a5e945f2a53a91b9b97c27cd4570dc399db3dde2b777f623fc226fbcdc8469a",
    },
];

/// Amazon's repository, raw files at the pinned commit.
pub fn default_base_url() -> String {
    format!("https://raw.githubusercontent.com/amzn/selling-partner-api-models/{PINNED_COMMIT}")
}

/// The checkout this process belongs to: the first folder holding `template.yaml` and
/// `infra/spapi-sim`, looking up from the working directory, then from the executable (a
/// binary in `<checkout>/target/...` run from anywhere). Nothing is compiled in, so a moved or
/// renamed checkout works with the binaries it already built.
pub fn checkout_root() -> Result<PathBuf> {
    let is_root =
        |d: &Path| d.join("template.yaml").is_file() && d.join("infra/spapi-sim").is_dir();
    let starts = [
        std::env::current_dir().ok(),
        std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf)),
    ];
    for start in starts.into_iter().flatten() {
        if let Some(d) = start.ancestors().find(|d| is_root(d)) {
            return Ok(d.to_path_buf());
        }
    }
    bail!(
        "cannot find the flexbridge checkout (a folder with template.yaml and infra/spapi-sim) above the \
         working directory or the executable; run from inside the checkout"
    )
}

/// Where to look, in order; [`Sources::from_env`] is what everything uses, tests build their own.
#[derive(Debug, Clone)]
pub struct Sources {
    /// `$SPAPI_MODELS_DIR`: used as given, never downloaded into.
    pub dir: Option<PathBuf>,
    /// `../shared/spapi-models` beside the checkout, used when it holds the files.
    pub beside: Option<PathBuf>,
    /// The project cache, filled by download when the others are absent.
    pub cache: PathBuf,
    pub base_url: String,
}

impl Sources {
    pub fn from_env() -> Result<Self> {
        let root = checkout_root()?;
        Ok(Self {
            dir: std::env::var_os(MODELS_DIR_ENV)
                .filter(|d| !d.is_empty())
                .map(PathBuf::from),
            beside: root.parent().map(|p| p.join("shared/spapi-models")),
            cache: root.join(".cache/spapi-models").join(PINNED_COMMIT),
            base_url: std::env::var(BASE_URL_ENV)
                .ok()
                .filter(|u| !u.is_empty())
                .unwrap_or_else(default_base_url),
        })
    }

    /// The folder holding the five files, downloading them into the cache if need be.
    pub fn locate(&self) -> Result<PathBuf> {
        if let Some(dir) = &self.dir {
            if let Some(missing) = first_missing(dir) {
                bail!(
                    "{MODELS_DIR_ENV}={} has no {missing}; it must hold Amazon's five model files ({})",
                    dir.display(),
                    file_names()
                );
            }
            return Ok(dir.clone());
        }
        if let Some(beside) = &self.beside {
            if first_missing(beside).is_none() {
                return Ok(beside.clone());
            }
        }
        if first_missing(&self.cache).is_none() {
            return Ok(self.cache.clone());
        }
        self.download()?;
        Ok(self.cache.clone())
    }

    /// Fetches the missing files into the cache, each verified before it is renamed into place
    /// (parallel processes may race; each writes its own temporary file and the content is fixed
    /// by its hash, so the last rename wins with the same bytes).
    fn download(&self) -> Result<()> {
        std::fs::create_dir_all(&self.cache)
            .with_context(|| format!("creating the models cache {}", self.cache.display()))?;
        let todo: Vec<ModelFile> = MODEL_FILES
            .into_iter()
            .filter(|f| !self.cache.join(f.name).is_file())
            .collect();
        let base = self.base_url.trim_end_matches('/').to_string();
        // Its own thread and runtime: callers may be sync code or inside a tokio runtime.
        let fetched = std::thread::spawn(move || -> Result<Vec<(ModelFile, String, Vec<u8>)>> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let http = reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .timeout(Duration::from_secs(120))
                    .build()?;
                let mut out = Vec::new();
                for f in todo {
                    let url = format!("{base}/{}", f.source_path);
                    let bytes = fetch(&http, &url)
                        .await
                        .map_err(|e| download_error(&f, &url, &e))?;
                    out.push((f, url, bytes));
                }
                Ok(out)
            })
        })
        .join()
        .map_err(|_| anyhow!("the models download thread panicked"))??;
        for (f, url, bytes) in fetched {
            let got = hex::encode(Sha256::digest(&bytes));
            if got != f.sha256 {
                return Err(download_error(
                    &f,
                    &url,
                    &format!(
                        "SHA-256 {got}, expected {} (a changed or corrupted file)",
                        f.sha256
                    ),
                ));
            }
            let tmp = self
                .cache
                .join(format!(".{}.{}.part", f.name, std::process::id()));
            std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, self.cache.join(f.name))
                .with_context(|| format!("moving {} into the models cache", f.name))?;
        }
        Ok(())
    }
}

async fn fetch(http: &reqwest::Client, url: &str) -> std::result::Result<Vec<u8>, String> {
    let resp = http.get(url).send().await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    Ok(resp.bytes().await.map_err(|e| e.to_string())?.to_vec())
}

fn download_error(f: &ModelFile, url: &str, why: &dyn std::fmt::Display) -> anyhow::Error {
    anyhow!(
        "Amazon's SP-API model {} could not be fetched from {url}: {why}. Provide the models by hand: \
         download the five files ({}) from github.com/amzn/selling-partner-api-models at commit \
         {PINNED_COMMIT} into a folder and set {MODELS_DIR_ENV} to it (or put them in \
         ../shared/spapi-models beside the checkout); {BASE_URL_ENV} points the download at a mirror",
        f.name,
        file_names()
    )
}

fn first_missing(dir: &Path) -> Option<&'static str> {
    MODEL_FILES
        .iter()
        .find(|f| !dir.join(f.name).is_file())
        .map(|f| f.name)
}

fn file_names() -> String {
    MODEL_FILES.map(|f| f.name).join(", ")
}

/// The models folder for this process, from the environment (see the module comment).
pub fn locate() -> Result<PathBuf> {
    Sources::from_env()?.locate()
}
