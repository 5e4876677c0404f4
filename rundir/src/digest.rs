//! Checksums of the binary files of a run folder (checkpoints, final weights): each is recorded in
//! a manifest written after the file, and a file whose bytes no longer match is treated as
//! missing.

use crate::error::RunDirError;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::io::Read;
use std::path::Path;

/// The size and SHA-256 of a file, as a manifest records it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    /// Its length in bytes.
    pub bytes: u64,
    /// SHA-256 of its bytes, lower-case hex.
    pub sha256: String,
}

impl FileDigest {
    /// The digest of the file at `path`, read in chunks (checkpoints can be large).
    pub fn of_file(path: &Path) -> Result<Self, RunDirError> {
        let mut file = std::fs::File::open(path).map_err(|e| RunDirError::io(path, e))?;
        let (mut hasher, mut bytes, mut buf) = (Sha256::new(), 0u64, vec![0u8; 1 << 20]);
        loop {
            let n = file.read(&mut buf).map_err(|e| RunDirError::io(path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            bytes += n as u64;
        }
        Ok(Self { bytes, sha256: hex(&hasher.finalize()) })
    }

    /// The digest of `data`.
    pub fn of_bytes(data: &[u8]) -> Self {
        Self { bytes: data.len() as u64, sha256: hex(&Sha256::digest(data)) }
    }

    /// Why the file at `path` does not match this digest (`None` when it does): missing, of
    /// another size, or other bytes.
    pub fn mismatch(&self, path: &Path) -> Option<String> {
        let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().to_string());
        let Ok(meta) = std::fs::metadata(path) else { return Some(format!("{name} is missing")) };
        if meta.len() != self.bytes {
            return Some(format!("{name} has {} bytes where its manifest records {}", meta.len(), self.bytes));
        }
        match Self::of_file(path) {
            Ok(d) if d.sha256 == self.sha256 => None,
            Ok(_) => Some(format!("{name} fails its checksum (its bytes changed after it was written)")),
            Err(e) => Some(format!("{name} cannot be read: {e}")),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flipped_byte_or_a_cut_is_a_mismatch() {
        let dir = std::env::temp_dir().join(format!("gatelab-digest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.bin");
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let d = FileDigest::of_file(&path).unwrap();
        assert_eq!(d, FileDigest::of_bytes(&data));
        assert_eq!(d.mismatch(&path), None);
        let mut flipped = data.clone();
        flipped[4000] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert!(d.mismatch(&path).unwrap().contains("fails its checksum"));
        std::fs::write(&path, &data[..100]).unwrap();
        assert!(d.mismatch(&path).unwrap().contains("100 bytes"));
        std::fs::remove_file(&path).unwrap();
        assert!(d.mismatch(&path).unwrap().contains("missing"));
    }
}
