//! The WIT compatibility rule (wit/README.md), checked on every build: each world of the
//! current `wit/` must be a semver-compatible successor of the same world in every released
//! snapshot under `wit/released/<version>/`, i.e. a component built against the old world
//! still links against the new one. This is `wasm-tools component semver-check`'s check
//! (`wit_component::semver_check`), run for every world.

use std::path::{Path, PathBuf};

use wit_parser::{PackageId, Resolve, SourceMap};

fn wit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit")
}

/// The `.wit` files of `dir`, with the package version replaced by `version` (so an old
/// snapshot and the current package can live in one `Resolve`).
fn sources(dir: &Path, version: &str) -> SourceMap {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("a WIT directory")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wit"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .wit files in {}", dir.display());
    let mut map = SourceMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable WIT");
        let text = with_package_version(&text, version);
        map.push(&file, text);
    }
    map
}

/// `text` with its `package textnlp:plugin@...;` line (if any) naming `version` instead.
fn with_package_version(text: &str, version: &str) -> String {
    text.lines()
        .map(|line| match line.starts_with("package textnlp:plugin@") {
            true => format!("package textnlp:plugin@{version};"),
            false => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn push(resolve: &mut Resolve, map: SourceMap) -> PackageId {
    let group = map.parse().map_err(|(_, e)| e).expect("WIT parses");
    resolve.push_group(group).expect("WIT resolves")
}

/// Checks every world of `old` against the same-named world of `new`.
fn check(old: SourceMap, new: SourceMap) -> Result<usize, String> {
    let mut resolve = Resolve::default();
    // Released snapshots get build metadata (`+released`: the same precedence, so their
    // `@since` gates stay valid) so that the two packages do not clash in one Resolve;
    // semver_check ignores versions when it compares.
    let old = push(&mut resolve, old);
    let new = push(&mut resolve, new);
    let worlds: Vec<_> = resolve.packages[old]
        .worlds
        .iter()
        .map(|(name, &id)| (name.clone(), id))
        .collect();
    for (name, old_world) in &worlds {
        let Some(&new_world) = resolve.packages[new].worlds.get(name) else {
            return Err(format!("world `{name}` was removed"));
        };
        wit_component::semver_check(resolve.clone(), *old_world, new_world)
            .map_err(|e| format!("world `{name}`: {e:#}"))?;
    }
    Ok(worlds.len())
}

#[test]
fn every_released_world_is_still_linkable() {
    let released = wit_dir().join("released");
    let mut checked = 0;
    for entry in std::fs::read_dir(&released).expect("wit/released exists") {
        let dir = entry.expect("a directory entry").path();
        let version = dir.file_name().unwrap().to_string_lossy().into_owned();
        let old = sources(&dir, &format!("{version}+released"));
        let new = sources(&wit_dir(), "0.1.2");
        match check(old, new) {
            Ok(n) => checked += n,
            Err(e) => panic!(
                "wit/ breaks the released textnlp:plugin@{version}: {e}\n\
                 Within 0.1.x only additive changes are allowed; see wit/README.md."
            ),
        }
    }
    assert!(checked >= 4, "only {checked} worlds checked");
}

#[test]
fn the_check_catches_a_breaking_change() {
    let dir = wit_dir().join("released/0.1.0");
    let old = sources(&dir, "0.1.0+released");
    let mut new = SourceMap::new();
    // A function removed from an exported interface, and a parameter retyped in an import.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace(
                "  score: func(samples: list<sample>) -> result<report, error>;\n",
                "",
            )
            .replace(
                "append: func(tokens: list<u32>)",
                "append: func(tokens: list<u64>)",
            );
        new.push(&path, text);
    }
    let error = check(old, new).expect_err("a breaking change must be caught");
    assert!(error.contains("world"), "{error}");
}

#[test]
fn an_additive_change_passes() {
    let dir = wit_dir().join("released/0.1.0");
    let old = sources(&dir, "0.1.0+released");
    let mut new = SourceMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap().replace(
            "  get: func() -> string;\n",
            "  get: func() -> string;\n  keys: func() -> list<string>;\n",
        );
        new.push(&path, text);
    }
    check(old, new).expect("adding a host function is compatible");
}
