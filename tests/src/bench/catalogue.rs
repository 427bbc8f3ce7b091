//! The benchmark catalogue: image `i` of a catalogue of `count` images under a seed, as a
//! pure function of (seed, count, i), so any number of tasks can write it in any order and
//! the result is the same. The mix (written down in BENCHMARKS.md, "Scale (issue 23)"):
//!
//! - owners: `projects` projects (1000 by default) with Zipf(1.0) sizes;
//! - visibility: 60 % private, 15 % public, 10 % shared (1–3 members each, other projects
//!   drawn uniformly, member status 60 % accepted / 25 % pending / 15 % rejected), 15 %
//!   community;
//! - status: 88 % active, 5 % queued, 2.5 % deactivated, 2 % pending_delete, 1.5 % killed,
//!   1 % importing (no saving or uploading: the server's start-up sweeps revert those);
//! - active, deactivated and pending_delete images have data: size (log-uniform 12 MiB to
//!   80 GiB), virtual size, md5 checksum, sha512 os_hash_value, one `fs` location;
//! - disk format 55 % qcow2 / 30 % raw / 10 % vmdk / 5 % iso, container bare (vmdk: 60 % ovf);
//! - names `distro-version-variant-NNNNNNN` (unique) for 75 %, `distro-version-variant-K`
//!   (K in 1..=9, repeated) for 24 %, none for 1 %;
//! - os_distro: 18 distros (Zipf 1.2) and, for 0.1 % of images, one of 4 exotic ones;
//! - 0–3 tags from 40 common ones (Zipf 1.0) and, for 5 % of images, one of 1000 rare
//!   `ticket-NNNN` tags; os_distro and os_version always, plus 0–6 of ten other properties;
//! - protected 5 %, os_hidden 3 %; created_at strictly increasing with the index over
//!   2019-01-01 .. 2025-12-01, updated_at minutes (80 %) or up to a year later.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, TimeZone, Utc};
use glass_registry::{Image, ImageStatus, Location, Member, MemberStatus, Timestamp, Visibility};

use super::rng::{Rng, Weighted};

/// Streams of the per-item generators.
const IMAGE_STREAM: u64 = 1;
const PROJECT_STREAM: u64 = 2;

/// (value, weight per mille).
const VISIBILITIES: &[(Visibility, u64)] = &[
    (Visibility::Private, 600),
    (Visibility::Public, 150),
    (Visibility::Shared, 100),
    (Visibility::Community, 150),
];

const STATUSES: &[(ImageStatus, u64)] = &[
    (ImageStatus::Active, 880),
    (ImageStatus::Queued, 50),
    (ImageStatus::Deactivated, 25),
    (ImageStatus::PendingDelete, 20),
    (ImageStatus::Killed, 15),
    (ImageStatus::Importing, 10),
];

const MEMBER_STATUSES: &[(MemberStatus, u64)] = &[
    (MemberStatus::Accepted, 600),
    (MemberStatus::Pending, 250),
    (MemberStatus::Rejected, 150),
];

const DISK_FORMATS: &[(&str, u64)] = &[("qcow2", 550), ("raw", 300), ("vmdk", 100), ("iso", 50)];

/// Distros in order of popularity (Zipf 1.2 over this order), each with its versions.
const DISTROS: &[(&str, &[&str])] = &[
    ("ubuntu", &["18.04", "20.04", "22.04", "24.04"]),
    ("centos", &["7", "8-stream", "9-stream"]),
    ("rhel", &["8.8", "9.2", "9.4"]),
    ("debian", &["10", "11", "12"]),
    ("windows", &["2016", "2019", "2022"]),
    ("rocky", &["8", "9"]),
    ("almalinux", &["8", "9"]),
    ("fedora", &["38", "39", "40"]),
    ("opensuse", &["15.5", "15.6"]),
    ("sles", &["15-sp5", "15-sp6"]),
    ("alpine", &["3.18", "3.19", "3.20"]),
    ("cirros", &["0.6.2"]),
    ("flatcar", &["3815", "3975"]),
    ("freebsd", &["13.2", "14.0"]),
    ("arch", &["2024.01"]),
    ("gentoo", &["2024"]),
    ("openbsd", &["7.5"]),
    ("haiku", &["r1b4"]),
];

