//! Plugins given as source: a Cargo project or a Go package is built (`cargo build` / `go
//! build`) into a cache directory keyed by the plugin's name and a hash of its source, so an
//! unchanged source is never built twice and a changed one gets a binary of its own.
//! A Go package without `go.mod` builds in GOPATH mode (`GO111MODULE=off`), with the
//! environment's `GOPATH` or else one that includes Debian's `/usr/share/gocode`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::process::Command;
use xxhash_rust::xxh3::Xxh3;

use crate::error::{PluginError, Result};

/// The longest a build may take.
const BUILD_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// How much of a failed build's output is kept in the error.
const BUILD_OUTPUT_TAIL: usize = 8 * 1024;
/// Source files larger than this are not hashed by content (their size and mtime stand in).
const MAX_HASHED_FILE: u64 = 16 << 20;

/// Where Debian installs Go sources (`golang-*-dev` packages).
const SYSTEM_GOPATH: &str = "/usr/share/gocode";

/// What kind of project a source directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A Cargo project (`Cargo.toml`): `cargo build`.
    Cargo,
    /// A Go package (`*.go` files): `go build`.
    Go,
}

impl SourceKind {
    /// What `dir` holds, if it is a project Bosun can build.
    pub fn detect(dir: &Path) -> Option<Self> {
        if dir.join("Cargo.toml").is_file() {
            return Some(Self::Cargo);
        }
        let entries = std::fs::read_dir(dir).ok()?;
        let has_go = entries.flatten().any(|e| e.path().extension().is_some_and(|x| x == "go") && e.path().is_file());
        has_go.then_some(Self::Go)
    }
}

/// How a source plugin is built.
#[derive(Debug, Clone)]
pub struct SourceBuild {
    /// The plugin's name (the cache's subdirectory and the built binary's name).
    pub name: String,
    /// The project directory.
    pub dir: PathBuf,
    /// Where builds are kept: `<cache_dir>/<name>/<source hash>/<name>`.
    pub cache_dir: PathBuf,
    /// Cargo only: build with `--release` (the default) or the dev profile.
    pub release: bool,
    /// Cargo only: the target directory, shared by every Rust plugin so that they share their
    /// dependencies' builds [default: `<cache_dir>/cargo-target`].
    pub target_dir: PathBuf,
    /// The source hash last computed, with the digest of the files' paths, sizes and
    /// modification times then: while those are unchanged the files are not read again.
    memo: Arc<Mutex<Option<(u64, String)>>>,
}

impl SourceBuild {
    /// A release build of `dir` cached under `cache_dir`.
    pub fn new(name: impl Into<String>, dir: impl Into<PathBuf>, cache_dir: impl Into<PathBuf>) -> Self {
        let cache_dir = cache_dir.into();
        let target_dir = cache_dir.join("cargo-target");
        Self { name: name.into(), dir: dir.into(), cache_dir, release: true, target_dir, memo: Arc::default() }
    }

    /// A hash of every source file (relative path and contents), skipping build outputs
    /// (`target/`) and hidden entries: equal for equal sources, on any machine.
    ///
    /// Supervisors call this every reload interval. The files are listed and stat'ed each time,
    /// but read only when a path, size or modification time differs from the last call (as
    /// `make` decides): an idle project costs a directory walk, not a read of every file.
    pub fn source_hash(&self) -> Result<String> {
        let mut files = Vec::new();
        collect_files(&self.dir, &self.dir, &mut files).map_err(|e| self.error(format!("reading the source: {e}")))?;
        files.sort();
        let mut metas = Vec::with_capacity(files.len());
        let mut stats = Xxh3::new();
        for rel in &files {
            let path = self.dir.join(rel);
            let meta = std::fs::metadata(&path).map_err(|e| self.error(format!("{}: {e}", path.display())))?;
            stats.update(rel.to_string_lossy().as_bytes());
            stats.update(&[0]);
            stats.update(&meta.len().to_le_bytes());
            stats.update(&mtime_nanos(&meta).to_le_bytes());
            metas.push(meta);
        }
        let stats = stats.digest();
        let mut memo = self.memo.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((digest, hash)) = memo.as_ref()
            && *digest == stats
        {
            return Ok(hash.clone());
        }
        let hash = self.content_hash(&files, &metas)?;
        *memo = Some((stats, hash.clone()));
        Ok(hash)
    }

