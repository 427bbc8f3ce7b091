//! Walking the index tree in listing order: a [`Cursor`] answers "the first position at or
//! after this one (in the walk's direction) that I hold", by one seek of sled's B-tree. A
//! prefix is one field value; a union is an `in:` list or a viewer's scope; an intersection
//! leapfrogs its members (each seeks to the furthest position any other reached), so a
//! conjunction of filters costs seeks in proportion to the rarest of them, never a walk of the
//! catalogue. Every seek is charged to the query's [`Budget`].

use sled::Tree;

use super::index::{POS_LEN, Pos};
use super::tx::engine;
use crate::error::Result;
use crate::query::SortDir;

/// The work a query may still do; every seek and every record read costs one.
#[derive(Debug)]
pub struct Budget {
    pub limit: usize,
    pub spent: usize,
}

impl Budget {
    pub fn new(limit: usize) -> Self {
        Budget { limit, spent: 0 }
    }

    pub fn charge(&mut self) {
        self.spent += 1;
    }

    pub fn exhausted(&self) -> bool {
        self.spent >= self.limit
    }
}

/// What a seek found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seek {
    At(Pos),
    /// Nothing at or after the target.
    End,
    /// The budget ran out first.
    Spent,
}

/// A set of positions in the index, walked in one direction.
#[derive(Debug, Clone)]
pub enum Cursor {
    /// The positions of the index entries under one key prefix (a field value).
    Prefix(Vec<u8>),
    /// Given positions, ascending (`id` filters: the images were read to place them).
    Fixed(Vec<Pos>),
    /// Positions any member holds.
    Union(Vec<Cursor>),
    /// Positions every member holds.
    And(Vec<Cursor>),
}

/// `a` comes before `b` in direction `dir`.
fn before(dir: SortDir, a: &Pos, b: &Pos) -> bool {
    match dir {
        SortDir::Asc => a < b,
        SortDir::Desc => a > b,
    }
}

/// The position right after `p` in direction `dir`, if any.
pub fn succ(dir: SortDir, p: &Pos) -> Option<Pos> {
    let mut out = *p;
    for i in (0..POS_LEN).rev() {
        match dir {
            SortDir::Asc if out[i] == 0xff => out[i] = 0,
            SortDir::Asc => {
                out[i] += 1;
                return Some(out);
            }
            SortDir::Desc if out[i] == 0 => out[i] = 0xff,
            SortDir::Desc => {
                out[i] -= 1;
                return Some(out);
            }
        }
    }
    None
}

/// The first position of a walk in direction `dir`.
pub fn start(dir: SortDir) -> Pos {
    match dir {
        SortDir::Asc => [0; POS_LEN],
        SortDir::Desc => [0xff; POS_LEN],
    }
}

/// Progress an intersection made that a resumed walk may skip: the furthest position held by
/// its first member (the viewer's scope, when there is one: an image the viewer may see) that
/// another member ruled out.
#[derive(Debug, Default)]
pub struct Settled(pub Option<Pos>);

impl Cursor {
    /// The first position at or after `target` in direction `dir`.
    pub fn seek(
        &self,
        tree: &Tree,
        target: &Pos,
        dir: SortDir,
        budget: &mut Budget,
        settled: &mut Settled,
    ) -> Result<Seek> {
        if budget.exhausted() {
            return Ok(Seek::Spent);
        }
        match self {
            Cursor::Prefix(prefix) => {
                budget.charge();
                let mut key = prefix.clone();
                key.extend_from_slice(target);
                let found = match dir {
                    SortDir::Asc => tree.range(key..).next(),
                    SortDir::Desc => tree.range(prefix.clone()..=key).next_back(),
                };
                let Some(item) = found else {
                    return Ok(Seek::End);
                };
                let (k, _) = item.map_err(engine)?;
                if !k.starts_with(prefix) || k.len() != prefix.len() + POS_LEN {
                    return Ok(Seek::End);
                }
                let mut p = [0; POS_LEN];
                p.copy_from_slice(&k[prefix.len()..]);
                Ok(Seek::At(p))
            }
            Cursor::Fixed(all) => {
                budget.charge();
                let i = all.partition_point(|p| p < target);
                let found = match dir {
                    SortDir::Asc => all.get(i),
                    SortDir::Desc => {
                        let end = if all.get(i) == Some(target) { i + 1 } else { i };
                        end.checked_sub(1).and_then(|j| all.get(j))
                    }
                };
                Ok(found.map_or(Seek::End, |p| Seek::At(*p)))
            }
            Cursor::Union(members) => {
                let mut best: Option<Pos> = None;
                for m in members {
                    match m.seek(tree, target, dir, budget, &mut Settled::default())? {
                        Seek::Spent => return Ok(Seek::Spent),
                        Seek::End => {}
                        Seek::At(p) => {
                            if best.is_none_or(|b| before(dir, &p, &b)) {
                                best = Some(p);
                            }
                        }
                    }
                }
                Ok(best.map_or(Seek::End, Seek::At))
            }
            Cursor::And(members) => {
                let n = members.len();
                let mut t = *target;
                // Whether the first member holds `t` (so the image there is one the viewer may
                // see), and how many members in a row hold it.
                let mut first_holds = false;
                let mut agree = 0;
                let mut i = 0;
                loop {
                    match members[i].seek(tree, &t, dir, budget, &mut Settled::default())? {
                        Seek::At(p) if p == t => {
                            first_holds |= i == 0;
                            agree += 1;
                            if agree >= n {
                                return Ok(Seek::At(t));
                            }
                        }
                        Seek::At(p) => {
                            // `t` is ruled out: everything before `p` is settled.
                            if first_holds {
                                settled.0 = Some(t);
                            }
                            t = p;
                            first_holds = i == 0;
                            agree = 1;
                        }
                        other => return Ok(other),
                    }
                    i = (i + 1) % n;
                }
            }
        }
    }
}
