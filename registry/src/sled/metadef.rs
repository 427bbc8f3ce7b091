//! The sled engine's metadata definitions: one tree for namespaces, one per kind of content
//! (objects, properties, tags, resource type associations, keyed by namespace then name) and
//! one for resource types. Every write is one transaction over these trees, then a flush.
//!
//! A namespace record carries a revision that every write to the namespace or its contents
//! bumps inside its transaction. Operations that must see all of a namespace's contents
//! (delete, rename, replace, delete-all) list them first, then check in their transaction
//! that the revision has not moved, and start over if it has: a record added concurrently is
//! never left behind in a deleted or renamed namespace.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sled::transaction::TransactionalTree;
use sled::{Db, IVec, Tree};

use super::tx::{TxResult, abort, commit, decode_tx, encode_tx, engine};
use crate::codec::decode;
use crate::error::{RegistryError, Result};
use crate::metadef::{
    MetadefAssociation, MetadefDefinition, MetadefKind, MetadefNamespace, MetadefObject,
    MetadefProperty, MetadefRecord, MetadefResourceType, MetadefTag,
};
use crate::model::{Timestamp, now};

// Positions in `MetadefTrees::trees`.
const NAMESPACES: usize = 0;
const OBJECTS: usize = 1;
const PROPERTIES: usize = 2;
const TAGS: usize = 3;
const ASSOCIATIONS: usize = 4;
const RESOURCE_TYPES: usize = 5;
const CONTENT_TREES: [usize; 4] = [OBJECTS, PROPERTIES, TAGS, ASSOCIATIONS];

const TREE_NAMES: [&str; 6] = [
    "metadef_namespaces",
    "metadef_objects",
    "metadef_properties",
    "metadef_tags",
    "metadef_associations",
    "metadef_resource_types",
];

/// How often a whole-namespace operation starts over before giving up.
const ATTEMPTS: usize = 64;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct NamespaceRecord {
    revision: u64,
    namespace: MetadefNamespace,
}

/// Key prefix of everything in namespace `ns`: its length, then its bytes, so no namespace's
/// prefix is a prefix of another's.
fn content_prefix(ns: &str) -> Vec<u8> {
    let mut key = (ns.len() as u32).to_be_bytes().to_vec();
    key.extend_from_slice(ns.as_bytes());
    key
}

fn content_key(ns: &str, name: &str) -> Vec<u8> {
    let mut key = content_prefix(ns);
    key.extend_from_slice(name.as_bytes());
    key
}

/// A record that lives in a namespace, and its tree.
pub(super) trait Content:
    MetadefRecord + Serialize + DeserializeOwned + Send + 'static
{
    const TREE: usize;
    fn key(&self) -> Vec<u8> {
        content_key(self.namespace(), self.name())
    }
}

macro_rules! content {
    ($ty:ty, $tree:expr) => {
        impl Content for $ty {
            const TREE: usize = $tree;
        }
    };
}

content!(MetadefObject, OBJECTS);
content!(MetadefProperty, PROPERTIES);
content!(MetadefTag, TAGS);
content!(MetadefAssociation, ASSOCIATIONS);

fn duplicate<C: Content>(c: &C) -> RegistryError {
    RegistryError::MetadefDuplicate {
        kind: C::KIND,
        namespace: c.namespace().to_string(),
        name: c.name().to_string(),
    }
}

/// The contents of one namespace as listed before a transaction, and the revision seen.
struct Snapshot {
    revision: Option<u64>,
    /// Per content tree (indexed like `CONTENT_TREES`): keys and values.
    contents: Vec<Vec<(IVec, IVec)>>,
}

/// What a transaction that checks a snapshot returns: done, or start over.
enum Step<T> {
    Done(T),
    Stale,
}

pub(super) struct MetadefTrees {
    db: Db,
    trees: Vec<Tree>,
}

impl MetadefTrees {
    pub(super) fn open(db: &Db) -> Result<Self> {
        let trees = TREE_NAMES
            .iter()
            .map(|name| db.open_tree(name).map_err(engine))
            .collect::<Result<_>>()?;
        Ok(MetadefTrees {
            db: db.clone(),
            trees,
        })
    }

    fn tx<T>(&self, f: impl Fn(&[TransactionalTree]) -> TxResult<T>) -> Result<T> {
        commit(&self.db, &self.trees, f)
    }

