//! `textnlp plugin ...` end to end: the `textnlp` binary with a temporary `TEXTNLP_HOME`.
//!
//! Needs the first-party plugins built (`scripts/setup.sh`, or `cd plugins && cargo build
//! --release --target wasm32-wasip2`). The rejection tests damage real components in the ways
//! a user's file can be wrong; the author-flow test scaffolds, builds and installs a plugin.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;
use textnlp_host::plugins::{Manifest, PluginKind};

const RELEASE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../plugins/target/wasm32-wasip2/release"
);
/// Shared by runs of the author-flow test (and CI), so the scaffold's dependencies build once.
const SCAFFOLD_TARGET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/target-scaffold");
/// First-party plugins, by file stem; only `tokenizer_bpe` is required to be built.
const FIRST_PARTY: [&str; 4] = [
    "tokenizer_bpe",
    "validator_length",
    "strategy_template",
    "provider_openai",
];

/// A `TEXTNLP_HOME` of its own.
struct Home {
    dir: TempDir,
}

impl Home {
    fn new() -> Self {
        Home {
            dir: tempfile::tempdir().expect("temporary TEXTNLP_HOME"),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_textnlp"))
            .args(args)
            .env("TEXTNLP_HOME", self.dir.path())
            .env_remove("RUST_LOG")
            .output()
            .expect("run textnlp")
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "textnlp {args:?} failed:\n{stderr}\n{stdout}"
        );
        stdout
    }

    /// Runs a command that must fail; returns its stderr, checked to be one `error:` line.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "textnlp {args:?} succeeded");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "one error line expected:\n{stderr}");
        stderr
    }

    /// Writes `bytes` to a file in the home's directory and adds it, expecting a refusal.
    fn add_refused(&self, file: &str, bytes: &[u8]) -> String {
        let path = self.dir.path().join(file);
        std::fs::write(&path, bytes).expect("write the component");
        let stderr = self.fails(&["plugin", "add", path.to_str().expect("utf-8 path")]);
        assert!(stderr.contains("cannot add"), "{stderr}");
        let list = self.ok(&["plugin", "list"]);
        assert!(list.contains("no plugins installed"), "{list}");
        stderr
    }
}

fn plugin_file(stem: &str) -> PathBuf {
    Path::new(RELEASE).join(format!("{stem}.wasm"))
}

