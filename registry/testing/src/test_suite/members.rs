//! Members: adding, listing, changing and removing an image's members.

use uuid::Uuid;

use super::helpers::{assert_err, at, create, new_image, unique};
use glass_registry::{Member, MemberStatus, Registry, RegistryError};

pub(super) async fn members(r: &dyn Registry) {
    let owner = unique("members");
    let image = create(r, new_image(&owner)).await;
    let other = create(r, new_image(&owner)).await;
    let id = image.id;
    let a = unique("member-a");
    // A member id that extends another one must not be confused with it.
    let a_longer = format!("{a}-2");

    let ma = Member {
        image_id: id,
        member_id: a.clone(),
        status: MemberStatus::Pending,
        created_at: at(1, 0),
        updated_at: at(1, 0),
    };
    let added = r.add_member(ma.clone()).await.expect("add_member");
    assert_eq!(added, ma, "add_member returns the member as stored");
    assert_eq!(
        r.get_member(id, &a).await.expect("get_member"),
        Some(ma.clone())
    );

    let mut dup = ma.clone();
    dup.status = MemberStatus::Accepted;
    assert_err!(
        r.add_member(dup).await,
        RegistryError::DuplicateMember { image, member } if image == id && member == a,
        "add_member twice"
    );
    assert_eq!(
        r.get_member(id, &a).await.expect("get_member"),
        Some(ma.clone()),
        "a refused duplicate add must not change the member"
    );

    assert_eq!(
        r.get_member(id, &a_longer).await.expect("get_member"),
        None,
        "unknown member"
    );
    assert_eq!(
        r.get_member(other.id, &a).await.expect("get_member"),
        None,
        "other image"
    );
    assert_eq!(
        r.get_member(Uuid::new_v4(), &a).await.expect("get_member"),
        None,
        "no image"
    );

    let mb = Member {
        image_id: id,
        member_id: a_longer.clone(),
        status: MemberStatus::Accepted,
        created_at: at(2, 0),
        updated_at: at(2, 0),
    };
    r.add_member(mb.clone()).await.expect("add_member b");
    let mut listed = r.list_members(id).await.expect("list_members");
    listed.sort_by(|x, y| x.member_id.cmp(&y.member_id));
    assert_eq!(
        listed,
        vec![ma.clone(), mb.clone()],
        "list_members returns the image's members"
    );
    assert!(
        r.list_members(other.id)
            .await
            .expect("list_members")
            .is_empty(),
        "list_members of another image"
    );
    assert_eq!(
        r.get_member(id, &a).await.expect("get_member"),
        Some(ma.clone()),
        "prefix ids"
    );

    let mut accepted = ma.clone();
    accepted.status = MemberStatus::Accepted;
    accepted.updated_at = at(3, 0);
    let stored = r
        .update_member(accepted.clone())
        .await
        .expect("update_member");
    assert_eq!(
        stored, accepted,
        "update_member returns the member as stored"
    );
    assert_eq!(
        r.get_member(id, &a).await.expect("get_member"),
        Some(accepted.clone())
    );
    assert_eq!(
        r.get_member(id, &a_longer).await.expect("get_member"),
        Some(mb.clone()),
        "updating one member must leave the other alone"
    );

    let mut stranger = ma.clone();
    stranger.member_id = unique("stranger");
    assert_err!(
        r.update_member(stranger.clone()).await,
        RegistryError::MemberNotFound { image, member } if image == id && member == stranger.member_id,
        "update_member of a missing member"
    );
    assert_eq!(
        r.get_member(id, &stranger.member_id).await.expect("get"),
        None,
        "no upsert"
    );
    let mut orphan = ma.clone();
    orphan.image_id = Uuid::new_v4();
    assert_err!(
        r.update_member(orphan).await,
        RegistryError::MemberNotFound { .. } | RegistryError::ImageNotFound(_),
        "update_member on a missing image"
    );

    r.delete_member(id, &a).await.expect("delete_member");
    assert_eq!(
        r.get_member(id, &a).await.expect("get_member"),
        None,
        "deleted member is gone"
    );
    assert_eq!(
        r.list_members(id).await.expect("list_members"),
        vec![mb.clone()],
        "list_members after delete_member"
    );
    assert_err!(
        r.delete_member(id, &a).await,
        RegistryError::MemberNotFound { image, member } if image == id && member == a,
        "delete_member twice"
    );
    assert_err!(
        r.delete_member(other.id, &a_longer).await,
        RegistryError::MemberNotFound { .. },
        "delete_member on an image it is not a member of"
    );
    assert_eq!(
        r.get_member(id, &a_longer).await.expect("get"),
        Some(mb),
        "other member kept"
    );

    let missing = Uuid::new_v4();
    let mut nowhere = ma.clone();
    nowhere.image_id = missing;
    assert_err!(
        r.add_member(nowhere).await,
        RegistryError::ImageNotFound(got) if got == missing,
        "add_member to a missing image"
    );
    assert!(
        r.list_members(missing)
            .await
            .expect("list_members")
            .is_empty(),
        "no member stored"
    );

    // A deleted member can be added again.
    let readded = r
        .add_member(ma.clone())
        .await
        .expect("add_member after delete_member");
    assert_eq!(readded, ma);
}
