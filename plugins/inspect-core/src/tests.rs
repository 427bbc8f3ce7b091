//! Unit tests of the inspectors, each checked under several chunkings.

use super::*;

/// Inspects `data` in chunks of `chunk` bytes, claimed raw; checks that other chunkings
/// give the same verdict.
fn inspect(data: &[u8], chunk: usize) -> Report {
    inspect_as(data, "raw", chunk)
}

fn inspect_as(data: &[u8], claimed: &str, chunk: usize) -> Report {
    let report = inspect_chunked(data, claimed, chunk);
    for other in [1, 3, 512, 4096, 1 << 20] {
        let again = inspect_chunked(data, claimed, other);
        assert_eq!(
            (&report.matches, &report.malformed),
            (&again.matches, &again.malformed),
            "chunks of {chunk} and {other} disagree"
        );
    }
    report
}

fn qcow2_header(version: u32, backing: u64, incompatible: u64, size: u64) -> Vec<u8> {
    let mut h = vec![0u8; 1024];
    h[0..4].copy_from_slice(b"QFI\xfb");
    h[4..8].copy_from_slice(&version.to_be_bytes());
    h[8..16].copy_from_slice(&backing.to_be_bytes());
    h[24..32].copy_from_slice(&size.to_be_bytes());
    h[72..80].copy_from_slice(&incompatible.to_be_bytes());
    h
}

#[test]
fn raw_data_matches_nothing() {
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let r = inspect(&data, 4096);
    assert!(r.matches.is_empty(), "{r:?}");
    assert!(r.malformed.is_empty(), "{r:?}");
    assert!(r.bytes_read < 100_000, "stops early: {}", r.bytes_read);
}

#[test]
fn qcow2_is_detected_with_its_checks() {
    for chunk in [1, 7, 512, 65536] {
        let r = inspect(&qcow2_header(3, 0, 0, 1 << 30), chunk);
        assert_eq!(r.matches.len(), 1, "{r:?}");
        assert_eq!(r.matches[0].format, "qcow2");
        assert_eq!(r.matches[0].virtual_size, Some(1 << 30));
        assert!(r.matches[0].violations.is_empty());
    }
    let r = inspect(&qcow2_header(3, 0x200, 0, 1), 512);
    assert_eq!(r.matches[0].violations[0].check, "backing-file");
    let r = inspect(&qcow2_header(3, 0, 4, 1), 512);
    assert_eq!(r.matches[0].violations[0].check, "data-file");
    let r = inspect(&qcow2_header(3, 0, 1 << 9, 1), 512);
    assert_eq!(r.matches[0].violations[0].check, "unknown-features");
    let r = inspect(&qcow2_header(4, 0, 0, 1), 512);
    assert_eq!(r.matches[0].violations[0].check, "unknown-features");
    let r = inspect(&qcow2_header(3, 0, 0, 1)[..60], 512);
    assert!(r.matches.is_empty());
    assert_eq!(r.malformed[0].check, "qcow2", "{r:?}");
}

#[test]
fn mbr_and_iso() {
    let mut disk = vec![0u8; 40 * 1024];
    disk[510] = 0x55;
    disk[511] = 0xAA;
    disk[446 + 4] = 0x83;
    let r = inspect(&disk, 4096);
    assert_eq!(r.matches.len(), 1);
    assert_eq!(r.matches[0].format, "gpt");
    assert!(r.matches[0].violations.is_empty());
    disk[446] = 0x12;
    assert_eq!(inspect(&disk, 4096).matches[0].violations[0].check, "mbr");

    let mut iso = vec![0u8; 40 * 1024];
    iso[32768] = 1;
    iso[32769..32774].copy_from_slice(b"CD001");
    iso[32768 + 80..32768 + 84].copy_from_slice(&100u32.to_le_bytes());
    iso[32768 + 128..32768 + 130].copy_from_slice(&2048u16.to_le_bytes());
    let r = inspect(&iso, 1000);
    assert_eq!(r.matches[0].format, "iso");
    assert_eq!(r.matches[0].virtual_size, Some(204_800));
}

