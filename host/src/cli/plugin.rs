//! `textnlp plugin ...`: install, list, inspect and remove plugins, and start new ones.
//!
//! The CLI installs into the [`SHARED`] namespace of the registry under `$TEXTNLP_HOME/state`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use wasmtime::component::types::{ComponentExtern, ComponentItem};

use crate::paths;
use crate::plugins::manifest::{Manifest, valid_name};
use crate::plugins::registry::{
    Entry, GrantRequest, Grants, MAX_COMPONENT_BYTES, Registry, RegistryError, SHARED, sha256_hex,
};
use crate::plugins::runtime::declared_api_version;
use crate::plugins::{PluginKind, PluginRuntime};
use crate::tenancy::Tenancy;

#[derive(Debug, Args)]
pub struct PluginArgs {
    #[command(subcommand)]
    command: PluginCommand,
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Check a plugin component and install it, with the grants given here.
    Add(AddArgs),
    /// List the installed plugins.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show a plugin's world, imports, exports, manifest and (if installed) grants.
    Inspect {
        /// An installed plugin's name, or a component file (a path ending in .wasm or
        /// containing a slash).
        #[arg(value_name = "NAME|FILE.wasm")]
        target: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Uninstall a plugin.
    Remove { name: String },
    /// Create a plugin crate, ready to build, from the SDK's template for KIND.
    New(NewArgs),
}

#[derive(Debug, Args)]
struct AddArgs {
    /// The component (`cargo build --release --target wasm32-wasip2` output).
    #[arg(value_name = "FILE.wasm")]
    file: PathBuf,
    /// Grant the model access the plugin asks for.
    #[arg(long)]
    grant_model: bool,
    /// Grant an outbound host the plugin asks for (repeatable).
    #[arg(long = "grant-host", value_name = "HOST")]
    grant_hosts: Vec<String>,
    /// Grant everything the plugin asks for.
    #[arg(long)]
    grant_requested: bool,
    /// Replace an installed plugin of the same name.
    #[arg(long)]
    replace: bool,
}

#[derive(Debug, Args)]
struct NewArgs {
    /// tokenizer, strategy, validator or provider.
    #[arg(long)]
    kind: PluginKind,
    /// The plugin's name: [a-z][a-z0-9-]{0,63}.
    name: String,
    /// Where to create the crate directory NAME [default: the current directory].
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The plugin SDK (sdk/plugin of a textnlp checkout) [default: this build's checkout].
    #[arg(long, value_name = "PATH")]
    sdk: Option<PathBuf>,
}

pub fn run(args: PluginArgs) -> Result<()> {
    match args.command {
        PluginCommand::Add(args) => add(&args),
        PluginCommand::List { json } => list(json),
        PluginCommand::Inspect { target, json } => inspect(&target, json),
        PluginCommand::Remove { name } => remove(&name),
        PluginCommand::New(args) => new(&args),
    }
}

fn runtime() -> Result<PluginRuntime> {
    PluginRuntime::new().context("starting the plugin runtime")
}

fn open_registry(runtime: PluginRuntime) -> Result<Registry> {
    // The error names the path and says why (e.g. another process holds the lock).
    Ok(Registry::open_default(runtime)?)
}

/// Reads a component file, refusing one too large to install before reading it.
fn read_component(path: &Path) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if len > MAX_COMPONENT_BYTES as u64 {
        bail!(
            "{} is {len} bytes; the limit for a plugin is {MAX_COMPONENT_BYTES}",
            path.display()
        );
    }
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn add(args: &AddArgs) -> Result<()> {
    let wasm = read_component(&args.file)?;
    let registry = open_registry(runtime()?)?;
    let request = GrantRequest {
        model: args.grant_model,
        outbound_hosts: args.grant_hosts.clone(),
        requested: args.grant_requested,
    };
    let entry = registry
        .add(SHARED, &wasm, &request, args.replace)
        .map_err(|e| match e {
            RegistryError::AlreadyInstalled { .. } => anyhow!("{e}; pass --replace to replace it"),
            e => anyhow::Error::new(e),
        })
        .with_context(|| format!("cannot add {}", args.file.display()))?;
    let detail = format!("{} {} sha256 {}", entry.kind, entry.version, entry.sha256);
    audit(&registry, "plugin.install", &entry.name, &detail)?;
    print!("{}", describe_added(&entry));
    Ok(())
}

/// Writes a change to the shared namespace into the audit log, as the CLI's.
fn audit(registry: &Registry, action: &str, name: &str, detail: &str) -> Result<()> {
    let tenancy = Tenancy::open(registry.db())?;
    let target = format!("{SHARED}/{name}");
    tenancy.audit("cli", None, action, &target, "ok", Some(detail));
    Ok(())
}

/// What `add` prints: the plugin, its hash and grants, and what it asked for but did not get.
fn describe_added(entry: &Entry) -> String {
    let mut out = format!(
        "added {} {} ({})\n  sha256  {}\n  api     {}\n  grants  {}\n",
        entry.name,
        entry.version,
        entry.kind,
        entry.sha256,
        entry.api_version,
        grants_summary(&entry.grants)
    );
    for note in withheld(entry) {
        let _ = writeln!(out, "  note    {note}");
    }
    out
}

/// What the plugin asked for and was not granted (or was granted less of).
fn withheld(entry: &Entry) -> Vec<String> {
    let asked = &entry.manifest.capabilities;
    let got = &entry.grants;
    let mut notes = Vec::new();
    if asked.model && !got.model {
        notes.push("asks for model access, not granted (--grant-model)".to_owned());
    }
    for host in &asked.outbound_hosts {
        if !got.outbound_hosts.contains(&host.to_ascii_lowercase()) {
            notes.push(format!(
                "asks to reach {host}, not granted (--grant-host {host})"
            ));
        }
    }
    if got.memory_mib < asked.memory_mib {
        notes.push(format!(
            "asks for {} MiB of memory, capped at {} MiB",
            asked.memory_mib, got.memory_mib
        ));
    }
    if got.timeout_ms < asked.timeout_ms {
        notes.push(format!(
            "asks for a {} ms deadline, capped at {} ms",
            asked.timeout_ms, got.timeout_ms
        ));
    }
    notes
}

/// `model, net:api.openai.com, 64 MiB, 5000 ms`.
fn grants_summary(grants: &Grants) -> String {
    let mut parts = Vec::new();
    if grants.model {
        parts.push("model".to_owned());
    }
    parts.extend(grants.outbound_hosts.iter().map(|h| format!("net:{h}")));
    parts.push(format!("{} MiB", grants.memory_mib));
    parts.push(format!("{} ms", grants.timeout_ms));
    parts.join(", ")
}

fn list(json: bool) -> Result<()> {
    let registry = open_registry(runtime()?)?;
    let entries = registry.list(SHARED)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
    } else if entries.is_empty() {
        println!("no plugins installed (add one with `textnlp plugin add FILE.wasm`)");
    } else {
        print!("{}", table(&entries));
    }
    Ok(())
}

/// The `list` table, columns padded to their widest cell.
fn table(entries: &[Entry]) -> String {
    let header = ["NAME", "KIND", "VERSION", "API", "SHA256", "GRANTS"].map(str::to_owned);
    let rows: Vec<[String; 6]> = entries
        .iter()
        .map(|e| {
            [
                e.name.clone(),
                e.kind.to_string(),
                e.version.clone(),
                e.api_version.clone(),
                e.sha256.chars().take(12).collect(),
                grants_summary(&e.grants),
            ]
        })
        .collect();
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}

fn remove(name: &str) -> Result<()> {
    let registry = open_registry(runtime()?)?;
    let entry = registry.remove(SHARED, name)?;
    audit(&registry, "plugin.remove", &entry.name, &entry.sha256)?;
    println!(
        "removed {} {} ({}, sha256 {})",
        entry.name, entry.version, entry.kind, entry.sha256
    );
    Ok(())
}

/// What `inspect` shows.
#[derive(Debug, Serialize)]
struct Inspection {
    /// The file inspected, or `installed`.
    source: String,
    sha256: String,
    size: usize,
    api_version: Option<String>,
    /// The world of the manifest's kind.
    world: Option<&'static str>,
    /// `ok`, or why the host would refuse to run it.
    check: String,
    imports: Vec<Item>,
    exports: Vec<Item>,
    manifest: Option<Manifest>,
    manifest_error: Option<String>,
    installed: Option<Installed>,
}

#[derive(Debug, Serialize)]
struct Item {
    name: String,
    kind: &'static str,
}

#[derive(Debug, Serialize)]
struct Installed {
    namespace: String,
    installed_at: String,
    grants: Grants,
}

impl From<&Entry> for Installed {
    fn from(entry: &Entry) -> Self {
        Installed {
            namespace: entry.namespace.clone(),
            installed_at: humantime::format_rfc3339_seconds(entry.installed_time()).to_string(),
            grants: entry.grants.clone(),
        }
    }
}

fn inspect(target: &str, json: bool) -> Result<()> {
    let runtime = runtime()?;
    let is_file = target.ends_with(".wasm") || target.contains(std::path::is_separator);
    let inspection = if is_file {
        inspect_file(runtime, Path::new(target))
    } else {
        inspect_installed(runtime, target)
    }
    .with_context(|| format!("cannot inspect {target}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&inspection)?);
    } else {
        print!("{}", render_inspection(&inspection)?);
    }
    Ok(())
}

fn inspect_installed(runtime: PluginRuntime, name: &str) -> Result<Inspection> {
    let registry = open_registry(runtime)?;
    let entry = registry
        .get(SHARED, name)?
        .ok_or_else(|| RegistryError::NotInstalled(name.to_owned()))?;
    let wasm = registry.component(&entry.sha256)?.ok_or_else(|| {
        anyhow!(
            "the registry has no component {} for `{name}`",
            entry.sha256
        )
    })?;
    let mut inspection = examine(registry.runtime(), &wasm, "installed".into())?;
    inspection.installed = Some(Installed::from(&entry));
    Ok(inspection)
}

fn inspect_file(runtime: PluginRuntime, path: &Path) -> Result<Inspection> {
    let wasm = read_component(path)?;
    let mut inspection = examine(&runtime, &wasm, path.display().to_string())?;
    // Only an existing registry is consulted: inspecting a file should not create one.
    if let Some(manifest) = &inspection.manifest
        && paths::state_dir().exists()
    {
        let registry = open_registry(runtime)?;
        if let Some(entry) = registry.get(SHARED, &manifest.name)?
            && entry.sha256 == inspection.sha256
        {
            inspection.installed = Some(Installed::from(&entry));
        }
    }
    Ok(inspection)
}

/// Compiles `wasm` and reads what it declares, imports and exports.
fn examine(runtime: &PluginRuntime, wasm: &[u8], source: String) -> Result<Inspection> {
    let component = runtime.compile(wasm)?;
    let (manifest, manifest_error) = match Manifest::from_component(wasm) {
        Ok(manifest) => (Some(manifest), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let check = match &manifest {
        Some(m) => match runtime.prepare(m.kind, wasm) {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.to_string(),
        },
        None => "not checked: no valid manifest".to_owned(),
    };
    let ty = component.component_type();
    let engine = runtime.engine();
    Ok(Inspection {
        source,
        sha256: sha256_hex(wasm),
        size: wasm.len(),
        api_version: declared_api_version(wasm),
        world: manifest.as_ref().map(|m| m.kind.world()),
        check,
        imports: items(ty.imports(engine)),
        exports: items(ty.exports(engine)),
        manifest,
        manifest_error,
        installed: None,
    })
}

fn items<'a>(externs: impl Iterator<Item = (&'a str, ComponentExtern<'a>)>) -> Vec<Item> {
    externs
        .map(|(name, item)| Item {
            name: name.to_owned(),
            kind: item_kind(&item.ty),
        })
        .collect()
}

fn item_kind(item: &ComponentItem) -> &'static str {
    match item {
        ComponentItem::ComponentFunc(_) => "func",
        ComponentItem::CoreFunc(_) => "core func",
        ComponentItem::Module(_) => "module",
        ComponentItem::Component(_) => "component",
        ComponentItem::ComponentInstance(_) => "instance",
        ComponentItem::Type(_) => "type",
        ComponentItem::Resource(_) => "resource",
    }
}

fn render_inspection(i: &Inspection) -> Result<String> {
    let mut out = String::new();
    if let Some(m) = &i.manifest {
        writeln!(out, "plugin    {} {} ({})", m.name, m.version, m.kind)?;
    }
    writeln!(out, "source    {}", i.source)?;
    writeln!(out, "sha256    {}", i.sha256)?;
    writeln!(out, "size      {} bytes", i.size)?;
    writeln!(
        out,
        "api       {}",
        i.api_version.as_deref().unwrap_or("none declared")
    )?;
    writeln!(
        out,
        "world     {}",
        i.world.unwrap_or("unknown (no manifest)")
    )?;
    writeln!(out, "check     {}", i.check)?;
    for (title, items) in [("imports", &i.imports), ("exports", &i.exports)] {
        writeln!(out, "{title}")?;
        for item in items {
            writeln!(out, "  {} ({})", item.name, item.kind)?;
        }
    }
    match (&i.manifest, &i.manifest_error) {
        (Some(m), _) => {
            writeln!(out, "manifest")?;
            for line in serde_json::to_string_pretty(m)?.lines() {
                writeln!(out, "  {line}")?;
            }
        }
        (None, Some(e)) => writeln!(out, "manifest  {e}")?,
        (None, None) => {}
    }
    match &i.installed {
        Some(installed) => {
            writeln!(
                out,
                "installed {} ({})",
                installed.installed_at, installed.namespace
            )?;
            writeln!(out, "grants    {}", grants_summary(&installed.grants))?;
        }
        None => writeln!(out, "installed no")?,
    }
    Ok(out)
}

/// The SDK of the checkout this binary was built from.
const DEFAULT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk/plugin");

macro_rules! template {
    ($($part:literal),+) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk/templates/", $($part),+))
    };
}

macro_rules! kind_templates {
    ($kind:literal) => {
        [
            ("Cargo.toml", template!($kind, "/Cargo.toml.tmpl")),
            ("src/lib.rs", template!($kind, "/src/lib.rs.tmpl")),
            (
                "textnlp-plugin.json",
                template!($kind, "/textnlp-plugin.json.tmpl"),
            ),
            (".gitignore", template!("gitignore.tmpl")),
        ]
    };
}

/// The files of a new plugin crate of `kind`: (path in the crate, template).
fn templates(kind: PluginKind) -> [(&'static str, &'static str); 4] {
    match kind {
        PluginKind::Tokenizer => kind_templates!("tokenizer"),
        PluginKind::Strategy => kind_templates!("strategy"),
        PluginKind::Validator => kind_templates!("validator"),
        PluginKind::Provider => kind_templates!("provider"),
    }
}

/// Rust keywords: a crate may not be named after one.
const KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
    "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
    "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref",
    "return", "self", "static", "struct", "super", "trait", "true", "try", "type", "typeof",
    "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// A plugin name that is also a valid Cargo package and crate name.
fn check_new_name(name: &str) -> Result<()> {
    let starts_with_letter = name.starts_with(|c: char| c.is_ascii_lowercase());
    if !valid_name(name) || !starts_with_letter {
        bail!(
            "invalid plugin name `{}`: use [a-z][a-z0-9-]{{0,63}}",
            name.escape_debug()
        );
    }
    let crate_name = name.replace('-', "_");
    if KEYWORDS.contains(&crate_name.as_str()) || crate_name == "test" {
        bail!("invalid plugin name `{name}`: it is reserved in Rust");
    }
    Ok(())
}

/// The SDK directory, absolute, checked to be a crate.
fn sdk_dir(arg: Option<&Path>) -> Result<PathBuf> {
    let given = arg.unwrap_or(Path::new(DEFAULT_SDK));
    let dir = given.canonicalize().with_context(|| {
        format!(
            "the plugin SDK is not at {} (pass --sdk PATH, the sdk/plugin directory of a textnlp checkout)",
            given.display()
        )
    })?;
    if !dir.join("Cargo.toml").is_file() {
        bail!(
            "{} is not the plugin SDK: it has no Cargo.toml",
            dir.display()
        );
    }
    Ok(dir)
}

/// `s` inside a TOML basic string (the templates write `path = "{{sdk_path}}"`).
fn toml_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The template with its placeholders filled in.
fn render(template: &str, name: &str, sdk: &str) -> String {
    template
        .replace("{{name}}", name)
        .replace("{{crate_name}}", &name.replace('-', "_"))
        .replace("{{sdk_path}}", &toml_escape(sdk))
}

/// The rendered crate: (path in the crate, contents), its manifest checked.
fn render_crate(kind: PluginKind, name: &str, sdk: &str) -> Result<Vec<(&'static str, String)>> {
    let files: Vec<(&'static str, String)> = templates(kind)
        .into_iter()
        .map(|(path, template)| (path, render(template, name, sdk)))
        .collect();
    // A broken template would otherwise only show when the plugin is added.
    let (_, json) = files
        .iter()
        .find(|(path, _)| *path == "textnlp-plugin.json")
        .ok_or_else(|| anyhow!("the {kind} template has no textnlp-plugin.json"))?;
    let manifest = Manifest::parse(json.as_bytes())
        .with_context(|| format!("the {kind} template's textnlp-plugin.json"))?;
    if manifest.kind != kind || manifest.name != name {
        bail!("the {kind} template's textnlp-plugin.json declares another kind or name");
    }
    Ok(files)
}

fn new(args: &NewArgs) -> Result<()> {
    check_new_name(&args.name)?;
    let sdk = sdk_dir(args.sdk.as_deref())?;
    let sdk = sdk
        .to_str()
        .ok_or_else(|| anyhow!("the SDK path {} is not UTF-8", sdk.display()))?;
    let files = render_crate(args.kind, &args.name, sdk)?;
    let parent = match &args.dir {
        Some(dir) => dir.clone(),
        None => std::env::current_dir().context("reading the current directory")?,
    };
    let dir = parent.join(&args.name);
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    if let Err(e) = std::fs::create_dir(&dir) {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            bail!(
                "{} already exists; choose another name or --dir",
                dir.display()
            );
        }
        return Err(e).with_context(|| format!("creating {}", dir.display()));
    }
    if let Err(e) = write_files(&dir, &files) {
        // The directory is ours (just created): leave nothing half-written behind.
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e);
    }
    print!("{}", next_steps(args.kind, &args.name, &dir));
    Ok(())
}

