//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

/// Every file under `dir`.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("reads a directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Panics if any file under `dir` holds any of `secrets`.
pub fn assert_nowhere_in(dir: &Path, secrets: &[String]) -> usize {
    let files = walk(dir);
    for path in &files {
        let bytes = std::fs::read(path).expect("reads a data file");
        for secret in secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a key is in {}",
                path.display()
            );
        }
    }
    files.len()
}