    /// Runs `f` against a fresh snapshot of namespace `ns` until it commits on an unchanged
    /// namespace.
    fn with_snapshot<T>(
        &self,
        ns: &str,
        f: impl Fn(&[TransactionalTree], &Snapshot) -> TxResult<Step<T>>,
    ) -> Result<T> {
        for _ in 0..ATTEMPTS {
            let snapshot = self.snapshot(ns)?;
            let step = self.tx(|t| {
                let current = read_namespace(t, ns)?.map(|r| r.revision);
                if current != snapshot.revision {
                    return Ok(Step::Stale);
                }
                f(t, &snapshot)
            })?;
            if let Step::Done(out) = step {
                return Ok(out);
            }
        }
        Err(RegistryError::Engine(format!(
            "metadata definition namespace {ns} kept changing; try again"
        )))
    }

    fn snapshot(&self, ns: &str) -> Result<Snapshot> {
        let revision = self.record(ns)?.map(|r| r.revision);
        let prefix = content_prefix(ns);
        let mut contents = Vec::new();
        for tree in CONTENT_TREES {
            let items = self.trees[tree]
                .scan_prefix(&prefix)
                .collect::<sled::Result<Vec<_>>>()
                .map_err(engine)?;
            contents.push(items);
        }
        Ok(Snapshot { revision, contents })
    }

