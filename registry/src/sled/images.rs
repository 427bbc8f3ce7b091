//! The sled engine's images, members and tasks: one named tree per record kind and per
//! index (`images`, `image_sort:<key>`, `members`, `members_by_project`, `tasks`,
//! `tasks_by_image`), and the listing that walks a sort index.

use std::collections::HashMap;

use sled::transaction::TransactionalTree;
use sled::{Db, Tree};
use uuid::Uuid;

use super::tx::{TxResult, abort, commit, decode_tx, encode_tx, engine};
use crate::codec::{self, decode};
use crate::error::{RegistryError, Result};
use crate::model::{Image, Member, MemberStatus, Task};
use crate::query::{ImagePage, ImageQuery, SortDir, SortKey};

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

// Positions in `ImageTrees::trees`.
const IMAGES: usize = 0;
const MEMBERS: usize = 1 + INDEXED.len();
const MEMBERS_BY_PROJECT: usize = MEMBERS + 1;

// Positions in `TaskTrees::trees`.
const TASKS: usize = 0;
const TASKS_BY_IMAGE: usize = 1;

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

/// Images, one index per `INDEXED` key, members, members_by_project.
pub(super) struct ImageTrees {
    db: Db,
    trees: Vec<Tree>,
}

impl ImageTrees {
    pub(super) fn open(db: &Db) -> Result<Self> {
        let mut trees = vec![db.open_tree("images").map_err(engine)?];
        for key in INDEXED {
            let name = format!("image_sort:{}", key.as_str());
            trees.push(db.open_tree(name).map_err(engine)?);
        }
        trees.push(db.open_tree("members").map_err(engine)?);
        trees.push(db.open_tree("members_by_project").map_err(engine)?);
        Ok(ImageTrees {
            db: db.clone(),
            trees,
        })
    }

    fn images(&self) -> &Tree {
        &self.trees[IMAGES]
    }

    fn tx<T>(&self, f: impl Fn(&[TransactionalTree]) -> TxResult<T>) -> Result<T> {
        commit(&self.db, &self.trees, f)
    }

    pub(super) fn create(&self, image: Image) -> Result<Image> {
        self.tx(|t| {
            if t[IMAGES].get(image.id.as_bytes())?.is_some() {
                return abort(RegistryError::DuplicateImage(image.id));
            }
            let mut stored = image.clone();
            stored.revision = 1;
            put_image(t, None, &stored)?;
            Ok(stored)
        })
    }

