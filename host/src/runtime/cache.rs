//! Compiled plugins, kept in `data_dir` so that a restart (or a rollback)
//! serves without recompiling.
//!
//! An entry is keyed by the wasm's sha256 and the engine's compatibility
//! hash (wasmtime version and settings), so a new host or new settings never
//! load code compiled for another. Each entry has a checksum beside it; an
//! entry that is missing, damaged or refused by wasmtime is compiled again.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::error::Context as _;

/// Where a plugin's compiled code came from: the cache, or compiling its wasm now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompiledFrom {
    /// Loaded from the cache, without compiling.
    Cache,
    /// Compiled now from the wasm (and cached for next time).
    Wasm,
}

impl CompiledFrom {
    /// How the admin API and the log name it.
    pub fn as_str(self) -> &'static str {
        match self {
            CompiledFrom::Cache => "cache",
            CompiledFrom::Wasm => "compiled",
        }
    }
}

pub struct CompiledCache {
    dir: PathBuf,
    engine_key: String,
}

/// The sha256 of some bytes, in lowercase hex.
pub fn sha256(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

impl CompiledCache {
    pub fn open(dir: &Path, engine: &Engine) -> wasmtime::Result<Self> {
        crate::private::create_dir(dir).with_context(|| {
            format!("cannot create the compiled-plugin cache {}", dir.display())
        })?;
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let cache = Self {
            dir: dir.to_owned(),
            engine_key: format!("{:016x}", hasher.finish()),
        };
        cache.remove_stale();
        Ok(cache)
    }

    /// Removes entries compiled by another engine (another wasmtime, other
    /// settings): this host can never load them.
    fn remove_stale(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let current = format!("-{}.cwasm", self.engine_key);
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let entry_name = name.strip_suffix(".sha256").unwrap_or(&name);
            if entry_name.ends_with(".cwasm") && !entry_name.ends_with(&current) {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => {
                        tracing::info!(entry = %name, "removed a compiled plugin of another engine")
                    }
                    Err(err) => {
                        tracing::warn!(entry = %name, "cannot remove a compiled plugin of another engine: {err}")
                    }
                }
            }
        }
    }

    fn entry(&self, wasm_sha256: &str) -> (PathBuf, PathBuf) {
        let path = self
            .dir
            .join(format!("{wasm_sha256}-{}.cwasm", self.engine_key));
        let checksum = path.with_extension("cwasm.sha256");
        (path, checksum)
    }

    /// The component for `bytes` (whose sha256 is `wasm_sha256`): from the
    /// cache when a sound entry exists, else compiled and stored.
    pub fn component(
        &self,
        engine: &Engine,
        wasm_sha256: &str,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, CompiledFrom)> {
        let (path, checksum) = self.entry(wasm_sha256);
        if path.exists() {
            match self.load(engine, &path, &checksum) {
                Ok(component) => return Ok((component, CompiledFrom::Cache)),
                Err(err) => tracing::warn!(
                    entry = %path.display(),
                    "a compiled-plugin cache entry cannot be used; compiling again: {err:#}"
                ),
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Err(err) = self.store(&component, &path, &checksum) {
            // The plugin still serves; only the next start compiles again.
            tracing::warn!(entry = %path.display(), "cannot write a compiled-plugin cache entry: {err:#}");
        }
        Ok((component, CompiledFrom::Wasm))
    }

    /// Removes the entry of a component no longer kept. A host still
    /// serving it keeps its mapping: unlinking a mapped file is safe, only
    /// writing into one is not.
    pub fn forget(&self, wasm_sha256: &str) {
        let (path, checksum) = self.entry(wasm_sha256);
        for file in [checksum, path] {
            if let Err(err) = std::fs::remove_file(&file)
                && err.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(entry = %file.display(), "cannot remove a compiled-plugin cache entry: {err}");
            }
        }
    }

    fn load(&self, engine: &Engine, path: &Path, checksum: &Path) -> wasmtime::Result<Component> {
        let expected = std::fs::read_to_string(checksum).context("its checksum is missing")?;
        let contents = std::fs::read(path).context("it cannot be read")?;
        if sha256(&contents) != expected.trim() {
            wasmtime::bail!("its contents do not match its checksum");
        }
        drop(contents);
        // SAFETY: `deserialize_file` runs the machine code in the file. The
        // file was written by `store` below from `Component::serialize` of
        // this engine's compilation, under a name that includes the engine's
        // compatibility hash, and its contents were just checked against the
        // checksum written with it, so it is exactly what this host compiled.
        // wasmtime checks the header against the engine as well.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize_file(engine, path) }?;
        Ok(component)
    }

    /// Writes an entry whole or not at all: a temporary file renamed into
    /// place, the checksum last.
    fn store(&self, component: &Component, path: &Path, checksum: &Path) -> wasmtime::Result<()> {
        let compiled = component.serialize()?;
        write_atomically(&self.dir, path, &compiled)?;
        write_atomically(&self.dir, checksum, sha256(&compiled).as_bytes())?;
        Ok(())
    }
}

fn write_atomically(dir: &Path, path: &Path, contents: &[u8]) -> wasmtime::Result<()> {
    let mut file =
        tempfile::NamedTempFile::new_in(dir).context("cannot create a temporary file")?;
    file.write_all(contents)
        .context("cannot write a temporary file")?;
    file.as_file()
        .sync_all()
        .context("cannot flush a temporary file")?;
    file.persist(path)
        .map_err(|err| err.error)
        .context("cannot move a temporary file into place")?;
    Ok(())
}