    fn content_hash(&self, files: &[PathBuf], metas: &[std::fs::Metadata]) -> Result<String> {
        let mut hasher = Xxh3::new();
        for (rel, meta) in files.iter().zip(metas) {
            let path = self.dir.join(rel);
            hasher.update(rel.to_string_lossy().as_bytes());
            hasher.update(&[0]);
            if meta.len() <= MAX_HASHED_FILE {
                let bytes = std::fs::read(&path).map_err(|e| self.error(format!("{}: {e}", path.display())))?;
                hasher.update(&(bytes.len() as u64).to_le_bytes());
                hasher.update(&bytes);
            } else {
                hasher.update(&meta.len().to_le_bytes());
                hasher.update(&mtime_nanos(meta).to_le_bytes());
            }
        }
        Ok(format!("{:032x}", hasher.digest128()))
    }

    /// The binary for the current source: the cached one, or a fresh build. A failed build
    /// is a [`PluginError::Build`] carrying the compiler's message.
    pub async fn build(&self) -> Result<PathBuf> {
        let kind = SourceKind::detect(&self.dir)
            .ok_or_else(|| self.error("neither a Cargo project (Cargo.toml) nor a Go package (*.go)".to_owned()))?;
        let hash = self.source_hash()?;
        let out_dir = self.cache_dir.join(&self.name).join(&hash);
        let binary = out_dir.join(&self.name);
        if binary.is_file() {
            tracing::debug!(plugin = %self.name, binary = %binary.display(), "source unchanged; using the cached build");
            return Ok(binary);
        }
        std::fs::create_dir_all(&out_dir).map_err(|e| self.error(format!("{}: {e}", out_dir.display())))?;
        tracing::info!(plugin = %self.name, dir = %self.dir.display(), ?kind, "building the plugin from source");
        let staged = out_dir.join(format!(".{}.partial", self.name));
        match kind {
            SourceKind::Cargo => {
                let built = self.cargo_build().await?;
                std::fs::copy(&built, &staged).map_err(|e| self.error(format!("copying {}: {e}", built.display())))?;
            }
            SourceKind::Go => self.go_build(&staged).await?,
        }
        std::fs::rename(&staged, &binary).map_err(|e| self.error(format!("{}: {e}", binary.display())))?;
        tracing::info!(plugin = %self.name, binary = %binary.display(), "plugin built");
        Ok(binary)
    }

