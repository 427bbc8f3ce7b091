//! The sled engine's image listing. A query becomes cursors over the index tree (the
//! viewer's scope and each equality filter that has an index; see `cursor.rs`), then:
//! - in the default order (`created_at`, then id, one direction) the cursors' intersection is
//!   walked from the marker: O(log n) per image returned, plus what the remaining checks
//!   (ranges, `os_hidden = false`, …) reject;
//! - in another order, the intersection's images are gathered and sorted, if there are few
//!   (a few pages' worth);
//! - otherwise the sort field's index is walked, testing each image.
//!
//! Every seek and record read is charged to the query's budget. A walk that spends it stops
//! and answers with what it found and, as `next`, the furthest image it examined that the
//! viewer may see, so a client following `next` links resumes there.

use std::cmp::Ordering;

use sled::Tree;
use uuid::Uuid;

use super::cursor::{Budget, Cursor, Seek, Settled, start, succ};
use super::index::{self, Field, Pos};
use super::tx::engine;
use crate::codec::{self, decode, decode_image};
use crate::error::{RegistryError, Result};
use crate::model::{Image, ImageStatus, Member, MemberStatus, Visibility};
use crate::query::{
    Filter, ImagePage, ImageQuery, MemberStatusFilter, SortDir, SortKey, TextField, VisibilityScope,
};

/// The trees a listing reads.
pub(super) struct Trees<'a> {
    pub images: &'a Tree,
    pub index: &'a Tree,
    pub members: &'a Tree,
}

struct Lister<'a> {
    trees: Trees<'a>,
    query: &'a ImageQuery,
    budget: Budget,
}

/// Images collected for a page, and where a resumed walk may start.
struct Collect {
    images: Vec<Image>,
    /// The furthest image examined (in listing order) that the viewer may see.
    resume: Option<Image>,
}

pub(super) fn list(trees: Trees<'_>, query: &ImageQuery) -> Result<ImagePage> {
    let mut lister = Lister {
        trees,
        query,
        budget: Budget::new(query.budget.max(1)),
    };
    lister.run()
}

