//! What a plugin file compiles to: a core module (ABI.md) or a component
//! (`plugin-sdk/wit/switchyard.wit`), told apart by the file's header when
//! it is compiled, so that the compile cache, the background compiler and
//! the loader handle both alike.
//!
//! A binary's preamble is `\0asm`, then a 16-bit version and a 16-bit
//! layer: layer 0 is a core module, layer 1 a component (the component
//! model's binary format). Text (`.wat`) is parsed first and then told
//! apart the same way.

use wasmtime::component::Component;
use wasmtime::{Engine, Module};

/// A compiled plugin file.
#[derive(Clone)]
pub enum Artifact {
    Module(Module),
    Component(Component),
}

/// Whether the wasm binary `bytes` is a component (its layer field is 1).
pub fn is_component(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\0asm") && bytes.get(6..8) == Some(&[1, 0])
}

impl Artifact {
    /// Compiles `bytes` (a binary or text module or component).
    pub fn compile(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Artifact> {
        let binary = wat::parse_bytes(bytes)?;
        if is_component(&binary) {
            Ok(Artifact::Component(Component::new(engine, &binary)?))
        } else {
            Ok(Artifact::Module(Module::new(engine, &binary)?))
        }
    }

    /// The compiled code, for the cache: [`Artifact::deserialize`] reads it back.
    pub fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        match self {
            Artifact::Module(m) => m.serialize(),
            Artifact::Component(c) => c.serialize(),
        }
    }

    /// Reads back what [`Artifact::serialize`] wrote for the plugin file
    /// `source` (whose header says which of the two it is).
    ///
    /// # Safety
    /// `payload` is run as machine code: it must be bytes that
    /// [`Artifact::serialize`] wrote (see `cache`, which proves it with a
    /// checksum in a directory only the operator can write).
    pub unsafe fn deserialize(engine: &Engine, source: &[u8], payload: &[u8]) -> wasmtime::Result<Artifact> {
        let component = is_component(&wat::parse_bytes(source)?);
        // SAFETY: as the caller promised.
        unsafe {
            if component {
                Ok(Artifact::Component(Component::deserialize(engine, payload)?))
            } else {
                Ok(Artifact::Module(Module::deserialize(engine, payload)?))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_and_components_are_told_apart_in_binary_and_text() {
        let engine = Engine::default();
        let module = Artifact::compile(&engine, b"(module)").unwrap();
        assert!(matches!(module, Artifact::Module(_)));
        let component = Artifact::compile(&engine, b"(component)").unwrap();
        assert!(matches!(component, Artifact::Component(_)));
        assert!(is_component(&wat::parse_str("(component)").unwrap()));
        assert!(!is_component(&wat::parse_str("(module)").unwrap()));
        for (source, artifact) in [(&b"(module)"[..], module), (b"(component)", component)] {
            let bytes = artifact.serialize().unwrap();
            // SAFETY: bytes serialized just above by this engine.
            let back = unsafe { Artifact::deserialize(&engine, source, &bytes) }.unwrap();
            assert_eq!(
                matches!(back, Artifact::Component(_)),
                matches!(artifact, Artifact::Component(_))
            );
        }
    }
}
