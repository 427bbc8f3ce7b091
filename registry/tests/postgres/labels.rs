//! image_labels, the rows tag and property filters join, in step with the images: each
//! write (create, update of tags, properties or created_at, a refused update, bulk import,
//! delete) leaves exactly the labels of what is stored, in the encoding the listings look
//! up, and the filters find the image by them.

use chrono::Duration;
use glass_registry::{
    Filter, Image, ImageQuery, PostgresRegistry, Registry, RegistryError, Viewer, now,
};
use tokio_postgres::Client;
use uuid::Uuid;

use super::{connect, database};

/// A plain connection to `url`, for reading the tables.
async fn client(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
}

/// Every image's labels are in image_labels, with its created_at, and nothing else is;
/// returns how many rows image_labels has.
pub(super) async fn assert_labels_in_step(url: &str) -> i64 {
    let row = client(url)
        .await
        .query_one(
            "WITH derived AS (SELECT l AS label, i.created_at, i.id AS image_id \
             FROM images i, unnest(image_labels_of(i.tags, i.properties)) l) \
             SELECT (SELECT count(*) FROM image_labels), \
             (SELECT count(*) FROM (TABLE image_labels EXCEPT ALL TABLE derived) x), \
             (SELECT count(*) FROM (TABLE derived EXCEPT ALL TABLE image_labels) x)",
            &[],
        )
        .await
        .expect("labels");
    let (rows, extra, missing): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        (extra, missing),
        (0, 0),
        "image_labels rows no image has, and image labels without a row"
    );
    rows
}

/// The labels image_labels holds for `id`, sorted.
async fn labels_of(client: &Client, id: Uuid) -> Vec<Vec<u8>> {
    client
        .query(
            "SELECT label FROM image_labels WHERE image_id = $1 ORDER BY label",
            &[&id],
        )
        .await
        .expect("labels")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn tag(t: &str) -> Vec<u8> {
    [b"t", t.as_bytes()].concat()
}

/// A property's label: `p`, the key's length in 4 bytes, the key, the value.
fn property(key: &str, value: &str) -> Vec<u8> {
    let len = u32::try_from(key.len()).expect("key").to_be_bytes();
    [b"p", len.as_slice(), key.as_bytes(), value.as_bytes()].concat()
}

async fn listed(registry: &PostgresRegistry, filter: Filter) -> Vec<Uuid> {
    let page = registry
        .list_images(ImageQuery {
            viewer: Viewer {
                project: Some("admin".into()),
                is_admin: true,
            },
            filters: vec![filter],
            ..ImageQuery::default()
        })
        .await
        .expect("list");
    page.images.iter().map(|i| i.id).collect()
}

fn by_property(key: &str, value: &str) -> Filter {
    Filter::Property {
        key: key.into(),
        values: vec![value.into()],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_follow_every_write() {
    let (_cluster, url) = database("labels");
    let registry = connect(&url).await;
    let client = client(&url).await;

    let mut image = Image::new(Uuid::new_v4(), Some("p".into()));
    image.tags = ["a".to_string(), "b".into()].into();
    image.properties = [("k".to_string(), "v".to_string())].into();
    let image = registry.create_image(image).await.expect("create");
    let id = image.id;
    assert_eq!(
        labels_of(&client, id).await,
        vec![property("k", "v"), tag("a"), tag("b")]
    );
    assert_eq!(assert_labels_in_step(&url).await, 3);
    assert_eq!(listed(&registry, Filter::Tag("a".into())).await, vec![id]);
    assert_eq!(listed(&registry, by_property("k", "v")).await, vec![id]);

    // Tags and properties lost, kept and gained.
    let mut changed = image.clone();
    changed.tags = ["b".to_string(), "c".into()].into();
    changed.properties = [
        ("k".to_string(), "w".to_string()),
        ("k2".to_string(), "v".to_string()),
    ]
    .into();
    let changed = registry.update_image(changed).await.expect("update");
    assert_eq!(
        labels_of(&client, id).await,
        vec![property("k", "w"), property("k2", "v"), tag("b"), tag("c")]
    );
    assert_labels_in_step(&url).await;
    assert!(listed(&registry, Filter::Tag("a".into())).await.is_empty());
    assert_eq!(listed(&registry, Filter::Tag("c".into())).await, vec![id]);
    assert!(listed(&registry, by_property("k", "v")).await.is_empty());
    assert_eq!(listed(&registry, by_property("k", "w")).await, vec![id]);

    // An update from an old revision changes nothing.
    let mut stale = image.clone();
    stale.tags = ["stale".to_string()].into();
    assert!(matches!(
        registry.update_image(stale).await,
        Err(RegistryError::Stale(got)) if got == id
    ));
    assert_labels_in_step(&url).await;
    assert!(
        listed(&registry, Filter::Tag("stale".into()))
            .await
            .is_empty()
    );

    // A new created_at moves every label.
    let mut moved = changed.clone();
    moved.created_at = changed.created_at - Duration::days(1);
    let moved = registry.update_image(moved).await.expect("move");
    assert_eq!(assert_labels_in_step(&url).await, 4);
    assert_eq!(listed(&registry, Filter::Tag("c".into())).await, vec![id]);

    // Bulk import, beside the image already stored.
    let imported: Vec<Image> = (0..3)
        .map(|i| {
            let mut image = Image::new(Uuid::new_v4(), Some("p".into()));
            image.tags = ["c".to_string(), format!("i{i}")].into();
            image.created_at = now() + Duration::seconds(i);
            image
        })
        .collect();
    registry.import_images(&imported).await.expect("import");
    assert_eq!(assert_labels_in_step(&url).await, 4 + 6);
    let newest_first: Vec<Uuid> = imported.iter().rev().map(|i| i.id).chain([id]).collect();
    assert_eq!(
        listed(&registry, Filter::Tag("c".into())).await,
        newest_first
    );

    // Deleting takes the labels along.
    registry
        .delete_image(id, moved.revision)
        .await
        .expect("delete");
    assert!(labels_of(&client, id).await.is_empty());
    assert_eq!(assert_labels_in_step(&url).await, 6);
    assert_eq!(
        listed(&registry, Filter::Tag("c".into())).await,
        newest_first[..3]
    );
}
