//! The JSON-patch parser of image PATCH (both media types) and the application of its
//! changes to an image: bad documents are 4xx, and no accepted change leaves an image past
//! Glance's limits (names, values, tags) or with an attribute a client may not write.

use glass_images::Identity;
use glass_images::patch::{self, Dialect};
use glass_images::properties;
use glass_registry::Image;
use serde_json::{Value, json};

use super::{client_error, edge_string};
use crate::driver::{Rng, Target, signature};

pub struct JsonPatch;

const SEEDS: &[&str] = &[
    r#"[{"op":"replace","path":"/name","value":"golden-renamed"},{"op":"add","path":"/color","value":"blue"},{"op":"remove","path":"/custom_key"}]"#,
    r#"[{"add":"/tags","value":["a","b"]},{"replace":"/min_ram","value":64},{"remove":"/x"}]"#,
    r#"[{"op":"add","path":"/a~1b~0c","value":"x"}]"#,
    r#"[{"op":"replace","path":"/visibility","value":"public"},{"op":"replace","path":"/protected","value":true}]"#,
    r#"[{"op":"add","path":"/kernel_id","value":"8a1f3e6c-2b1e-4c59-9d8e-3f2a1b0c9d8e"}]"#,
    r#"[{"op":"replace","path":"/disk_format","value":"qcow2"},{"op":"replace","path":"/owner","value":null}]"#,
    r#"[{"op":"add","path":"/locations/-","value":{"url":"http://x","metadata":{}}}]"#,
    r#"[{"op":"replace","path":"/size","value":5}]"#,
    r#"[{"op":"add","path":"/os_glance_import_task","value":"x"},{"op":"remove","path":"/os_hidden"}]"#,
    r#"[{"op":"replace","path":"/min_disk","value":-1},{"op":"add","path":"/tags","value":"x"}]"#,
    r#"{"op":"add"}"#,
    r#"[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]"#,
];

const DICT: &[&str] = &[
    r#"{"op":"#,
    r#""add""#,
    r#""remove""#,
    r#""replace""#,
    r#""path":"#,
    r#""value":"#,
    r#""/"#,
    "~0",
    "~1",
    "//",
    "null",
    "true",
    "false",
    "[",
    "]",
    "{",
    "}",
    ",",
    "\"",
    r"\u0000",
    r"\ud800",
    "1e999",
    "-1",
    "18446744073709551616",
    "os_glance_x",
    "/tags",
    "/name",
    "/min_ram",
    "/visibility",
    "/owner",
    "/locations/0",
    "/disk_format",
    "/id",
    "/status",
];

fn admin() -> Identity {
    Identity {
        project: Some("p".into()),
        user: Some("u".into()),
        roles: vec!["admin".into(), "member".into(), "reader".into()],
    }
}

fn random_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 2 { 6 } else { 8 }) {
        0 => Value::Null,
        1 => json!(rng.chance(50)),
        2 => json!(*rng.pick(&[0i64, 1, -1, 64, i64::MAX, i64::MIN])),
        3 => json!(*rng.pick(&[0.5f64, -0.0, 1e300])),
        4 | 5 => json!(edge_string(rng)),
        6 => Value::Array(
            (0..rng.below(5))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        _ => {
            let mut m = serde_json::Map::new();
            for _ in 0..rng.below(4) {
                m.insert(edge_string(rng), random_value(rng, depth + 1));
            }
            Value::Object(m)
        }
    }
}

fn random_path(rng: &mut Rng) -> String {
    match rng.below(4) {
        0 => (*rng.pick(&[
            "/name",
            "/tags",
            "/x",
            "/a~1b",
            "/~2",
            "/os_glance_x",
            "/locations/0",
            "/",
            "",
            "/visibility",
            "/owner",
            "/min_ram",
            "/kernel_id",
            "/disk_format",
            "/checksum",
        ]))
        .to_owned(),
        1 => format!("/{}", edge_string(rng)),
        2 => format!("/{}/{}", edge_string(rng), edge_string(rng)),
        _ => edge_string(rng),
    }
}

impl Target for JsonPatch {
    fn name(&self) -> &'static str {
        "json-patch"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        SEEDS.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    fn dictionary(&self) -> &'static [&'static str] {
        DICT
    }

    fn generate(&self, rng: &mut Rng) -> Option<Vec<u8>> {
        let ops: Vec<Value> = (0..1 + rng.below(6))
            .map(|_| {
                let op = *rng.pick(&["add", "remove", "replace", "move", "", "ADD"]);
                let path = random_path(rng);
                let mut m = serde_json::Map::new();
                if rng.chance(50) {
                    m.insert("op".into(), json!(op));
                    m.insert("path".into(), json!(path));
                } else {
                    m.insert(op.into(), json!(path));
                }
                if rng.chance(85) {
                    m.insert("value".into(), random_value(rng, 0));
                }
                Value::Object(m)
            })
            .collect();
        Some(Value::Array(ops).to_string().into_bytes())
    }

    fn run(&self, input: &[u8]) -> Result<u64, String> {
        let Ok(doc) = serde_json::from_slice::<Value>(input) else {
            return Ok(signature("not JSON"));
        };
        let mut sig = 0u64;
        for dialect in [Dialect::V21, Dialect::V20] {
            let changes = match patch::parse(&doc, dialect) {
                Ok(changes) => changes,
                Err(e) => {
                    sig ^= client_error(&e)?;
                    continue;
                }
            };
            let who = admin();
            let mut image = Image::new(uuid::Uuid::nil(), Some("p".into()));
            image.properties.insert("custom_key".into(), "v".into());
            let before = image.clone();
            let mut applied = 0;
            for change in &changes {
                if let Err(e) = patch::apply(&mut image, change, &who) {
                    sig ^= client_error(&e)?;
                    break;
                }
                applied += 1;
            }
            check_limits(&image, &before)?;
            sig ^= signature((dialect == Dialect::V21, changes.len(), applied));
        }
        Ok(sig)
    }
}

/// What no accepted change may leave behind.
fn check_limits(image: &Image, before: &Image) -> Result<(), String> {
    for (k, v) in &image.properties {
        if before.properties.get(k) == Some(v) {
            continue;
        }
        if k.chars().count() > properties::MAX_PROPERTY_NAME {
            return Err(format!("accepted a {}-character name", k.chars().count()));
        }
        if v.len() > properties::MAX_PROPERTY_VALUE {
            return Err(format!("accepted a {}-byte value", v.len()));
        }
        if properties::check_writable(k).is_err() || properties::is_core(k) {
            return Err(format!("{k:?} became an extra property"));
        }
    }
    if let Some(t) = image
        .tags
        .iter()
        .find(|t| t.chars().count() > properties::MAX_TAG)
    {
        return Err(format!("accepted a {}-character tag", t.chars().count()));
    }
    if image.name.as_ref().is_some_and(|n| n.chars().count() > 255) {
        return Err("accepted a name of more than 255 characters".into());
    }
    if image.id != before.id || image.status != before.status || image.size != before.size {
        return Err("a read-only attribute changed".into());
    }
    Ok(())
}
