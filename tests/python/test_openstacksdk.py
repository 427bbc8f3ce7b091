"""openstacksdk (image proxy, auth_type='none') against Glass.

The connection is ``openstack.connection.Connection(auth_type='none',
image_endpoint_override=GLASS_URL)`` (see conftest.py); the SDK discovers
the v2 endpoint from the version document at GLASS_URL.  Metadata only.
Every expectation here was checked against the reference Glance 33.0.0.
"""

import contextlib

import pytest
from openstack import exceptions as ox
from openstack.image.v2.image import Image

from conftest import (FILTER_CASES, FILTER_IDS, GLASS_URL, MISSING,
                      format_query)


# The SDK sends only the query parameters it knows (Image._query_mapping);
# others (disk_format, container_format, extra properties) it filters
# client-side, which would not exercise the server: skip those cases.
SDK_KNOWN = set(Image._query_mapping._mapping.values()) | {"os_hidden"}
SDK_CASES = [(q, e, i) for (q, e), i in zip(FILTER_CASES, FILTER_IDS)
             if all(k in SDK_KNOWN for k, _ in q)]


def sdk_query(query, catalogue):
    """FILTER_CASES query -> openstacksdk images() kwargs."""
    kwargs = {"tag": [catalogue["u"]]}
    for k, v in format_query(query, catalogue):
        if k == "tag":
            kwargs["tag"].append(v)
            continue
        k = {"os_hidden": "is_hidden"}.get(k, k)
        assert k not in kwargs
        kwargs[k] = v
    return kwargs


@contextlib.contextmanager
def count_requests(conn):
    """Collect the URLs of the HTTP requests the connection sends."""
    urls = []

    def hook(resp, *a, **kw):
        urls.append(resp.request.url)

    hooks = conn.session.session.hooks["response"]
    hooks.append(hook)
    try:
        yield urls
    finally:
        hooks.remove(hook)


def create(conn, cleanup, name, **kw):
    img = conn.image.create_image(name, allow_duplicates=True, **kw)
    cleanup.add(img.id)
    return img


# ==========================================================================
# discovery
# ==========================================================================

def test_version_discovery(sdk):
    assert sdk.image.get_endpoint().rstrip("/") == f"{GLASS_URL}/v2"
    assert sdk.image.get_api_major_version()[0] == 2


# ==========================================================================
# create / get
# ==========================================================================

def test_create_get_with_extra_properties(sdk, cleanup, uniq):
    img = create(sdk, cleanup, f"{uniq}-img", disk_format="raw",
                 container_format="bare", tags=[uniq, "t2"],
                 os_distro="debian", custom_key="custom value", min_ram=0)
    assert img.name == f"{uniq}-img"
    assert img.status == "queued"
    assert img.visibility == "shared"
    assert img.is_protected is False and img.is_hidden is False
    assert img.size is None and img.virtual_size is None
    assert img.checksum is None
    assert img.hash_algo is None and img.hash_value is None
    assert img.disk_format == "raw" and img.container_format == "bare"
    assert img.min_ram == 0 and img.min_disk == 0
    assert img.os_distro == "debian"
    assert img.properties["custom_key"] == "custom value"
    assert sorted(img.tags) == sorted([uniq, "t2"])
    assert img.owner and img.owner_id == img.owner
    assert img.file == f"/v2/images/{img.id}/file"
    assert img.schema == "/v2/schemas/image"
    assert img.created_at and img.updated_at

    got = sdk.image.get_image(img.id)
    for attr in ("id", "name", "status", "visibility", "is_protected",
                 "owner", "created_at", "updated_at", "os_distro",
                 "properties", "min_ram", "disk_format"):
        assert getattr(got, attr) == getattr(img, attr), attr
    assert sorted(got.tags) == sorted(img.tags)
    assert sdk.image.find_image(f"{uniq}-img").id == img.id


def test_get_missing(sdk):
    with pytest.raises(ox.NotFoundException) as ei:
        sdk.image.get_image(MISSING)
    assert ei.value.status_code == 404
    assert sdk.image.find_image(MISSING) is None