/// The built first-party plugins, `tokenizer_bpe` required.
fn first_party() -> Vec<PathBuf> {
    let tokenizer = plugin_file("tokenizer_bpe");
    assert!(
        tokenizer.is_file(),
        "{} is missing: run scripts/setup.sh (or build plugins/ for wasm32-wasip2) first",
        tokenizer.display()
    );
    FIRST_PARTY
        .iter()
        .map(|stem| plugin_file(stem))
        .filter(|path| path.is_file())
        .collect()
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The tokenizer plugin's bytes (present in every set-up).
fn tokenizer_bytes() -> Vec<u8> {
    first_party();
    read(&plugin_file("tokenizer_bpe"))
}

/// The length-prefixed name of a custom section, as it appears in the binary.
fn section_name(name: &str) -> Vec<u8> {
    let mut bytes = vec![u8::try_from(name.len()).expect("short section name")];
    bytes.extend_from_slice(name.as_bytes());
    bytes
}

/// `wasm` with every occurrence of `from` replaced by `to` (same length, so every section
/// size stays right); panics if there is none.
fn patch(wasm: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len(), "a patch must keep the length");
    let mut out = wasm.to_vec();
    let mut found = 0;
    let mut i = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            found += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    assert!(found > 0, "{:?} not found", String::from_utf8_lossy(from));
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn first_party_plugins_install_list_inspect_and_remove() {
    let home = Home::new();
    let mut installed = Vec::new();
    for path in first_party() {
        let wasm = read(&path);
        let manifest =
            Manifest::from_component(&wasm).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let file = path.to_str().expect("utf-8 path");
        let out = home.ok(&["plugin", "add", file, "--grant-requested"]);
        let sha = sha256_hex(&wasm);
        let headline = format!(
            "added {} {} ({})",
            manifest.name, manifest.version, manifest.kind
        );
        assert!(out.contains(&headline), "{out}");
        assert!(out.contains(&sha) && out.contains("grants"), "{out}");
        installed.push((manifest, sha));
    }

    let list = home.ok(&["plugin", "list"]);
    assert!(list.starts_with("NAME"), "{list}");
    for (manifest, sha) in &installed {
        let row = list
            .lines()
            .find(|l| l.starts_with(&format!("{} ", manifest.name)))
            .unwrap_or_else(|| panic!("{} not listed:\n{list}", manifest.name));
        assert!(
            row.contains(manifest.kind.name()) && row.contains(&sha[..12]),
            "{row}"
        );
    }

    for (manifest, sha) in &installed {
        check_inspect(&home, manifest, sha);
    }

    // Installing a name again needs --replace.
    let tokenizer = plugin_file("tokenizer_bpe");
    let tokenizer = tokenizer.to_str().expect("utf-8 path");
    let stderr = home.fails(&["plugin", "add", tokenizer]);
    assert!(
        stderr.contains("already installed") && stderr.contains("--replace"),
        "{stderr}"
    );
    home.ok(&["plugin", "add", tokenizer, "--replace"]);

    for (manifest, _) in &installed {
        let out = home.ok(&["plugin", "remove", &manifest.name]);
        assert!(out.contains(&format!("removed {}", manifest.name)), "{out}");
    }
    let list = home.ok(&["plugin", "list"]);
    assert!(list.contains("no plugins installed"), "{list}");
    let stderr = home.fails(&["plugin", "remove", &installed[0].0.name]);
    assert!(stderr.contains("is not installed"), "{stderr}");
}

/// `inspect NAME` (text and JSON) shows the world, imports, exports, manifest and grants.
fn check_inspect(home: &Home, manifest: &Manifest, sha: &str) {
    let text = home.ok(&["plugin", "inspect", &manifest.name]);
    for expected in [
        format!("world     {}", manifest.kind.world()),
        "check     ok".to_owned(),
        "imports".to_owned(),
        format!("  {} (instance)", manifest.kind.export()),
        "manifest".to_owned(),
        format!("\"description\": {:?}", manifest.description),
        "grants    ".to_owned(),
    ] {
        assert!(text.contains(&expected), "{expected:?} missing:\n{text}");
    }
    let json = home.ok(&["plugin", "inspect", &manifest.name, "--json"]);
    let json: serde_json::Value = serde_json::from_str(&json).expect("inspect --json");
    assert_eq!(json["sha256"], sha);
    assert_eq!(json["world"], manifest.kind.world());
    assert_eq!(json["manifest"]["name"], manifest.name.as_str());
    assert!(json["installed"]["grants"]["memory_mib"].is_u64(), "{json}");
    let exports = json["exports"].as_array().expect("exports");
    assert!(
        exports.iter().any(|e| e["name"] == manifest.kind.export()),
        "{json}"
    );
    let imports = json["imports"].as_array().expect("imports");
    assert!(
        imports
            .iter()
            .all(|i| manifest.kind.may_import(i["name"].as_str().unwrap_or(""))),
        "{json}"
    );
}

#[test]
fn inspects_a_file_before_it_is_installed() {
    let home = Home::new();
    let path = plugin_file("tokenizer_bpe");
    let wasm = tokenizer_bytes();
    let out = home.ok(&["plugin", "inspect", path.to_str().expect("utf-8"), "--json"]);
    let json: serde_json::Value = serde_json::from_str(&out).expect("inspect --json");
    assert_eq!(json["sha256"], sha256_hex(&wasm));
    assert_eq!(json["world"], PluginKind::Tokenizer.world());
    assert_eq!(json["check"], "ok");
    assert!(json["installed"].is_null(), "{json}");
    // Inspecting a file creates no registry.
    assert!(!home.dir.path().join("state").exists());
}

#[test]
fn refuses_garbage_bytes() {
    let stderr = Home::new().add_refused("garbage.wasm", b"this is not a plugin at all\n");
    assert!(
        stderr.contains("invalid plugin: not a WebAssembly binary"),
        "{stderr}"
    );
}

#[test]
fn refuses_a_truncated_component() {
    let wasm = tokenizer_bytes();
    let stderr = Home::new().add_refused("truncated.wasm", &wasm[..wasm.len() / 2]);
    assert!(
        stderr.contains("the component is truncated: a section runs to byte "),
        "{stderr}"
    );
    let size = format!("but the file has {} bytes", wasm.len() / 2);
    assert!(stderr.contains(&size), "{stderr}");
}

#[test]
fn refuses_a_core_module() {
    let stderr = Home::new().add_refused("core.wasm", b"\0asm\x01\0\0\0");
    assert!(
        stderr.contains("core WebAssembly module, not a component"),
        "{stderr}"
    );
}

#[test]
fn refuses_an_incompatible_api_version() {
    let api = section_name("textnlp:plugin-api");
    let wasm = patch(
        &tokenizer_bytes(),
        &[&api[..], b"0.1.2"].concat(),
        &[&api[..], b"0.2.0"].concat(),
    );
    let stderr = Home::new().add_refused("future.wasm", &wasm);
    assert!(
        stderr
            .contains("incompatible plugin: the component was built against textnlp:plugin 0.2.0"),
        "{stderr}"
    );
}

#[test]
fn refuses_a_component_without_a_manifest() {
    let wasm = patch(
        &tokenizer_bytes(),
        &section_name("textnlp:plugin-manifest"),
        &section_name("textnlp:plugin-manifesX"),
    );
    let stderr = Home::new().add_refused("anonymous.wasm", &wasm);
    assert!(
        stderr.contains(
            "no manifest: build the plugin with textnlp-plugin-sdk and a textnlp-plugin.json"
        ),
        "{stderr}"
    );
}

#[test]
fn refuses_a_bad_manifest() {
    let wasm = patch(
        &tokenizer_bytes(),
        br#""version": "0.1.0""#,
        br#""version": "0.1.x""#,
    );
    let stderr = Home::new().add_refused("bad-manifest.wasm", &wasm);
    assert!(
        stderr.contains("bad manifest: version: `0.1.x`"),
        "{stderr}"
    );
}

#[test]
fn refuses_a_component_of_another_kind() {
    // The tokenizer's manifest claiming a validator: it does not export the validator world.
    let wasm = patch(
        &tokenizer_bytes(),
        br#""kind": "tokenizer""#,
        br#""kind": "validator""#,
    );
    let stderr = Home::new().add_refused("impostor.wasm", &wasm);
    assert!(
        stderr.contains("cannot link plugin: not a validator plugin"),
        "{stderr}"
    );
}

#[test]
fn refuses_forbidden_imports() {
    // A test plugin of tests/plugins: a validator importing wasi:http.
    let path = plugin_file("hostile_http");
    if !path.is_file() {
        eprintln!("skipped: {} is not built", path.display());
        return;
    }
    let stderr = Home::new().add_refused("hostile-http.wasm", &read(&path));
    assert!(
        stderr.contains("which a validator plugin may not use"),
        "{stderr}"
    );
}

#[test]
fn refuses_hosts_the_plugin_does_not_ask_for() {
    let home = Home::new();
    let path = plugin_file("tokenizer_bpe");
    let path = path.to_str().expect("utf-8");
    let stderr = home.fails(&["plugin", "add", path, "--grant-host", "example.com"]);
    assert!(stderr.contains("cannot grant `example.com`"), "{stderr}");
}

/// Whether rustc can build for wasm32-wasip2 here (its standard library is installed).
fn wasm_target_installed() -> bool {
    let Ok(out) = Command::new("rustc").args(["--print", "sysroot"]).output() else {
        return false;
    };
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    Path::new(&sysroot)
        .join("lib/rustlib/wasm32-wasip2")
        .is_dir()
}

#[test]
fn scaffolds_builds_and_installs_a_new_plugin() {
    let home = Home::new();
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().to_str().expect("utf-8");
    let out = home.ok(&[
        "plugin",
        "new",
        "--kind",
        "validator",
        "my-check",
        "--dir",
        dir,
    ]);
    let crate_dir = work.path().join("my-check");
    assert!(
        out.contains("cargo build --release --target wasm32-wasip2"),
        "{out}"
    );
    assert!(out.contains("textnlp plugin add"), "{out}");
    for file in [
        "Cargo.toml",
        "src/lib.rs",
        "textnlp-plugin.json",
        ".gitignore",
    ] {
        assert!(crate_dir.join(file).is_file(), "{file} missing");
    }
    let stderr = home.fails(&[
        "plugin",
        "new",
        "--kind",
        "validator",
        "my-check",
        "--dir",
        dir,
    ]);
    assert!(stderr.contains("already exists"), "{stderr}");

    if !wasm_target_installed() {
        eprintln!("skipped building the scaffold: the wasm32-wasip2 target is not installed");
        return;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let build = Command::new(cargo)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", SCAFFOLD_TARGET)
        .output()
        .expect("run cargo");
    assert!(
        build.status.success(),
        "building the scaffold failed:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let wasm = Path::new(SCAFFOLD_TARGET).join("wasm32-wasip2/release/my_check.wasm");
    let out = home.ok(&["plugin", "add", wasm.to_str().expect("utf-8")]);
    assert!(out.contains("added my-check 0.1.0 (validator)"), "{out}");
}

/// `textnlp tenant` and `textnlp key` on the state directory: a key is printed once, listed
/// by its id only, revoked; bad scopes and ids are one clear error; installs are audited.
#[test]
fn tenants_and_keys_from_the_cli() {
    let home = Home::new();
    let created = home.ok(&["tenant", "create", "acme", "--tokens-per-minute", "5000"]);
    assert!(created.contains("\"tokens_per_minute\": 5000"), "{created}");
    home.fails(&["tenant", "create", "acme"]);
    home.fails(&["tenant", "create", "Not Valid"]);
    let key = home.ok(&[
        "key",
        "create",
        "--tenant",
        "acme",
        "--scopes",
        "generate,read",
    ]);
    let key = key.trim();
    assert!(
        key.starts_with("tnlp_") && key.len() == 5 + 12 + 1 + 48,
        "{key}"
    );
    let id = &key[5..17];
    let listed = home.ok(&["key", "list", "--tenant", "acme"]);
    assert!(
        listed.contains(id) && !listed.contains(&key[18..]),
        "{listed}"
    );
    assert!(listed.contains("\"active\":true"), "{listed}");
    home.fails(&[
        "key",
        "create",
        "--tenant",
        "acme",
        "--scopes",
        "everything",
    ]);
    home.fails(&["key", "create", "--tenant", "nobody", "--scopes", "read"]);
    home.ok(&["key", "revoke", id]);
    assert!(home.ok(&["key", "list"]).contains("\"active\":false"));
    let generated = home.ok(&["key", "generate"]);
    assert_ne!(generated.trim(), key);
    home.ok(&["tenant", "delete", "acme"]);
    assert!(!home.ok(&["tenant", "list"]).contains("acme"));
    // The secret is nowhere in the state directory.
    let files = common::assert_nowhere_in(&home.dir.path().join("state"), &[key[18..].to_owned()]);
    assert!(files > 0);
}
