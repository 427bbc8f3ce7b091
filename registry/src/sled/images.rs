//! The sled engine's images, members and tasks: `images` (id → record), `image_index` (see
//! `index.rs`), `members` (image id + project → member), `tasks` and `tasks_by_image`. Every
//! write changes a record and its index entries in one transaction.

use std::collections::BTreeSet;

use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::{Db, Tree};
use uuid::Uuid;

use super::index;
use super::list::{self, Trees};
use super::tx::{TxResult, abort, commit, decode_tx, encode_tx, engine};
use crate::codec::{self, decode, decode_image, encode_image};
use crate::error::{RegistryError, Result};
use crate::model::{Image, Member, Task};
use crate::query::{ImagePage, ImageQuery};

// Positions in `ImageTrees::trees`.
const IMAGES: usize = 0;
const INDEX: usize = 1;
const MEMBERS: usize = 2;

// Positions in `TaskTrees::trees`.
const TASKS: usize = 0;
const TASKS_BY_IMAGE: usize = 1;

fn image_tx(bytes: &[u8]) -> TxResult<Image> {
    decode_image(bytes).map_err(ConflictableTransactionError::Abort)
}

/// Writes `new` and its index entries, replacing those of `old`. `members` are the image's
/// members (their entries carry its position and depend on its visibility).
fn put_image(
    t: &[TransactionalTree],
    old: Option<&Image>,
    new: &Image,
    members: &[Member],
) -> TxResult<()> {
    t[IMAGES].insert(new.id.as_bytes(), encode_image(new))?;
    let new_keys: BTreeSet<Vec<u8>> = index::entries(new).into_iter().collect();
    let old_keys: BTreeSet<Vec<u8>> = old
        .map(index::entries)
        .unwrap_or_default()
        .into_iter()
        .collect();
    for key in old_keys.difference(&new_keys) {
        t[INDEX].remove(key.as_slice())?;
    }
    for key in new_keys.difference(&old_keys) {
        t[INDEX].insert(key.as_slice(), &[])?;
    }
    // Member entries exist while the image is shared, at its position.
    let old_members = old
        .map(|o| index::member_entries(o, members))
        .unwrap_or_default();
    let new_members = index::member_entries(new, members);
    if old_members != new_members {
        for key in &old_members {
            t[INDEX].remove(key.as_slice())?;
        }
        for key in &new_members {
            t[INDEX].insert(key.as_slice(), &[])?;
        }
    }
    Ok(())
}

/// Reads the image and checks it is still at `revision`.
fn current_image(t: &[TransactionalTree], id: Uuid, revision: Option<u64>) -> TxResult<Image> {
    let Some(bytes) = t[IMAGES].get(id.as_bytes())? else {
        return abort(RegistryError::ImageNotFound(id));
    };
    let image = image_tx(&bytes)?;
    if revision.is_some_and(|r| r != image.revision) {
        return abort(RegistryError::Stale(id));
    }
    Ok(image)
}

/// Bumps an image's revision, so a concurrent compare-and-swap on it fails; used by member
/// changes so that a delete racing with a member add cannot leave the member behind.
fn touch_image(t: &[TransactionalTree], id: Uuid) -> TxResult<Image> {
    let mut image = current_image(t, id, None)?;
    image.revision += 1;
    t[IMAGES].insert(id.as_bytes(), encode_image(&image))?;
    Ok(image)
}

/// Key in the tasks-by-image index: image id, then task id.
fn task_index_key(image: Uuid, task: Uuid) -> Vec<u8> {
    let mut key = image.as_bytes().to_vec();
    key.extend_from_slice(task.as_bytes());
    key
}

/// Images, their index, members.
pub(super) struct ImageTrees {
    db: Db,
    trees: Vec<Tree>,
}

