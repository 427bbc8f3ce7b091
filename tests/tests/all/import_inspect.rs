//! Disk-format inspection inside the sandbox (the `inspect-format` component): a corpus of
//! disk images made with qemu-img and by hand. Good images are accepted with the virtual
//! size qemu-img reports; unsafe or mislabelled ones (qcow2 with a backing file or an
//! external data file, a VMDK whose descriptor reaches other files, raw data claimed as
//! qcow2 and a qcow2 or LUKS claimed raw, truncated headers) are refused with a clear 400 and
//! leave the image queued with no data — on upload, on stage and on import.

use std::path::Path;

use glass_tests::data::{get_file, pseudo_random, put_file};
use glass_tests::import::{
    WebServer, have_qemu_img, image_tasks, import, make_image, qemu_img, stage, wait_import,
};
use glass_tests::{Client, TestServer};
use serde_json::{Value, json};

async fn server() -> TestServer {
    TestServer::start_with(|c| {
        c.auth = glass_host::config::AuthMode::TrustedHeaders;
    })
    .await
}

async fn new_image(client: &Client, disk_format: &str, container_format: &str) -> String {
    let image = client
        .create_image(json!({"name": "corpus", "disk_format": disk_format,
            "container_format": container_format}))
        .await;
    image["id"].as_str().unwrap().to_string()
}

/// Uploads `data` as `disk_format`/bare; the upload must be refused with a 400 whose message
/// contains `expect`, and the image must be queued with no data.
async fn refused(server: &TestServer, disk_format: &str, data: Vec<u8>, expect: &str) -> String {
    let client = server.admin();
    let id = new_image(&client, disk_format, "bare").await;
    let (status, body) = put_file(&client, &id, data).await;
    assert_eq!(status, 400, "{disk_format}: {body}");
    let message = body["message"].as_str().unwrap_or_default().to_string();
    assert!(
        message.contains(expect),
        "{disk_format}: {message:?} lacks {expect:?}"
    );
    let (_, image) = client.get_json(&format!("/v2/images/{id}")).await;
    assert_eq!(image["status"], "queued", "{image}");
    assert!(
        image["size"].is_null() && image["checksum"].is_null(),
        "{image}"
    );
    let stored = server.state.config.data_dir.join("images").join(&id);
    assert!(!stored.exists(), "no data left in the store");
    message
}

/// Uploads `data` as `disk_format`/bare; it must be accepted; the image.
async fn accepted(server: &TestServer, disk_format: &str, data: Vec<u8>) -> Value {
    let client = server.admin();
    let id = new_image(&client, disk_format, "bare").await;
    let (status, body) = put_file(&client, &id, data).await;
    assert_eq!(status, 204, "{disk_format}: {body}");
    client.get_json(&format!("/v2/images/{id}")).await.1
}

/// qemu-img's virtual size of a file.
fn qemu_virtual_size(path: &Path) -> u64 {
    let info = qemu_img(&["info", "--output=json", path.to_str().unwrap()]);
    let info: Value = serde_json::from_str(&info).unwrap();
    info["virtual-size"].as_u64().unwrap()
}

