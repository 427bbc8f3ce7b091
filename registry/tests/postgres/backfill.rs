//! Migration 3 on a database the previous release wrote: rows without the `checksum` and
//! `os_hash_value` columns get them from their records (in batches: more rows than one
//! batch), and their tags and properties become rows of image_labels, so the filters find
//! images stored before the upgrade; writes after it keep the columns up to date.

use std::collections::HashMap;

use glass_registry::postgres::{SCHEMA_VERSION, schema_version};
use glass_registry::{
    Filter, Image, ImageQuery, ImageStatus, Registry, TextField, Viewer, Visibility, now,
};
use uuid::Uuid;

use super::{connect, database, labels};

const ROWS: usize = 2_500;

/// A row's `checksum` and `os_hash_value`.
type Hashes = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Image `i`: checksum and hash, checksum only, or neither (queued).
fn old_image(i: usize) -> Image {
    let mut image = Image::new(Uuid::new_v4(), Some("p".into()));
    image.name = Some(format!("old-{i}"));
    image.visibility = Visibility::Public;
    match i % 3 {
        0 => {
            image.status = ImageStatus::Active;
            image.checksum = Some(format!("sum-{i}"));
            image.os_hash_algo = Some("sha512".into());
            image.os_hash_value = Some(format!("hash-{i}"));
        }
        1 => {
            image.status = ImageStatus::Active;
            image.checksum = Some(format!("sum-{i}"));
        }
        _ => {}
    }
    image.tags.insert(format!("old-{i}"));
    image
        .properties
        .insert("distro".into(), format!("d{}", i % 3));
    image
}

/// An extra property as versions 1 and 2 kept it in `properties`: the key's length (4
/// bytes, big-endian), the key, the value.
fn old_entry(key: &str, value: &str) -> Vec<u8> {
    let len = u32::try_from(key.len()).expect("key").to_be_bytes();
    [len.as_slice(), key.as_bytes(), value.as_bytes()].concat()
}

/// A record as versions 1 and 2 wrote it: format version 1, then JSON.
fn old_record(image: &Image) -> Vec<u8> {
    let mut record = vec![1u8];
    serde_json::to_writer(&mut record, image).expect("json");
    record
}

fn with(filter: Filter) -> ImageQuery {
    ImageQuery {
        viewer: Viewer {
            project: Some("admin".into()),
            is_admin: true,
        },
        filters: vec![filter],
        ..ImageQuery::default()
    }
}

fn by(field: TextField, value: &str) -> ImageQuery {
    with(Filter::Text {
        field,
        values: vec![value.to_string()],
    })
}

async fn ids(registry: &impl Registry, query: ImageQuery) -> Vec<Uuid> {
    let page = registry.list_images(query).await.expect("list");
    page.images.iter().map(|i| i.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_3_fills_hashes_and_labels_from_old_rows() {
    let (_cluster, url) = database("backfill");
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    // Schema version 2, as the previous release left it.
    client
        .batch_execute(&format!(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, \
             applied_at timestamptz NOT NULL DEFAULT now()); {} {} \
             INSERT INTO schema_migrations (version, name) VALUES (1, 'images'), (2, 'metadefs');",
            include_str!("../../migrations/0001_images.sql"),
            include_str!("../../migrations/0002_metadefs.sql"),
        ))
        .await
        .expect("version 2 schema");
    let images: Vec<Image> = (0..ROWS).map(old_image).collect();
    let ids_of: Vec<Uuid> = images.iter().map(|i| i.id).collect();
    let statuses: Vec<&str> = images.iter().map(|i| i.status.as_str()).collect();
    let records: Vec<Vec<u8>> = images.iter().map(old_record).collect();
    // One tag and one property each.
    let tags: Vec<Vec<u8>> = images
        .iter()
        .map(|i| i.tags.first().expect("tag").as_bytes().to_vec())
        .collect();
    let entries: Vec<Vec<u8>> = images
        .iter()
        .map(|i| old_entry("distro", &i.properties["distro"]))
        .collect();
    let t = now();
    client
        .execute(
            "INSERT INTO images (id, revision, status, visibility, owner, protected, os_hidden, \
             created_at, updated_at, tags, properties, record) \
             SELECT v.id, 1, v.status, 'public', 'p', false, false, $3, $3, ARRAY[v.tag], \
             ARRAY[v.entry], v.record \
             FROM unnest($1::uuid[], $2::text[], $4::bytea[], $5::bytea[], $6::bytea[]) \
             AS v (id, status, record, tag, entry)",
            &[&ids_of, &statuses, &t, &records, &tags, &entries],
        )
        .await
        .expect("version 2 rows");

    let registry = connect(&url).await;
    assert_eq!(
        schema_version(&registry).await.expect("version"),
        SCHEMA_VERSION
    );
    // Every row's columns are its record's values.
    let stored: HashMap<Uuid, Hashes> = client
        .query("SELECT id, checksum, os_hash_value FROM images", &[])
        .await
        .expect("columns")
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    assert_eq!(stored.len(), ROWS);
    for image in &images {
        let bytes = |s: &Option<String>| s.as_ref().map(|s| s.as_bytes().to_vec());
        assert_eq!(
            stored[&image.id],
            (bytes(&image.checksum), bytes(&image.os_hash_value)),
            "image {}",
            image.id
        );
    }
    // Each image's tag and property are label rows.
    assert_eq!(labels::assert_labels_in_step(&url).await, 2 * ROWS as i64);
    // The last rows of the last batch, and an image without any.
    for image in images.iter().rev().take(3) {
        let tag = image.tags.first().expect("tag");
        assert_eq!(
            ids(&registry, with(Filter::Tag(tag.clone()))).await,
            vec![image.id]
        );
        let distro = Filter::Property {
            key: "distro".into(),
            values: vec![image.properties["distro"].clone()],
        };
        let page = registry
            .list_images(with(distro.clone()))
            .await
            .expect("list");
        assert!(!page.images.is_empty());
        assert!(page.images.iter().all(|i| distro.matches(i)));
        if let Some(sum) = &image.checksum {
            assert_eq!(
                ids(&registry, by(TextField::Checksum, sum)).await,
                vec![image.id]
            );
        }
        if let Some(hash) = &image.os_hash_value {
            assert_eq!(
                ids(&registry, by(TextField::OsHashValue, hash)).await,
                vec![image.id]
            );
        }
    }

    // Writes after the upgrade keep the columns in step with the record.
    let mut image = registry
        .get_image(images[0].id)
        .await
        .expect("get")
        .expect("image");
    image.checksum = Some("new-sum".into());
    image.os_hash_value = None;
    registry.update_image(image.clone()).await.expect("update");
    assert_eq!(
        ids(&registry, by(TextField::Checksum, "new-sum")).await,
        vec![image.id]
    );
    let old_sum = images[0].checksum.clone().expect("sum");
    let old_hash = images[0].os_hash_value.clone().expect("hash");
    assert!(
        ids(&registry, by(TextField::Checksum, &old_sum))
            .await
            .is_empty()
    );
    assert!(
        ids(&registry, by(TextField::OsHashValue, &old_hash))
            .await
            .is_empty()
    );
    let mut fresh = Image::new(Uuid::new_v4(), Some("p".into()));
    fresh.os_hash_value = Some("fresh-hash".into());
    registry.create_image(fresh.clone()).await.expect("create");
    assert_eq!(
        ids(&registry, by(TextField::OsHashValue, "fresh-hash")).await,
        vec![fresh.id]
    );
}
