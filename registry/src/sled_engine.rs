//! The embedded registry engine on sled: one named tree per record kind and per index, every
//! multi-tree write in one sled transaction, a flush before each write returns. Writes (which
//! fsync) run on tokio's blocking pool; reads run inline, since sled serves them from its page
//! cache and a hand-off to another thread cost more than the read itself (measured: ~3× on
//! a list of 20).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use sled::transaction::{
    ConflictableTransactionError, TransactionError, Transactional, TransactionalTree,
};
use sled::{Db, Tree};
use uuid::Uuid;

use crate::Registry;
use crate::codec::{self, decode, encode};
use crate::error::{RegistryError, Result};
use crate::metadef::{
    MetadefAssociation, MetadefDefinition, MetadefKind, MetadefNamespace, MetadefObject,
    MetadefProperty, MetadefResourceType, MetadefTag,
};
use crate::model::{Image, Member, MemberStatus, Task};
use crate::query::{ImagePage, ImageQuery, SortDir, SortKey};
use crate::sled_metadef::MetadefTrees;

/// Sort keys that have their own index tree (`id` is the image tree's own order).
const INDEXED: [SortKey; 7] = [
    SortKey::Name,
    SortKey::Status,
    SortKey::ContainerFormat,
    SortKey::DiskFormat,
    SortKey::Size,
    SortKey::CreatedAt,
    SortKey::UpdatedAt,
];

// Positions in `Inner::image_trees`.
const IMAGES: usize = 0;
const MEMBERS: usize = 1 + INDEXED.len();
const MEMBERS_BY_PROJECT: usize = MEMBERS + 1;

struct Inner {
    db: Db,
    metadefs: MetadefTrees,
    /// images, one index per `INDEXED` key, members, members_by_project.
    image_trees: Vec<Tree>,
    /// tasks, tasks_by_image.
    task_trees: Vec<Tree>,
}

/// The sled-backed [`Registry`].
#[derive(Clone)]
pub struct SledRegistry {
    inner: Arc<Inner>,
}

pub(crate) type TxResult<T> = std::result::Result<T, ConflictableTransactionError<RegistryError>>;

pub(crate) fn engine(e: sled::Error) -> RegistryError {
    RegistryError::Engine(e.to_string())
}

pub(crate) fn tx_error(e: TransactionError<RegistryError>) -> RegistryError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => engine(e),
    }
}

pub(crate) fn abort<T>(e: RegistryError) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(e))
}

pub(crate) fn decode_tx<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> TxResult<T> {
    decode(bytes).map_err(ConflictableTransactionError::Abort)
}

pub(crate) fn encode_tx<T: serde::Serialize>(record: &T) -> TxResult<Vec<u8>> {
    encode(record).map_err(ConflictableTransactionError::Abort)
}

fn index_tree(key: SortKey) -> usize {
    1 + INDEXED.iter().position(|k| *k == key).expect("indexed key")
}

/// Writes `new` and its index entries, replacing those of `old`.
fn put_image(t: &[TransactionalTree], old: Option<&Image>, new: &Image) -> TxResult<()> {
    t[IMAGES].insert(new.id.as_bytes(), encode_tx(new)?)?;
    for key in INDEXED {
        let new_key = codec::index_key(key, new);
        if let Some(old) = old {
            let old_key = codec::index_key(key, old);
            if old_key == new_key {
                continue;
            }
            t[index_tree(key)].remove(old_key)?;
        }
        t[index_tree(key)].insert(new_key, &[])?;
    }
    Ok(())
}

/// Reads the image and checks it is still at `revision`.
fn current_image(t: &[TransactionalTree], id: Uuid, revision: Option<u64>) -> TxResult<Image> {
    let Some(bytes) = t[IMAGES].get(id.as_bytes())? else {
        return abort(RegistryError::ImageNotFound(id));
    };
    let image: Image = decode_tx(&bytes)?;
    if revision.is_some_and(|r| r != image.revision) {
        return abort(RegistryError::Stale(id));
    }
    Ok(image)
}

