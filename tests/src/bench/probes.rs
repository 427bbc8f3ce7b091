//! The values the scale benchmark asks for (an id to show, a name that exists once, a rare
//! and a common tag, a deep marker…), picked from the catalogue and its tally and written as
//! shell assignments for bench/scale.sh to source.

use std::fmt::Write as _;

use glass_registry::{ImageStatus, MemberStatus};

use super::catalogue::Catalogue;
use super::tally::Tally;

fn images(n: u64) -> String {
    if n == 1 {
        "1 image".into()
    } else {
        format!("{n} images")
    }
}

/// `(name, value, note)`: note says what the value is (how many images match…).
pub type Probe = (&'static str, String, String);

/// Picks the probes. Scans a few images from the middle of the catalogue onwards.
pub fn probes(catalogue: &Catalogue, tally: &Tally) -> Vec<Probe> {
    let count = catalogue.count();
    let projects = catalogue.projects();
    let mut out: Vec<Probe> = Vec::new();
    let mid = count / 2;

    // An active image listed to admins, with a name no other image has.
    if let Some((i, e)) = (mid..count)
        .chain(0..mid)
        .map(|i| (i, catalogue.entry(i)))
        .find(|(i, e)| {
            e.admin_listed() && e.image.status == ImageStatus::Active && e.unique_name(*i)
        })
    {
        let img = &e.image;
        out.push(("SHOW_ID", img.id.to_string(), format!("image #{i}")));
        out.push((
            "NAME_ONCE",
            img.name.clone().unwrap_or_default(),
            "1 image".into(),
        ));
        out.push((
            "CHECKSUM",
            img.checksum.clone().unwrap_or_default(),
            "1 image".into(),
        ));
        let hash = img.os_hash_value.clone().unwrap_or_default();
        out.push(("OS_HASH_VALUE", hash, "1 image".into()));
    }

    // A project that is a pending member of some image listed to it.
    if let Some((i, member)) = (mid..count).chain(0..mid).find_map(|i| {
        let e = catalogue.entry(i);
        let listed = e.image.status != ImageStatus::Killed && !e.image.os_hidden;
        e.members
            .iter()
            .find(|m| listed && m.status == MemberStatus::Pending)
            .map(|m| (i, m.member_id.clone()))
    }) {
        out.push((
            "MEMBER_PROJECT",
            member,
            format!("pending member of image #{i}"),
        ));
    }

    let owner_count = |p: &str| tally.owners.get(p).copied().unwrap_or(0);
    let owner = &projects[99.min(projects.len() - 1)];
    let note = format!("owner rank 100, {}", images(owner_count(owner)));
    out.push(("OWNER", owner.clone(), note));
    let project = &projects[9.min(projects.len() - 1)];
    let note = format!("project rank 10, {}", images(owner_count(project)));
    out.push(("PROJECT", project.clone(), note));

    if let Some((tag, n)) = tally.common_tag() {
        out.push(("TAG_COMMON", tag.into(), images(n)));
    }
    if let Some((tag, n)) = tally.rare_tag() {
        out.push(("TAG_RARE", tag.into(), images(n)));
    }
    if let Some((distro, n)) = tally.rare_distro() {
        out.push(("DISTRO_RARE", distro.into(), images(n)));
    }

    // ~90 % deep in the default order (newest first = highest index first).
    if count > 0 {
        let target = count - 1 - count * 9 / 10;
        if let Some(i) = (0..=target)
            .rev()
            .chain(target + 1..count)
            .find(|&i| catalogue.entry(i).admin_listed())
        {
            let depth = count - 1 - i;
            let id = catalogue.entry(i).image.id.to_string();
            out.push(("DEEP_MARKER", id, format!("{depth} images newer")));
        }
    }
    out
}

/// The probes as `NAME='value'  # note` lines (values never contain a quote).
pub fn shell(probes: &[Probe]) -> String {
    let mut out = String::new();
    for (name, value, note) in probes {
        let _ = writeln!(out, "{name}='{value}'  # {note}");
    }
    out
}
