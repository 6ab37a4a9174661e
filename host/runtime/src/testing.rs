//! Test support: builds the plugins workspace once per process and locates
//! the test plugins. Not part of the stable API.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// The test plugins, by package name.
pub const TEST_PLUGINS: &[&str] = &[
    "remora-test-lines",
    "remora-test-loop",
    "remora-test-alloc",
    "remora-test-panic",
    "remora-test-malformed",
    "remora-test-stack",
    "remora-test-future",
];

/// Where the plugins workspace is: `REMORA_PLUGINS_MANIFEST` or `<repo>/plugins/Cargo.toml`.
fn manifest() -> PathBuf {
    std::env::var_os("REMORA_PLUGINS_MANIFEST")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("plugins/Cargo.toml"))
}

fn build() -> Result<PathBuf, String> {
    let manifest = manifest();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(&manifest)
        .args(["--target", "wasm32-wasip2", "--release"]);
    for p in TEST_PLUGINS {
        cmd.args(["-p", p]);
    }
    // Do not inherit the host build's target dir or flags.
    for var in [
        "CARGO_TARGET_DIR",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd.output().map_err(|e| format!("running cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building the test plugins ({}) failed:\n{}",
            manifest.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(manifest
        .parent()
        .expect("manifest dir")
        .join("target/wasm32-wasip2/release"))
}

/// Path of the compiled test plugin `crate_name` (e.g. `remora-test-lines`),
/// building the plugins workspace first (once per process). Panics with
/// cargo's stderr if the build fails.
pub fn plugin_path(crate_name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BUILT.get_or_init(build) {
        Ok(dir) => {
            let p = dir.join(format!("{}.wasm", crate_name.replace('-', "_")));
            assert!(p.is_file(), "{} was not built", p.display());
            p
        }
        Err(e) => panic!("{e}"),
    }
}
