//! The plugins a sensor can serve: every `.wasm` in the plugin directory,
//! by the name it reports. Sessions hold an `Arc<Plugin>`, so replacing an
//! entry affects new connections only; running ones finish on their version.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::events::{EventLog, Origin};
use crate::plugin::{LoadError, Plugin, Runtime};
use crate::server::Sensor;

/// Name → current version of each loaded plugin.
pub struct Registry {
    runtime: Arc<Runtime>,
    dir: PathBuf,
    plugins: RwLock<BTreeMap<String, Arc<Plugin>>>,
}

impl Registry {
    pub fn new(runtime: Arc<Runtime>, dir: PathBuf) -> Self {
        Registry {
            runtime,
            dir,
            plugins: RwLock::new(BTreeMap::new()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Load every `.wasm` file of the plugin directory. A file that fails is
    /// reported and skipped: one broken plugin must not take the others down.
    pub async fn load_dir(&self) -> std::io::Result<Vec<Result<Arc<Plugin>, LoadError>>> {
        let mut paths = Vec::new();
        let mut entries = tokio::fs::read_dir(&self.dir).await?;
        while let Some(entry) = entries.next_entry().await? {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "wasm") {
                paths.push(path);
            }
        }
        paths.sort();
        let mut results = Vec::with_capacity(paths.len());
        for path in paths {
            results.push(self.load(&path).await);
        }
        Ok(results)
    }

    /// Load (or reload) one plugin file and make it current for its name.
    pub async fn load(&self, path: &Path) -> Result<Arc<Plugin>, LoadError> {
        let plugin = self.runtime.load(path).await?;
        self.plugins
            .write()
            .expect("registry lock")
            .insert(plugin.name().to_owned(), plugin.clone());
        Ok(plugin)
    }

    /// Make `plugin` current for its name (natively linked plugins).
    pub fn insert(&self, plugin: Arc<Plugin>) {
        self.plugins
            .write()
            .expect("registry lock")
            .insert(plugin.name().to_owned(), plugin);
    }

    /// Forget the plugin loaded from `path`, if it is still the current
    /// version of its name; returns the name. Running sessions keep it.
    pub fn unload(&self, path: &Path) -> Option<String> {
        let mut plugins = self.plugins.write().expect("registry lock");
        let name = plugins
            .iter()
            .find(|(_, p)| p.path == path)
            .map(|(name, _)| name.clone())?;
        plugins.remove(&name);
        Some(name)
    }

    /// The current version of a plugin.
    pub fn get(&self, name: &str) -> Option<Arc<Plugin>> {
        self.plugins
            .read()
            .expect("registry lock")
            .get(name)
            .cloned()
    }

    /// Every loaded plugin, by name.
    pub fn all(&self) -> Vec<Arc<Plugin>> {
        self.plugins
            .read()
            .expect("registry lock")
            .values()
            .cloned()
            .collect()
    }

    /// Names of loaded plugins, for error messages.
    pub fn names(&self) -> Vec<String> {
        self.plugins
            .read()
            .expect("registry lock")
            .keys()
            .cloned()
            .collect()
    }
}

/// Log and record the outcome of loading one plugin file.
pub fn report_load(events: &EventLog, result: &Result<Arc<Plugin>, LoadError>) {
    match result {
        Ok(plugin) => {
            tracing::info!(plugin = plugin.name(), version = %plugin.info.version, path = %plugin.path.display(), "plugin loaded");
            events.emit(
                &Origin::sensor(),
                "plugin.loaded",
                [
                    ("name".to_string(), Value::from(plugin.name())),
                    ("version".to_string(), plugin.info.version.clone().into()),
                    ("sha256".to_string(), plugin.sha256.clone().into()),
                    ("path".to_string(), plugin.path.display().to_string().into()),
                ],
            );
        }
        Err(err) => {
            tracing::error!(error = %err, "plugin rejected");
            events.emit(
                &Origin::sensor(),
                "plugin.rejected",
                [("error".to_string(), Value::from(err.to_string()))],
            );
        }
    }
}

/// Size and modification time: what tells that a plugin file changed.
pub type Stamp = (SystemTime, u64);

/// What the plugin directory holds now, to compare with later.
pub async fn snapshot(dir: &Path) -> std::io::Result<HashMap<PathBuf, Stamp>> {
    let mut files = HashMap::new();
    let mut entries = tokio::fs::read_dir(dir).await?;
    while let Some(entry) = entries.next_entry().await? {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "wasm") {
            continue;
        }
        if let Ok(meta) = entry.metadata().await {
            files.insert(
                path,
                (
                    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    meta.len(),
                ),
            );
        }
    }
    Ok(files)
}

/// Watch the plugin directory: a new or changed `.wasm` is compiled in the
/// background and swapped in for new connections (sessions already running
/// finish on the version they started with); a broken one is rejected and
/// the old version keeps serving; a removed one is unloaded once its
/// sessions end (they hold it). Polling, not inotify: it works on every
/// filesystem and a second's delay is nothing to an operator.
///
/// `seen` is the directory as it was before the plugins were loaded, so a
/// change made while they loaded is not missed.
pub fn watch(
    sensor: Arc<Sensor>,
    every: Duration,
    mut seen: HashMap<PathBuf, Stamp>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let dir = sensor.registry.dir().to_owned();
        let mut warned = false;
        loop {
            tokio::time::sleep(every).await;
            let now = match snapshot(&dir).await {
                Ok(now) => {
                    warned = false;
                    now
                }
                Err(err) => {
                    if !warned {
                        tracing::warn!(dir = %dir.display(), error = %err, "cannot read the plugin directory");
                        warned = true;
                    }
                    continue;
                }
            };
            for (path, stamp) in &now {
                if seen.get(path) != Some(stamp) {
                    let result = sensor.registry.load(path).await;
                    report_load(&sensor.events, &result);
                }
            }
            for path in seen.keys().filter(|p| !now.contains_key(*p)) {
                if let Some(name) = sensor.registry.unload(path) {
                    tracing::info!(plugin = %name, path = %path.display(), "plugin unloaded");
                    sensor.events.emit(
                        &Origin::sensor(),
                        "plugin.unloaded",
                        [("name".to_string(), Value::from(name))],
                    );
                }
            }
            seen = now;
        }
    })
}