/// Distros few images run: 0.1 % of images, drawn uniformly.
const EXOTIC_DISTROS: &[(&str, &[&str])] = &[
    ("plan9", &["4"]),
    ("illumos", &["2024"]),
    ("reactos", &["0.4.14"]),
    ("kolibri", &["0.7.7"]),
];

const VARIANTS: &[&str] = &[
    "server", "minimal", "cloud", "gpu", "desktop", "hardened", "snapshot",
];

/// Common tags in order of popularity (Zipf 1.0).
const TAGS: &[&str] = &[
    "prod",
    "golden",
    "ci",
    "latest",
    "base",
    "nightly",
    "test",
    "dev",
    "staging",
    "lts",
    "k8s",
    "gpu",
    "web",
    "db",
    "docker",
    "backup",
    "hardened",
    "cis",
    "hpc",
    "cache",
    "ml",
    "cuda",
    "fips",
    "legacy",
    "beta",
    "arm",
    "jenkins",
    "gitlab",
    "nginx",
    "postgres",
    "mysql",
    "redis",
    "kafka",
    "sap",
    "oracle",
    "deprecated",
    "pci-dss",
    "audit-2023",
    "migration",
    "customer-acme",
];

/// Rare tags `ticket-0000` .. `ticket-0999`: 5 % of images carry one.
const RARE_TAGS: u64 = 1000;

/// Extra properties beside os_distro and os_version: (key, values); `instance_uuid` is
/// generated (unique per image).
const PROPERTIES: &[(&str, &[&str])] = &[
    (
        "architecture",
        &["x86_64", "x86_64", "x86_64", "x86_64", "aarch64"],
    ),
    (
        "hypervisor_type",
        &["qemu", "qemu", "kvm", "vmware", "hyperv"],
    ),
    ("hw_disk_bus", &["virtio", "virtio", "scsi", "sata", "ide"]),
    ("hw_vif_model", &["virtio", "virtio", "e1000", "vmxnet3"]),
    ("hw_firmware_type", &["bios", "bios", "uefi"]),
    ("hw_qemu_guest_agent", &["yes", "no"]),
    ("img_config_drive", &["optional", "mandatory"]),
    (
        "os_admin_user",
        &["root", "cloud-user", "admin", "Administrator"],
    ),
    ("image_type", &["image", "image", "snapshot"]),
    ("instance_uuid", &[]),
];

fn weighted<T: Copy>(rng: &mut Rng, table: &[(T, u64)]) -> T {
    let total: u64 = table.iter().map(|(_, w)| w).sum();
    let mut x = rng.below(total);
    for (value, w) in table {
        if x < *w {
            return *value;
        }
        x -= w;
    }
    table[table.len() - 1].0
}

/// One image and the members it is shared with.
#[derive(Debug, Clone)]
pub struct Entry {
    pub image: Image,
    pub members: Vec<Member>,
}

impl Entry {
    /// Listed to an admin by default (not community, not killed, not hidden)?
    pub fn admin_listed(&self) -> bool {
        let i = &self.image;
        i.visibility != Visibility::Community && i.status != ImageStatus::Killed && !i.os_hidden
    }

    /// Does its name end in the index (a name no other image has)?
    pub fn unique_name(&self, index: usize) -> bool {
        self.image
            .name
            .as_deref()
            .is_some_and(|n| n.ends_with(&format!("-{index:07}")))
    }
}

