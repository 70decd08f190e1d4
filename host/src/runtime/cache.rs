//! Compiled modules and components cached on disk, so a restart with
//! unchanged plugins does not compile again (a Python component takes about
//! 10 s to compile, and milliseconds to read back).
//!
//! An entry is named by the sha256 of the plugin's bytes and a hash of the
//! engine's compatibility (wasmtime version and settings), and holds a
//! checksum of the serialized module. An entry whose checksum does not
//! match, or that wasmtime refuses, is recompiled and rewritten: the cache
//! is never trusted beyond what it can prove.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;

use super::artifact::Artifact;

const MAGIC: &[u8; 8] = b"SYMOD\x01\0\0";

/// Where a module came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Compiled now (and written to the cache).
    Compiled,
    /// Read from a valid cache entry.
    Cached,
    /// The cache entry was corrupt or stale; compiled now and rewritten.
    Recompiled,
}

pub struct CompileCache {
    dir: PathBuf,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl CompileCache {
    pub fn new(dir: &Path) -> CompileCache {
        CompileCache {
            dir: dir.to_path_buf(),
        }
    }

    fn entry(&self, engine: &Engine, sha256: &str) -> PathBuf {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        self.dir.join(format!("{sha256}-{:016x}.module", h.finish()))
    }

    /// The compiled module or component for `bytes` (whose sha256 is `sha256`).
    pub fn artifact(
        &self,
        engine: &Engine,
        bytes: &[u8],
        sha256: &str,
    ) -> wasmtime::Result<(Artifact, Origin)> {
        let path = self.entry(engine, sha256);
        let mut origin = Origin::Compiled;
        if let Ok(entry) = std::fs::read(&path) {
            match verified(&entry) {
                Some(payload) => {
                    // SAFETY: deserializing runs the payload as machine code.
                    // It is only bytes this cache wrote (the checksum proves
                    // they are unchanged), in a directory only the daemon's
                    // operator can write; wasmtime also checks its header
                    // against this engine's version and settings.
                    match unsafe { Artifact::deserialize(engine, bytes, payload) } {
                        Ok(artifact) => return Ok((artifact, Origin::Cached)),
                        Err(e) => {
                            tracing::warn!(entry = %path.display(), error = %e, "stale compiled module; recompiling")
                        }
                    }
                }
                None => tracing::warn!(entry = %path.display(), "corrupt compiled module; recompiling"),
            }
            origin = Origin::Recompiled;
        }
        let artifact = Artifact::compile(engine, bytes)?;
        if let Err(e) = self.store(&path, &artifact) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot write the compiled-module cache");
        }
        Ok((artifact, origin))
    }

    fn store(&self, path: &Path, artifact: &Artifact) -> anyhow::Result<()> {
        let payload = artifact.serialize().map_err(anyhow::Error::from)?;
        std::fs::create_dir_all(&self.dir)?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(MAGIC)?;
        f.write_all(&Sha256::digest(&payload))?;
        f.write_all(&payload)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}

/// The payload of an entry, if its magic and checksum are right.
fn verified(entry: &[u8]) -> Option<&[u8]> {
    let rest = entry.strip_prefix(MAGIC)?;
    if rest.len() < 32 {
        return None;
    }
    let (sum, payload) = rest.split_at(32);
    (Sha256::digest(payload).as_slice() == sum).then_some(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAT: &str = r#"(module (func (export "f") (result i32) (i32.const 7)))"#;

    #[test]
    fn compiles_once_then_reads_the_cache_and_rejects_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::default();
        let cache = CompileCache::new(dir.path());
        let sha = sha256_hex(WAT.as_bytes());
        let (_, o) = cache.artifact(&engine, WAT.as_bytes(), &sha).unwrap();
        assert_eq!(o, Origin::Compiled);
        let (m, o) = cache.artifact(&engine, WAT.as_bytes(), &sha).unwrap();
        assert_eq!(o, Origin::Cached);
        let Artifact::Module(m) = m else {
            panic!("a module comes back a module")
        };
        assert!(m.get_export("f").is_some());

        let entry = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mut bytes = std::fs::read(&entry).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&entry, &bytes).unwrap();
        let (_, o) = cache.artifact(&engine, WAT.as_bytes(), &sha).unwrap();
        assert_eq!(o, Origin::Recompiled, "a flipped byte is detected");
        let (_, o) = cache.artifact(&engine, WAT.as_bytes(), &sha).unwrap();
        assert_eq!(o, Origin::Cached, "and the entry was rewritten");

        std::fs::write(&entry, b"garbage").unwrap();
        assert_eq!(
            cache.artifact(&engine, WAT.as_bytes(), &sha).unwrap().1,
            Origin::Recompiled
        );
    }
}
