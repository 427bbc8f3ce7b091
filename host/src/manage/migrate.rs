//! `glass manage migrate-registry --from sled:DIR|postgres:URL --to sled:DIR|postgres:URL`:
//! copies a registry (images with their revisions, locations and properties; members;
//! tasks; metadata definitions and resource types) from one engine to another through the
//! [`Registry`] trait alone, then proves the copy: record counts and a SHA-256 over the
//! canonical form of every record, computed on both sides, must match.
//!
//! Idempotent: a record the destination already holds unchanged is left alone, one that
//! differs is replaced, so a second run copies nothing and an interrupted run can be run
//! again. `--prune` also removes what the destination has and the source does not. The
//! servers of both registries should be stopped (sled refuses to open a registry a running
//! server holds).
//!
//! Revisions are carried over: the trait creates at revision 1 and every write adds one, so
//! an image is created, its members added (each bumps it), then rewritten until it reaches
//! the source's revision. Resource types are created through throwaway namespaces that
//! associate with them (imported for protected ones, created for the others), which leave
//! the types behind with their `created_at`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use glass_registry::{
    Image, Member, MetadefAssociation, MetadefDefinition, MetadefNamespace, MetadefVisibility,
    PostgresOptions, PostgresRegistry, Registry, SledRegistry, Task,
};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

/// One side of a migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A sled registry directory (`<data_dir>/registry`).
    Sled(PathBuf),
    /// A PostgreSQL URL (or libpq key/value string).
    Postgres(String),
}

impl std::str::FromStr for Endpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(dir) = s.strip_prefix("sled:") {
            return Ok(Endpoint::Sled(PathBuf::from(dir)));
        }
        if let Some(url) = s.strip_prefix("postgres:")
            && !url.starts_with("//")
        {
            return Ok(Endpoint::Postgres(url.to_string()));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(Endpoint::Postgres(s.to_string()));
        }
        Err(format!(
            "{s:?}: expected sled:DIR, postgres:URL or a postgres:// URL"
        ))
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Sled(dir) => write!(f, "sled:{}", dir.display()),
            // The URL may carry a password: name the engine only.
            Endpoint::Postgres(_) => f.write_str("postgres"),
        }
    }
}

impl Endpoint {
    pub async fn open(&self) -> anyhow::Result<Arc<dyn Registry>> {
        Ok(match self {
            Endpoint::Sled(dir) => {
                if !dir.join("conf").exists() && !dir.join("db").exists() {
                    std::fs::create_dir_all(dir)?;
                }
                Arc::new(SledRegistry::open(dir).with_context(|| {
                    format!(
                        "opening the sled registry in {} (is glass serve running on it?)",
                        dir.display()
                    )
                })?)
            }
            Endpoint::Postgres(url) => Arc::new(
                PostgresRegistry::connect(&PostgresOptions {
                    url: url.clone(),
                    pool_size: 4,
                })
                .await
                .context("connecting to the PostgreSQL registry")?,
            ),
        })
    }
}

/// What one kind of record saw during a copy.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub written: usize,
    pub unchanged: usize,
    pub pruned: usize,
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} written, {} unchanged, {} pruned",
            self.written, self.unchanged, self.pruned
        )
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// Images, with their members.
    pub images: Tally,
    pub tasks: Tally,
    pub namespaces: Tally,
    /// Resource types created (they are never changed or removed).
    pub resource_types: Tally,
}

/// Record counts and the SHA-256 of a registry's canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub counts: BTreeMap<&'static str, usize>,
    pub sha256: String,
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (kind, n) in &self.counts {
            write!(f, "{kind} {n}, ")?;
        }
        write!(f, "sha256 {}", self.sha256)
    }
}

fn sorted_definition(mut def: MetadefDefinition) -> MetadefDefinition {
    def.properties.sort_by(|a, b| a.name.cmp(&b.name));
    def.objects.sort_by(|a, b| a.name.cmp(&b.name));
    def.tags.sort_by(|a, b| a.name.cmp(&b.name));
    def.associations.sort_by(|a, b| a.name.cmp(&b.name));
    def
}