/// A catalogue of `count` images: the generator of each.
pub struct Catalogue {
    seed: u64,
    count: usize,
    projects: Vec<String>,
    owners: Weighted,
    distros: Weighted,
    tags: Weighted,
    start: Timestamp,
    step_us: i64,
}

impl Catalogue {
    pub fn new(seed: u64, count: usize, projects: usize) -> Catalogue {
        assert!(
            projects >= 2,
            "need at least two projects (members are others)"
        );
        let projects: Vec<String> = (0..projects as u64)
            .map(|p| Rng::for_item(seed, PROJECT_STREAM, p).hex(16))
            .collect();
        let start = Utc.with_ymd_and_hms(2019, 1, 1, 0, 0, 0).unwrap();
        let end = Utc.with_ymd_and_hms(2025, 12, 1, 0, 0, 0).unwrap();
        let span_us = (end - start).num_microseconds().unwrap_or(i64::MAX);
        let owners = Weighted::zipf(projects.len(), 1.0);
        Catalogue {
            seed,
            count,
            owners,
            projects,
            distros: Weighted::zipf(DISTROS.len(), 1.2),
            tags: Weighted::zipf(TAGS.len(), 1.0),
            start,
            step_us: (span_us / count.max(1) as i64).max(1),
        }
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// Project ids by rank: rank 0 owns the most images.
    pub fn projects(&self) -> &[String] {
        &self.projects
    }

    /// When image `index` was created: strictly increasing with the index, so the default
    /// order (newest first) is the reverse index order.
    pub fn created_at(&self, index: usize) -> Timestamp {
        let mut rng = Rng::for_item(self.seed, IMAGE_STREAM, index as u64);
        let jitter = rng.below(self.step_us as u64) as i64;
        self.start + Duration::microseconds(index as i64 * self.step_us + jitter)
    }

    /// Image `index` with its members.
    pub fn entry(&self, index: usize) -> Entry {
        let mut rng = Rng::for_item(self.seed, IMAGE_STREAM, index as u64);
        // The first draw is created_at's jitter (see `created_at`).
        let _ = rng.below(self.step_us as u64);
        let created_at = self.created_at(index);
        let id = uuid::Builder::from_random_bytes(rng.bytes16()).into_uuid();
        let owner_rank = self.owners.sample(&mut rng);
        let mut image = Image::new(id, Some(self.projects[owner_rank].clone()));
        image.created_at = created_at;
        image.updated_at = if rng.per_mille(800) {
            created_at + Duration::seconds(rng.between(5, 3600) as i64)
        } else {
            created_at + Duration::seconds(rng.between(3600, 365 * 86_400) as i64)
        };
        image.visibility = weighted(&mut rng, VISIBILITIES);
        image.status = weighted(&mut rng, STATUSES);
        image.protected = rng.per_mille(50);
        image.os_hidden = rng.per_mille(30);

        let (distro, versions) = if rng.per_mille(1) {
            *rng.pick(EXOTIC_DISTROS)
        } else {
            DISTROS[self.distros.sample(&mut rng)]
        };
        let version = *rng.pick(versions);
        let variant = *rng.pick(VARIANTS);
        image.name = match rng.below(100) {
            0 => None,
            1..=24 => Some(format!(
                "{distro}-{version}-{variant}-{}",
                rng.between(1, 9)
            )),
            _ => Some(format!("{distro}-{version}-{variant}-{index:07}")),
        };

        let disk_format = weighted(&mut rng, DISK_FORMATS);
        let container = if disk_format == "vmdk" && rng.per_mille(600) {
            "ovf"
        } else {
            "bare"
        };
        let formats_known = image.status != ImageStatus::Queued || rng.per_mille(700);
        if formats_known {
            image.disk_format = Some(disk_format.into());
            image.container_format = Some(container.into());
        }
        image.min_ram = *rng.pick(&[0, 0, 512, 1024, 2048]);
        if matches!(
            image.status,
            ImageStatus::Active | ImageStatus::Deactivated | ImageStatus::PendingDelete
        ) {
            self.add_data(&mut rng, &mut image, disk_format);
        }

        self.add_tags(&mut rng, &mut image);
        image.properties = properties(&mut rng, distro, version, variant);
        let members = if image.visibility == Visibility::Shared {
            self.members(&mut rng, &image, owner_rank)
        } else {
            Vec::new()
        };
        Entry { image, members }
    }

    fn add_data(&self, rng: &mut Rng, image: &mut Image, disk_format: &str) {
        // Log-uniform between 12 MiB and 80 GiB.
        let (lo, hi) = ((12u64 << 20) as f64, (80u64 << 30) as f64);
        let size = (lo * (hi / lo).powf(rng.unit())) as u64;
        image.size = Some(size);
        image.virtual_size = Some(match disk_format {
            "qcow2" => size * rng.between(1, 8),
            "vmdk" => size * 2,
            _ => size,
        });
        let gib = image.virtual_size.unwrap_or(size).div_ceil(1 << 30);
        image.min_disk = if rng.per_mille(500) { gib } else { 0 };
        image.checksum = Some(rng.hex(16));
        image.os_hash_algo = Some("sha512".into());
        image.os_hash_value = Some(rng.hex(64));
        image.locations = vec![Location {
            url: format!("file:///var/lib/glass/images/{}", image.id),
            metadata: BTreeMap::new(),
            store: "fs".into(),
            blake3: Some(rng.hex(32)),
        }];
    }

    fn add_tags(&self, rng: &mut Rng, image: &mut Image) {
        let n = rng.below(4);
        let mut tags = BTreeSet::new();
        for _ in 0..n {
            tags.insert(TAGS[self.tags.sample(rng)].to_string());
        }
        if rng.per_mille(50) {
            tags.insert(rare_tag(rng.below(RARE_TAGS)));
        }
        image.tags = tags;
    }

    fn members(&self, rng: &mut Rng, image: &Image, owner_rank: usize) -> Vec<Member> {
        let n = rng.between(1, 3) as usize;
        let mut ranks = BTreeSet::new();
        while ranks.len() < n.min(self.projects.len() - 1) {
            let rank = rng.below(self.projects.len() as u64) as usize;
            if rank != owner_rank {
                ranks.insert(rank);
            }
        }
        ranks
            .into_iter()
            .map(|rank| {
                let created = image.created_at + Duration::seconds(rng.below(30 * 86_400) as i64);
                Member {
                    image_id: image.id,
                    member_id: self.projects[rank].clone(),
                    status: weighted(rng, MEMBER_STATUSES),
                    created_at: created,
                    updated_at: created + Duration::seconds(rng.below(86_400) as i64),
                }
            })
            .collect()
    }
}

pub fn rare_tag(k: u64) -> String {
    format!("ticket-{k:04}")
}

fn properties(
    rng: &mut Rng,
    distro: &str,
    version: &str,
    variant: &str,
) -> BTreeMap<String, String> {
    let mut props = BTreeMap::new();
    props.insert("os_distro".to_string(), distro.to_string());
    props.insert("os_version".to_string(), version.to_string());
    let extra = rng.below(7) as usize;
    let mut keys: Vec<usize> = (0..PROPERTIES.len()).collect();
    for k in 0..extra {
        // A partial Fisher–Yates shuffle: `extra` distinct keys.
        let j = k + rng.below((keys.len() - k) as u64) as usize;
        keys.swap(k, j);
        let (key, values) = PROPERTIES[keys[k]];
        let value = match key {
            "instance_uuid" => uuid::Builder::from_random_bytes(rng.bytes16())
                .into_uuid()
                .to_string(),
            "image_type" if variant == "snapshot" => "snapshot".to_string(),
            "os_admin_user" if distro == "windows" => "Administrator".to_string(),
            _ => rng.pick(values).to_string(),
        };
        props.insert(key.to_string(), value);
    }
    props
}
