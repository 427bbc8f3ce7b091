"""python-glanceclient (v2, HTTPClient mode, no keystone) against Glass.

The client is ``glanceclient.Client('2', endpoint=GLASS_URL, token='noauth')``
(see conftest.py).  Metadata only: no image data is uploaded or downloaded.
Every expectation here was checked against the reference Glance 33.0.0.
"""

import html
import uuid

import pytest
from glanceclient import exc

from conftest import (CORE_ATTRS, FILTER_CASES, FILTER_IDS, MISSING,
                      assert_core_image, format_query, norm)


def as_dict(img):
    return norm(dict(img))


def msg(e):
    """Error text as glanceclient shows it.  Glance sends HTML error pages to
    glanceclient (Accept: */*), so quotes arrive as &#x27; entities."""
    return html.unescape(str(e))


def assert_gc_image(img):
    """glanceclient drops 'self' from image bodies; check everything else."""
    d = as_dict(img)
    assert "self" not in d
    d["self"] = f"/v2/images/{d['id']}"
    assert_core_image(d)


def gc_filters(query, catalogue):
    """FILTER_CASES query -> glanceclient filters dict (tag is a list)."""
    filters = {"tag": [catalogue["u"]]}
    for k, v in format_query(query, catalogue):
        if k == "tag":
            filters["tag"].append(v)
        else:
            assert k not in filters
            filters[k] = v
    return filters


# ==========================================================================
# versions / schema
# ==========================================================================

def test_versions_list(gc):
    versions = gc.versions.list()
    ids = [v["id"] for v in versions]
    assert "v2.0" in ids
    assert [v["status"] for v in versions].count("CURRENT") == 1


def test_image_schema_drives_the_client(gc):
    schema = gc.schemas.get("image")
    assert schema.name == "image"
    props = schema.raw()["properties"]
    assert CORE_ATTRS <= set(props)
    # 'id' is settable on create, so it is not readOnly in the schema
    assert "readOnly" not in props["id"]
    for ro in ("status", "size", "virtual_size", "checksum",
               "created_at", "updated_at", "os_hash_algo", "os_hash_value",
               "self", "file", "schema"):
        assert props[ro].get("readOnly") is True, ro
    assert schema.raw()["additionalProperties"] == {"type": "string"}
    assert set(props["visibility"]["enum"]) == {"public", "private", "shared",
                                                "community"}
    assert "raw" in props["disk_format"]["enum"]
    assert "bare" in props["container_format"]["enum"]


# ==========================================================================
# create / get
# ==========================================================================

def test_create_get_with_extra_properties(gc, cleanup, uniq):
    img = gc.images.create(name=f"{uniq}-img", disk_format="raw",
                           container_format="bare", tags=[uniq, "t2"],
                           min_ram=0, os_distro="debian",
                           custom_key="custom value")
    cleanup.add(img.id)
    assert_gc_image(img)
    assert img.name == f"{uniq}-img"
    assert img.status == "queued"
    assert img.visibility == "shared"
    assert img.protected is False and img.os_hidden is False
    assert img.size is None and img.checksum is None
    assert img.os_distro == "debian"
    assert img["custom_key"] == "custom value"
    assert sorted(img.tags) == sorted([uniq, "t2"])
    # request id is exposed by the client's proxy
    assert img.request_ids and img.request_ids[0].startswith("req-")

    got = gc.images.get(img.id)
    assert_gc_image(got)
    assert as_dict(got) == as_dict(img)


def test_create_invalid_disk_format_rejected(gc, uniq):
    # glanceclient validates against /v2/schemas/image before sending, so
    # the server's schema must carry the disk_format enum
    with pytest.raises(TypeError) as ei:
        gc.images.create(name=uniq, disk_format="notaformat")
    assert "'notaformat' is not one of" in str(ei.value)
    assert list(gc.images.list(filters={"name": uniq})) == []


def test_create_duplicate_id_conflict(gc, cleanup, uniq):
    image_id = str(uuid.uuid4())
    img = gc.images.create(id=image_id, name=uniq)
    cleanup.add(img.id)
    assert img.id == image_id
    with pytest.raises(exc.HTTPConflict) as ei:
        gc.images.create(id=image_id, name="dup")
    assert ei.value.code == 409
    assert f"Image ID {image_id} already exists!" in msg(ei.value)


def test_get_missing_is_not_found(gc):
    with pytest.raises(exc.HTTPNotFound) as ei:
        gc.images.get(MISSING)
    assert ei.value.code == 404
    assert f"No image found with ID {MISSING}" in msg(ei.value)


