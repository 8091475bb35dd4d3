//! The plugins a sensor can serve: every `.wasm` in the plugin directory,
//! by the name it reports. Sessions hold an `Arc<Plugin>`, so replacing an
//! entry affects new connections only; running ones finish on their version.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::plugin::{LoadError, Plugin, Runtime};

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