#[tokio::test]
async fn good_images_are_accepted_with_their_virtual_size() {
    if !have_qemu_img() {
        eprintln!("qemu-img missing (apt-get install qemu-utils): skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = server().await;
    let cases: &[(&str, &str, &[&str], &str)] = &[
        ("qcow2", "qcow2", &[], "good.qcow2"),
        ("qcow2", "qcow2", &["compat=0.10"], "v2.qcow2"),
        ("vmdk", "vmdk", &[], "sparse.vmdk"),
        (
            "vmdk",
            "vmdk",
            &["subformat=streamOptimized"],
            "stream.vmdk",
        ),
        ("vhd", "vpc", &[], "dynamic.vhd"),
        ("vhdx", "vhdx", &[], "disk.vhdx"),
        ("vdi", "vdi", &[], "disk.vdi"),
    ];
    for (disk_format, qemu_format, options, name) in cases {
        let data = make_image(dir.path(), name, qemu_format, "64M", options);
        let expected = qemu_virtual_size(&dir.path().join(name));
        let image = accepted(&server, disk_format, data).await;
        assert_eq!(image["status"], "active", "{name}");
        assert_eq!(image["virtual_size"], expected, "{name}: {image}");
    }
    // raw: the virtual size is the size.
    let image = accepted(&server, "raw", pseudo_random(70_000, 9)).await;
    assert_eq!(image["virtual_size"], 70_000);
    // An ISO 9660 primary volume descriptor, by hand: 100 blocks of 2 KiB.
    let mut iso = vec![0u8; 40 * 1024];
    iso[32768] = 1;
    iso[32769..32774].copy_from_slice(b"CD001");
    iso[32768 + 80..32768 + 84].copy_from_slice(&100u32.to_le_bytes());
    iso[32768 + 128..32768 + 130].copy_from_slice(&2048u16.to_le_bytes());
    let image = accepted(&server, "iso", iso).await;
    assert_eq!(image["virtual_size"], 204_800);
    // A disk with an MBR claimed raw: a raw disk, its virtual size its size.
    let mut disk = vec![0u8; 64 * 1024];
    disk[446 + 4] = 0x83;
    disk[510] = 0x55;
    disk[511] = 0xAA;
    let image = accepted(&server, "raw", disk).await;
    assert_eq!(image["virtual_size"], 65_536);
    // Formats the inspector does not know take anything that is not a known format.
    let image = accepted(&server, "ami", pseudo_random(10_000, 3)).await;
    assert!(image["virtual_size"].is_null());
    // Other containers are not inspected (as Glance).
    let client = server.admin();
    let id = new_image(&client, "qcow2", "ovf").await;
    assert_eq!(put_file(&client, &id, pseudo_random(1000, 4)).await.0, 204);
}

#[tokio::test]
async fn unsafe_and_mislabelled_images_are_refused() {
    if !have_qemu_img() {
        eprintln!("qemu-img missing (apt-get install qemu-utils): skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = server().await;

    // qcow2 with a backing file (CVE-2022-47951 family).
    make_image(d, "base.qcow2", "qcow2", "16M", &[]);
    let base = d.join("base.qcow2");
    let backed = make_image(
        d,
        "backed.qcow2",
        "qcow2",
        "16M",
        &[
            &format!("backing_file={}", base.display()),
            "backing_fmt=qcow2",
        ],
    );
    let m = refused(&server, "qcow2", backed.clone(), "safety checks").await;
    assert!(m.contains("backing-file"), "{m}");
    // Claimed raw, it is still a qcow2 that points elsewhere.
    refused(&server, "raw", backed, "backing-file").await;

    // qcow2 with an external data file.
    let data_file = d.join("external.raw");
    let with_data_file = make_image(
        d,
        "datafile.qcow2",
        "qcow2",
        "16M",
        &[&format!("data_file={}", data_file.display())],
    );
    refused(&server, "qcow2", with_data_file, "data-file").await;

    // VMDK monolithicFlat: a descriptor whose extent is another file.
    let flat = make_image(d, "flat.vmdk", "vmdk", "1M", &["subformat=monolithicFlat"]);
    let m = refused(&server, "vmdk", flat, "safety checks").await;
    assert!(m.contains("monolithicFlat"), "{m}");
    // ... and one whose extent path reaches into the host.
    let descriptor = "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n\
        createType=\"monolithicFlat\"\n\n# Extent description\nRW 2048 FLAT \"/etc/passwd\" 0\n\n\
        # The Disk Data Base\nddb.virtualHWVersion = \"4\"\n";
    let m = refused(
        &server,
        "vmdk",
        descriptor.as_bytes().to_vec(),
        "/etc/passwd",
    )
    .await;
    assert!(m.contains("text descriptor"), "{m}");
    refused(
        &server,
        "raw",
        descriptor.as_bytes().to_vec(),
        "safety checks",
    )
    .await;

    // Raw data claimed as qcow2 (or vmdk, vhd, iso).
    for claimed in ["qcow2", "vmdk", "vhd", "vhdx", "iso", "vdi"] {
        let m = refused(&server, claimed, pseudo_random(50_000, 7), "does not match").await;
        assert!(m.contains("stream data raw"), "{m}");
    }

    // Truncated headers.
    let good = make_image(d, "trunc.qcow2", "qcow2", "16M", &[]);
    let m = refused(&server, "qcow2", good[..60].to_vec(), "does not match").await;
    assert!(m.contains("cut short"), "{m}");
    let vhdx = make_image(d, "trunc.vhdx", "vhdx", "16M", &[]);
    let m = refused(&server, "vhdx", vhdx[..100_000].to_vec(), "does not match").await;
    assert!(m.contains("vhdx"), "{m}");
    let sparse = make_image(d, "trunc.vmdk", "vmdk", "16M", &[]);
    refused(&server, "vmdk", sparse[..700].to_vec(), "vmdk").await;

    // One format claimed, another found.
    let vmdk = make_image(d, "other.vmdk", "vmdk", "16M", &[]);
    refused(&server, "qcow2", vmdk, "does not match stream data vmdk").await;

    // QED is never allowed.
    let qed = make_image(d, "disk.qed", "qed", "16M", &[]);
    refused(&server, "raw", qed, "banned").await;
}

#[tokio::test]
async fn an_unsafe_upload_is_refused_before_its_end() {
    let server = server().await;
    // A qcow2 header with a backing file, followed by 64 MiB.
    let mut data = vec![0u8; 64 << 20];
    data[0..4].copy_from_slice(b"QFI\xfb");
    data[4..8].copy_from_slice(&3u32.to_be_bytes());
    data[8..16].copy_from_slice(&512u64.to_be_bytes());
    data[24..32].copy_from_slice(&(1u64 << 30).to_be_bytes());
    let started = std::time::Instant::now();
    refused(&server, "qcow2", data, "backing-file").await;
    assert!(started.elapsed().as_secs() < 20);
}

#[tokio::test]
async fn format_match_can_be_relaxed_but_safety_cannot() {
    let server = TestServer::start_with(|c| {
        c.auth = glass_host::config::AuthMode::TrustedHeaders;
        c.image_format.require_image_format_match = false;
    })
    .await;
    // Random bytes as qcow2 (what Tempest uploads): accepted.
    let image = accepted(&server, "qcow2", pseudo_random(10_000, 8)).await;
    assert_eq!(image["status"], "active");
    assert!(image["virtual_size"].is_null());
    // A qcow2 with a backing file claimed vmdk: still refused.
    let mut data = vec![0u8; 4096];
    data[0..4].copy_from_slice(b"QFI\xfb");
    data[4..8].copy_from_slice(&2u32.to_be_bytes());
    data[8..16].copy_from_slice(&512u64.to_be_bytes());
    refused(&server, "vmdk", data, "backing-file").await;
}

#[tokio::test]
async fn stage_and_import_inspect_too() {
    let server = TestServer::start_with(|c| {
        c.auth = glass_host::config::AuthMode::TrustedHeaders;
        c.import.web_download.allowed_networks = vec!["127.0.0.1".into()];
        c.import.web_download.allowed_ports = vec![];
    })
    .await;
    let client = server.admin();
    let mut unsafe_qcow2 = vec![0u8; 4096];
    unsafe_qcow2[0..4].copy_from_slice(b"QFI\xfb");
    unsafe_qcow2[4..8].copy_from_slice(&3u32.to_be_bytes());
    unsafe_qcow2[8..16].copy_from_slice(&512u64.to_be_bytes());

    // Stage: refused at once, image queued again, nothing staged.
    let id = new_image(&client, "qcow2", "bare").await;
    let (status, body) = stage(&client, &id, unsafe_qcow2.clone()).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("backing-file"));
    let (_, image) = client.get_json(&format!("/v2/images/{id}")).await;
    assert_eq!(image["status"], "queued");
    let staging = server.state.config.data_dir.join("staging");
    assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0);

    // web-download: the task fails, the image is queued again.
    let web = WebServer::start().await;
    web.serve("/bad.qcow2", unsafe_qcow2);
    web.serve("/good.raw", pseudo_random(5000, 1));
    let id = new_image(&client, "qcow2", "bare").await;
    let body = json!({"method": {"name": "web-download", "uri": web.url("/bad.qcow2")}});
    assert_eq!(import(&client, &id, body).await.0, 202);
    let image = wait_import(&client, &id).await;
    assert_eq!(image["status"], "queued", "{image}");
    let task = &image_tasks(&client, &id).await[0];
    assert_eq!(task["status"], "failure");
    assert!(
        task["message"].as_str().unwrap().contains("backing-file"),
        "{task}"
    );
    assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0);

    // Raw data downloaded for a qcow2 image: refused on its way to the store.
    let body = json!({"method": {"name": "web-download", "uri": web.url("/good.raw")}});
    assert_eq!(import(&client, &id, body).await.0, 202);
    assert_eq!(wait_import(&client, &id).await["status"], "queued");
    let task = &image_tasks(&client, &id).await[0];
    assert!(
        task["message"].as_str().unwrap().contains("does not match"),
        "{task}"
    );
    assert_eq!(get_file(&client, &id).await.0, 204);
}

/// qemu-img's descriptor of a 1 MiB monolithicSparse `base-sparse.vmdk`.
fn sparse_descriptor() -> String {
    "# Disk DescriptorFile\nversion=1\nCID=5e6218fb\nparentCID=ffffffff\n\
     createType=\"monolithicSparse\"\n\n# Extent description\nRW 2048 SPARSE \"base-sparse.vmdk\"\n\n\
     # The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = \"4\"\nddb.adapterType = \"ide\"\n"
        .to_string()
}

/// A 1 MiB monolithicSparse VMDK made by qemu-img, its embedded descriptor (20 sectors from
/// sector 1) replaced by `text`, `desc_sectors` declared, and the capacity set to `capacity`
/// sectors when given.
fn sparse_vmdk(dir: &Path, text: &str, desc_sectors: u64, capacity: Option<u64>) -> Vec<u8> {
    let mut data = make_image(dir, "base-sparse.vmdk", "vmdk", "1M", &[]);
    assert_eq!(
        &data[28..44],
        &[1, 0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0]
    );
    data[36..44].copy_from_slice(&desc_sectors.to_le_bytes());
    if let Some(c) = capacity {
        data[12..20].copy_from_slice(&c.to_le_bytes());
    }
    let area = &mut data[512..512 + 20 * 512];
    area.fill(0);
    area[..text.len()].copy_from_slice(text.as_bytes());
    data
}

/// CVE-2024-32498's family: VMDK descriptors that make qemu-img read other files (another
/// upload's staged data, a host file, a parent image) are refused, however they are hidden.
#[tokio::test]
async fn vmdk_descriptors_reaching_other_files_are_refused() {
    if !have_qemu_img() {
        eprintln!("qemu-img missing (apt-get install qemu-utils): skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = server().await;
    let client = server.admin();

    // The untouched image passes.
    let good = sparse_descriptor();
    let image = accepted(&server, "vmdk", sparse_vmdk(d, &good, 20, None)).await;
    assert_eq!(image["virtual_size"], 1 << 20);

    // Another user's upload, staged: the target.
    let victim = new_image(&client, "raw", "bare").await;
    assert_eq!(
        stage(&client, &victim, pseudo_random(1 << 20, 3)).await.0,
        204
    );
    let staging = server.state.config.data_dir.join("staging");
    let staged_before = std::fs::read_dir(&staging).unwrap().count();

    // A text descriptor whose extent is the staged file, by relative name: refused on stage
    // (as vmdk, and as raw), and on upload.
    let text = format!(
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n\
         createType=\"monolithicFlat\"\n\nRW 2048 FLAT \"{victim}\" 0\n"
    );
    for claimed in ["vmdk", "raw"] {
        let id = new_image(&client, claimed, "bare").await;
        let (status, body) = stage(&client, &id, text.clone().into_bytes()).await;
        assert_eq!(status, 400, "{body}");
        let m = body["message"].as_str().unwrap();
        assert!(m.contains("text descriptor") && m.contains(&victim), "{m}");
        let (_, image) = client.get_json(&format!("/v2/images/{id}")).await;
        assert_eq!(image["status"], "queued", "{image}");
    }
    assert_eq!(std::fs::read_dir(&staging).unwrap().count(), staged_before);
    refused(&server, "vmdk", text.into_bytes(), "text descriptor").await;
    // ... even when it says it is a single file.
    let sneaky = good.replace("base-sparse.vmdk", &victim);
    refused(&server, "vmdk", sneaky.into_bytes(), "text descriptor").await;

    // Embedded descriptors of a sparse file: (descriptor, declared sectors, capacity, why).
    let hidden = format!("{good:<1023}\nRW 2048 FLAT \"{victim}\" 0\n");
    let cases: Vec<(String, u64, Option<u64>, &str)> = vec![
        // A second extent naming the staged file.
        (
            good.replace(
                "\n\n# The Disk",
                &format!("\nRW 2048 FLAT \"{victim}\" 0\n\n# The Disk"),
            ),
            20,
            None,
            "2 extents",
        ),
        // The only extent a path to it.
        (
            good.replace("\"base-sparse.vmdk\"", &format!("\"../staging/{victim}\"")),
            20,
            None,
            "points elsewhere",
        ),
        // Text past the declared 2 sectors hides an extent; with capacity 0 qemu opens the
        // whole text as a descriptor file.
        (hidden.clone(), 2, None, "runs past"),
        (hidden, 2, Some(0), "capacity 0"),
        // A parent image, as a key or inside a comment (qemu's strstr finds both).
        (
            good.replace(
                "parentCID=ffffffff\n",
                "parentCID=ffffffff\nparentFileNameHint=\"/etc/passwd\"\n",
            ),
            20,
            None,
            "parentFileNameHint",
        ),
        (
            good.replace(
                "# Disk DescriptorFile",
                "# parentFileNameHint=\"/etc/passwd\"",
            ),
            20,
            None,
            "parentFileNameHint",
        ),
        // createType in odd case, or twice (the first one is what qemu and Glance read).
        (
            good.replace("monolithicSparse", "MonolithicSparse"),
            20,
            None,
            "not allowed",
        ),
        (
            good.replace("createType", "CREATETYPE"),
            20,
            None,
            "unknown key",
        ),
        (
            good.replace("version=1\n", "version=1\ncreateType=\"monolithicFlat\"\n"),
            20,
            None,
            "2 createType",
        ),
        (
            good.replace("# Disk DescriptorFile", "# createType=\"vmfs\""),
            20,
            None,
            "2 createType",
        ),
        // Keys Glance lets through as "key=value".
        (
            good.replace("version=1", "fileName=/etc/passwd"),
            20,
            None,
            "unknown key",
        ),
    ];
    for (text, sectors, capacity, why) in cases {
        let data = sparse_vmdk(d, &text, sectors, capacity);
        for claimed in ["vmdk", "raw"] {
            let m = refused(&server, claimed, data.clone(), "").await;
            assert!(m.contains(why), "{claimed}: {why:?} not in {m:?}");
        }
    }
}

/// Every format the inspector knows, uploaded under every `disk_format`: accepted only when
/// they agree (a partitioned disk is raw; formats Glance does not inspect take raw data);
/// otherwise a 400 naming what the data is, and the image stays queued.
#[tokio::test]
async fn content_must_match_disk_format() {
    if !have_qemu_img() {
        eprintln!("qemu-img missing (apt-get install qemu-utils): skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let luks1 = d.join("disk.luks");
    qemu_img(&[
        "create",
        "-q",
        "--object",
        "secret,id=s0,data=secret",
        "-f",
        "luks",
        "-o",
        "key-secret=s0,iter-time=10",
        luks1.to_str().unwrap(),
        "1M",
    ]);
    let mut luks2 = vec![0u8; 32 * 1024];
    luks2[0..6].copy_from_slice(b"LUKS\xba\xbe");
    luks2[6..8].copy_from_slice(&2u16.to_be_bytes());
    luks2[8..16].copy_from_slice(&16384u64.to_be_bytes());
    luks2[16384..16390].copy_from_slice(b"SKUL\xba\xbe");
    let mut iso = vec![0u8; 40 * 1024];
    iso[32768] = 1;
    iso[32769..32774].copy_from_slice(b"CD001");
    iso[32768 + 80..32768 + 84].copy_from_slice(&100u32.to_le_bytes());
    iso[32768 + 128..32768 + 130].copy_from_slice(&2048u16.to_le_bytes());
    let mut disk = vec![0u8; 64 * 1024];
    disk[446 + 4] = 0x83;
    disk[510] = 0x55;
    disk[511] = 0xAA;
    // (what the data is, as the inspector names it; the data; why it is refused when it
    // is claimed to be something else: unsafe data is named unsafe first)
    let mismatch = "does not match stream data";
    let samples: Vec<(&str, Vec<u8>, &str)> = vec![
        ("raw", pseudo_random(70_000, 5), mismatch),
        (
            "qcow2",
            make_image(d, "t.qcow2", "qcow2", "16M", &[]),
            mismatch,
        ),
        (
            "vmdk",
            make_image(d, "t.vmdk", "vmdk", "16M", &[]),
            mismatch,
        ),
        ("vhd", make_image(d, "t.vhd", "vpc", "16M", &[]), mismatch),
        // Cut after its metadata: the 8 MiB of a whole one only slow the test down.
        (
            "vhdx",
            make_image(d, "t.vhdx", "vhdx", "16M", &[])[..4 << 20].to_vec(),
            mismatch,
        ),
        ("vdi", make_image(d, "t.vdi", "vdi", "16M", &[]), mismatch),
        (
            "qed",
            make_image(d, "t.qed", "qed", "16M", &[]),
            "qed banned",
        ),
        ("iso", iso, mismatch),
        ("gpt", disk, mismatch),
        ("luks", std::fs::read(&luks1).unwrap(), mismatch),
        ("luks", luks2, "LUKS version 2 is not supported"),
    ];
    let server = server().await;
    let claims = [
        "raw", "qcow2", "vmdk", "vhd", "vhdx", "vdi", "iso", "ploop", "ami",
    ];
    for (content, data, why) in &samples {
        for claimed in claims {
            let ok = *content == claimed
                || (*content, claimed) == ("gpt", "raw")
                || (*content == "raw" && ["ploop", "ami"].contains(&claimed));
            if ok {
                let image = accepted(&server, claimed, data.clone()).await;
                assert_eq!(image["status"], "active", "{content} as {claimed}");
            } else {
                let m = refused(&server, claimed, data.clone(), why).await;
                if *why == mismatch {
                    assert!(
                        m.contains(&format!("{why} {content}")),
                        "{content} as {claimed}: {m}"
                    );
                }
            }
        }
    }
}

/// `[image_format] vmdk_allowed_types` (Glance's option) narrows the VMDKs accepted.
#[tokio::test]
async fn vmdk_allowed_types_narrows_the_vmdks_accepted() {
    if !have_qemu_img() {
        eprintln!("qemu-img missing (apt-get install qemu-utils): skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(|c| {
        c.auth = glass_host::config::AuthMode::TrustedHeaders;
        c.image_format.vmdk_allowed_types = vec!["streamOptimized".into()];
    })
    .await;
    let stream = make_image(
        dir.path(),
        "s.vmdk",
        "vmdk",
        "1M",
        &["subformat=streamOptimized"],
    );
    assert_eq!(accepted(&server, "vmdk", stream).await["status"], "active");
    let sparse = make_image(dir.path(), "m.vmdk", "vmdk", "1M", &[]);
    refused(
        &server,
        "vmdk",
        sparse,
        "createType monolithicSparse is not in vmdk_allowed_types",
    )
    .await;
}
