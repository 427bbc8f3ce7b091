//! Concurrency (interleaved futures; engines that do real I/O see real races).

use std::future::Future;
use std::pin::Pin;

use uuid::Uuid;

use super::helpers::{create, get, join_all, new_image, unique};
use glass_registry::{ImageStatus, Member, MemberStatus, Registry, RegistryError, Result};

pub(super) async fn concurrent_writes(r: &dyn Registry) {
    let owner = unique("race");
    for round in 0..5 {
        // Eight writers from one revision: one wins, the rest are stale.
        let image = create(r, new_image(&owner)).await;
        let futures = (0..8)
            .map(|i| {
                let mut attempt = image.clone();
                attempt.name = Some(format!("writer-{i}"));
                r.update_image(attempt)
            })
            .collect();
        let results = join_all(futures).await;
        let winners: Vec<usize> = (0..8).filter(|&i| results[i].is_ok()).collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: 8 concurrent updates from one revision: exactly one must win, got {results:?}"
        );
        for (i, res) in results.iter().enumerate() {
            if i != winners[0] {
                assert!(
                    matches!(res, Err(RegistryError::Stale(id)) if *id == image.id),
                    "round {round}: a losing concurrent update must fail with Stale, got {res:?}"
                );
            }
        }
        let stored = get(r, image.id).await;
        assert_eq!(
            stored.name,
            Some(format!("writer-{}", winners[0])),
            "the winner's write"
        );
        assert_eq!(
            stored.revision,
            image.revision + 1,
            "one write, one revision"
        );

        // Two queued -> saving transitions from one revision: one wins.
        let image = create(r, new_image(&owner)).await;
        let futures = (0..2)
            .map(|_| {
                let mut attempt = image.clone();
                attempt.status = ImageStatus::Saving;
                r.update_image(attempt)
            })
            .collect();
        let results = join_all(futures).await;
        let ok = results.iter().filter(|res| res.is_ok()).count();
        let stale = results
            .iter()
            .filter(|res| matches!(res, Err(RegistryError::Stale(_))))
            .count();
        assert!(
            ok == 1 && stale == 1,
            "round {round}: two concurrent queued -> saving: one must win, one be stale: {results:?}"
        );
        let stored = get(r, image.id).await;
        assert_eq!(
            (stored.status, stored.revision),
            (ImageStatus::Saving, image.revision + 1)
        );

        // Concurrent creates of one id: one wins.
        let id = Uuid::new_v4();
        let futures = (0..4)
            .map(|i| {
                let mut attempt = new_image(&owner);
                attempt.id = id;
                attempt.name = Some(format!("creator-{i}"));
                r.create_image(attempt)
            })
            .collect();
        let results = join_all(futures).await;
        let ok = results.iter().filter(|res| res.is_ok()).count();
        let dup = results
            .iter()
            .filter(|res| matches!(res, Err(RegistryError::DuplicateImage(got)) if *got == id))
            .count();
        assert!(
            ok == 1 && dup == 3,
            "round {round}: 4 concurrent creates of one id: one must win, 3 get DuplicateImage: {results:?}"
        );

        // Concurrent adds of one member: one wins.
        let member = unique("race-member");
        let futures = (0..3)
            .map(|_| {
                r.add_member(Member {
                    image_id: id,
                    member_id: member.clone(),
                    status: MemberStatus::Pending,
                    created_at: glass_registry::now(),
                    updated_at: glass_registry::now(),
                })
            })
            .collect();
        let results = join_all(futures).await;
        let ok = results.iter().filter(|res| res.is_ok()).count();
        let dup = results
            .iter()
            .filter(|res| matches!(res, Err(RegistryError::DuplicateMember { .. })))
            .count();
        assert!(
            ok == 1 && dup == 2,
            "round {round}: 3 concurrent adds of one member: one must win, 2 get DuplicateMember: {results:?}"
        );

        // A member added while the image is deleted never outlives the image.
        let image = create(r, new_image(&owner)).await;
        let member = unique("race-member");
        let add = r.add_member(Member {
            image_id: image.id,
            member_id: member.clone(),
            status: MemberStatus::Accepted,
            created_at: glass_registry::now(),
            updated_at: glass_registry::now(),
        });
        let add: Pin<Box<dyn Future<Output = Result<()>> + Send + '_>> =
            Box::pin(async move { add.await.map(|_| ()) });
        let del = r.delete_image(image.id, image.revision);
        let results = join_all(vec![add, del]).await;
        let gone = r.get_image(image.id).await.expect("get_image").is_none();
        if gone {
            assert!(
                results[1].is_ok(),
                "round {round}: image gone but delete reported {:?}",
                results[1]
            );
            let left = r.get_member(image.id, &member).await.expect("get_member");
            assert!(
                left.is_none(),
                "round {round}: a member added concurrently with delete_image outlived the image \
                 (add: {:?}, delete: {:?}): {left:?}",
                results[0],
                results[1]
            );
        } else {
            assert!(
                matches!(results[1], Err(RegistryError::Stale(_))),
                "round {round}: image kept, so delete must have been refused as Stale: {:?}",
                results[1]
            );
        }
    }
}