def test_other_project_identity(sdk, cleanup, make_project, uniq):
    owner, other = make_project(), make_project()
    img = create(owner.sdk, cleanup, uniq, visibility="private")
    assert img.owner == owner.id
    with pytest.raises(ox.NotFoundException):
        other.sdk.image.get_image(img.id)
    assert sdk.image.get_image(img.id).owner == owner.id


# ==========================================================================
# listing
# ==========================================================================

@pytest.mark.parametrize("query,expected", [c[:2] for c in SDK_CASES],
                         ids=[c[2] for c in SDK_CASES])
def test_list_filters(sdk, catalogue, query, expected):
    kwargs = sdk_query(query, catalogue)
    names = sorted(i.name for i in sdk.image.images(**kwargs))
    assert names == sorted(f"{catalogue['u']}-{k}" for k in expected), kwargs


def test_list_protected_filter_is_case_sensitive(sdk, catalogue):
    # Glance accepts only the strings 'true'/'false' for protected (a Python
    # bool is sent as 'False' and refused), while os_hidden is lenient.
    with pytest.raises(ox.BadRequestException):
        list(sdk.image.images(tag=catalogue["u"], protected=False))
    names = [i.name for i in sdk.image.images(tag=catalogue["u"],
                                              is_hidden=True)]
    assert names == [f"{catalogue['u']}-e"]


def test_list_time_filters(sdk, catalogue):
    u = catalogue["u"]
    names = {i.name for i in sdk.image.images(
        tag=u, created_at="gt:2000-01-01T00:00:00Z")}
    assert names == {f"{u}-{k}" for k in "abcd"}
    assert list(sdk.image.images(tag=u,
                                 updated_at="lte:2000-01-01T00:00:00Z")) == []


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
    ({"sort": "name:asc"}, "pqr"),
    ({"sort": "container_format:asc,name:desc"}, "rqp"),
    ({"sort": "disk_format:desc"}, "qpr"),
])
def test_list_sorting(sdk, sortable, kwargs, expected):
    names = [i.name for i in sdk.image.images(tag=sortable, **kwargs)]
    assert names == [f"{sortable}-{c}" for c in expected]


def test_list_bad_sort(sdk):
    with pytest.raises(ox.BadRequestException):
        list(sdk.image.images(sort_key="bogus"))


def test_list_paging(sdk, sixty):
    with count_requests(sdk) as urls:
        names = [i.name for i in sdk.image.images(
            tag=sixty["u"], sort_key="name", sort_dir="asc", limit=7)]
    assert names == sixty["names"]
    list_urls = [u for u in urls if "/v2/images" in u]
    # at least 9 pages of <= 7 (the SDK builds its own marker URLs and asks
    # once more after the short last page, getting an empty one)
    assert len(list_urls) >= 9, "\n".join(list_urls)
    assert all("marker=" in u for u in list_urls[1:])


def test_list_paging_default_sort(sdk, sixty):
    ids = [i.id for i in sdk.image.images(tag=sixty["u"], limit=13)]
    assert len(ids) == 60 and len(set(ids)) == 60
    assert set(ids) == {i["id"] for i in sixty["imgs"].values()}


# ==========================================================================
# update
# ==========================================================================

def test_update_core_and_extra_properties(sdk, cleanup, uniq):
    img = create(sdk, cleanup, f"{uniq}-a", custom_key="v1", color="red")
    assert img.properties["color"] == "red"
    # Extra properties passed as kwargs become the image's whole set of
    # extra properties: the SDK's JSON patch replaces custom_key, adds
    # newprop and removes the others (color, owner_specified.openstack.*).
    new = sdk.image.update_image(img, name=f"{uniq}-b", min_ram=128,
                                 visibility="private", is_protected=True,
                                 custom_key="v2", newprop="x")
    assert new.name == f"{uniq}-b"
    assert new.min_ram == 128
    assert new.visibility == "private"
    assert new.is_protected is True
    assert new.properties == {"custom_key": "v2", "newprop": "x"}

    got = sdk.image.get_image(img.id)
    assert got.name == f"{uniq}-b" and got.is_protected is True
    assert got.properties == {"custom_key": "v2", "newprop": "x"}
    # remove one extra property, add another, via the properties dict
    new = sdk.image.update_image(got, properties={"custom_key": "v2",
                                                  "color": "blue"},
                                 is_protected=False, visibility="shared")
    assert new.properties == {"custom_key": "v2", "color": "blue"}
    assert new.is_protected is False and new.visibility == "shared"
    got = sdk.image.get_image(img.id)
    assert got.properties == {"custom_key": "v2", "color": "blue"}
    assert got.created_at == img.created_at