def test_other_project_cannot_see_private_image(gc, cleanup, make_project,
                                                uniq):
    owner, other = make_project(), make_project()
    img = owner.gc.images.create(name=uniq, visibility="private")
    cleanup.add(img.id)
    assert img.owner == owner.id
    with pytest.raises(exc.HTTPNotFound):
        other.gc.images.get(img.id)
    assert gc.images.get(img.id).owner == owner.id       # admin sees it


# ==========================================================================
# listing
# ==========================================================================

@pytest.mark.parametrize("query,expected", FILTER_CASES, ids=FILTER_IDS)
def test_list_filters(gc, catalogue, query, expected):
    filters = gc_filters(query, catalogue)
    names = sorted(i.name for i in gc.images.list(filters=filters))
    assert names == sorted(f"{catalogue['u']}-{k}" for k in expected), filters


def test_list_created_at_filters(gc, catalogue):
    u = catalogue["u"]
    all_names = {f"{u}-{k}" for k in "abcd"}
    got = {i.name for i in gc.images.list(
        filters={"tag": [u], "created_at": "gte:2000-01-01T00:00:00Z"})}
    assert got == all_names
    got = list(gc.images.list(
        filters={"tag": [u], "updated_at": "lt:2000-01-01T00:00:00Z"}))
    assert got == []
    with pytest.raises(exc.HTTPBadRequest):
        list(gc.images.list(filters={"created_at": "gte:yesterday"}))


@pytest.fixture
def sortable(http, uniq):
    specs = [("q", "raw", "bare"), ("p", "qcow2", "ovf"), ("r", "iso", "bare")]
    for n, df, cf in specs:
        http.create_image(name=f"{uniq}-{n}", disk_format=df,
                          container_format=cf, tags=[uniq])
    return uniq


@pytest.mark.parametrize("kwargs,expected", [
    ({"sort_key": "name", "sort_dir": "asc"}, "pqr"),
    ({"sort_key": "name", "sort_dir": "desc"}, "rqp"),
    ({"sort_key": "name"}, "rqp"),
    ({"sort": "name:asc"}, "pqr"),
    ({"sort": "container_format:asc,name:desc"}, "rqp"),
    ({"sort": "container_format:desc,name:asc"}, "pqr"),
    ({"sort_key": ["container_format", "name"],
      "sort_dir": ["asc", "asc"]}, "qrp"),
    ({"sort_key": ["disk_format"], "sort_dir": ["asc"]}, "rpq"),
])
def test_list_sorting(gc, sortable, kwargs, expected):
    names = [i.name for i in gc.images.list(filters={"tag": [sortable]},
                                            **kwargs)]
    assert names == [f"{sortable}-{c}" for c in expected]


def test_list_bad_sort_key(gc):
    # glanceclient checks sort keys itself; the server must agree
    with pytest.raises(exc.HTTPBadRequest):
        list(gc.images.list(sort_key="bogus"))


def test_list_paging_follows_next(gc, sixty, monkeypatch):
    calls = []
    real_get = gc.http_client.get

    def counting_get(url, **kw):
        calls.append(url)
        return real_get(url, **kw)

    monkeypatch.setattr(gc.http_client, "get", counting_get)
    names = [i.name for i in gc.images.list(filters={"tag": [sixty["u"]]},
                                            page_size=7, sort_key="name",
                                            sort_dir="asc")]
    assert names == sixty["names"]
    assert len(calls) == 9                       # 8 full pages + 4 left
    assert all("marker=" in c for c in calls[1:])
    assert "marker=" not in calls[0]


def test_list_paging_default_sort_each_once(gc, sixty):
    ids = [i.id for i in gc.images.list(filters={"tag": [sixty["u"]]},
                                        page_size=20)]
    assert len(ids) == 60 and len(set(ids)) == 60
    assert set(ids) == {i["id"] for i in sixty["imgs"].values()}


def test_list_limit_and_marker(gc, sixty):
    u, names = sixty["u"], sixty["names"]
    got = [i.name for i in gc.images.list(filters={"tag": [u]}, limit=10,
                                          page_size=4, sort="name:desc")]
    assert got == list(reversed(names))[:10]
    by_name = {i["name"]: i["id"] for i in sixty["imgs"].values()}
    got = [i.name for i in gc.images.list(filters={"tag": [u]},
                                          marker=by_name[names[49]],
                                          sort="name:asc", page_size=3)]
    assert got == names[50:]
    with pytest.raises(exc.HTTPBadRequest):
        list(gc.images.list(marker=MISSING))


# ==========================================================================
# update (JSON patch generated by the client)
# ==========================================================================