async fn members_of(r: &dyn Registry, id: Uuid) -> anyhow::Result<Vec<Member>> {
    let mut members = r.list_members(id).await?;
    members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    Ok(members)
}

/// Counts and a hash over every record in canonical order (images by id, each followed by
/// its members by member id; tasks by id; namespaces by name with their contents by name;
/// resource types by name), each record as its JSON form.
pub async fn fingerprint(r: &dyn Registry) -> anyhow::Result<Fingerprint> {
    let mut hash = Sha256::new();
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut line = |kind: &'static str, json: String| {
        *counts.entry(kind).or_default() += 1;
        hash.update(kind.as_bytes());
        hash.update(b" ");
        hash.update(json.as_bytes());
        hash.update(b"\n");
    };
    let mut ids = r.image_ids().await?;
    ids.sort();
    for id in ids {
        let Some(image) = r.get_image(id).await? else {
            bail!("image {id} vanished while reading: is a server writing to the registry?");
        };
        line("images", serde_json::to_string(&image)?);
        for m in members_of(r, id).await? {
            line("members", serde_json::to_string(&m)?);
        }
    }
    let mut tasks = r.list_tasks(None).await?;
    tasks.sort_by_key(|t| t.id);
    for t in tasks {
        line("tasks", serde_json::to_string(&t)?);
    }
    let mut names: Vec<String> = r
        .list_metadef_namespaces()
        .await?
        .into_iter()
        .map(|n| n.namespace)
        .collect();
    names.sort();
    for name in names {
        let Some(def) = r.get_metadef_definition(&name).await? else {
            bail!("namespace {name} vanished while reading");
        };
        line(
            "namespaces",
            serde_json::to_string(&sorted_definition(def))?,
        );
    }
    let mut types = r.list_metadef_resource_types().await?;
    types.sort_by(|a, b| a.name.cmp(&b.name));
    for t in types {
        line("resource_types", serde_json::to_string(&t)?);
    }
    for kind in ["images", "members", "tasks", "namespaces", "resource_types"] {
        counts.entry(kind).or_default();
    }
    Ok(Fingerprint {
        counts,
        sha256: hex::encode(hash.finalize()),
    })
}

/// Writes `image` and `members` into `dst` from scratch, ending at the image's revision.
async fn write_image(dst: &dyn Registry, image: &Image, members: &[Member]) -> anyhow::Result<()> {
    let id = image.id;
    let mut revision = dst.create_image(image.clone()).await?.revision;
    for m in members {
        dst.add_member(m.clone()).await?;
        revision += 1;
    }
    while revision < image.revision {
        let mut next = image.clone();
        next.revision = revision;
        revision = dst
            .update_image(next)
            .await
            .with_context(|| format!("image {id}: bringing it to revision {}", image.revision))?
            .revision;
    }
    if revision != image.revision {
        bail!(
            "image {id}: its revision {} is lower than one write per member allows ({revision})",
            image.revision
        );
    }
    Ok(())
}

async fn copy_images(src: &dyn Registry, dst: &dyn Registry, prune: bool) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let source_ids: BTreeSet<Uuid> = src.image_ids().await?.into_iter().collect();
    for &id in &source_ids {
        let Some(image) = src.get_image(id).await? else {
            continue; // deleted since listed
        };
        let members = members_of(src, id).await?;
        if let Some(existing) = dst.get_image(id).await? {
            if existing == image && members_of(dst, id).await? == members {
                tally.unchanged += 1;
                continue;
            }
            dst.delete_image(id, existing.revision)
                .await
                .with_context(|| format!("image {id}: replacing the destination's copy"))?;
        }
        write_image(dst, &image, &members).await?;
        tally.written += 1;
    }
    if prune {
        for id in dst.image_ids().await? {
            if source_ids.contains(&id) {
                continue;
            }
            if let Some(extra) = dst.get_image(id).await? {
                dst.delete_image(id, extra.revision).await?;
                tally.pruned += 1;
            }
        }
    }
    Ok(tally)
}