/// qemu-img's monolithicSparse descriptor for a file `name` of `sectors`.
fn descriptor(create_type: &str, sectors: u64, name: &str) -> String {
    format!(
        "# Disk DescriptorFile\nversion=1\nCID=5e6218fb\nparentCID=ffffffff\n\
         createType=\"{create_type}\"\n\n# Extent description\nRW {sectors} SPARSE \"{name}\"\n\n\
         # The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = \"4\"\nddb.adapterType = \"ide\"\n"
    )
}

/// A sparse VMDK: header, `text` at sector 1 (NUL-padded to `desc_sectors` only if shorter),
/// 64 KiB in all, or a streamOptimized stream with its footer when `footer`.
fn sparse(capacity: u64, desc_sectors: u64, text: &str, compress: u16, footer: bool) -> Vec<u8> {
    let mut header = vec![0u8; 512];
    header[0..4].copy_from_slice(b"KDMV");
    header[4..8].copy_from_slice(&(if compress == 1 { 3u32 } else { 1 }).to_le_bytes());
    header[12..20].copy_from_slice(&capacity.to_le_bytes());
    header[20..28].copy_from_slice(&128u64.to_le_bytes());
    header[28..36].copy_from_slice(&1u64.to_le_bytes());
    header[36..44].copy_from_slice(&desc_sectors.to_le_bytes());
    header[44..48].copy_from_slice(&512u32.to_le_bytes());
    let gd = if footer { u64::MAX } else { 21 };
    header[56..64].copy_from_slice(&gd.to_le_bytes());
    header[77..79].copy_from_slice(&compress.to_le_bytes());
    let mut data = header.clone();
    data.extend_from_slice(text.as_bytes());
    data.resize(64 * 1024, 0);
    if footer {
        let mut marker = vec![0u8; 512];
        marker[12..16].copy_from_slice(&3u32.to_le_bytes());
        data.extend_from_slice(&marker);
        let mut copy = header;
        copy[56..64].copy_from_slice(&40u64.to_le_bytes());
        data.extend_from_slice(&copy);
        data.extend_from_slice(&[0u8; 512]);
    }
    data
}

fn vmdk_checks(r: &Report) -> Vec<String> {
    let vmdk = r.matches.iter().find(|d| d.format == "vmdk");
    let vmdk = vmdk.unwrap_or_else(|| panic!("no vmdk in {r:?}"));
    vmdk.violations
        .iter()
        .map(|v| format!("{}: {}", v.check, v.message))
        .collect()
}

#[test]
fn single_file_vmdks_pass() {
    for (kind, compress, footer) in [
        ("monolithicSparse", 0, false),
        ("streamOptimized", 1, false),
        ("streamOptimized", 1, true),
    ] {
        let data = sparse(
            131072,
            20,
            &descriptor(kind, 131072, "disk.vmdk"),
            compress,
            footer,
        );
        let r = inspect_as(&data, "vmdk", 4096);
        assert_eq!(r.matches.len(), 1, "{r:?}");
        let d = &r.matches[0];
        assert_eq!(d.subformat.as_deref(), Some(kind));
        assert_eq!(d.virtual_size, Some(131072 * 512));
        assert!(d.violations.is_empty(), "{kind}: {:?}", d.violations);
    }
}

