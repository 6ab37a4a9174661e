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
    "remora-test-garbled",
    "remora-test-stack",
    "remora-test-future",
    "remora-test-legacy",
    "remora-test-alert-faulty",
];

/// Where the plugins workspace is: `REMORA_PLUGINS_MANIFEST` or `<repo>/plugins/Cargo.toml`.
fn manifest() -> PathBuf {
    std::env::var_os("REMORA_PLUGINS_MANIFEST")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("plugins/Cargo.toml"))
}

fn build() -> Result<PathBuf, String> {
    build_packages(TEST_PLUGINS)
}

/// Builds the given packages of the plugins workspace (all when empty).
fn build_packages(packages: &[&str]) -> Result<PathBuf, String> {
    let manifest = manifest();
    build_wasm(&manifest, packages)?;
    Ok(manifest
        .parent()
        .expect("manifest dir")
        .join("target/wasm32-wasip2/release"))
}

/// `cargo build --release --target wasm32-wasip2` of a workspace (the given
/// packages, all when empty) into its own target dir; the error carries
/// cargo's stderr.
fn build_wasm(manifest: &Path, packages: &[&str]) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build").arg("--manifest-path").arg(manifest).args([
        "--target",
        "wasm32-wasip2",
        "--release",
    ]);
    for p in packages {
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
            "building {} failed:\n{}",
            manifest.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
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

/// Every built-in plugin (the crates directly under `plugins/`, not
/// `testing/`), built once per process: `(crate name, path to .wasm)`.
pub fn builtin_plugins() -> Vec<(String, PathBuf)> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = match BUILT.get_or_init(|| build_packages(&[])) {
        Ok(dir) => dir.clone(),
        Err(e) => panic!("{e}"),
    };
    let manifest = manifest();
    let plugins = manifest.parent().expect("manifest dir").to_path_buf();
    // The workspace's own members list, less globs (testing/*).
    let workspace = std::fs::read_to_string(&manifest).expect("plugins manifest");
    let members = workspace
        .lines()
        .find_map(|l| l.trim().strip_prefix("members"))
        .expect("a members line");
    let mut out = Vec::new();
    for member in members
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|m| !m.contains('*'))
    {
        let toml = std::fs::read_to_string(plugins.join(member).join("Cargo.toml"))
            .unwrap_or_else(|e| panic!("plugins/{member}/Cargo.toml: {e}"));
        let name = toml
            .lines()
            .find_map(|l| l.strip_prefix("name = \"")?.strip_suffix('"'))
            .unwrap_or_else(|| panic!("plugins/{member}/Cargo.toml has no name"));
        let wasm = dir.join(format!("{}.wasm", name.replace('-', "_")));
        assert!(wasm.is_file(), "{} was not built", wasm.display());
        out.push((name.to_owned(), wasm));
    }
    out.sort();
    out
}

/// The example alert plugin `examples/alerts/rust-secrets`, built from source
/// (its own workspace) once per process. Panics with cargo's stderr on failure.
pub fn secrets_alert_example() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let r = BUILT.get_or_init(|| {
        let dir = repo_root().join("examples/alerts/rust-secrets");
        build_wasm(&dir.join("Cargo.toml"), &[])?;
        Ok(dir.join("target/wasm32-wasip2/release/remora_alert_secrets.wasm"))
    });
    match r {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    }
}
