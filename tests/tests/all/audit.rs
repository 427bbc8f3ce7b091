//! The data auditor: a byte flipped in a store's backend, or a copy gone, is found, recorded
//! on the copy (admins only), counted in metrics, and never served while a good copy exists.

use glass_tests::TestServer;
use glass_tests::data::{add_copy, fs_store, get_file, new_image, pseudo_random, put_file};
use reqwest::Method;

#[tokio::test]
async fn auditor_flags_a_flipped_byte_and_downloads_avoid_the_copy() {
    let server = TestServer::start_with(|c| {
        c.auth = glass_host::config::AuthMode::TrustedHeaders;
        c.stores = vec![fs_store("main", 100, true), fs_store("spare", 0, false)];
    })
    .await;
    let admin = server.admin();
    let data = pseudo_random(1_500_000, 3);
    let id = new_image(&admin).await;
    assert_eq!(put_file(&admin, &id, data.clone()).await.0, 204);
    let file = server.state.config.data_dir.join("main").join(&id);

    // A clean pass finds nothing.
    let (status, report) = admin.send(Method::POST, "/glass/v1/audit").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["copies_checked"], 1);
    assert_eq!(report["findings"].as_array().unwrap().len(), 0);

    // Flip one byte behind the store's back.
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[777_777] ^= 0x40;
    std::fs::write(&file, &bytes).unwrap();
    let (_, report) = admin.send(Method::POST, "/glass/v1/audit").await;
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{report}");
    assert_eq!(findings[0]["status"], "corrupt");
    assert_eq!(findings[0]["store"], "main");
    let (_, listed) = admin.get_json("/glass/v1/audit").await;
    assert_eq!(listed["findings"][0]["status"], "corrupt", "{listed}");
    assert_eq!(listed["findings"][0]["image_id"], id.as_str());
    // Not for users, and not in the image JSON.
    let user = server.client("p1", "member,reader");
    assert_eq!(user.get_json("/glass/v1/audit").await.0, 403);
    let (_, image) = admin.get_json(&format!("/v2/images/{id}")).await;
    assert!(!image.to_string().contains("glass_audit"), "{image}");

    // The only copy is bad: refuse rather than serve wrong bytes.
    assert_eq!(get_file(&admin, &id).await.0, 503);

    // With a good copy elsewhere, that one is served even though `main` weighs more.
    add_copy(&server, &id, "spare", &data).await;
    let (status, body) = get_file(&admin, &id).await;
    let body = body.unwrap();
    assert_eq!((status, body.len()), (200, data.len()));
    assert!(body == data, "the good copy's bytes");

    // Repaired: the next pass clears the mark; a missing copy is reported as missing.
    bytes[777_777] ^= 0x40;
    std::fs::write(&file, &bytes).unwrap();
    std::fs::remove_file(server.state.config.data_dir.join("spare").join(&id)).unwrap();
    let (_, report) = admin.send(Method::POST, "/glass/v1/audit").await;
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{report}");
    assert_eq!(findings[0]["store"], "spare");
    assert_eq!(findings[0]["status"], "missing");
    let (status, body) = get_file(&admin, &id).await;
    assert_eq!(status, 200);
    assert!(body.unwrap() == data);

    let text = admin.get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains("glass_audit_copies_total{store=\"main\",verdict=\"corrupt\"} 1"),
        "{text}"
    );
    assert!(text.contains("glass_audit_copies_total{store=\"spare\",verdict=\"missing\"} 1"));
}