/// Bumps an image's revision, so a concurrent compare-and-swap on it fails; used by member
/// changes so that a delete racing with a member add cannot leave the member behind.
fn touch_image(t: &[TransactionalTree], id: Uuid) -> TxResult<()> {
    let mut image = current_image(t, id, None)?;
    image.revision += 1;
    t[IMAGES].insert(id.as_bytes(), encode_tx(&image)?)?;
    Ok(())
}

/// Key in the tasks-by-image index: image id, then task id.
fn task_index_key(image: Uuid, task: Uuid) -> Vec<u8> {
    let mut key = image.as_bytes().to_vec();
    key.extend_from_slice(task.as_bytes());
    key
}

impl SledRegistry {
    /// Opens (or creates) the registry in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(engine)?;
        let mut image_trees = vec![db.open_tree("images").map_err(engine)?];
        for key in INDEXED {
            let name = format!("image_sort:{}", key.as_str());
            image_trees.push(db.open_tree(name).map_err(engine)?);
        }
        image_trees.push(db.open_tree("members").map_err(engine)?);
        image_trees.push(db.open_tree("members_by_project").map_err(engine)?);
        let task_trees = vec![
            db.open_tree("tasks").map_err(engine)?,
            db.open_tree("tasks_by_image").map_err(engine)?,
        ];
        Ok(SledRegistry {
            inner: Arc::new(Inner {
                metadefs: MetadefTrees::open(&db)?,
                db,
                image_trees,
                task_trees,
            }),
        })
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| RegistryError::Engine(format!("registry worker failed: {e}")))?
    }
}

impl Inner {
    fn images(&self) -> &Tree {
        &self.image_trees[IMAGES]
    }

    fn image_tx<T>(&self, f: impl Fn(&[TransactionalTree]) -> TxResult<T>) -> Result<T> {
        let out = self
            .image_trees
            .as_slice()
            .transaction(|t| f(t))
            .map_err(tx_error)?;
        self.db.flush().map_err(engine)?;
        Ok(out)
    }

    fn task_tx<T>(&self, f: impl Fn(&[TransactionalTree]) -> TxResult<T>) -> Result<T> {
        let out = self
            .task_trees
            .as_slice()
            .transaction(|t| f(t))
            .map_err(tx_error)?;
        self.db.flush().map_err(engine)?;
        Ok(out)
    }

    fn get_image(&self, id: Uuid) -> Result<Option<Image>> {
        match self.images().get(id.as_bytes()).map_err(engine)? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    fn memberships(&self, project: Option<&str>) -> Result<HashMap<Uuid, MemberStatus>> {
        let mut out = HashMap::new();
        let Some(project) = project else {
            return Ok(out);
        };
        let prefix = codec::project_prefix(project);
        for item in self.image_trees[MEMBERS_BY_PROJECT].scan_prefix(&prefix) {
            let (key, value) = item.map_err(engine)?;
            let member: Member = decode(&value)?;
            out.insert(codec::id_of_index_key(&key)?, member.status);
        }
        Ok(out)
    }

    /// Image ids in the order of `key` and `dir`, starting with the group of images whose
    /// `key` value equals the marker's.
    fn ordered_ids(
        &self,
        key: SortKey,
        dir: SortDir,
        from: Option<&Image>,
    ) -> Box<dyn Iterator<Item = Result<Uuid>> + '_> {
        let tree = if key == SortKey::Id {
            self.images()
        } else {
            &self.image_trees[index_tree(key)]
        };
        let iter = match (from, dir) {
            (None, _) => tree.iter(),
            (Some(m), SortDir::Asc) => {
                let mut start = codec::sort_value(key, m);
                if key == SortKey::Id {
                    start.extend_from_slice(m.id.as_bytes());
                }
                tree.range(start..)
            }
            (Some(m), SortDir::Desc) => {
                let mut end = codec::sort_value(key, m);
                if key == SortKey::Id {
                    end.extend_from_slice(m.id.as_bytes());
                } else {
                    end.extend_from_slice(&[0xff; 16]);
                }
                tree.range(..=end)
            }
        };
        let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = match dir {
            SortDir::Asc => Box::new(iter),
            SortDir::Desc => Box::new(iter.rev()),
        };
        Box::new(iter.map(|item| {
            let (k, _) = item.map_err(engine)?;
            codec::id_of_index_key(&k)
        }))
    }