/// Tasks have no delete: `--prune` leaves the destination's extra tasks (the fingerprints
/// then differ and say so).
async fn copy_tasks(src: &dyn Registry, dst: &dyn Registry) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    for task in src.list_tasks(None).await? {
        if dst.get_task(task.id).await?.as_ref() == Some(&task) {
            tally.unchanged += 1;
            continue;
        }
        // create_task replaces a task of that id, at revision 1.
        let mut stored: Task = dst.create_task(task.clone()).await?;
        while stored.revision < task.revision {
            let mut next = task.clone();
            next.revision = stored.revision;
            stored = dst.update_task(next).await?;
        }
        tally.written += 1;
    }
    Ok(tally)
}

/// A namespace no one will see for long, for creating resource types.
fn scratch_namespace(associations: Vec<MetadefAssociation>, name: &str) -> MetadefDefinition {
    let t = glass_registry::now();
    MetadefDefinition {
        namespace: MetadefNamespace {
            namespace: name.to_string(),
            display_name: None,
            description: Some("glass manage migrate-registry: removed when done".into()),
            visibility: MetadefVisibility::Private,
            protected: false,
            owner: None,
            created_at: t,
            updated_at: t,
        },
        properties: Vec::new(),
        objects: Vec::new(),
        tags: Vec::new(),
        associations,
    }
}

async fn copy_resource_types(src: &dyn Registry, dst: &dyn Registry) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let present: BTreeSet<String> = dst
        .list_metadef_resource_types()
        .await?
        .into_iter()
        .map(|t| t.name)
        .collect();
    let (mut protected, mut unprotected) = (Vec::new(), Vec::new());
    for rt in src.list_metadef_resource_types().await? {
        if present.contains(&rt.name) {
            tally.unchanged += 1;
            continue;
        }
        let name = format!("glass-migrate-{}", Uuid::new_v4().simple());
        let association = MetadefAssociation {
            namespace: name,
            name: rt.name.clone(),
            prefix: None,
            properties_target: None,
            created_at: rt.created_at,
            updated_at: rt.created_at,
        };
        match rt.protected {
            true => protected.push(association),
            false => unprotected.push(association),
        }
        tally.written += 1;
    }
    for (associations, protect) in [(protected, true), (unprotected, false)] {
        if associations.is_empty() {
            continue;
        }
        let name = format!("glass-migrate-{}", Uuid::new_v4().simple());
        let def = scratch_namespace(associations, &name);
        // An import creates missing types protected, a create unprotected.
        match protect {
            true => dst.import_metadef_namespace(def).await?,
            false => dst.create_metadef_namespace(def).await?,
        };
        dst.delete_metadef_namespace(&name).await?;
    }
    Ok(tally)
}

async fn copy_namespaces(
    src: &dyn Registry,
    dst: &dyn Registry,
    prune: bool,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let mut names = BTreeSet::new();
    for ns in src.list_metadef_namespaces().await? {
        let Some(def) = src.get_metadef_definition(&ns.namespace).await? else {
            continue;
        };
        names.insert(ns.namespace.clone());
        let existing = dst.get_metadef_definition(&ns.namespace).await?;
        if existing.clone().map(sorted_definition) == Some(sorted_definition(def.clone())) {
            tally.unchanged += 1;
            continue;
        }
        if existing.is_some() {
            dst.delete_metadef_namespace(&ns.namespace).await?;
        }
        // On a fresh namespace an import keeps every record as given.
        dst.import_metadef_namespace(def).await?;
        tally.written += 1;
    }
    if prune {
        for ns in dst.list_metadef_namespaces().await? {
            if !names.contains(&ns.namespace) {
                dst.delete_metadef_namespace(&ns.namespace).await?;
                tally.pruned += 1;
            }
        }
    }
    Ok(tally)
}

/// Makes `dst` hold what `src` holds (see the module doc).
pub async fn copy(
    src: &dyn Registry,
    dst: &dyn Registry,
    prune: bool,
) -> anyhow::Result<CopyReport> {
    Ok(CopyReport {
        images: copy_images(src, dst, prune)
            .await
            .context("copying images")?,
        tasks: copy_tasks(src, dst).await.context("copying tasks")?,
        resource_types: copy_resource_types(src, dst)
            .await
            .context("copying resource types")?,
        namespaces: copy_namespaces(src, dst, prune)
            .await
            .context("copying metadata definitions")?,
    })
}