impl Lister<'_> {
    fn run(&mut self) -> Result<ImagePage> {
        let marker = match self.query.marker {
            None => None,
            Some(id) => match self.fetch(id)? {
                Some(m) if self.visible(&m)? => Some(m),
                _ => return Err(RegistryError::MarkerNotFound(id)),
            },
        };
        let sort = self.query.full_sort();
        let Some(cursors) = self.plan()? else {
            return Ok(self.page(Vec::new(), None));
        };
        let dir = sort[0].1;
        if sort == [(SortKey::CreatedAt, dir), (SortKey::Id, dir)] {
            return self.stream(cursors, dir, marker.as_ref());
        }
        if !cursors.is_empty() {
            // Few matches are gathered and sorted; past a few pages' worth, the filters are
            // not selective and the sort index is walked instead.
            let limit = self.budget.limit;
            let gather = (self.query.limit + 1).saturating_mul(32).min(limit / 2);
            self.budget.limit = self.budget.spent + gather;
            let gathered = self.gather(cursors)?;
            self.budget.limit = limit;
            if let Some(mut all) = gathered {
                all.sort_by(|a, b| ImageQuery::compare(&sort, a, b));
                let images: Vec<Image> = all
                    .into_iter()
                    .filter(|i| {
                        marker
                            .as_ref()
                            .is_none_or(|m| ImageQuery::compare(&sort, i, m) == Ordering::Greater)
                    })
                    .take(self.query.limit + 1)
                    .collect();
                return Ok(self.page(images, None));
            }
        }
        self.walk_sort_index(&sort, marker.as_ref())
    }

    /// The page from what was collected: `next` is the last image returned when more follow,
    /// else `resume` (the walk stopped on its budget).
    fn page(&self, mut images: Vec<Image>, resume: Option<Image>) -> ImagePage {
        let more = images.len() > self.query.limit;
        images.truncate(self.query.limit);
        let next = if more {
            images.last().map(|i| i.id)
        } else {
            resume.map(|i| i.id)
        };
        ImagePage {
            images,
            next,
            examined: self.budget.spent,
        }
    }

    /// At the end of the budget: stop (true), or go on with a larger one (false). A page
    /// stops once it has a point to resume from (an image the viewer may see) and an image,
    /// or no image after twice the budget (clients may stop at an empty page: worth a second
    /// budget); it never spends more than three budgets, and without a point to resume from
    /// by then the listing is refused rather than cut short.
    fn stop_on_budget(&mut self, has_images: bool, has_resume: bool) -> Result<bool> {
        let base = self.query.budget.max(1);
        let spent = self.budget.spent;
        if has_resume && (has_images || spent >= base.saturating_mul(2)) {
            return Ok(true);
        }
        if spent >= base.saturating_mul(3) {
            if has_resume {
                return Ok(true);
            }
            return Err(RegistryError::TooCostly(format!(
                "no image the viewer may see within {spent} units of work"
            )));
        }
        self.budget.limit = if has_resume {
            base.saturating_mul(2)
        } else {
            base.saturating_mul(3)
        };
        Ok(false)
    }

    fn fetch(&mut self, id: Uuid) -> Result<Option<Image>> {
        self.budget.charge();
        match self.trees.images.get(id.as_bytes()).map_err(engine)? {
            Some(bytes) => Ok(Some(decode_image(&bytes)?)),
            None => Ok(None),
        }
    }

    /// The viewer's member status on `image`, read only when it can matter.
    fn membership(&self, image: &Image) -> Result<Option<MemberStatus>> {
        let viewer = &self.query.viewer;
        let Some(project) = viewer.project.as_deref() else {
            return Ok(None);
        };
        if viewer.is_admin || viewer.owns(image) || image.visibility != Visibility::Shared {
            return Ok(None);
        }
        let key = codec::member_key(image.id, project);
        match self.trees.members.get(key).map_err(engine)? {
            Some(bytes) => Ok(Some(decode::<Member>(&bytes)?.status)),
            None => Ok(None),
        }
    }

    fn visible(&self, image: &Image) -> Result<bool> {
        Ok(self.query.viewer.can_see(image, self.membership(image)?))
    }

    fn admits(&self, image: &Image) -> Result<bool> {
        Ok(self.query.admits(image, self.membership(image)?))
    }

    /// The cursors that narrow the listing: the viewer's scope first, then one per indexed
    /// filter. `None`: nothing can match. Empty: the whole catalogue.
    fn plan(&mut self) -> Result<Option<Vec<Cursor>>> {
        let mut cursors = Vec::new();
        match self.scope() {
            Some(Some(c)) => cursors.push(c),
            Some(None) => {}
            None => return Ok(None),
        }
        for f in &self.query.filters {
            match self.filter_cursor(f)? {
                Some(Some(c)) => cursors.push(c),
                Some(None) => {}
                None => return Ok(None),
            }
        }
        Ok(Some(cursors))
    }

    /// The images the viewer may list, as a cursor: `Some(None)` when every image may be
    /// (admins), `None` when none may.
    fn scope(&self) -> Option<Option<Cursor>> {
        let viewer = &self.query.viewer;
        let vis = |v: Visibility| {
            Cursor::Prefix(index::prefix(
                Field::Visibility,
                &index::text(Some(v.as_str())),
            ))
        };
        if viewer.is_admin {
            return Some(match self.query.visibility {
                VisibilityScope::Only(v) => Some(vis(v)),
                _ => None,
            });
        }
        let project = viewer.project.as_deref();
        let owner =
            project.map(|p| Cursor::Prefix(index::prefix(Field::Owner, &index::text(Some(p)))));
        let members = project.map(|p| {
            let statuses: Vec<MemberStatus> = match self.query.member_status {
                MemberStatusFilter::All => {
                    vec![
                        MemberStatus::Pending,
                        MemberStatus::Accepted,
                        MemberStatus::Rejected,
                    ]
                }
                MemberStatusFilter::Accepted => vec![MemberStatus::Accepted],
                MemberStatusFilter::Only(s) => vec![s],
            };
            union(
                statuses
                    .into_iter()
                    .map(|s| Cursor::Prefix(index::prefix(Field::Member, &index::member(p, s))))
                    .collect(),
            )
        });
        let parts: Vec<Cursor> = match self.query.visibility {
            VisibilityScope::Default => [owner, Some(vis(Visibility::Public)), members]
                .into_iter()
                .flatten()
                .collect(),
            VisibilityScope::All => [
                owner,
                Some(vis(Visibility::Public)),
                Some(vis(Visibility::Community)),
                members,
            ]
            .into_iter()
            .flatten()
            .collect(),
            // The viewer's own images of that visibility.
            VisibilityScope::Only(v @ Visibility::Private) => owner
                .map(|o| Cursor::And(vec![o, vis(v)]))
                .into_iter()
                .collect(),
            VisibilityScope::Only(v @ Visibility::Shared) => {
                [owner.map(|o| Cursor::And(vec![o, vis(v)])), members]
                    .into_iter()
                    .flatten()
                    .collect()
            }
            VisibilityScope::Only(v) => vec![vis(v)],
        };
        if parts.is_empty() {
            return None;
        }
        Some(Some(union(parts)))
    }

    /// The cursor of one filter: `Some(None)` when no index serves it (it is checked on the
    /// records), `None` when it matches nothing.
    fn filter_cursor(&mut self, f: &Filter) -> Result<Option<Option<Cursor>>> {
        let text =
            |field: Field, v: &str| Cursor::Prefix(index::prefix(field, &index::text(Some(v))));
        let cursor = match f {
            Filter::Text {
                field: TextField::Id,
                values,
            } => {
                let mut ids: Vec<Uuid> = values
                    .iter()
                    .filter_map(|v| Uuid::parse_str(v).ok().filter(|u| u.to_string() == *v))
                    .collect();
                ids.sort_unstable();
                ids.dedup();
                let mut positions: Vec<Pos> = Vec::new();
                for id in ids {
                    if self.budget.exhausted() {
                        return Err(RegistryError::TooCostly(format!(
                            "{} ids in one filter",
                            values.len()
                        )));
                    }
                    if let Some(image) = self.fetch(id)? {
                        positions.push(index::pos(&image));
                    }
                }
                positions.sort_unstable();
                positions.dedup();
                Cursor::Fixed(positions)
            }
            Filter::Text { field, values } => {
                let field = match field {
                    TextField::Id => unreachable!("handled above"),
                    TextField::Name => Field::Name,
                    TextField::Status => Field::Status,
                    TextField::Owner => Field::Owner,
                    TextField::DiskFormat => Field::DiskFormat,
                    TextField::ContainerFormat => Field::ContainerFormat,
                    TextField::Checksum => Field::Checksum,
                    TextField::OsHashValue => Field::OsHashValue,
                };
                let mut values: Vec<&String> = values
                    .iter()
                    // Killed images are never listed.
                    .filter(|v| field != Field::Status || *v != ImageStatus::Killed.as_str())
                    .collect();
                values.sort();
                values.dedup();
                union(values.into_iter().map(|v| text(field, v)).collect())
            }
            Filter::Tag(tag) => text(Field::Tag, tag),
            Filter::Property { key, values } => {
                let mut values: Vec<&String> = values.iter().collect();
                values.sort();
                values.dedup();
                union(
                    values
                        .into_iter()
                        .map(|v| {
                            Cursor::Prefix(index::prefix(Field::Property, &index::property(key, v)))
                        })
                        .collect(),
                )
            }
            Filter::Protected(true) => Cursor::Prefix(index::prefix(Field::Protected, &[])),
            Filter::OsHidden(true) => Cursor::Prefix(index::prefix(Field::Hidden, &[])),
            _ => return Ok(Some(None)),
        };
        Ok(match &cursor {
            Cursor::Fixed(p) if p.is_empty() => None,
            Cursor::Union(m) if m.is_empty() => None,
            _ => Some(Some(cursor)),
        })
    }

    /// Walks the cursors' intersection in the default order from the marker.
    fn stream(
        &mut self,
        cursors: Vec<Cursor>,
        dir: SortDir,
        marker: Option<&Image>,
    ) -> Result<ImagePage> {
        let root = match cursors.len() {
            0 => Cursor::Prefix(index::prefix(Field::CreatedAt, &[])),
            1 => cursors.into_iter().next().expect("one cursor"),
            _ => Cursor::And(cursors),
        };
        let mut target = match marker {
            None => Some(start(dir)),
            Some(m) => succ(dir, &index::pos(m)),
        };
        let mut out = Collect {
            images: Vec::new(),
            resume: None,
        };
        let mut settled = Settled::default();
        while let Some(t) = target {
            let p = match root.seek(self.trees.index, &t, dir, &mut self.budget, &mut settled)? {
                Seek::End => {
                    out.resume = None;
                    break;
                }
                Seek::Spent => {
                    if let Some(image) = self.settled_image(&settled, out.resume.as_ref(), dir)? {
                        out.resume = Some(image);
                    }
                    if self.stop_on_budget(!out.images.is_empty(), out.resume.is_some())? {
                        break;
                    }
                    continue;
                }
                Seek::At(p) => p,
            };
            target = succ(dir, &p);
            let Some(image) = self.fetch(index::id_of(&p))? else {
                continue;
            };
            if index::pos(&image) != p {
                continue; // an entry left by a write that raced this read: not the image's
            }
            if self.admits(&image)? {
                out.images.push(image.clone());
                if out.images.len() > self.query.limit {
                    break;
                }
            }
            if self.visible(&image)? {
                out.resume = Some(image);
            }
            if target.is_none() {
                out.resume = None;
            }
        }
        Ok(self.page(out.images, out.resume))
    }

    /// The image at the intersection's settled position, if it lies beyond `resume` and the
    /// viewer may see it.
    fn settled_image(
        &mut self,
        settled: &Settled,
        resume: Option<&Image>,
        dir: SortDir,
    ) -> Result<Option<Image>> {
        let Some(p) = settled.0 else {
            return Ok(None);
        };
        if let Some(r) = resume {
            let r = index::pos(r);
            let beyond = match dir {
                SortDir::Asc => p > r,
                SortDir::Desc => p < r,
            };
            if !beyond {
                return Ok(None);
            }
        }
        let limit = self.budget.limit;
        self.budget.limit = usize::MAX;
        let image = self.fetch(index::id_of(&p))?;
        self.budget.limit = limit;
        match image {
            Some(i) if self.visible(&i)? => Ok(Some(i)),
            _ => Ok(None),
        }
    }

    /// Every admitted image of the cursors' intersection, or `None` past the budget.
    fn gather(&mut self, cursors: Vec<Cursor>) -> Result<Option<Vec<Image>>> {
        let root = match cursors.len() {
            1 => cursors.into_iter().next().expect("one cursor"),
            _ => Cursor::And(cursors),
        };
        let mut all = Vec::new();
        let mut target = Some(start(SortDir::Asc));
        let mut settled = Settled::default();
        while let Some(t) = target {
            match root.seek(
                self.trees.index,
                &t,
                SortDir::Asc,
                &mut self.budget,
                &mut settled,
            )? {
                Seek::End => break,
                Seek::Spent => return Ok(None),
                Seek::At(p) => {
                    target = succ(SortDir::Asc, &p);
                    if let Some(image) = self.fetch(index::id_of(&p))?
                        && index::pos(&image) == p
                        && self.admits(&image)?
                    {
                        all.push(image);
                    }
                }
            }
            if self.budget.exhausted() {
                return Ok(None);
            }
        }
        Ok(Some(all))
    }

    /// Walks the index of the sort's first key (the image tree for `id`) from the marker,
    /// testing each image. Images whose key values are equal (or cut to the same key) are
    /// put in the full order before they are emitted, unless the index order is already it.
    fn walk_sort_index(
        &mut self,
        sort: &[(SortKey, SortDir)],
        marker: Option<&Image>,
    ) -> Result<ImagePage> {
        let (primary, dir) = sort[0];
        let field = index::sort_field(primary);
        // Is the index order the full order? The entries of a value are in position order.
        let exact = primary == SortKey::Id
            || sort
                == [
                    (primary, dir),
                    (SortKey::CreatedAt, dir),
                    (SortKey::Id, dir),
                ]
            || (primary == SortKey::CreatedAt && sort == [(primary, dir), (SortKey::Id, dir)]);
        // Only texts can be cut (and grouped by their cut prefix).
        let text_key = matches!(
            primary,
            SortKey::Name | SortKey::Status | SortKey::DiskFormat | SortKey::ContainerFormat
        );
        let (tree, prefix) = match field {
            Some(f) => (self.trees.index, index::prefix(f, &[])),
            None => (self.trees.images, Vec::new()),
        };
        // From the marker's key when the index order is the full order, else from the start
        // of its group.
        let marker_key = marker.map(|m| {
            let mut key = prefix.clone();
            match field {
                None => key.extend_from_slice(m.id.as_bytes()),
                Some(_) => {
                    let mut value = codec::sort_value(primary, m);
                    let cut = text_key && codec::text_was_cut(&value);
                    let whole = exact && !cut;
                    if cut {
                        value.truncate(codec::sort_group(&value).len());
                    }
                    // `created_at` entries hold no value apart from the position.
                    if primary != SortKey::CreatedAt {
                        key.extend_from_slice(&value);
                    }
                    if whole {
                        key.extend_from_slice(&index::pos(m));
                    } else if primary == SortKey::CreatedAt {
                        key.extend_from_slice(&value);
                        if dir == SortDir::Desc {
                            key.extend_from_slice(&[0xff; index::POS_LEN - 8 + 1]);
                        }
                    } else if dir == SortDir::Desc {
                        key.extend_from_slice(&[0xff; 40]);
                    }
                }
            }
            key
        });
        let range = match (marker_key, dir) {
            (None, _) => tree.scan_prefix(&prefix),
            (Some(from), SortDir::Asc) => tree.range(from..),
            (Some(to), SortDir::Desc) => tree.range(..=to),
        };
        let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = match dir {
            SortDir::Asc => Box::new(range),
            SortDir::Desc => Box::new(range.rev()),
        };
        let after_marker =
            |i: &Image| marker.is_none_or(|m| ImageQuery::compare(sort, i, m) == Ordering::Greater);
        let mut page: Vec<Image> = Vec::new();
        let mut resume: Option<Image> = None;
        let mut group: Vec<Image> = Vec::new();
        let mut group_key: Option<Vec<u8>> = None;
        let mut spent = false;
        for item in iter {
            let (key, value) = item.map_err(engine)?;
            if !key.starts_with(&prefix) {
                break;
            }
            let mut entry_pos = None;
            let (id, value_part) = if field.is_some() {
                let Some(p) = index::pos_of_key(&key) else {
                    continue;
                };
                entry_pos = Some(p);
                let value = if primary == SortKey::CreatedAt {
                    p[..8].to_vec()
                } else {
                    index::value_part(&key).to_vec()
                };
                (index::id_of(&p), value)
            } else {
                (codec::id_of_index_key(&key)?, key.to_vec())
            };
            let cut = text_key && codec::text_was_cut(&value_part);
            let this_group = if exact && !cut {
                key.to_vec()
            } else if cut {
                codec::sort_group(&value_part).to_vec()
            } else {
                value_part
            };
            if group_key.as_ref() != Some(&this_group) {
                self.flush(sort, &mut group, &mut page, &mut resume, &after_marker)?;
                if page.len() > self.query.limit {
                    break;
                }
                if self.budget.exhausted()
                    && self.stop_on_budget(!page.is_empty(), resume.is_some())?
                {
                    spent = true;
                    break;
                }
                group_key = Some(this_group);
            }
            // A group is sorted whole before any of it is emitted: a group beyond three
            // budgets (a mixed-direction sort over a common value) is refused.
            if self.budget.spent >= self.query.budget.saturating_mul(3) {
                return Err(RegistryError::TooCostly(format!(
                    "more than {} images share one {} value",
                    group.len(),
                    primary.as_str()
                )));
            }
            let image = if field.is_some() {
                match self.fetch(id)? {
                    Some(i) if entry_pos == Some(index::pos(&i)) => i,
                    _ => continue, // gone, or an entry a racing write left behind
                }
            } else {
                self.budget.charge();
                decode_image(&value)?
            };
            group.push(image);
        }
        if !spent {
            self.flush(sort, &mut group, &mut page, &mut resume, &after_marker)?;
            resume = None;
        }
        Ok(self.page(page, resume))
    }

    /// Emits a group of images equal on the walk's key, in the full order.
    fn flush(
        &self,
        sort: &[(SortKey, SortDir)],
        group: &mut Vec<Image>,
        page: &mut Vec<Image>,
        resume: &mut Option<Image>,
        after_marker: &dyn Fn(&Image) -> bool,
    ) -> Result<()> {
        group.sort_by(|a, b| ImageQuery::compare(sort, a, b));
        for image in group.drain(..) {
            if !after_marker(&image) {
                continue;
            }
            if page.len() <= self.query.limit && self.admits(&image)? {
                page.push(image.clone());
            }
            if self.visible(&image)? {
                *resume = Some(image);
            }
        }
        Ok(())
    }
}

/// One cursor for several: their union.
fn union(mut parts: Vec<Cursor>) -> Cursor {
    if parts.len() == 1 {
        parts.pop().expect("one part")
    } else {
        Cursor::Union(parts)
    }
}