def test_update_core_and_extra_properties(gc, cleanup, uniq):
    img = gc.images.create(name=f"{uniq}-a", os_distro="debian",
                           custom_key="v1", color="red")
    cleanup.add(img.id)
    new = gc.images.update(img.id, name=f"{uniq}-b", min_ram=256,
                           visibility="private", protected=True,
                           custom_key="v2", newprop="x",
                           remove_props=["color", "os_distro"])
    assert_gc_image(new)
    assert new.name == f"{uniq}-b"
    assert new.min_ram == 256
    assert new.visibility == "private"
    assert new.protected is True
    assert new["custom_key"] == "v2" and new["newprop"] == "x"
    assert "color" not in new and "os_distro" not in new
    assert new.created_at == img.created_at
    assert as_dict(gc.images.get(img.id)) == as_dict(new)

    new = gc.images.update(img.id, protected=False, visibility="shared",
                           remove_props=["newprop"])
    assert new.protected is False and new.visibility == "shared"
    assert "newprop" not in new and new["custom_key"] == "v2"


def test_update_read_only_is_forbidden(gc, cleanup, uniq):
    img = gc.images.create(name=uniq)
    cleanup.add(img.id)
    # the client does not enforce readOnly: the server answers 403
    with pytest.raises(exc.HTTPForbidden) as ei:
        gc.images.update(img.id, size=5)
    assert "Attribute 'size' is read-only." in msg(ei.value)
    assert gc.images.get(img.id).size is None


# ==========================================================================
# tags
# ==========================================================================

def test_tags(gc, cleanup, uniq):
    img = gc.images.create(name=uniq, tags=["t1"])
    cleanup.add(img.id)
    gc.image_tags.update(img.id, "t2")
    gc.image_tags.update(img.id, "t2")
    assert sorted(gc.images.get(img.id).tags) == ["t1", "t2"]
    gc.image_tags.delete(img.id, "t1")
    assert gc.images.get(img.id).tags == ["t2"]
    with pytest.raises(exc.HTTPNotFound):
        gc.image_tags.delete(img.id, "t1")
    names = [i.name for i in gc.images.list(filters={"tag": ["t2"],
                                                     "name": uniq})]
    assert names == [uniq]


# ==========================================================================
# members
# ==========================================================================

def test_members_across_projects(cleanup, make_project, uniq):
    owner, b = make_project(), make_project()
    img = owner.gc.images.create(name=uniq, tags=[uniq])
    cleanup.add(img.id)

    m = owner.gc.image_members.create(img.id, b.id)
    assert m.member_id == b.id and m.image_id == img.id
    assert m.status == "pending"
    with pytest.raises(exc.HTTPConflict):
        owner.gc.image_members.create(img.id, b.id)

    def b_names(**filters):
        filters["tag"] = [uniq]
        return [i.name for i in b.gc.images.list(filters=filters)]

    assert b_names() == []
    assert b_names(visibility="shared", member_status="pending") == [uniq]

    m = b.gc.image_members.update(img.id, b.id, "accepted")
    assert m.status == "accepted"
    assert b_names() == [uniq]
    assert b.gc.images.get(img.id).id == img.id

    members = list(owner.gc.image_members.list(img.id))
    assert [(x.member_id, x.status) for x in members] == [(b.id, "accepted")]
    assert owner.gc.image_members.get(img.id, b.id).status == "accepted"

    owner.gc.image_members.delete(img.id, b.id)
    assert list(owner.gc.image_members.list(img.id)) == []
    with pytest.raises(exc.HTTPNotFound):
        b.gc.images.get(img.id)


def test_members_private_image_forbidden(gc, cleanup, uniq):
    img = gc.images.create(name=uniq, visibility="private")
    cleanup.add(img.id)
    with pytest.raises(exc.HTTPForbidden) as ei:
        gc.image_members.create(img.id, "2" * 32)
    assert "Not allowed to create members for image" in msg(ei.value)


# ==========================================================================
# deactivate / protected / delete
# ==========================================================================

def test_deactivate_queued_image_forbidden(gc, cleanup, uniq):
    img = gc.images.create(name=uniq)
    cleanup.add(img.id)
    with pytest.raises(exc.HTTPForbidden) as ei:
        gc.images.deactivate(img.id)
    assert "Not allowed to deactivate image in status 'queued'" in msg(
        ei.value)
    with pytest.raises(exc.HTTPForbidden):
        gc.images.reactivate(img.id)
    assert gc.images.get(img.id).status == "queued"


def test_protected_delete(gc, cleanup, uniq):
    img = gc.images.create(name=uniq, protected=True)
    cleanup.add(img.id)
    with pytest.raises(exc.HTTPForbidden) as ei:
        gc.images.delete(img.id)
    assert "is protected and cannot be deleted" in msg(ei.value)
    gc.images.update(img.id, protected=False)
    gc.images.delete(img.id)
    with pytest.raises(exc.HTTPNotFound):
        gc.images.get(img.id)
    with pytest.raises(exc.HTTPNotFound):
        gc.images.delete(img.id)