/// The command: copy, then compare fingerprints; an error if they differ.
pub async fn run(from: &Endpoint, to: &Endpoint, prune: bool) -> anyhow::Result<()> {
    if from == to {
        bail!("--from and --to name the same registry");
    }
    let src = from.open().await.context("opening the source")?;
    let dst = to.open().await.context("opening the destination")?;
    let started = std::time::Instant::now();
    let report = copy(src.as_ref(), dst.as_ref(), prune).await?;
    println!(
        "copied {from} -> {to} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!("  images (with members): {}", report.images);
    println!("  tasks: {}", report.tasks);
    println!("  metadef namespaces: {}", report.namespaces);
    println!("  metadef resource types: {}", report.resource_types);
    let source = fingerprint(src.as_ref())
        .await
        .context("reading the source")?;
    let destination = fingerprint(dst.as_ref())
        .await
        .context("reading the destination")?;
    println!("source:      {source}");
    println!("destination: {destination}");
    if source != destination {
        bail!(
            "the destination does not match the source (records it has that the source lacks \
             are kept unless --prune; tasks and resource types are never removed)"
        );
    }
    println!("verified: same records, same hash");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use glass_registry::{
        ImageStatus, Location, MemberStatus, MetadefProperty, MetadefTag, TaskStatus,
    };
    use glass_registry_testing::TempCluster;

    fn member(image: Uuid, id: &str, status: MemberStatus) -> Member {
        Member {
            image_id: image,
            member_id: id.to_string(),
            status,
            created_at: glass_registry::now(),
            updated_at: glass_registry::now(),
        }
    }

    /// A registry with a bit of everything: images at various revisions, with members,
    /// locations, tags and properties; tasks; a namespace with contents; resource types
    /// protected and not, one no longer associated.
    async fn populate(r: &dyn Registry) {
        for i in 0..12u64 {
            let mut image = Image::new(Uuid::new_v4(), Some(format!("owner-{}", i % 3)));
            image.name = Some(format!("image {i}\u{0}with a NUL"));
            image.tags.insert(format!("tag-{i}"));
            image.properties.insert("os_distro".into(), "debian".into());
            let mut image = r.create_image(image).await.expect("create");
            for m in 0..(i % 3) {
                r.add_member(member(image.id, &format!("m{m}"), MemberStatus::Accepted))
                    .await
                    .expect("member");
            }
            image = r.get_image(image.id).await.expect("get").expect("image");
            for step in 0..(i % 4) {
                image.min_ram = step;
                image = r.update_image(image).await.expect("update");
            }
            if i % 2 == 0 {
                image.status = ImageStatus::Active;
                image.size = Some(i * 1000);
                image.locations.push(Location {
                    url: format!("file:///images/{}", image.id),
                    metadata: Default::default(),
                    store: "fs".into(),
                    blake3: Some("b3".into()),
                });
                r.update_image(image).await.expect("activate");
            }
        }
        for i in 0..3 {
            let t = glass_registry::now();
            let task = Task {
                id: Uuid::new_v4(),
                task_type: "import".into(),
                status: TaskStatus::Pending,
                owner: Some("owner-0".into()),
                image_id: None,
                user_id: None,
                request_id: None,
                input: serde_json::json!({"n": i}),
                result: None,
                message: String::new(),
                expires_at: None,
                created_at: t,
                updated_at: t,
                revision: 0,
            };
            let mut task = r.create_task(task).await.expect("task");
            for _ in 0..i {
                task.status = TaskStatus::Processing;
                task = r.update_task(task).await.expect("update task");
            }
        }
        let t = glass_registry::now();
        let ns = |name: &str| MetadefNamespace {
            namespace: name.into(),
            display_name: Some("Shown".into()),
            description: None,
            visibility: MetadefVisibility::Public,
            protected: true,
            owner: None,
            created_at: t,
            updated_at: t,
        };
        let assoc = |ns: &str, rt: &str| MetadefAssociation {
            namespace: ns.into(),
            name: rt.into(),
            prefix: Some("hw_".into()),
            properties_target: None,
            created_at: t,
            updated_at: t,
        };
        let mut def = MetadefDefinition::empty(ns("OS::Compute::Test"));
        def.properties.push(MetadefProperty {
            namespace: "OS::Compute::Test".into(),
            name: "cpu".into(),
            schema: serde_json::json!({"type": "integer"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            created_at: t,
            updated_at: t,
        });
        def.tags.push(MetadefTag {
            namespace: "OS::Compute::Test".into(),
            name: "fast".into(),
            created_at: t,
            updated_at: t,
        });
        def.associations
            .push(assoc("OS::Compute::Test", "OS::Glance::Image"));
        r.import_metadef_namespace(def).await.expect("import");
        let mut other = MetadefDefinition::empty(ns("Other"));
        other.associations.push(assoc("Other", "Custom::Type"));
        other.associations.push(assoc("Other", "Gone::Type"));
        r.create_metadef_namespace(other).await.expect("create ns");
        r.delete_metadef_association("Other", "Gone::Type")
            .await
            .expect("dissociate");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sled_to_postgres_and_back_is_exact_and_idempotent() {
        let cluster = TempCluster::shared().expect("postgres");
        let url = cluster
            .create_database(&format!("migrate_{}", Uuid::new_v4().simple()))
            .expect("database");
        let dir = tempfile::tempdir().expect("tempdir");
        let sled = Endpoint::Sled(dir.path().join("a"));
        let pg = Endpoint::Postgres(url);
        let back = Endpoint::Sled(dir.path().join("b"));

        let original = {
            let src = sled.open().await.expect("open sled");
            populate(src.as_ref()).await;
            fingerprint(src.as_ref()).await.expect("fingerprint")
        };
        assert_eq!(original.counts["images"], 12);
        assert_eq!(original.counts["members"], 12);
        assert_eq!(original.counts["resource_types"], 3);

        let (src, dst) = (sled.open().await.unwrap(), pg.open().await.unwrap());
        let report = copy(src.as_ref(), dst.as_ref(), false).await.expect("copy");
        assert_eq!(report.images.written, 12);
        assert_eq!(fingerprint(dst.as_ref()).await.unwrap(), original);
        // Again: nothing to do.
        let again = copy(src.as_ref(), dst.as_ref(), false)
            .await
            .expect("again");
        assert_eq!(
            (again.images, again.tasks.written, again.namespaces.written),
            (
                Tally {
                    written: 0,
                    unchanged: 12,
                    pruned: 0
                },
                0,
                0
            )
        );
        // A change in the destination is put right; an extra image is pruned.
        let id = src.image_ids().await.unwrap()[0];
        let mut changed = dst.get_image(id).await.unwrap().unwrap();
        changed.name = Some("changed".into());
        dst.update_image(changed).await.unwrap();
        dst.create_image(Image::new(Uuid::new_v4(), None))
            .await
            .unwrap();
        let fixed = copy(src.as_ref(), dst.as_ref(), true).await.expect("fix");
        assert_eq!((fixed.images.written, fixed.images.pruned), (1, 1));
        assert_eq!(fingerprint(dst.as_ref()).await.unwrap(), original);
        drop((src, dst));

        // And back into a fresh sled registry, through the command.
        run(&pg, &back, false).await.expect("postgres -> sled");
        let restored = back.open().await.unwrap();
        assert_eq!(fingerprint(restored.as_ref()).await.unwrap(), original);
    }

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            "sled:/var/lib/glass/registry".parse::<Endpoint>(),
            Ok(Endpoint::Sled("/var/lib/glass/registry".into()))
        );
        assert_eq!(
            "postgres:postgres://glass@db/glass".parse::<Endpoint>(),
            Ok(Endpoint::Postgres("postgres://glass@db/glass".into()))
        );
        assert_eq!(
            "postgres://glass@db/glass".parse::<Endpoint>(),
            Ok(Endpoint::Postgres("postgres://glass@db/glass".into()))
        );
        assert_eq!(
            "postgres:host=/run/postgresql dbname=glass".parse::<Endpoint>(),
            Ok(Endpoint::Postgres(
                "host=/run/postgresql dbname=glass".into()
            ))
        );
        assert!("mysql://x".parse::<Endpoint>().is_err());
    }
}
