//! Visibility: which images each viewer lists and may see.

use std::collections::{BTreeSet, HashMap};

use uuid::Uuid;

use super::helpers::{
    add_member, admin, assert_err, create, id_set, list_all, list_paged, new_image, owned_by,
    unique, user,
};
use glass_registry::{
    Image, ImageQuery, MemberStatus, MemberStatusFilter, Registry, RegistryError, Viewer,
    Visibility, VisibilityScope,
};

pub(super) async fn visibility(r: &dyn Registry) {
    let p = unique("vis-owner");
    let q = unique("vis-other");
    let m = unique("vis-member");
    let m_longer = format!("{m}x");
    let stranger = unique("vis-stranger");

    async fn make(r: &dyn Registry, owner: &str, v: Visibility, name: &str) -> Image {
        let mut image = new_image(owner);
        image.visibility = v;
        image.name = Some(name.to_string());
        create(r, image).await
    }
    use Visibility::*;
    let pub_p = make(r, &p, Public, "pub_p").await;
    let priv_p = make(r, &p, Private, "priv_p").await;
    let shared_none = make(r, &p, Shared, "shared_none").await;
    let comm_p = make(r, &p, Community, "comm_p").await;
    let sh_pending = make(r, &p, Shared, "sh_pending").await;
    let sh_accepted = make(r, &p, Shared, "sh_accepted").await;
    let sh_rejected = make(r, &p, Shared, "sh_rejected").await;
    let priv_member = make(r, &p, Private, "priv_member").await;
    let pub_member = make(r, &p, Public, "pub_member").await;
    let sh_longer = make(r, &p, Shared, "sh_longer").await;
    let priv_q = make(r, &q, Private, "priv_q").await;
    let pub_q = make(r, &q, Public, "pub_q").await;
    let comm_q = make(r, &q, Community, "comm_q").await;
    let shared_q = make(r, &q, Shared, "shared_q").await;
    add_member(r, sh_pending.id, &m, MemberStatus::Pending).await;
    add_member(r, sh_accepted.id, &m, MemberStatus::Accepted).await;
    add_member(r, sh_rejected.id, &m, MemberStatus::Rejected).await;
    add_member(r, priv_member.id, &m, MemberStatus::Accepted).await;
    add_member(r, pub_member.id, &m, MemberStatus::Rejected).await;
    add_member(r, sh_longer.id, &m_longer, MemberStatus::Accepted).await;

    let every = [
        &pub_p,
        &priv_p,
        &shared_none,
        &comm_p,
        &sh_pending,
        &sh_accepted,
        &sh_rejected,
        &priv_member,
        &pub_member,
        &sh_longer,
        &priv_q,
        &pub_q,
        &comm_q,
        &shared_q,
    ];
    let names: HashMap<Uuid, String> = every
        .iter()
        .map(|i| (i.id, i.name.clone().unwrap_or_default()))
        .collect();
    let named = |set: &BTreeSet<Uuid>| -> BTreeSet<String> {
        set.iter()
            .map(|id| names.get(id).cloned().unwrap_or_else(|| id.to_string()))
            .collect()
    };
    let all_but = |skip: &[&Image]| -> Vec<Image> {
        every
            .iter()
            .filter(|i| !skip.iter().any(|s| s.id == i.id))
            .map(|i| (*i).clone())
            .collect()
    };
    let publics = [&pub_p, &pub_member, &pub_q];
    let comms = [&comm_p, &comm_q];
    let p_images = [
        &pub_p,
        &priv_p,
        &shared_none,
        &comm_p,
        &sh_pending,
        &sh_accepted,
        &sh_rejected,
        &priv_member,
        &pub_member,
        &sh_longer,
    ];
    let set = |images: &[&[&Image]]| -> BTreeSet<Uuid> {
        images
            .iter()
            .flat_map(|group| group.iter().map(|i| i.id))
            .collect()
    };

    let admin_viewer = admin();
    let anonymous = Viewer::default();
    let cases: Vec<(
        &str,
        Viewer,
        VisibilityScope,
        MemberStatusFilter,
        BTreeSet<Uuid>,
    )> = vec![
        // Admin: everything but others' community images by default.
        (
            "admin",
            admin_viewer.clone(),
            VisibilityScope::Default,
            MemberStatusFilter::Accepted,
            id_set(&all_but(&[&comm_p, &comm_q])),
        ),
        (
            "admin",
            admin_viewer.clone(),
            VisibilityScope::All,
            MemberStatusFilter::Accepted,
            id_set(&all_but(&[])),
        ),
        (
            "admin",
            admin_viewer.clone(),
            VisibilityScope::Only(Public),
            MemberStatusFilter::Accepted,
            set(&[&publics]),
        ),
        (
            "admin",
            admin_viewer.clone(),
            VisibilityScope::Only(Private),
            MemberStatusFilter::Accepted,
            set(&[&[&priv_p, &priv_member, &priv_q]]),
        ),
        (
            "admin",
            admin_viewer.clone(),
            VisibilityScope::Only(Shared),
            MemberStatusFilter::Accepted,
            set(&[&[
                &shared_none,
                &sh_pending,
                &sh_accepted,
                &sh_rejected,
                &sh_longer,
                &shared_q,
            ]]),
        ),
        (
            "admin",
            admin_viewer.clone(),
            VisibilityScope::Only(Community),
            MemberStatusFilter::Accepted,
            set(&[&comms]),
        ),
        // Owner: all its own images plus others' public ones (community only with All).
        (
            "owner",
            user(&p),
            VisibilityScope::Default,
            MemberStatusFilter::Accepted,
            set(&[&p_images, &[&pub_q]]),
        ),
        (
            "owner",
            user(&p),
            VisibilityScope::All,
            MemberStatusFilter::Accepted,
            set(&[&p_images, &[&pub_q, &comm_q]]),
        ),
        (
            "owner",
            user(&p),
            VisibilityScope::Only(Private),
            MemberStatusFilter::Accepted,
            set(&[&[&priv_p, &priv_member]]),
        ),
        (
            "owner",
            user(&p),
            VisibilityScope::Only(Shared),
            MemberStatusFilter::Accepted,
            set(&[&[
                &shared_none,
                &sh_pending,
                &sh_accepted,
                &sh_rejected,
                &sh_longer,
            ]]),
        ),
        (
            "owner",
            user(&p),
            VisibilityScope::Only(Shared),
            MemberStatusFilter::Only(MemberStatus::Pending),
            set(&[&[
                &shared_none,
                &sh_pending,
                &sh_accepted,
                &sh_rejected,
                &sh_longer,
            ]]),
        ),
        (
            "owner",
            user(&p),
            VisibilityScope::Only(Community),
            MemberStatusFilter::Accepted,
            set(&[&comms]),
        ),
        (
            "owner",
            user(&p),
            VisibilityScope::Only(Public),
            MemberStatusFilter::Accepted,
            set(&[&publics]),
        ),
        // Another project: public, plus community when asked.
        (
            "stranger",
            user(&stranger),
            VisibilityScope::Default,
            MemberStatusFilter::Accepted,
            set(&[&publics]),
        ),
        (
            "stranger",
            user(&stranger),
            VisibilityScope::All,
            MemberStatusFilter::All,
            set(&[&publics, &comms]),
        ),
        (
            "stranger",
            user(&stranger),
            VisibilityScope::Only(Private),
            MemberStatusFilter::All,
            BTreeSet::new(),
        ),
        (
            "stranger",
            user(&stranger),
            VisibilityScope::Only(Shared),
            MemberStatusFilter::All,
            BTreeSet::new(),
        ),
        (
            "stranger",
            user(&stranger),
            VisibilityScope::Only(Community),
            MemberStatusFilter::Accepted,
            set(&[&comms]),
        ),
        // No project at all.
        (
            "anonymous",
            anonymous.clone(),
            VisibilityScope::Default,
            MemberStatusFilter::Accepted,
            set(&[&publics]),
        ),
        (
            "anonymous",
            anonymous.clone(),
            VisibilityScope::All,
            MemberStatusFilter::All,
            set(&[&publics, &comms]),
        ),
        (
            "anonymous",
            anonymous.clone(),
            VisibilityScope::Only(Shared),
            MemberStatusFilter::All,
            BTreeSet::new(),
        ),
        // A member: shared images by member status, never a private image it is a member of.
        (
            "member",
            user(&m),
            VisibilityScope::Default,
            MemberStatusFilter::Accepted,
            set(&[&publics, &[&sh_accepted]]),
        ),
        (
            "member",
            user(&m),
            VisibilityScope::Default,
            MemberStatusFilter::Only(MemberStatus::Accepted),
            set(&[&publics, &[&sh_accepted]]),
        ),
        (
            "member",
            user(&m),
            VisibilityScope::Default,
            MemberStatusFilter::Only(MemberStatus::Pending),
            set(&[&publics, &[&sh_pending]]),
        ),
        (
            "member",
            user(&m),
            VisibilityScope::Default,
            MemberStatusFilter::Only(MemberStatus::Rejected),
            set(&[&publics, &[&sh_rejected]]),
        ),
        (
            "member",
            user(&m),
            VisibilityScope::Default,
            MemberStatusFilter::All,
            set(&[&publics, &[&sh_pending, &sh_accepted, &sh_rejected]]),
        ),
        (
            "member",
            user(&m),
            VisibilityScope::All,
            MemberStatusFilter::Accepted,
            set(&[&publics, &comms, &[&sh_accepted]]),
        ),
        (
            "member",
            user(&m),
            VisibilityScope::All,
            MemberStatusFilter::All,
            set(&[&publics, &comms, &[&sh_pending, &sh_accepted, &sh_rejected]]),
        ),
        (
            "member",
            user(&m),
            VisibilityScope::Only(Shared),
            MemberStatusFilter::Accepted,
            set(&[&[&sh_accepted]]),
        ),
        (
            "member",
            user(&m),
            VisibilityScope::Only(Shared),
            MemberStatusFilter::Only(MemberStatus::Pending),
            set(&[&[&sh_pending]]),
        ),
        (
            "member",
            user(&m),
            VisibilityScope::Only(Shared),
            MemberStatusFilter::All,
            set(&[&[&sh_pending, &sh_accepted, &sh_rejected]]),
        ),
        (
            "member",
            user(&m),
            VisibilityScope::Only(Private),
            MemberStatusFilter::All,
            BTreeSet::new(),
        ),
        (
            "member",
            user(&m),
            VisibilityScope::Only(Public),
            MemberStatusFilter::Accepted,
            set(&[&publics]),
        ),
        (
            "member",
            user(&m),
            VisibilityScope::Only(Community),
            MemberStatusFilter::All,
            set(&[&comms]),
        ),
        // A project whose id extends the member's sees only its own share.
        (
            "longer member",
            user(&m_longer),
            VisibilityScope::Default,
            MemberStatusFilter::Accepted,
            set(&[&publics, &[&sh_longer]]),
        ),
    ];
    let owners = [p.as_str(), q.as_str()];
    for (who, viewer, scope, member_status, want) in cases {
        let query = ImageQuery {
            viewer: viewer.clone(),
            visibility: scope,
            member_status,
            filters: vec![owned_by(&owners)],
            ..ImageQuery::default()
        };
        let got = id_set(&list_all(r, query.clone()).await);
        assert_eq!(
            named(&got),
            named(&want),
            "{who} listing with visibility {scope:?}, member_status {member_status:?}"
        );
        let paged = list_paged(r, query, 3).await;
        assert_eq!(
            id_set(&paged),
            want,
            "{who} {scope:?} {member_status:?} in pages of 3"
        );
    }

    // Accepting a share puts the image in the member's default listing; deleting the
    // membership takes it out of every listing.
    let member_query = |status: MemberStatusFilter| ImageQuery {
        viewer: user(&m),
        member_status: status,
        filters: vec![owned_by(&owners)],
        ..ImageQuery::default()
    };
    let mut accepted = r
        .get_member(sh_pending.id, &m)
        .await
        .expect("get")
        .expect("member");
    accepted.status = MemberStatus::Accepted;
    r.update_member(accepted).await.expect("update_member");
    let got = id_set(&list_all(r, member_query(MemberStatusFilter::Accepted)).await);
    assert_eq!(
        named(&got),
        named(&set(&[&publics, &[&sh_pending, &sh_accepted]])),
        "after the member accepts"
    );
    r.delete_member(sh_pending.id, &m)
        .await
        .expect("delete_member");
    let got = id_set(&list_all(r, member_query(MemberStatusFilter::All)).await);
    assert_eq!(
        named(&got),
        named(&set(&[&publics, &[&sh_accepted, &sh_rejected]])),
        "after the membership is deleted"
    );

    // Markers must be images the viewer may see.
    let marker_cases: [(&str, Viewer, &Image, bool); 9] = [
        ("member, private image", user(&m), &priv_p, false),
        (
            "member, private image it is a member of",
            user(&m),
            &priv_member,
            false,
        ),
        (
            "member, shared image it rejected",
            user(&m),
            &sh_rejected,
            true,
        ),
        (
            "member, shared image it is no longer a member of",
            user(&m),
            &sh_pending,
            false,
        ),
        (
            "member, another project's community image",
            user(&m),
            &comm_q,
            true,
        ),
        (
            "stranger, memberless shared image",
            user(&stranger),
            &shared_none,
            false,
        ),
        (
            "owner, another project's private image",
            user(&p),
            &priv_q,
            false,
        ),
        (
            "admin, another project's private image",
            admin(),
            &priv_q,
            true,
        ),
        ("anonymous, public image", anonymous, &pub_p, true),
    ];
    for (what, viewer, marker, visible) in marker_cases {
        let query = ImageQuery {
            viewer,
            visibility: VisibilityScope::All,
            member_status: MemberStatusFilter::All,
            filters: vec![owned_by(&owners)],
            marker: Some(marker.id),
            ..ImageQuery::default()
        };
        let result = r.list_images(query).await;
        if visible {
            assert!(
                result.is_ok(),
                "marker ({what}) is visible, listing must work: {result:?}"
            );
        } else {
            assert_err!(
                result,
                RegistryError::MarkerNotFound(id) if id == marker.id,
                "marker ({what}) is not visible"
            );
        }
    }
}