/// Each descriptor, embedded in an otherwise good monolithicSparse, must be refused with a
/// violation containing `why`.
#[test]
fn sparse_descriptors_that_reach_other_files_are_refused() {
    let good = descriptor("monolithicSparse", 2048, "disk.vmdk");
    let cases: Vec<(String, &str)> = vec![
        (
            good.replace(
                "\n\n# The Disk",
                "\nRW 2048 FLAT \"other-image\" 0\n\n# The Disk",
            ),
            "2 extents",
        ),
        (
            good.replace("\"disk.vmdk\"", "\"../staging/x\""),
            "points elsewhere",
        ),
        (
            good.replace("\"disk.vmdk\"", "\"nbd:127.0.0.1:10809\""),
            "points elsewhere",
        ),
        (
            good.replace("SPARSE \"disk.vmdk\"", "FLAT \"disk.vmdk\" 0"),
            "not the sparse data",
        ),
        (
            good.replace(
                "parentCID=ffffffff\n",
                "parentCID=ffffffff\nparentFileNameHint=\"base.vmdk\"\n",
            ),
            "parentFileNameHint",
        ),
        (
            good.replace(
                "# Disk DescriptorFile",
                "# parentFileNameHint=\"/etc/passwd\"",
            ),
            "parentFileNameHint",
        ),
        (
            good.replace("parentCID=ffffffff", "parentCID=12345678"),
            "parentCID",
        ),
        (
            good.replace("monolithicSparse", "MONOLITHICSPARSE"),
            "not allowed",
        ),
        (good.replace("createType", "CreateType"), "unknown key"),
        (
            good.replace("version=1\n", "version=1\ncreateType=\"monolithicFlat\"\n"),
            "2 createType",
        ),
        (
            good.replace("# Disk DescriptorFile", "# createType=\"vmfs\""),
            "2 createType",
        ),
        (
            good.replace("monolithicSparse", "monolithicFlat"),
            "not allowed",
        ),
        (
            good.replace("version=1", "fileName=/etc/passwd"),
            "unknown key",
        ),
        (good.replace("version=1", "version 1"), "unsupported line"),
        (
            good.replace("monolithicSparse", "streamOptimized"),
            "header makes it",
        ),
    ];
    for (text, why) in cases {
        let r = inspect(&sparse(2048, 20, &text, 0, false), 4096);
        let checks = vmdk_checks(&r);
        assert!(
            checks.iter().any(|c| c.contains(why)),
            "{why:?} not in {checks:?}\n{text}"
        );
    }
}

/// qemu reads the descriptor up to its first NUL, past the size the header declares; with a
/// capacity of 0 it opens it as a descriptor file, whose extents are other files.
#[test]
fn a_descriptor_longer_than_declared_is_read_to_its_end() {
    let mut text = descriptor("monolithicSparse", 2048, "disk.vmdk");
    text = format!("{text:<511}\n");
    assert_eq!(text.len(), 512);
    text.push_str("RW 2048 FLAT \"/etc/shadow\" 0\n");
    for capacity in [2048, 0] {
        let r = inspect(&sparse(capacity, 1, &text, 0, false), 4096);
        let checks = vmdk_checks(&r);
        assert!(checks.iter().any(|c| c.contains("runs past")), "{checks:?}");
        assert!(
            checks.iter().any(|c| c.contains("/etc/shadow")),
            "{checks:?}"
        );
        if capacity == 0 {
            assert!(
                checks.iter().any(|c| c.contains("capacity 0")),
                "{checks:?}"
            );
        }
    }
}

#[test]
fn text_descriptors_are_refused() {
    let text = "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n\
                createType=\"monolithicFlat\"\n\n# Extent description\n\
                RW 2048 FLAT \"/etc/shadow\" 0\n\nddb.adapterType = \"ide\"\n";
    for claimed in ["vmdk", "raw"] {
        let r = inspect_as(text.as_bytes(), claimed, 100);
        assert_eq!(r.matches.len(), 1, "{r:?}");
        assert_eq!(r.matches[0].subformat.as_deref(), Some("monolithicFlat"));
        let checks = vmdk_checks(&r);
        assert!(
            checks.iter().any(|c| c.contains("/etc/shadow")),
            "{checks:?}"
        );
    }
    // Even one that claims to be a single file: its extents are other files.
    let sneaky = descriptor("monolithicSparse", 2048, "other-upload");
    let checks = vmdk_checks(&inspect(sneaky.as_bytes(), 7));
    assert!(
        checks.iter().any(|c| c.contains("text descriptor")),
        "{checks:?}"
    );
    // qemu's probe alone (no createType) is enough to be a VMDK.
    let probe = "# comment\n\nversion=1\nRW 1 FLAT \"x\" 0\n";
    assert_eq!(inspect(probe.as_bytes(), 5).matches.len(), 1);
    // Plain text is no VMDK.
    let r = inspect(b"hello world, just some text\n", 100);
    assert!(r.matches.is_empty(), "{r:?}");
}