fn write_files(dir: &Path, files: &[(&str, String)]) -> Result<()> {
    for (path, contents) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn next_steps(kind: PluginKind, name: &str, dir: &Path) -> String {
    let wasm = dir
        .join("target/wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    format!(
        "created {kind} plugin `{name}` in {}\nnext:\n  cd {} && cargo build --release --target wasm32-wasip2\n  textnlp plugin add {}\n",
        dir.display(),
        shell_quote(&dir.display().to_string()),
        shell_quote(&wasm.display().to_string()),
    )
}

/// `s` as one shell word (quoted only when it needs to be).
fn shell_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:@%=,".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_renders_a_valid_crate() {
        for kind in PluginKind::ALL {
            let files = render_crate(kind, "my-check", "/sdk \"x\"").expect("render");
            for (path, contents) in &files {
                for placeholder in ["{{name}}", "{{crate_name}}", "{{sdk_path}}"] {
                    assert!(
                        !contents.contains(placeholder),
                        "{kind} {path}: {placeholder}"
                    );
                }
            }
            let cargo = &files
                .iter()
                .find(|(p, _)| *p == "Cargo.toml")
                .expect("Cargo.toml")
                .1;
            assert!(cargo.contains(r#""/sdk \"x\"""#), "{cargo}");
        }
    }

    #[test]
    fn new_names_must_be_crate_names() {
        assert!(check_new_name("my-check").is_ok());
        for bad in [
            "",
            "My",
            "1st",
            "-a",
            "a_b",
            "fn",
            "self",
            "test",
            &"a".repeat(65),
        ] {
            assert!(check_new_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quotes_only_what_needs_quoting() {
        assert_eq!(shell_quote("/tmp/a-b/c.wasm"), "/tmp/a-b/c.wasm");
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn the_table_pads_columns() {
        let table = table(&[]);
        assert_eq!(table, "NAME  KIND  VERSION  API  SHA256  GRANTS\n");
    }
}
