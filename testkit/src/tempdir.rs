//! A fresh directory for a test or a benchmark, removed with everything in
//! it when dropped (also on panic).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh, empty directory, removed when dropped.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// `<system temp dir>/<tag>-<pid>-<n>`, created empty (a leftover of
    /// an earlier process with the same pid is removed first).
    pub fn new(tag: &str) -> std::io::Result<TempDir> {
        TempDir::new_in(&std::env::temp_dir(), tag)
    }

    /// The same under `parent` (a benchmark's chosen filesystem).
    pub fn new_in(parent: &Path, tag: &str) -> std::io::Result<TempDir> {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = parent.join(format!("{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)?;
        Ok(TempDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `name` inside it.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::TempDir;

    #[test]
    fn each_is_fresh_and_goes_with_its_contents() {
        let a = TempDir::new("testkit-tempdir").unwrap();
        let b = TempDir::new("testkit-tempdir").unwrap();
        assert_ne!(a.path(), b.path());
        std::fs::write(a.join("f"), b"x").unwrap();
        let kept = a.path().to_path_buf();
        drop(a);
        assert!(!kept.exists());
        assert!(b.path().is_dir());
    }
}