#[test]
fn cowd_and_broken_footers_are_refused() {
    let mut cowd = vec![0u8; 4096];
    cowd[0..4].copy_from_slice(b"COWD");
    assert!(vmdk_checks(&inspect(&cowd, 512))[0].contains("COWD"));
    let mut stream = sparse(
        2048,
        20,
        &descriptor("streamOptimized", 2048, "s.vmdk"),
        1,
        true,
    );
    let n = stream.len();
    stream[n - 1024 + 12] = 9; // the footer's capacity
    let checks = vmdk_checks(&inspect(&stream, 1000));
    assert!(checks.iter().any(|c| c.contains("footer")), "{checks:?}");
}

fn luks(version: u16, payload_sectors: u32, len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len.max(4096)];
    data[0..6].copy_from_slice(b"LUKS\xba\xbe");
    data[6..8].copy_from_slice(&version.to_be_bytes());
    data[8..11].copy_from_slice(b"aes");
    data[104..108].copy_from_slice(&payload_sectors.to_be_bytes());
    data.truncate(len);
    data
}

#[test]
fn luks_is_detected() {
    let v1 = luks(1, 1024, 1 << 20);
    let r = inspect(&v1, 4096);
    assert_eq!(r.matches.len(), 1, "{r:?}");
    assert_eq!(r.matches[0].format, "luks");
    assert!(r.matches[0].violations.is_empty());
    assert!(r.bytes_read < 100_000, "stops early unless claimed luks");
    let r = inspect_as(&v1, "luks", 65536);
    assert_eq!(r.matches[0].virtual_size, Some((1 << 20) - 1024 * 512));
    assert!(r.reached_end);
    let r = inspect(&luks(2, 0, 32768), 4096);
    assert_eq!(r.matches[0].format, "luks");
    assert_eq!(r.matches[0].violations[0].check, "version");
    let r = inspect(&luks(1, 0, 60), 4096);
    assert!(r.matches.is_empty());
    assert_eq!(r.malformed[0].check, "luks");
}

/// The fuzz seeds (qemu-img images, encoded sparse) decode to what they were made from.
#[cfg(feature = "fuzzing")]
#[test]
fn fuzz_seeds_decode_to_their_images() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz-seeds");
    // (seed, format found or "" for none, first violation or "")
    let expected = [
        ("a-qcow2", "qcow2", ""),
        ("v2-qcow2", "qcow2", ""),
        ("backed-qcow2", "qcow2", "backing-file"),
        ("df-qcow2", "qcow2", "data-file"),
        ("s-vmdk", "vmdk", ""),
        ("so-vmdk", "vmdk", ""),
        ("sofooter-vmdk", "vmdk", ""),
        ("flat-vmdk", "vmdk", "descriptor"),
        ("v-vhd", "vhd", ""),
        ("v-vhdx", "vhdx", ""),
        ("v-vdi", "vdi", ""),
        ("v-qed", "qed", "banned"),
        ("l8-luks", "luks", ""),
        ("l2-luks", "luks", "version"),
        ("h-iso", "iso", ""),
        ("mbr-raw", "gpt", ""),
        ("gpt-raw", "gpt", ""),
        ("r-raw", "", ""),
    ];
    for (name, format, check) in expected {
        let data = std::fs::read(format!("{dir}/{name}.seed")).unwrap();
        fuzzing::check(&data);
        let input = fuzzing::decode(&data);
        let r = inspect_as(&input.bytes(), input.claimed, 65536);
        let found: Vec<&str> = r.matches.iter().map(|d| d.format).collect();
        if format.is_empty() {
            assert!(found.is_empty(), "{name}: {r:?}");
            continue;
        }
        assert_eq!(found, [format], "{name}: {r:?}");
        let first = r.matches[0]
            .violations
            .first()
            .map_or("", |v| v.check.as_str());
        assert_eq!(first, check, "{name}: {r:?}");
    }
}

/// Every seed, and every input the fuzzer ever failed on (`regression-*.seed`), passes the
/// fuzz target.
#[cfg(feature = "fuzzing")]
#[test]
fn fuzz_seeds_and_regressions_pass_the_target() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz-seeds");
    for entry in std::fs::read_dir(dir).unwrap() {
        fuzzing::check(&std::fs::read(entry.unwrap().path()).unwrap());
    }
}
