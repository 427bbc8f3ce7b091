//! Released plugin contracts never change: each `wit/glass-*@x.y.z` folder must hash to the
//! digest recorded in [`RELEASED`], every recorded folder must still be there, and a new
//! release must have its digest recorded. A change to a contract is a new version folder
//! beside the old one, which guests built against it keep loading.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The released contract folders of `wit/` and their digests ([`folder_digest`]). By hand, in
/// `wit/<folder>`:
/// `find . -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum`.
const RELEASED: &[(&str, &str)] = &[
    (
        "glass-inspect@0.1.0",
        "111edb02562447243aa36a22fafd984380353011be9e1b02ee6120c0c06dc2ac",
    ),
    (
        "glass-metadef@0.1.0",
        "aa799c2079ee1174b2e369b4f6742b0472fef8a13ed56164973db18b5c7efb09",
    ),
    (
        "glass-store@0.1.0",
        "03f4327e50a168215cee57bbbade8c09119933c63a92530d4bea42e1062e6c66",
    ),
];

fn wit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit")
}

/// Every file under `dir`, as (path relative to `dir` with `/` separators, absolute path).
fn files(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let entry = entry.expect("directory entry");
        let name = entry.file_name().into_string().expect("UTF-8 file name");
        let rel = format!("{prefix}{name}");
        let path = entry.path();
        if path.is_dir() {
            files(&path, &format!("{rel}/"), out);
        } else {
            out.push((rel, path));
        }
    }
}

/// SHA-256 of the folder's manifest: one `<sha256 of the file>  <relative path>\n` line per
/// file, sorted by path bytes (what `sha256sum` prints for the sorted files).
fn folder_digest(dir: &Path) -> String {
    let mut all = Vec::new();
    files(dir, "", &mut all);
    all.sort();
    let mut manifest = Sha256::new();
    for (rel, path) in all {
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        manifest.update(format!("{}  {rel}\n", hex::encode(Sha256::digest(&bytes))));
    }
    hex::encode(manifest.finalize())
}

/// The `glass-*@x.y.z` folders of `dir` and their digests.
fn released_folders(dir: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let entry = entry.expect("directory entry");
        let name = entry.file_name().into_string().expect("UTF-8 folder name");
        if name.starts_with("glass-") && name.contains('@') && entry.path().is_dir() {
            found.insert(name, folder_digest(&entry.path()));
        }
    }
    found
}

/// What is wrong with `found` against `recorded`, one line per folder.
fn problems(recorded: &[(&str, &str)], found: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (name, want) in recorded {
        match found.get(*name) {
            None => out.push(format!(
                "wit/{name} is gone: a released contract stays, guests built against it must \
                 keep loading"
            )),
            Some(got) if got != want => out.push(format!(
                "wit/{name} changed (digest {got}, released as {want}): a released contract \
                 is never edited; undo the change and make it in a new version folder beside it"
            )),
            Some(_) => {}
        }
    }
    for (name, got) in found {
        if !recorded.iter().any(|(r, _)| r == name) {
            out.push(format!(
                "wit/{name} is not recorded: once it is released, add (\"{name}\", \"{got}\") to \
                 RELEASED in tests/tests/wit_released.rs"
            ));
        }
    }
    out
}

#[test]
fn released_contracts_are_unchanged() {
    let found = released_folders(&wit_dir());
    let problems = problems(RELEASED, &found);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn edits_removals_and_unrecorded_releases_are_caught() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |rel: &str, text: &str| {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    write("glass-a@0.1.0/a.wit", "package glass:a@0.1.0;\n");
    write("glass-a@0.1.0/deps/b.wit", "package glass:b@0.1.0;\n");
    write("glass-c@1.0.0/c.wit", "package glass:c@1.0.0;\n");
    write("deps/io.wit", "not a release\n");
    let found = released_folders(dir.path());
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        ["glass-a@0.1.0", "glass-c@1.0.0"]
    );
    // The same as the shell recipe in RELEASED's doc.
    assert_eq!(
        found["glass-a@0.1.0"],
        "30954f7b51b3d974187fd8af7411aea1eca55bee2c0111ab0b20bfb2349a00e9"
    );
    let recorded: Vec<(&str, &str)> = found
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_str()))
        .collect();
    assert!(problems(&recorded, &found).is_empty());

    write("glass-a@0.1.0/deps/b.wit", "package glass:b@0.1.1;\n");
    let edited = released_folders(dir.path());
    let p = problems(&recorded, &edited);
    assert!(
        p.len() == 1 && p[0].contains("glass-a@0.1.0 changed"),
        "{p:?}"
    );

    std::fs::remove_dir_all(dir.path().join("glass-c@1.0.0")).expect("rm");
    write("glass-d@0.2.0/d.wit", "package glass:d@0.2.0;\n");
    let p = problems(&recorded, &released_folders(dir.path()));
    assert!(
        p.iter().any(|l| l.contains("glass-c@1.0.0 is gone")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|l| l.contains("glass-d@0.2.0 is not recorded")),
        "{p:?}"
    );
    assert_eq!(p.len(), 3, "{p:?}");
}
