//! Counts of what a populate run wrote (per status, visibility, tag, distro, owner…): the
//! summary printed after a run and what the probes pick their rare and common values from.

use std::collections::{BTreeMap, HashMap};

use super::catalogue::Entry;

#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub images: u64,
    pub members: u64,
    pub status: BTreeMap<&'static str, u64>,
    pub visibility: BTreeMap<&'static str, u64>,
    pub member_status: BTreeMap<&'static str, u64>,
    pub disk_format: BTreeMap<String, u64>,
    pub protected: u64,
    pub os_hidden: u64,
    pub tags: HashMap<String, u64>,
    pub distros: BTreeMap<String, u64>,
    pub owners: HashMap<String, u64>,
}

fn bump<K: Ord>(map: &mut BTreeMap<K, u64>, key: K) {
    *map.entry(key).or_default() += 1;
}

impl Tally {
    pub fn add(&mut self, entry: &Entry) {
        let image = &entry.image;
        self.images += 1;
        self.members += entry.members.len() as u64;
        bump(&mut self.status, image.status.as_str());
        bump(&mut self.visibility, image.visibility.as_str());
        for m in &entry.members {
            bump(&mut self.member_status, m.status.as_str());
        }
        if let Some(f) = &image.disk_format {
            bump(&mut self.disk_format, f.clone());
        }
        self.protected += u64::from(image.protected);
        self.os_hidden += u64::from(image.os_hidden);
        for tag in &image.tags {
            *self.tags.entry(tag.clone()).or_default() += 1;
        }
        if let Some(d) = image.properties.get("os_distro") {
            bump(&mut self.distros, d.clone());
        }
        if let Some(o) = &image.owner {
            *self.owners.entry(o.clone()).or_default() += 1;
        }
    }

    pub fn merge(&mut self, other: Tally) {
        self.images += other.images;
        self.members += other.members;
        for (k, v) in other.status {
            *self.status.entry(k).or_default() += v;
        }
        for (k, v) in other.visibility {
            *self.visibility.entry(k).or_default() += v;
        }
        for (k, v) in other.member_status {
            *self.member_status.entry(k).or_default() += v;
        }
        for (k, v) in other.disk_format {
            *self.disk_format.entry(k).or_default() += v;
        }
        self.protected += other.protected;
        self.os_hidden += other.os_hidden;
        for (k, v) in other.tags {
            *self.tags.entry(k).or_default() += v;
        }
        for (k, v) in other.distros {
            *self.distros.entry(k).or_default() += v;
        }
        for (k, v) in other.owners {
            *self.owners.entry(k).or_default() += v;
        }
    }

    /// The most frequent tag (ties: the smallest name).
    pub fn common_tag(&self) -> Option<(&str, u64)> {
        self.tags
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(k, v)| (k.as_str(), *v))
    }

    /// The least frequent tag that occurs (ties: the smallest name).
    pub fn rare_tag(&self) -> Option<(&str, u64)> {
        self.tags
            .iter()
            .min_by(|a, b| a.1.cmp(b.1).then(a.0.cmp(b.0)))
            .map(|(k, v)| (k.as_str(), *v))
    }

    /// The least frequent os_distro that occurs (ties: the smallest name).
    pub fn rare_distro(&self) -> Option<(&str, u64)> {
        self.distros
            .iter()
            .min_by(|a, b| a.1.cmp(b.1).then(a.0.cmp(b.0)))
            .map(|(k, v)| (k.as_str(), *v))
    }

    /// A few lines for the log: the mix as written.
    pub fn summary(&self) -> String {
        format!(
            "  status: {}\n  visibility: {}\n  members: {} ({})\n  disk_format: {}; \
             protected {}, os_hidden {}\n  {} distinct tags, {} owners, {} distros\n",
            join(&self.status),
            join(&self.visibility),
            self.members,
            join(&self.member_status),
            join(&self.disk_format),
            self.protected,
            self.os_hidden,
            self.tags.len(),
            self.owners.len(),
            self.distros.len()
        )
    }
}

fn join<K: std::fmt::Display>(map: &BTreeMap<K, u64>) -> String {
    let parts: Vec<String> = map.iter().map(|(k, v)| format!("{k} {v}")).collect();
    parts.join(", ")
}