impl ImageTrees {
    pub(super) fn open(db: &Db) -> Result<Self> {
        let trees = vec![
            db.open_tree("images").map_err(engine)?,
            db.open_tree("image_index").map_err(engine)?,
            db.open_tree("members").map_err(engine)?,
        ];
        let out = ImageTrees {
            db: db.clone(),
            trees,
        };
        super::layout::upgrade(
            db,
            &out.trees[IMAGES],
            &out.trees[INDEX],
            &out.trees[MEMBERS],
        )?;
        Ok(out)
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
            put_image(t, None, &stored, &[])?;
            Ok(stored)
        })
    }

    pub(super) fn get(&self, id: Uuid) -> Result<Option<Image>> {
        match self.images().get(id.as_bytes()).map_err(engine)? {
            Some(bytes) => Ok(Some(decode_image(&bytes)?)),
            None => Ok(None),
        }
    }

    /// The image's members, read outside a transaction: a member change bumps the image's
    /// revision, so a compare-and-swap on the image that follows this read fails if they
    /// changed in between.
    fn members_of(&self, id: Uuid) -> Result<Vec<Member>> {
        self.trees[MEMBERS]
            .scan_prefix(id.as_bytes())
            .values()
            .map(|v| decode(&v.map_err(engine)?))
            .collect()
    }

    pub(super) fn update(&self, image: Image) -> Result<Image> {
        let members = self.members_of(image.id)?;
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
            put_image(t, Some(&old), &stored, &members)?;
            Ok(stored)
        })
    }

    pub(super) fn delete(&self, id: Uuid, revision: u64) -> Result<()> {
        let members = self.members_of(id)?;
        self.tx(|t| {
            let old = current_image(t, id, Some(revision))?;
            t[IMAGES].remove(id.as_bytes())?;
            for key in index::entries(&old) {
                t[INDEX].remove(key)?;
            }
            for key in index::member_entries(&old, &members) {
                t[INDEX].remove(key)?;
            }
            for m in &members {
                t[MEMBERS].remove(codec::member_key(id, &m.member_id))?;
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

    pub(super) fn list(&self, query: &ImageQuery) -> Result<ImagePage> {
        let trees = Trees {
            images: &self.trees[IMAGES],
            index: &self.trees[INDEX],
            members: &self.trees[MEMBERS],
        };
        list::list(trees, query)
    }

    pub(super) fn add_member(&self, member: Member) -> Result<Member> {
        self.tx(|t| {
            let key = codec::member_key(member.image_id, &member.member_id);
            let image = touch_image(t, member.image_id)?;
            if t[MEMBERS].get(&key)?.is_some() {
                return abort(RegistryError::DuplicateMember {
                    image: member.image_id,
                    member: member.member_id.clone(),
                });
            }
            t[MEMBERS].insert(key, encode_tx(&member)?)?;
            for entry in index::member_entries(&image, std::slice::from_ref(&member)) {
                t[INDEX].insert(entry, &[])?;
            }
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
        let mut members = self.members_of(image)?;
        members.sort_by_key(|m| m.created_at);
        Ok(members)
    }

    pub(super) fn update_member(&self, member: Member) -> Result<Member> {
        self.tx(|t| {
            let key = codec::member_key(member.image_id, &member.member_id);
            let Some(old) = t[MEMBERS].get(&key)? else {
                return abort(RegistryError::MemberNotFound {
                    image: member.image_id,
                    member: member.member_id.clone(),
                });
            };
            let old: Member = decode_tx(&old)?;
            // Bumps the revision: an image write that read the members before fails and
            // retries rather than rewriting this member's entry from a stale status.
            let image = touch_image(t, member.image_id)?;
            t[MEMBERS].insert(key, encode_tx(&member)?)?;
            for entry in index::member_entries(&image, std::slice::from_ref(&old)) {
                t[INDEX].remove(entry)?;
            }
            for entry in index::member_entries(&image, std::slice::from_ref(&member)) {
                t[INDEX].insert(entry, &[])?;
            }
            Ok(member.clone())
        })
    }

    pub(super) fn delete_member(&self, image: Uuid, member: &str) -> Result<()> {
        self.tx(|t| {
            let key = codec::member_key(image, member);
            let Some(old) = t[MEMBERS].remove(key)? else {
                return abort(RegistryError::MemberNotFound {
                    image,
                    member: member.to_string(),
                });
            };
            let old: Member = decode_tx(&old)?;
            let current = touch_image(t, image)?;
            for entry in index::member_entries(&current, std::slice::from_ref(&old)) {
                t[INDEX].remove(entry)?;
            }
            Ok(())
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