    fn list_images(&self, query: &ImageQuery) -> Result<ImagePage> {
        let memberships = self.memberships(query.viewer.project.as_deref())?;
        let marker = match query.marker {
            None => None,
            Some(id) => match self.get_image(id)? {
                Some(m) if query.viewer.can_see(&m, memberships.get(&id).copied()) => Some(m),
                _ => return Err(RegistryError::MarkerNotFound(id)),
            },
        };
        let sort = query.full_sort();
        let (primary, dir) = sort[0];
        let mut page: Vec<Image> = Vec::new();
        let mut group: Vec<Image> = Vec::new();
        let mut group_head: Option<Image> = None;
        // Images equal on the primary key come out of the index in id order; each such group
        // is sorted by the full order before it is emitted.
        let flush = |group: &mut Vec<Image>, page: &mut Vec<Image>| {
            group.sort_by(|a, b| ImageQuery::compare(&sort, a, b));
            for image in group.drain(..) {
                let after_marker = marker.as_ref().is_none_or(|m| {
                    ImageQuery::compare(&sort, &image, m) == std::cmp::Ordering::Greater
                });
                if after_marker && page.len() <= query.limit {
                    page.push(image);
                }
            }
        };
        for id in self.ordered_ids(primary, dir, marker.as_ref()) {
            let Some(image) = self.get_image(id?)? else {
                continue; // deleted since the index was read
            };
            let new_group = group_head
                .as_ref()
                .is_none_or(|h| primary.compare(h, &image) != std::cmp::Ordering::Equal);
            if new_group {
                flush(&mut group, &mut page);
                if page.len() > query.limit {
                    break;
                }
                group_head = Some(image.clone());
            }
            if query.admits(&image, &memberships) {
                group.push(image);
            }
        }
        flush(&mut group, &mut page);
        let more = page.len() > query.limit;
        page.truncate(query.limit);
        Ok(ImagePage { images: page, more })
    }
}

#[async_trait]
impl Registry for SledRegistry {
    async fn create_image(&self, image: Image) -> Result<Image> {
        self.blocking(move |inner| {
            inner.image_tx(|t| {
                if t[IMAGES].get(image.id.as_bytes())?.is_some() {
                    return abort(RegistryError::DuplicateImage(image.id));
                }
                let mut stored = image.clone();
                stored.revision = 1;
                put_image(t, None, &stored)?;
                Ok(stored)
            })
        })
        .await
    }

    async fn get_image(&self, id: Uuid) -> Result<Option<Image>> {
        self.inner.get_image(id)
    }

    async fn update_image(&self, image: Image) -> Result<Image> {
        self.blocking(move |inner| {
            inner.image_tx(|t| {
                let old = current_image(t, image.id, Some(image.revision))?;
                if !old.status.can_become(image.status) {
                    return abort(RegistryError::InvalidTransition {
                        from: old.status,
                        to: image.status,
                    });
                }
                let mut stored = image.clone();
                stored.revision = old.revision + 1;
                put_image(t, Some(&old), &stored)?;
                Ok(stored)
            })
        })
        .await
    }