    fn record(&self, ns: &str) -> Result<Option<NamespaceRecord>> {
        match self.trees[NAMESPACES].get(ns.as_bytes()).map_err(engine)? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    fn scan<C: Content>(&self, ns: &str) -> Result<Vec<C>> {
        self.trees[C::TREE]
            .scan_prefix(content_prefix(ns))
            .values()
            .map(|v| decode(&v.map_err(engine)?))
            .collect()
    }

    pub(super) fn get_namespace(&self, ns: &str) -> Result<Option<MetadefNamespace>> {
        Ok(self.record(ns)?.map(|r| r.namespace))
    }

    pub(super) fn list_namespaces(&self) -> Result<Vec<MetadefNamespace>> {
        self.trees[NAMESPACES]
            .iter()
            .values()
            .map(|v| Ok(decode::<NamespaceRecord>(&v.map_err(engine)?)?.namespace))
            .collect()
    }

    /// The namespace and its contents, as of one revision.
    pub(super) fn get_definition(&self, ns: &str) -> Result<Option<MetadefDefinition>> {
        for _ in 0..ATTEMPTS {
            let Some(before) = self.record(ns)? else {
                return Ok(None);
            };
            let definition = MetadefDefinition {
                namespace: before.namespace,
                properties: self.scan(ns)?,
                objects: self.scan(ns)?,
                tags: self.scan(ns)?,
                associations: self.scan(ns)?,
            };
            if self.record(ns)?.map(|r| r.revision) == Some(before.revision) {
                return Ok(Some(definition));
            }
        }
        Err(RegistryError::Engine(format!(
            "metadata definition namespace {ns} kept changing; try again"
        )))
    }

    /// Stores a new namespace with its contents; with `replace`, an existing namespace of
    /// that name is replaced (contents that keep their name keep their `created_at`).
    pub(super) fn put_definition(
        &self,
        def: MetadefDefinition,
        replace: bool,
    ) -> Result<MetadefDefinition> {
        let name = def.namespace.namespace.clone();
        let def = normalized(def);
        self.with_snapshot(&name, |t, snapshot| {
            let mut out = def.clone();
            let mut revision = 1;
            if let Some(old) = read_namespace(t, &name)? {
                if !replace {
                    return abort(RegistryError::MetadefDuplicate {
                        kind: MetadefKind::Namespace,
                        namespace: name.clone(),
                        name: name.clone(),
                    });
                }
                out.namespace.keep_stored_timestamps(&old.namespace);
                revision = old.revision + 1;
                for (i, tree) in CONTENT_TREES.iter().enumerate() {
                    for (key, _) in &snapshot.contents[i] {
                        t[*tree].remove(key.clone())?;
                    }
                }
            }
            write_namespace(
                t,
                &NamespaceRecord {
                    revision,
                    namespace: out.namespace.clone(),
                },
            )?;
            let stored = |tree: usize, key: &[u8]| {
                CONTENT_TREES.iter().position(|t| *t == tree).and_then(|i| {
                    snapshot.contents[i]
                        .iter()
                        .find(|(k, _)| k.as_ref() == key)
                        .map(|(_, v)| v.clone())
                })
            };
            insert_all(t, &mut out.properties, &stored)?;
            insert_all(t, &mut out.objects, &stored)?;
            insert_all(t, &mut out.tags, &stored)?;
            insert_all(t, &mut out.associations, &stored)?;
            for a in &out.associations {
                ensure_resource_type(t, &a.name, replace, a.created_at)?;
            }
            Ok(Step::Done(out))
        })
    }

    /// Replaces a namespace's attributes; a new name moves its contents with it.
    pub(super) fn update_namespace(
        &self,
        name: &str,
        ns: MetadefNamespace,
    ) -> Result<MetadefNamespace> {
        self.with_snapshot(name, |t, snapshot| {
            let Some(old) = read_namespace(t, name)? else {
                return abort(RegistryError::MetadefNamespaceNotFound(name.to_string()));
            };
            let mut stored = ns.clone();
            stored.created_at = old.namespace.created_at;
            let new_name = stored.namespace.clone();
            if new_name != name {
                if read_namespace(t, &new_name)?.is_some() {
                    return abort(RegistryError::MetadefDuplicate {
                        kind: MetadefKind::Namespace,
                        namespace: new_name.clone(),
                        name: new_name.clone(),
                    });
                }
                t[NAMESPACES].remove(name.as_bytes())?;
                for (i, tree) in CONTENT_TREES.iter().enumerate() {
                    for (key, value) in &snapshot.contents[i] {
                        let item_name = &key[content_prefix(name).len()..];
                        // Every content record has a `namespace` field: rewrite it in place.
                        let mut record: serde_json::Value = decode_tx(value)?;
                        record["namespace"] = serde_json::Value::String(new_name.clone());
                        let mut new_key = content_prefix(&new_name);
                        new_key.extend_from_slice(item_name);
                        t[*tree].remove(key.clone())?;
                        t[*tree].insert(new_key, encode_tx(&record)?)?;
                    }
                }
            }
            write_namespace(
                t,
                &NamespaceRecord {
                    revision: old.revision + 1,
                    namespace: stored.clone(),
                },
            )?;
            Ok(Step::Done(stored))
        })
    }

    /// Removes a namespace and everything in it.
    pub(super) fn delete_namespace(&self, name: &str) -> Result<()> {
        self.with_snapshot(name, |t, snapshot| {
            if t[NAMESPACES].remove(name.as_bytes())?.is_none() {
                return abort(RegistryError::MetadefNamespaceNotFound(name.to_string()));
            }
            for (i, tree) in CONTENT_TREES.iter().enumerate() {
                for (key, _) in &snapshot.contents[i] {
                    t[*tree].remove(key.clone())?;
                }
            }
            Ok(Step::Done(()))
        })
    }

    /// Removes every record of `kind` (objects, properties, tags or associations) from a
    /// namespace.
    pub(super) fn delete_contents(&self, name: &str, kind: MetadefKind) -> Result<()> {
        let tree = match kind {
            MetadefKind::Object => OBJECTS,
            MetadefKind::Property => PROPERTIES,
            MetadefKind::Tag => TAGS,
            MetadefKind::Association => ASSOCIATIONS,
            MetadefKind::Namespace => return self.delete_namespace(name),
        };
        let i = CONTENT_TREES.iter().position(|t| *t == tree).unwrap_or(0);
        self.with_snapshot(name, |t, snapshot| {
            touch(t, name)?;
            for (key, _) in &snapshot.contents[i] {
                t[tree].remove(key.clone())?;
            }
            Ok(Step::Done(()))
        })
    }

    /// Adds tags to a namespace; unless `append`, the tags it had are removed first. A name
    /// already present (or twice in `tags`) fails the whole call. An empty list changes
    /// nothing.
    pub(super) fn put_tags(
        &self,
        name: &str,
        tags: Vec<MetadefTag>,
        append: bool,
    ) -> Result<Vec<MetadefTag>> {
        let i = CONTENT_TREES.iter().position(|t| *t == TAGS).unwrap_or(0);
        self.with_snapshot(name, |t, snapshot| {
            touch(t, name)?;
            if tags.is_empty() {
                return Ok(Step::Done(Vec::new()));
            }
            if !append {
                for (key, _) in &snapshot.contents[i] {
                    t[TAGS].remove(key.clone())?;
                }
            }
            let mut out = tags.clone();
            for tag in &mut out {
                tag.set_namespace(name);
                if t[TAGS].insert(tag.key(), encode_tx(tag)?)?.is_some() {
                    return abort(duplicate(tag));
                }
            }
            Ok(Step::Done(out))
        })
    }

    pub(super) fn create<C: Content>(&self, item: C) -> Result<C> {
        self.tx(|t| {
            touch(t, item.namespace())?;
            let key = item.key();
            if t[C::TREE].get(&key)?.is_some() {
                return abort(duplicate(&item));
            }
            t[C::TREE].insert(key, encode_tx(&item)?)?;
            if C::TREE == ASSOCIATIONS {
                ensure_resource_type(t, item.name(), false, now())?;
            }
            Ok(item.clone())
        })
    }

    pub(super) fn get<C: Content>(&self, ns: &str, name: &str) -> Result<Option<C>> {
        match self.trees[C::TREE]
            .get(content_key(ns, name))
            .map_err(engine)?
        {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    pub(super) fn list<C: Content>(&self, ns: &str) -> Result<Vec<C>> {
        if self.record(ns)?.is_none() {
            return Err(RegistryError::MetadefNamespaceNotFound(ns.to_string()));
        }
        self.scan(ns)
    }

    /// Replaces the record named `name` by `item` (which may carry a new name).
    pub(super) fn update<C: Content>(&self, name: &str, item: C) -> Result<C> {
        self.tx(|t| {
            touch(t, item.namespace())?;
            let old_key = content_key(item.namespace(), name);
            let Some(old) = t[C::TREE].get(&old_key)? else {
                return abort(RegistryError::MetadefNotFound {
                    kind: C::KIND,
                    namespace: item.namespace().to_string(),
                    name: name.to_string(),
                });
            };
            let old: C = decode_tx(&old)?;
            let mut stored = item.clone();
            stored.keep_created_at(&old);
            let new_key = stored.key();
            if new_key != old_key {
                if t[C::TREE].get(&new_key)?.is_some() {
                    return abort(duplicate(&stored));
                }
                t[C::TREE].remove(old_key)?;
            }
            t[C::TREE].insert(new_key, encode_tx(&stored)?)?;
            Ok(stored)
        })
    }

    pub(super) fn delete<C: Content>(&self, ns: &str, name: &str) -> Result<()> {
        self.tx(|t| {
            touch(t, ns)?;
            if t[C::TREE].remove(content_key(ns, name))?.is_none() {
                return abort(RegistryError::MetadefNotFound {
                    kind: C::KIND,
                    namespace: ns.to_string(),
                    name: name.to_string(),
                });
            }
            Ok(())
        })
    }

    pub(super) fn list_resource_types(&self) -> Result<Vec<MetadefResourceType>> {
        self.trees[RESOURCE_TYPES]
            .iter()
            .values()
            .map(|v| decode(&v.map_err(engine)?))
            .collect()
    }
}

/// Sets every content record's namespace to the definition's.
fn normalized(mut def: MetadefDefinition) -> MetadefDefinition {
    let ns = def.namespace.namespace.clone();
    def.properties.iter_mut().for_each(|c| c.set_namespace(&ns));
    def.objects.iter_mut().for_each(|c| c.set_namespace(&ns));
    def.tags.iter_mut().for_each(|c| c.set_namespace(&ns));
    def.associations
        .iter_mut()
        .for_each(|c| c.set_namespace(&ns));
    def
}

/// Inserts `items`, refusing a name twice; a record that replaces one listed in the
/// snapshot (`stored`) keeps its `created_at`, and its `updated_at` when it is unchanged.
fn insert_all<C: Content>(
    t: &[TransactionalTree],
    items: &mut [C],
    stored: &impl Fn(usize, &[u8]) -> Option<IVec>,
) -> TxResult<()> {
    for item in items.iter_mut() {
        let key = item.key();
        if let Some(old) = stored(C::TREE, &key) {
            let old: C = decode_tx(&old)?;
            item.keep_stored_timestamps(&old);
        }
        if t[C::TREE].insert(key, encode_tx(item)?)?.is_some() {
            return abort(duplicate(item));
        }
    }
    Ok(())
}

fn read_namespace(t: &[TransactionalTree], ns: &str) -> TxResult<Option<NamespaceRecord>> {
    match t[NAMESPACES].get(ns.as_bytes())? {
        Some(bytes) => Ok(Some(decode_tx(&bytes)?)),
        None => Ok(None),
    }
}

fn write_namespace(t: &[TransactionalTree], record: &NamespaceRecord) -> TxResult<()> {
    t[NAMESPACES].insert(record.namespace.namespace.as_bytes(), encode_tx(record)?)?;
    Ok(())
}

/// Bumps the namespace's revision (it must exist), so a whole-namespace operation that
/// listed its contents before this write starts over.
fn touch(t: &[TransactionalTree], ns: &str) -> TxResult<NamespaceRecord> {
    let Some(mut record) = read_namespace(t, ns)? else {
        return abort(RegistryError::MetadefNamespaceNotFound(ns.to_string()));
    };
    record.revision += 1;
    write_namespace(t, &record)?;
    Ok(record)
}

fn ensure_resource_type(
    t: &[TransactionalTree],
    name: &str,
    protected: bool,
    at: Timestamp,
) -> TxResult<()> {
    if t[RESOURCE_TYPES].get(name.as_bytes())?.is_none() {
        let rt = MetadefResourceType {
            name: name.to_string(),
            protected,
            created_at: at,
            updated_at: at,
        };
        t[RESOURCE_TYPES].insert(name.as_bytes(), encode_tx(&rt)?)?;
    }
    Ok(())
}
