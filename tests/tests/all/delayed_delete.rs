//! Deleting images: the data is handed to a persisted scrub queue. With `delayed_delete` the
//! image is gone from the API at once but its data stays for `scrub_time_s`, during which an
//! admin can restore it; the reaper then removes the data. Without it, the data goes at once.

use glass_tests::TestServer;
use glass_tests::data::{get_file, new_image, pseudo_random, put_file};
use reqwest::Method;

fn data_path(server: &TestServer, id: &str) -> std::path::PathBuf {
    server.state.config.data_dir.join("images").join(id)
}

#[tokio::test]
async fn delayed_delete_keeps_data_until_reaped_and_allows_restore() {
    let server = TestServer::start_with(|c| {
        c.auth = glass_host::config::AuthMode::TrustedHeaders;
        c.delayed_delete = true;
        c.scrub_time_s = 3600;
        c.reaper_interval_s = 3600;
    })
    .await;
    let admin = server.admin();
    let data = pseudo_random(400_000, 9);
    let id = new_image(&admin).await;
    assert_eq!(put_file(&admin, &id, data.clone()).await.0, 204);
    assert_eq!(
        admin
            .send(Method::DELETE, &format!("/v2/images/{id}"))
            .await
            .0,
        204
    );

    // Gone from the API, still on disk, listed for admins only.
    assert_eq!(admin.get_json(&format!("/v2/images/{id}")).await.0, 404);
    assert!(data_path(&server, &id).exists());
    let (status, queue) = admin.get_json("/glass/v1/deleted-images").await;
    assert_eq!(status, 200);
    assert_eq!(queue["deleted_images"][0]["image_id"], id.as_str());
    let user = server.client("p1", "member,reader");
    assert_eq!(user.get_json("/glass/v1/deleted-images").await.0, 403);

    // Not due yet: the reaper leaves it.
    let (_, reaped) = admin
        .send(Method::POST, "/glass/v1/deleted-images/reap")
        .await;
    assert_eq!(
        (reaped["removed"].as_u64(), reaped["waiting"].as_u64()),
        (Some(0), Some(1))
    );

    // Restore within the window: the image and its data are back.
    let path = format!("/glass/v1/deleted-images/{id}/restore");
    let (status, image) = admin.send(Method::POST, &path).await;
    assert_eq!(status, 200, "{image}");
    assert_eq!(image["status"], "active");
    let (status, body) = get_file(&admin, &id).await;
    assert_eq!(status, 200);
    assert!(body.unwrap() == data);
    assert_eq!(
        admin.send(Method::POST, &path).await.0,
        404,
        "nothing left to restore"
    );

    // Delete again; make the job due; the reaper removes the data and restore is over.
    assert_eq!(
        admin
            .send(Method::DELETE, &format!("/v2/images/{id}"))
            .await
            .0,
        204
    );
    let job = server
        .state
        .config
        .data_dir
        .join("scrub")
        .join(format!("{id}.json"));
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&job).unwrap()).unwrap();
    record["due_at"] = serde_json::json!(0);
    std::fs::write(&job, record.to_string()).unwrap();
    let (_, reaped) = admin
        .send(Method::POST, "/glass/v1/deleted-images/reap")
        .await;
    assert_eq!(reaped["removed"], 1, "{reaped}");
    assert!(!data_path(&server, &id).exists());
    assert_eq!(admin.send(Method::POST, &path).await.0, 404);
}

#[tokio::test]
async fn immediate_delete_removes_data_and_leaves_no_job() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let id = new_image(&admin).await;
    assert_eq!(put_file(&admin, &id, pseudo_random(10_000, 1)).await.0, 204);
    assert!(data_path(&server, &id).exists());
    assert_eq!(
        admin
            .send(Method::DELETE, &format!("/v2/images/{id}"))
            .await
            .0,
        204
    );
    assert!(!data_path(&server, &id).exists());
    let (_, queue) = admin.get_json("/glass/v1/deleted-images").await;
    assert_eq!(
        queue["deleted_images"].as_array().unwrap().len(),
        0,
        "{queue}"
    );
}