    pub(super) fn get(&self, id: Uuid) -> Result<Option<Image>> {
        match self.images().get(id.as_bytes()).map_err(engine)? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    pub(super) fn update(&self, image: Image) -> Result<Image> {
        self.tx(|t| {
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
    }

    pub(super) fn delete(&self, id: Uuid, revision: u64) -> Result<()> {
        let prefix = id.as_bytes().to_vec();
        let members: Vec<Member> = self.trees[MEMBERS]
            .scan_prefix(&prefix)
            .values()
            .map(|v| decode(&v.map_err(engine)?))
            .collect::<Result<_>>()?;
        self.tx(|t| {
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
    }

    pub(super) fn ids(&self) -> Result<Vec<Uuid>> {
        self.images()
            .iter()
            .keys()
            .map(|k| codec::id_of_index_key(&k.map_err(engine)?))
            .collect()
    }

    fn memberships(&self, project: Option<&str>) -> Result<HashMap<Uuid, MemberStatus>> {
        let mut out = HashMap::new();
        let Some(project) = project else {
            return Ok(out);
        };
        let prefix = codec::project_prefix(project);
        for item in self.trees[MEMBERS_BY_PROJECT].scan_prefix(&prefix) {
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
            &self.trees[index_tree(key)]
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

    pub(super) fn list(&self, query: &ImageQuery) -> Result<ImagePage> {
        let memberships = self.memberships(query.viewer.project.as_deref())?;
        let marker = match query.marker {
            None => None,
            Some(id) => match self.get(id)? {
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
            let Some(image) = self.get(id?)? else {
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
            if query.admits(&image, memberships.get(&image.id).copied()) {
                group.push(image);
            }
        }
        flush(&mut group, &mut page);
        let more = page.len() > query.limit;
        page.truncate(query.limit);
        let next = page.last().filter(|_| more).map(|i| i.id);
        Ok(ImagePage {
            images: page,
            next,
            examined: 0,
        })
    }

    pub(super) fn add_member(&self, member: Member) -> Result<Member> {
        self.tx(|t| {
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
    }

    pub(super) fn get_member(&self, image: Uuid, member: &str) -> Result<Option<Member>> {
        let key = codec::member_key(image, member);
        match self.trees[MEMBERS].get(key).map_err(engine)? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    pub(super) fn list_members(&self, image: Uuid) -> Result<Vec<Member>> {
        let mut members: Vec<Member> = self.trees[MEMBERS]
            .scan_prefix(image.as_bytes())
            .values()
            .map(|v| decode(&v.map_err(engine)?))
            .collect::<Result<_>>()?;
        members.sort_by_key(|m| m.created_at);
        Ok(members)
    }

    pub(super) fn update_member(&self, member: Member) -> Result<Member> {
        self.tx(|t| {
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
    }

    pub(super) fn delete_member(&self, image: Uuid, member: &str) -> Result<()> {
        self.tx(|t| {
            let key = codec::member_key(image, member);
            if t[MEMBERS].remove(key)?.is_none() {
                return abort(RegistryError::MemberNotFound {
                    image,
                    member: member.to_string(),
                });
            }
            t[MEMBERS_BY_PROJECT].remove(codec::project_member_key(member, image))?;
            touch_image(t, image)
        })
    }
}

/// Tasks and the tasks-by-image index.
pub(super) struct TaskTrees {
    db: Db,
    trees: Vec<Tree>,
}

impl TaskTrees {
    pub(super) fn open(db: &Db) -> Result<Self> {
        let trees = vec![
            db.open_tree("tasks").map_err(engine)?,
            db.open_tree("tasks_by_image").map_err(engine)?,
        ];
        Ok(TaskTrees {
            db: db.clone(),
            trees,
        })
    }

    fn tx<T>(&self, f: impl Fn(&[TransactionalTree]) -> TxResult<T>) -> Result<T> {
        commit(&self.db, &self.trees, f)
    }

    pub(super) fn create(&self, task: Task) -> Result<Task> {
        self.tx(|t| {
            let mut stored = task.clone();
            stored.revision = 1;
            t[TASKS].insert(task.id.as_bytes(), encode_tx(&stored)?)?;
            if let Some(image) = task.image_id {
                t[TASKS_BY_IMAGE].insert(task_index_key(image, task.id), &[])?;
            }
            Ok(stored)
        })
    }

    pub(super) fn get(&self, id: Uuid) -> Result<Option<Task>> {
        match self.trees[TASKS].get(id.as_bytes()).map_err(engine)? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    pub(super) fn update(&self, task: Task) -> Result<Task> {
        self.tx(|t| {
            let Some(bytes) = t[TASKS].get(task.id.as_bytes())? else {
                return abort(RegistryError::TaskNotFound(task.id));
            };
            let old: Task = decode_tx(&bytes)?;
            if old.revision != task.revision {
                return abort(RegistryError::Stale(task.id));
            }
            let mut stored = task.clone();
            stored.revision += 1;
            t[TASKS].insert(task.id.as_bytes(), encode_tx(&stored)?)?;
            if old.image_id != task.image_id {
                if let Some(image) = old.image_id {
                    t[TASKS_BY_IMAGE].remove(task_index_key(image, task.id))?;
                }
                if let Some(image) = task.image_id {
                    t[TASKS_BY_IMAGE].insert(task_index_key(image, task.id), &[])?;
                }
            }
            Ok(stored)
        })
    }

    /// Tasks, newest first; with `image` only those of that image.
    pub(super) fn list(&self, image: Option<Uuid>) -> Result<Vec<Task>> {
        let mut tasks: Vec<Task> = match image {
            None => self.trees[TASKS]
                .iter()
                .values()
                .map(|v| decode(&v.map_err(engine)?))
                .collect::<Result<_>>()?,
            Some(image) => {
                let mut out = Vec::new();
                for key in self.trees[TASKS_BY_IMAGE]
                    .scan_prefix(image.as_bytes())
                    .keys()
                {
                    let id = codec::id_of_index_key(&key.map_err(engine)?)?;
                    if let Some(bytes) = self.trees[TASKS].get(id.as_bytes()).map_err(engine)? {
                        out.push(decode(&bytes)?);
                    }
                }
                out
            }
        };
        tasks.sort_by_key(|t: &Task| std::cmp::Reverse(t.created_at));
        Ok(tasks)
    }
}
