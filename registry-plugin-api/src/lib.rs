//! The stable ABI between the taskreg host and third-party source plugins.
//!
//! A third-party source (git, S3, anything) is shipped as a `cdylib` that depends on this
//! crate only, never on `registry-core` or the host: the host and a plugin may be built by
//! different compilers at different times, so nothing but FFI-safe types may cross between
//! them. Bytes cross the boundary; the host parses them.
//!
//! This crate is the protocol and nothing else. It evolves append-only, and
//! [`PROTOCOL_VERSION`] is the version of that protocol. The `abi_stable` root module, the
//! source object and the `export_source_plugin!` macro are introduced with cdylib loading
//! (see `docs/architecture.md`); until then the host registers only built-in sources.

/// Version of the plugin protocol described by this crate.
///
/// It follows semver: a new field appended to the root module is a minor bump, anything
/// that changes the layout of an existing item is a major bump.
pub const PROTOCOL_VERSION: &str = "0.1.0";

#[cfg(test)]
mod tests {
    #[test]
    fn protocol_version_is_semver() {
        let parts: Vec<u64> = super::PROTOCOL_VERSION
            .split('.')
            .map(|p| p.parse().expect("numeric component"))
            .collect();
        assert_eq!(parts.len(), 3);
    }
}
