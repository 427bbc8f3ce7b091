//! Metadata definition files, in the format Glance ships in `etc/metadefs/`: one namespace
//! per `*.json` file, with its properties, objects, tags and resource type associations.
//! `glass manage load-metadefs DIR` reads and checks every file before it writes anything,
//! then stores each namespace in one registry transaction (creating it, or replacing it and
//! its contents: loading twice changes nothing). `export-metadefs DIR` writes them back.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use glass_registry::{MetadefDefinition, Registry, now};
use serde_json::{Map, Value, json};

use glass_api::v2::metadefs::namespaces::parse_definition;
use glass_images::Error;

/// Glance's owner for namespaces whose file names none.
const DEFAULT_OWNER: &str = "admin";

/// One checked file.
#[derive(Debug)]
pub struct DefinitionFile {
    pub path: PathBuf,
    pub definition: MetadefDefinition,
}

/// Parses and checks one file; errors name the file, and the line for malformed JSON.
pub fn read_file(path: &Path) -> anyhow::Result<MetadefDefinition> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).with_context(|| format!("{shown}: cannot read"))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        let location = format!(" at line {} column {}", e.line(), e.column());
        let reason = e.to_string().replace(&location, "");
        anyhow::anyhow!(
            "{shown}: line {}, column {}: malformed JSON: {reason}",
            e.line(),
            e.column()
        )
    })?;
    let Value::Object(map) = value else {
        bail!("{shown}: line 1: expected a JSON object (one namespace per file)");
    };
    parse_definition(&map, Some(DEFAULT_OWNER.to_string()), now()).map_err(|e| match e {
        Error::BadRequest(message) => anyhow::anyhow!("{shown}: {message}"),
        other => anyhow::anyhow!("{shown}: {other}"),
    })
}

/// Reads and checks every `*.json` file of `dir` (in name order); the first bad file, or a
/// namespace defined twice, is an error and nothing is returned.
pub fn read_dir(dir: &Path) -> anyhow::Result<Vec<DefinitionFile>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        bail!("{}: no *.json namespace files", dir.display());
    }
    let mut files: Vec<DefinitionFile> = Vec::with_capacity(paths.len());
    for path in paths {
        let definition = read_file(&path)?;
        let name = &definition.namespace.namespace;
        if let Some(other) = files
            .iter()
            .find(|f| &f.definition.namespace.namespace == name)
        {
            bail!(
                "{}: namespace {name} is already defined by {}",
                path.display(),
                other.path.display()
            );
        }
        files.push(DefinitionFile { path, definition });
    }
    Ok(files)
}

/// Loads every namespace file of `dir`: all are checked first; then each namespace is
/// created or replaced in one transaction. Returns the namespaces loaded.
pub async fn load(registry: &dyn Registry, dir: &Path) -> anyhow::Result<Vec<String>> {
    let files = read_dir(dir)?;
    let mut loaded = Vec::with_capacity(files.len());
    for file in files {
        let name = file.definition.namespace.namespace.clone();
        registry
            .import_metadef_namespace(file.definition)
            .await
            .with_context(|| format!("{}: storing namespace {name}", file.path.display()))?;
        tracing::info!(namespace = %name, file = %file.path.display(), "metadef namespace loaded");
        loaded.push(name);
    }
    Ok(loaded)
}

/// The file document of a namespace.
pub fn to_document(def: &MetadefDefinition) -> Value {
    let ns = &def.namespace;
    let mut doc = Map::new();
    doc.insert("namespace".into(), json!(ns.namespace));
    if let Some(v) = &ns.display_name {
        doc.insert("display_name".into(), json!(v));
    }
    if let Some(v) = &ns.description {
        doc.insert("description".into(), json!(v));
    }
    doc.insert("visibility".into(), json!(ns.visibility.as_str()));
    doc.insert("protected".into(), json!(ns.protected));
    if let Some(v) = &ns.owner {
        doc.insert("owner".into(), json!(v));
    }
    let mut associations = def.associations.clone();
    associations.sort_by_key(|a| (a.created_at, a.name.clone()));
    doc.insert(
        "resource_type_associations".into(),
        associations
            .iter()
            .map(|a| {
                let mut m = Map::new();
                m.insert("name".into(), json!(a.name));
                if let Some(p) = &a.prefix {
                    m.insert("prefix".into(), json!(p));
                }
                if let Some(p) = &a.properties_target {
                    m.insert("properties_target".into(), json!(p));
                }
                Value::Object(m)
            })
            .collect(),
    );
    doc.insert(
        "properties".into(),
        Value::Object(
            def.properties
                .iter()
                .map(|p| (p.name.clone(), Value::Object(p.schema.clone())))
                .collect(),
        ),
    );
    let mut objects = def.objects.clone();
    objects.sort_by_key(|o| (o.created_at, o.name.clone()));
    doc.insert(
        "objects".into(),
        objects
            .iter()
            .map(|o| {
                let mut m = Map::new();
                m.insert("name".into(), json!(o.name));
                if let Some(d) = &o.description {
                    m.insert("description".into(), json!(d));
                }
                if !o.required.is_empty() {
                    m.insert("required".into(), json!(o.required));
                }
                m.insert("properties".into(), Value::Object(o.properties.clone()));
                Value::Object(m)
            })
            .collect(),
    );
    let mut tags = def.tags.clone();
    tags.sort_by_key(|t| (t.created_at, t.name.clone()));
    doc.insert(
        "tags".into(),
        tags.iter().map(|t| json!({"name": t.name})).collect(),
    );
    Value::Object(doc)
}

/// A file name for a namespace: its name with anything but letters, digits, `-` and `_`
/// turned into `_`.
pub fn file_name(namespace: &str) -> String {
    let stem: String = namespace
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{stem}.json")
}

/// Writes every namespace to `dir` (created if missing), one file each; returns the files.
pub async fn export(registry: &dyn Registry, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let mut names: Vec<String> = registry
        .list_metadef_namespaces()
        .await?
        .into_iter()
        .map(|ns| ns.namespace)
        .collect();
    names.sort();
    let mut written = Vec::with_capacity(names.len());
    for name in names {
        let Some(def) = registry.get_metadef_definition(&name).await? else {
            continue; // deleted meanwhile
        };
        let path = dir.join(file_name(&name));
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(&to_document(&def))? + "\n";
        std::fs::write(&tmp, text).with_context(|| format!("{}: cannot write", tmp.display()))?;
        std::fs::rename(&tmp, &path)
            .with_context(|| format!("{}: cannot write", path.display()))?;
        written.push(path);
    }
    Ok(written)
}