def test_update_read_only_forbidden(sdk, cleanup, uniq):
    img = create(sdk, cleanup, uniq)
    with pytest.raises(ox.ForbiddenException) as ei:
        sdk.image.update_image(img, size=5)
    assert ei.value.status_code == 403
    assert sdk.image.get_image(img.id).size is None


# ==========================================================================
# tags
# ==========================================================================

def test_tags(sdk, cleanup, uniq):
    img = create(sdk, cleanup, uniq, tags=["t1"])
    sdk.image.add_tag(img, "t2")
    assert sorted(sdk.image.get_image(img.id).tags) == ["t1", "t2"]
    sdk.image.remove_tag(img, "t1")
    assert sdk.image.get_image(img.id).tags == ["t2"]
    with pytest.raises(ox.NotFoundException):
        sdk.image.remove_tag(img, "t1")
    assert [i.id for i in sdk.image.images(tag=["t2"], name=uniq)] == [img.id]


# ==========================================================================
# members
# ==========================================================================

def test_members_across_projects(cleanup, make_project, uniq):
    owner, b = make_project(), make_project()
    img = create(owner.sdk, cleanup, uniq, tags=[uniq])

    m = owner.sdk.image.add_member(img, member_id=b.id)
    assert m.member_id == b.id and m.status == "pending"
    with pytest.raises(ox.ConflictException):
        owner.sdk.image.add_member(img, member_id=b.id)

    assert [i.id for i in b.sdk.image.images(tag=uniq)] == []
    pending = b.sdk.image.images(tag=uniq, visibility="shared",
                                 member_status="pending")
    assert [i.id for i in pending] == [img.id]

    m = b.sdk.image.update_member(b.id, img, status="accepted")
    assert m.status == "accepted"
    assert [i.id for i in b.sdk.image.images(tag=uniq)] == [img.id]
    assert b.sdk.image.get_image(img.id).id == img.id

    members = list(owner.sdk.image.members(img))
    assert [(x.member_id, x.status) for x in members] == [(b.id, "accepted")]
    assert owner.sdk.image.get_member(b.id, img).status == "accepted"

    owner.sdk.image.remove_member(b.id, img)
    assert list(owner.sdk.image.members(img)) == []
    with pytest.raises(ox.NotFoundException):
        b.sdk.image.get_image(img.id)


def test_members_private_image_forbidden(sdk, cleanup, uniq):
    img = create(sdk, cleanup, uniq, visibility="private")
    with pytest.raises(ox.ForbiddenException):
        sdk.image.add_member(img, member_id="3" * 32)


# ==========================================================================
# deactivate / protected / delete
# ==========================================================================

def test_deactivate_queued_image_is_refused(sdk, http, cleanup, uniq):
    img = create(sdk, cleanup, uniq)
    # openstacksdk does not raise for the failed action (it ignores the
    # response); the server refuses it with 403 and the image stays queued
    with count_requests(sdk) as urls:
        sdk.image.deactivate_image(img)
    assert any(u.endswith(f"/v2/images/{img.id}/actions/deactivate")
               for u in urls)
    assert sdk.image.get_image(img.id).status == "queued"
    r = http.post(f"/v2/images/{img.id}/actions/deactivate")
    assert r.status_code == 403


def test_protected_delete(sdk, cleanup, uniq):
    img = create(sdk, cleanup, uniq)
    sdk.image.update_image(img, is_protected=True)
    with pytest.raises(ox.ForbiddenException) as ei:
        sdk.image.delete_image(img, ignore_missing=False)
    assert "is protected and cannot be deleted" in str(ei.value)
    sdk.image.update_image(sdk.image.get_image(img.id), is_protected=False)
    sdk.image.delete_image(img, ignore_missing=False)
    with pytest.raises(ox.NotFoundException):
        sdk.image.get_image(img.id)
    with pytest.raises(ox.NotFoundException):
        sdk.image.delete_image(img, ignore_missing=False)
    sdk.image.delete_image(img, ignore_missing=True)     # no error
