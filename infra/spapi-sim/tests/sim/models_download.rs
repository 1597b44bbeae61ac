//! Amazon's models fetched into the project cache: from a local file server standing in for
//! Amazon's repository, a corrupted file refused, a server that is down named in the error.

use std::path::{Path, PathBuf};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::Router;
use spapi_sim::models::{Sources, MODEL_FILES, PINNED_COMMIT};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "flexbridge-models-{name}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A folder laid out like Amazon's repository, holding the real files (from wherever this
/// checkout finds them), with `corrupt` (if any) changed by one byte.
fn repository_copy(corrupt: Option<&str>) -> PathBuf {
    let models = spapi_sim::models::locate().unwrap();
    let repo = scratch("repo");
    for f in MODEL_FILES {
        let mut bytes = std::fs::read(models.join(f.name)).unwrap();
        if Some(f.name) == corrupt {
            bytes.push(b'\n');
        }
        let to = repo.join(f.source_path);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, bytes).unwrap();
    }
    repo
}

/// Serves `root` over HTTP (GET /<path>), like raw.githubusercontent.com at a commit.
async fn file_server(root: PathBuf) -> String {
    async fn get(
        State(root): State<PathBuf>,
        UrlPath(path): UrlPath<String>,
    ) -> Result<Vec<u8>, StatusCode> {
        std::fs::read(root.join(path)).map_err(|_| StatusCode::NOT_FOUND)
    }
    let app = Router::new()
        .route("/{*path}", axum::routing::get(get))
        .with_state(root);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn sources(cache: &Path, base_url: String) -> Sources {
    Sources {
        dir: None,
        beside: None,
        cache: cache.to_path_buf(),
        base_url,
    }
}

async fn locate(s: Sources) -> anyhow::Result<PathBuf> {
    tokio::task::spawn_blocking(move || s.locate())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_models_are_downloaded_once_into_the_cache_and_verified() {
    let base = file_server(repository_copy(None)).await;
    let cache = scratch("cache").join(PINNED_COMMIT);
    let dir = locate(sources(&cache, base)).await.unwrap();
    assert_eq!(dir, cache);
    for f in MODEL_FILES {
        assert!(cache.join(f.name).is_file(), "{} cached", f.name);
    }
    // The simulator starts on the downloaded folder.
    let sim = spapi_sim::Simulator::start(spapi_sim::SimOptions {
        models_dir: Some(dir.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    sim.shutdown().await;
    // A filled cache is used as it is: no server needed any more.
    let dir = locate(sources(&cache, "http://127.0.0.1:9".into()))
        .await
        .unwrap();
    assert_eq!(dir, cache);
    // Nothing but the five files: no temporary file is left behind.
    assert_eq!(
        std::fs::read_dir(&cache).unwrap().count(),
        MODEL_FILES.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_file_is_refused_and_never_cached() {
    let base = file_server(repository_copy(Some("notifications.json"))).await;
    let cache = scratch("cache").join(PINNED_COMMIT);
    let err = locate(sources(&cache, base.clone()))
        .await
        .unwrap_err()
        .to_string();
    let url = format!("{base}/models/notifications-api-model/notifications.json");
    for needle in [
        "notifications.json",
        url.as_str(),
        "SHA-256",
        "SPAPI_MODELS_DIR",
        PINNED_COMMIT,
    ] {
        assert!(err.contains(needle), "{needle:?} in: {err}");
    }
    assert!(!err.contains('\n'), "one line: {err}");
    assert!(!cache.join("notifications.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_is_named_with_the_way_to_provide_the_files_by_hand() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let cache = scratch("cache").join(PINNED_COMMIT);
    let err = locate(sources(&cache, base.clone()))
        .await
        .unwrap_err()
        .to_string();
    let first = MODEL_FILES[0];
    for needle in [
        first.name.to_string(),
        format!("{base}/{}", first.source_path),
        "SPAPI_MODELS_DIR".to_string(),
        "../shared/spapi-models".to_string(),
        "SPAPI_MODELS_BASE_URL".to_string(),
    ] {
        assert!(err.contains(&needle), "{needle:?} in: {err}");
    }
    assert!(!cache.join(first.name).exists());
}

#[test]
fn a_models_folder_from_the_environment_must_hold_every_file() {
    let dir = scratch("partial");
    std::fs::write(dir.join(MODEL_FILES[0].name), "{}").unwrap();
    let err = Sources {
        dir: Some(dir.clone()),
        beside: None,
        cache: scratch("unused"),
        base_url: "http://127.0.0.1:9".into(),
    }
    .locate()
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(MODEL_FILES[1].name) && err.contains(&dir.display().to_string()),
        "{err}"
    );
}