    async fn cargo_build(&self) -> Result<PathBuf> {
        let target_dir = &self.target_dir;
        let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.arg("build")
            .arg("--message-format=json-render-diagnostics")
            .arg("--manifest-path")
            .arg(self.dir.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(target_dir);
        if self.release {
            cmd.arg("--release");
        }
        let stdout = self.run(cmd).await?;
        // The executables cargo reports; the one named like the package (or the only one).
        let mut executables = Vec::new();
        for line in stdout.lines() {
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            if msg["reason"] == "compiler-artifact"
                && let Some(exe) = msg["executable"].as_str()
            {
                executables.push((msg["target"]["name"].as_str().unwrap_or_default().to_owned(), PathBuf::from(exe)));
            }
        }
        match executables.len() {
            0 => Err(self.error("the Cargo project builds no binary".to_owned())),
            1 => Ok(executables.remove(0).1),
            _ => {
                let names: Vec<_> = executables.iter().map(|(n, _)| n.clone()).collect();
                let wanted = self.dir.file_name().map(|n| n.to_string_lossy().into_owned());
                executables
                    .into_iter()
                    .find(|(n, _)| *n == self.name || Some(n) == wanted.as_ref())
                    .map(|(_, p)| p)
                    .ok_or_else(|| {
                        self.error(format!(
                            "the Cargo project builds several binaries ({names:?}); name the plugin after one"
                        ))
                    })
            }
        }
    }

    async fn go_build(&self, out: &Path) -> Result<()> {
        let mut cmd = Command::new("go");
        cmd.arg("build").arg("-o").arg(out).arg(".").current_dir(&self.dir);
        // A package without go.mod builds in GOPATH mode: with the GOPATH of the environment,
        // else a private one plus the system's Go sources (Debian's golang-*-dev packages).
        if !self.dir.join("go.mod").is_file() && std::env::var_os("GO111MODULE").is_none() {
            cmd.env("GO111MODULE", "off");
            if std::env::var_os("GOPATH").is_none() {
                let mut gopath = self.cache_dir.join("gopath").display().to_string();
                if Path::new(SYSTEM_GOPATH).is_dir() {
                    gopath = format!("{gopath}:{SYSTEM_GOPATH}");
                }
                cmd.env("GOPATH", gopath);
            }
        }
        self.run(cmd).await.map(drop)
    }

    /// Runs a build; its stdout on success, its output's tail in the error on failure.
    async fn run(&self, mut cmd: Command) -> Result<String> {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let child = cmd.spawn().map_err(|e| self.error(format!("cannot run the build ({cmd:?}): {e}")))?;
        let output = match tokio::time::timeout(BUILD_TIMEOUT, child.wait_with_output()).await {
            Ok(r) => r.map_err(|e| self.error(format!("the build: {e}")))?,
            Err(_) => return Err(self.error(format!("the build took longer than {BUILD_TIMEOUT:?}"))),
        };
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            return Ok(stdout);
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let text = if stderr.trim().is_empty() { stdout.as_str() } else { &stderr };
        let start = text.len().saturating_sub(BUILD_OUTPUT_TAIL);
        let start = (start..text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
        Err(self.error(format!("the build failed ({}):\n{}", output.status, text[start..].trim_end())))
    }

    fn error(&self, message: String) -> PluginError {
        PluginError::Build { dir: self.dir.display().to_string(), message }
    }
}

/// A file's modification time in nanoseconds since the epoch (0 if unknown).
fn mtime_nanos(meta: &std::fs::Metadata) -> u128 {
    meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).unwrap_or_default().as_nanos()
}

/// Every file under `dir`, relative to `root`, skipping `target/` and hidden entries.
fn collect_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let file_type = entry.file_type()?;
        let path = entry.path();
        if file_type.is_dir() {
            if name == "target" && dir == root {
                continue;
            }
            collect_files(root, &path, out)?;
        } else if (file_type.is_file() || file_type.is_symlink())
            && let Ok(rel) = path.strip_prefix(root)
        {
            out.push(rel.to_path_buf());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_and_hashes_sources() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(SourceKind::detect(dir.path()), None);
        std::fs::write(dir.path().join("main.go"), "package main\n").unwrap();
        assert_eq!(SourceKind::detect(dir.path()), Some(SourceKind::Go));
        let build = SourceBuild::new("p", dir.path(), dir.path().join(".cache"));
        let first = build.source_hash().unwrap();
        // Build outputs and hidden entries do not change the hash.
        std::fs::create_dir_all(dir.path().join("target/release")).unwrap();
        std::fs::write(dir.path().join("target/release/p"), "binary").unwrap();
        std::fs::write(dir.path().join(".swp"), "x").unwrap();
        assert_eq!(build.source_hash().unwrap(), first);
        // A change of contents does.
        std::fs::write(dir.path().join("main.go"), "package main // changed\n").unwrap();
        assert_ne!(build.source_hash().unwrap(), first);
        std::fs::write(dir.path().join("Cargo.toml"), "[package]\n").unwrap();
        assert_eq!(SourceKind::detect(dir.path()), Some(SourceKind::Cargo));
    }

    #[test]
    fn unchanged_files_are_not_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("main.go");
        std::fs::write(&file, "package main // one\n").unwrap();
        let build = SourceBuild::new("p", dir.path(), dir.path().join(".cache"));
        let first = build.source_hash().unwrap();
        let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
        // Same size, same modification time: taken as unchanged without reading the file.
        std::fs::write(&file, "package main // two\n").unwrap();
        std::fs::File::options().write(true).open(&file).unwrap().set_modified(mtime).unwrap();
        assert_eq!(build.source_hash().unwrap(), first);
        // A new modification time makes it read again, and the new content counts.
        std::fs::File::options().write(true).open(&file).unwrap().set_modified(mtime + Duration::from_secs(1)).unwrap();
        let second = build.source_hash().unwrap();
        assert_ne!(second, first);
        // Touched but identical content: the same hash as a fresh build of the same source.
        std::fs::File::options().write(true).open(&file).unwrap().set_modified(mtime).unwrap();
        assert_eq!(build.source_hash().unwrap(), second);
        assert_eq!(SourceBuild::new("p", dir.path(), dir.path().join(".cache")).source_hash().unwrap(), second);
    }

    #[tokio::test]
    async fn a_directory_that_is_no_project_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = SourceBuild::new("p", dir.path(), dir.path().join("cache")).build().await.unwrap_err();
        assert!(err.to_string().contains("neither a Cargo project"), "{err}");
    }
}