    async fn delete_image(&self, id: Uuid, revision: u64) -> Result<()> {
        self.blocking(move |inner| {
            let prefix = id.as_bytes().to_vec();
            let members: Vec<Member> = inner.image_trees[MEMBERS]
                .scan_prefix(&prefix)
                .values()
                .map(|v| decode(&v.map_err(engine)?))
                .collect::<Result<_>>()?;
            inner.image_tx(|t| {
                let old = current_image(t, id, Some(revision))?;
                t[IMAGES].remove(id.as_bytes())?;
                for key in INDEXED {
                    t[index_tree(key)].remove(codec::index_key(key, &old))?;
                }
                for m in &members {
                    t[MEMBERS].remove(codec::member_key(id, &m.member_id))?;
                    t[MEMBERS_BY_PROJECT].remove(codec::project_member_key(&m.member_id, id))?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn list_images(&self, query: ImageQuery) -> Result<ImagePage> {
        // A listing can walk far (filters that reject most of the index): off the async
        // workers, so one such call never holds up the requests sharing its thread.
        self.blocking(move |inner| inner.list_images(&query)).await
    }

    async fn image_ids(&self) -> Result<Vec<Uuid>> {
        self.blocking(|inner| {
            inner
                .images()
                .iter()
                .keys()
                .map(|k| codec::id_of_index_key(&k.map_err(engine)?))
                .collect()
        })
        .await
    }

    async fn add_member(&self, member: Member) -> Result<Member> {
        self.blocking(move |inner| {
            inner.image_tx(|t| {
                let key = codec::member_key(member.image_id, &member.member_id);
                touch_image(t, member.image_id)?;
                if t[MEMBERS].get(&key)?.is_some() {
                    return abort(RegistryError::DuplicateMember {
                        image: member.image_id,
                        member: member.member_id.clone(),
                    });
                }
                let bytes = encode_tx(&member)?;
                t[MEMBERS].insert(key, bytes.clone())?;
                let by_project = codec::project_member_key(&member.member_id, member.image_id);
                t[MEMBERS_BY_PROJECT].insert(by_project, bytes)?;
                Ok(member.clone())
            })
        })
        .await
    }

    async fn get_member(&self, image: Uuid, member: &str) -> Result<Option<Member>> {
        let key = codec::member_key(image, member);
        match self.inner.image_trees[MEMBERS].get(key).map_err(engine)? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    async fn list_members(&self, image: Uuid) -> Result<Vec<Member>> {
        self.blocking(move |inner| {
            let mut members: Vec<Member> = inner.image_trees[MEMBERS]
                .scan_prefix(image.as_bytes())
                .values()
                .map(|v| decode(&v.map_err(engine)?))
                .collect::<Result<_>>()?;
            members.sort_by_key(|m| m.created_at);
            Ok(members)
        })
        .await
    }

    async fn update_member(&self, member: Member) -> Result<Member> {
        self.blocking(move |inner| {
            inner.image_tx(|t| {
                let key = codec::member_key(member.image_id, &member.member_id);
                if t[MEMBERS].get(&key)?.is_none() {
                    return abort(RegistryError::MemberNotFound {
                        image: member.image_id,
                        member: member.member_id.clone(),
                    });
                }
                let bytes = encode_tx(&member)?;
                t[MEMBERS].insert(key, bytes.clone())?;
                let by_project = codec::project_member_key(&member.member_id, member.image_id);
                t[MEMBERS_BY_PROJECT].insert(by_project, bytes)?;
                Ok(member.clone())
            })
        })
        .await
    }

    async fn delete_member(&self, image: Uuid, member: &str) -> Result<()> {
        let member = member.to_string();
        self.blocking(move |inner| {
            inner.image_tx(|t| {
                let key = codec::member_key(image, &member);
                if t[MEMBERS].remove(key)?.is_none() {
                    return abort(RegistryError::MemberNotFound {
                        image,
                        member: member.clone(),
                    });
                }
                t[MEMBERS_BY_PROJECT].remove(codec::project_member_key(&member, image))?;
                touch_image(t, image)
            })
        })
        .await
    }

    async fn create_task(&self, task: Task) -> Result<Task> {
        self.blocking(move |inner| {
            inner.task_tx(|t| {
                let mut stored = task.clone();
                stored.revision = 1;
                t[0].insert(task.id.as_bytes(), encode_tx(&stored)?)?;
                if let Some(image) = task.image_id {
                    t[1].insert(task_index_key(image, task.id), &[])?;
                }
                Ok(stored)
            })
        })
        .await
    }

    async fn get_task(&self, id: Uuid) -> Result<Option<Task>> {
        self.blocking(move |inner| {
            match inner.task_trees[0].get(id.as_bytes()).map_err(engine)? {
                Some(bytes) => Ok(Some(decode(&bytes)?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn update_task(&self, task: Task) -> Result<Task> {
        self.blocking(move |inner| {
            inner.task_tx(|t| {
                let Some(bytes) = t[0].get(task.id.as_bytes())? else {
                    return abort(RegistryError::TaskNotFound(task.id));
                };
                let old: Task = decode_tx(&bytes)?;
                if old.revision != task.revision {
                    return abort(RegistryError::Stale(task.id));
                }
                let mut stored = task.clone();
                stored.revision += 1;
                t[0].insert(task.id.as_bytes(), encode_tx(&stored)?)?;
                if old.image_id != task.image_id {
                    if let Some(image) = old.image_id {
                        t[1].remove(task_index_key(image, task.id))?;
                    }
                    if let Some(image) = task.image_id {
                        t[1].insert(task_index_key(image, task.id), &[])?;
                    }
                }
                Ok(stored)
            })
        })
        .await
    }

    async fn list_tasks(&self, image: Option<Uuid>) -> Result<Vec<Task>> {
        self.blocking(move |inner| {
            let mut tasks: Vec<Task> = match image {
                None => inner.task_trees[0]
                    .iter()
                    .values()
                    .map(|v| decode(&v.map_err(engine)?))
                    .collect::<Result<_>>()?,
                Some(image) => {
                    let mut out = Vec::new();
                    for key in inner.task_trees[1].scan_prefix(image.as_bytes()).keys() {
                        let id = codec::id_of_index_key(&key.map_err(engine)?)?;
                        if let Some(bytes) =
                            inner.task_trees[0].get(id.as_bytes()).map_err(engine)?
                        {
                            out.push(decode(&bytes)?);
                        }
                    }
                    out
                }
            };
            tasks.sort_by_key(|t: &Task| std::cmp::Reverse(t.created_at));
            Ok(tasks)
        })
        .await
    }

    async fn create_metadef_namespace(&self, def: MetadefDefinition) -> Result<MetadefDefinition> {
        self.blocking(move |inner| inner.metadefs.put_definition(def, false))
            .await
    }

    async fn import_metadef_namespace(&self, def: MetadefDefinition) -> Result<MetadefDefinition> {
        self.blocking(move |inner| inner.metadefs.put_definition(def, true))
            .await
    }

    async fn get_metadef_namespace(&self, name: &str) -> Result<Option<MetadefNamespace>> {
        self.inner.metadefs.get_namespace(name)
    }

    async fn get_metadef_definition(&self, name: &str) -> Result<Option<MetadefDefinition>> {
        self.inner.metadefs.get_definition(name)
    }

    async fn list_metadef_namespaces(&self) -> Result<Vec<MetadefNamespace>> {
        self.inner.metadefs.list_namespaces()
    }

    async fn update_metadef_namespace(
        &self,
        name: &str,
        ns: MetadefNamespace,
    ) -> Result<MetadefNamespace> {
        let name = name.to_string();
        self.blocking(move |inner| inner.metadefs.update_namespace(&name, ns))
            .await
    }

    async fn delete_metadef_namespace(&self, name: &str) -> Result<()> {
        let name = name.to_string();
        self.blocking(move |inner| inner.metadefs.delete_namespace(&name))
            .await
    }

    async fn delete_metadef_contents(&self, namespace: &str, kind: MetadefKind) -> Result<()> {
        let name = namespace.to_string();
        self.blocking(move |inner| inner.metadefs.delete_contents(&name, kind))
            .await
    }

    async fn create_metadef_object(&self, object: MetadefObject) -> Result<MetadefObject> {
        self.blocking(move |inner| inner.metadefs.create(object))
            .await
    }

    async fn get_metadef_object(&self, ns: &str, name: &str) -> Result<Option<MetadefObject>> {
        self.inner.metadefs.get(ns, name)
    }

    async fn list_metadef_objects(&self, ns: &str) -> Result<Vec<MetadefObject>> {
        self.inner.metadefs.list(ns)
    }

    async fn update_metadef_object(
        &self,
        name: &str,
        object: MetadefObject,
    ) -> Result<MetadefObject> {
        let name = name.to_string();
        self.blocking(move |inner| inner.metadefs.update(&name, object))
            .await
    }

    async fn delete_metadef_object(&self, ns: &str, name: &str) -> Result<()> {
        let (ns, name) = (ns.to_string(), name.to_string());
        self.blocking(move |inner| inner.metadefs.delete::<MetadefObject>(&ns, &name))
            .await
    }

    async fn create_metadef_property(&self, property: MetadefProperty) -> Result<MetadefProperty> {
        self.blocking(move |inner| inner.metadefs.create(property))
            .await
    }

    async fn get_metadef_property(&self, ns: &str, name: &str) -> Result<Option<MetadefProperty>> {
        self.inner.metadefs.get(ns, name)
    }

    async fn list_metadef_properties(&self, ns: &str) -> Result<Vec<MetadefProperty>> {
        self.inner.metadefs.list(ns)
    }

    async fn update_metadef_property(
        &self,
        name: &str,
        property: MetadefProperty,
    ) -> Result<MetadefProperty> {
        let name = name.to_string();
        self.blocking(move |inner| inner.metadefs.update(&name, property))
            .await
    }

    async fn delete_metadef_property(&self, ns: &str, name: &str) -> Result<()> {
        let (ns, name) = (ns.to_string(), name.to_string());
        self.blocking(move |inner| inner.metadefs.delete::<MetadefProperty>(&ns, &name))
            .await
    }

    async fn create_metadef_tag(&self, tag: MetadefTag) -> Result<MetadefTag> {
        self.blocking(move |inner| inner.metadefs.create(tag)).await
    }

    async fn create_metadef_tags(
        &self,
        ns: &str,
        tags: Vec<MetadefTag>,
        append: bool,
    ) -> Result<Vec<MetadefTag>> {
        let ns = ns.to_string();
        self.blocking(move |inner| inner.metadefs.put_tags(&ns, tags, append))
            .await
    }

    async fn get_metadef_tag(&self, ns: &str, name: &str) -> Result<Option<MetadefTag>> {
        self.inner.metadefs.get(ns, name)
    }

    async fn list_metadef_tags(&self, ns: &str) -> Result<Vec<MetadefTag>> {
        self.inner.metadefs.list(ns)
    }

    async fn update_metadef_tag(&self, name: &str, tag: MetadefTag) -> Result<MetadefTag> {
        let name = name.to_string();
        self.blocking(move |inner| inner.metadefs.update(&name, tag))
            .await
    }

    async fn delete_metadef_tag(&self, ns: &str, name: &str) -> Result<()> {
        let (ns, name) = (ns.to_string(), name.to_string());
        self.blocking(move |inner| inner.metadefs.delete::<MetadefTag>(&ns, &name))
            .await
    }

    async fn list_metadef_resource_types(&self) -> Result<Vec<MetadefResourceType>> {
        self.inner.metadefs.list_resource_types()
    }

    async fn create_metadef_association(
        &self,
        association: MetadefAssociation,
    ) -> Result<MetadefAssociation> {
        self.blocking(move |inner| inner.metadefs.create(association))
            .await
    }

    async fn list_metadef_associations(&self, ns: &str) -> Result<Vec<MetadefAssociation>> {
        self.inner.metadefs.list(ns)
    }

    async fn delete_metadef_association(&self, ns: &str, name: &str) -> Result<()> {
        let (ns, name) = (ns.to_string(), name.to_string());
        self.blocking(move |inner| inner.metadefs.delete::<MetadefAssociation>(&ns, &name))
            .await
    }
}
