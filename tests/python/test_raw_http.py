"""Raw HTTP (requests) interoperability tests: metadata only, no image data.

Every expectation here was checked against the reference Glance 33.0.0.
"""

import datetime
import json
import time
import urllib.parse
import uuid

import pytest

from conftest import (FILTER_CASES, FILTER_IDS, MISSING, PATCH_CT,
                      PATCH_CT_20, assert_core_image, assert_json_error,
                      format_query, norm)

JSON = {"Accept": "application/json"}


def qs(url):
    """Query string of a (relative) link as a dict of lists."""
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query,
                                 keep_blank_values=True)


# ==========================================================================
# versions
# ==========================================================================

def _check_versions_body(body):
    assert set(body) == {"versions"}
    versions = body["versions"]
    assert isinstance(versions, list) and versions
    ids = [v["id"] for v in versions]
    assert "v2.0" in ids
    assert len(set(ids)) == len(ids)
    for v in versions:
        assert set(v) >= {"id", "status", "links"}, v
        assert v["id"].startswith("v2.")
        int(v["id"][3:])  # minor is numeric
        assert v["status"] in {"CURRENT", "SUPPORTED", "DEPRECATED"}
        assert isinstance(v["links"], list) and v["links"]
        self_links = [l for l in v["links"] if l["rel"] == "self"]
        assert len(self_links) == 1
        assert self_links[0]["href"].startswith("http")
        assert self_links[0]["href"].endswith("/v2/")
    current = [v for v in versions if v["status"] == "CURRENT"]
    assert len(current) == 1
    # the CURRENT version is the highest minor version advertised
    assert int(current[0]["id"][3:]) == max(int(i[3:]) for i in ids)
    # listed newest first
    assert ids[0] == current[0]["id"]
    return ids


def test_versions_root_is_300(http):
    r = http.get("/")
    assert r.status_code == 300
    assert r.headers["Content-Type"].startswith("application/json")
    _check_versions_body(r.json())


def test_versions_endpoint_is_200(http):
    r = http.get("/versions")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    ids = _check_versions_body(r.json())
    assert ids == [v["id"] for v in http.get("/").json()["versions"]]


# ==========================================================================
# create / show
# ==========================================================================

def test_create_and_show_core_attributes(http, uniq):
    body = {"name": f"{uniq}-img", "disk_format": "raw",
            "container_format": "bare", "tags": [uniq, "t2"], "min_ram": 0,
            "min_disk": 3, "os_distro": "debian",
            "custom_key": "custom value"}
    r = http.post("/v2/images", json=body)
    assert r.status_code == 201, r.text
    img = r.json()
    http.tracker.add(img["id"])
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.headers["Location"].endswith(f"/v2/images/{img['id']}")
    assert_core_image(img)
    assert img["name"] == f"{uniq}-img"
    assert img["status"] == "queued"
    assert img["visibility"] == "shared"          # default visibility
    assert img["protected"] is False
    assert img["os_hidden"] is False
    assert img["disk_format"] == "raw"
    assert img["container_format"] == "bare"
    assert img["min_ram"] == 0 and img["min_disk"] == 3
    for k in ("size", "virtual_size", "checksum", "os_hash_algo",
              "os_hash_value"):
        assert img[k] is None, k
    assert sorted(img["tags"]) == sorted([uniq, "t2"])
    assert img["os_distro"] == "debian"
    assert img["custom_key"] == "custom value"
    assert isinstance(img["owner"], str) and img["owner"]
    # no data yet: no stores / locations are exposed
    assert "stores" not in img
    assert "locations" not in img and "direct_url" not in img

    shown = http.show(img["id"])
    assert norm(shown) == norm(img)


def test_create_empty_body_defaults(http):
    img = http.create_image()
    assert_core_image(img)
    assert img["name"] is None
    assert img["disk_format"] is None and img["container_format"] is None
    assert img["status"] == "queued" and img["visibility"] == "shared"
    assert img["min_ram"] == 0 and img["min_disk"] == 0
    assert img["tags"] == []


def test_create_with_explicit_id_and_owner_is_member_project(http, make_project,
                                                             uniq):
    proj = make_project()
    image_id = str(uuid.uuid4())
    img = proj.http.create_image(id=image_id, name=f"{uniq}-own")
    assert img["id"] == image_id
    assert img["owner"] == proj.id
    # the default (admin) identity sees it too
    assert http.show(image_id)["owner"] == proj.id


def test_show_as_other_project_is_404(http, make_project, uniq):
    owner = make_project()
    other = make_project()
    img = owner.http.create_image(name=f"{uniq}-private", visibility="private")
    r = other.http.get(f"/v2/images/{img['id']}", headers=JSON)
    assert_json_error(r, 404, "Not Found")
    assert owner.http.get(f"/v2/images/{img['id']}").status_code == 200


@pytest.mark.parametrize("attr,value", [
    ("size", 5), ("status", "active"), ("checksum", "abc"),
])
def test_create_read_only_attribute_is_403(http, uniq, attr, value):
    r = http.post("/v2/images", json={"name": uniq, attr: value},
                  headers=JSON)
    assert_json_error(r, 403, "Forbidden", f"Attribute '{attr}' is read-only.")
    assert http.list_images({"name": uniq})["images"] == []


@pytest.mark.parametrize("body", [
    {"disk_format": "notaformat"},
    {"container_format": "notaformat"},
    {"visibility": "everyone"},
    {"min_ram": "5"},
    {"min_disk": -1},
    {"id": "not-a-uuid"},
    {"custom_int": 5},
    {"protected": "yes"},
])
def test_create_schema_violation_is_400(http, uniq, body):
    r = http.post("/v2/images", json=dict(body, name=uniq), headers=JSON)
    assert_json_error(r, 400, "Bad Request")
    assert http.list_images({"name": uniq})["images"] == []


def test_create_public_as_member_is_403(make_project, uniq):
    proj = make_project()
    r = proj.http.post("/v2/images", json={"name": uniq,
                                           "visibility": "public"},
                       headers=JSON)
    assert_json_error(r, 403, "Forbidden", "publicize_image")


# ==========================================================================
# listing: filters
# ==========================================================================

@pytest.mark.parametrize("query,expected", FILTER_CASES, ids=FILTER_IDS)
def test_list_filters(catalogue, query, expected):
    params = [("tag", catalogue["u"])] + format_query(query, catalogue)
    body = catalogue["api"].list_images(params)
    assert body["schema"] == "/v2/schemas/images"
    assert body["first"].startswith("/v2/images?")
    names = sorted(i["name"] for i in body["images"])
    assert names == sorted(f"{catalogue['u']}-{k}" for k in expected), params
    for img in body["images"]:
        assert_core_image(img)
        assert catalogue["u"] in img["tags"]


def test_list_hidden_image_still_directly_visible(catalogue):
    e = catalogue["imgs"]["e"]
    assert catalogue["api"].show(e["id"])["os_hidden"] is True


def test_list_as_other_project_sees_only_public_and_own(catalogue,
                                                        make_project):
    other = make_project()
    u = catalogue["u"]
    names = sorted(other.http.list_names({"tag": u}))
    # public image only: private/shared(not member)/community are not in the
    # default listing of another project
    assert names == [f"{u}-c"]
    names = other.http.list_names({"tag": u, "visibility": "community"})
    assert names == [f"{u}-d"]
    assert other.http.list_names({"tag": u, "visibility": "private"}) == []
    assert other.http.list_names({"tag": u, "visibility": "shared"}) == []


@pytest.mark.parametrize("query,message", [
    ({"visibility": "bogus"}, "Invalid visibility value: bogus"),
    ({"member_status": "bogus"}, "Invalid status: bogus"),
    ({"protected": "maybe"}, "Invalid value 'maybe' for 'protected' filter"),
    ({"os_hidden": "maybe"}, "Invalid value 'maybe' for 'os_hidden' filter"),
    ({"size_min": "abc"}, "Unable to filter on a range with a non-numeric"),
    ({"size_max": "abc"}, "Unable to filter on a range with a non-numeric"),
    ({"limit": "-1"}, "limit param must be positive"),
    ({"limit": "abc"}, "limit param must be an integer"),
    ({"created_at": "gte:notadate"}, "Bad \"created_at\" query filter format"),
    ({"updated_at": "gte:notadate"}, "Bad \"updated_at\" query filter format"),
    ({"created_at": "foo:2020-01-01T00:00:00Z"},
     "Unable to filter on a unknown operator."),
    ({"sort_key": "bogus"}, "Invalid sort key: bogus."),
    ({"sort": "min_ram:asc"}, "Invalid sort key: min_ram."),
    ({"sort_dir": "sideways"}, "Invalid sort direction: sideways"),
    ({"sort": "name:sideways"}, "Invalid sort direction: sideways"),
    ({"sort": "name:asc", "sort_key": "name"},
     "Old and new sorting syntax cannot be combined"),
    ({"marker": MISSING}, f"No image found with ID {MISSING}"),
])
def test_list_bad_query_is_400(http, query, message):
    r = http.get("/v2/images", params=query, headers=JSON)
    assert_json_error(r, 400, "Bad Request", message)


def test_list_created_at_and_updated_at_operators(http, uniq):
    # Glance stores sub-second timestamps but renders whole seconds, so the
    # comparisons use a boundary second strictly between the two images.
    a = http.create_image(name=f"{uniq}-a", tags=[uniq])
    time.sleep(2.2)
    b = http.create_image(name=f"{uniq}-b", tags=[uniq])
    assert b["created_at"] > a["created_at"]

    # default order: created_at descending
    assert http.list_names({"tag": uniq}) == [f"{uniq}-b", f"{uniq}-a"]

    def boundary(ts):
        """The whole second after the timestamp `ts`."""
        t = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")
        return (t + datetime.timedelta(seconds=1)).strftime(
            "%Y-%m-%dT%H:%M:%SZ")

    mid = boundary(a["created_at"])
    assert a["created_at"] < mid < b["created_at"]
    expect = {"gt": ["b"], "gte": ["b"], "lt": ["a"], "lte": ["a"],
              "eq": [], "neq": ["a", "b"]}
    for op, names in expect.items():
        got = sorted(http.list_names({"tag": uniq,
                                      "created_at": f"{op}:{mid}"}))
        assert got == [f"{uniq}-{n}" for n in names], (op, got)
    # whole range
    got = http.list_names({"tag": uniq,
                           "created_at": "gt:2000-01-01T00:00:00Z"})
    assert sorted(got) == [f"{uniq}-a", f"{uniq}-b"]
    assert http.list_names({"tag": uniq,
                            "created_at": "lt:2000-01-01T00:00:00Z"}) == []

    # make 'a' the most recently updated one
    time.sleep(2.2)
    r = http.patch_image(a["id"], [{"op": "replace", "path": "/name",
                                    "value": f"{uniq}-a2"}])
    assert r.status_code == 200
    a2 = r.json()
    assert a2["updated_at"] > b["updated_at"]
    assert a2["created_at"] == a["created_at"]
    mid = boundary(b["updated_at"])
    assert b["updated_at"] < mid < a2["updated_at"]
    expect = {"gt": ["a2"], "gte": ["a2"], "lt": ["b"], "lte": ["b"],
              "neq": ["a2", "b"]}
    for op, names in expect.items():
        got = sorted(http.list_names({"tag": uniq,
                                      "updated_at": f"{op}:{mid}"}))
        assert got == [f"{uniq}-{n}" for n in names], (op, got)
    # created_at is unaffected by the update
    got = http.list_names({"tag": uniq,
                           "created_at": f"gt:{boundary(a['created_at'])}"})
    assert got == [f"{uniq}-b"]


# ==========================================================================
# listing: sorting
# ==========================================================================

@pytest.fixture
def sortable(http, uniq):
    # name order: p < q < r; container: q,r bare / p ovf; disk: r iso,
    # p qcow2, q raw
    specs = [("q", "raw", "bare"), ("p", "qcow2", "ovf"), ("r", "iso", "bare")]
    for n, df, cf in specs:
        http.create_image(name=f"{uniq}-{n}", disk_format=df,
                          container_format=cf, tags=[uniq])
    return uniq


@pytest.mark.parametrize("query,expected", [
    ({"sort_key": "name", "sort_dir": "asc"}, "pqr"),
    ({"sort_key": "name", "sort_dir": "desc"}, "rqp"),
    ({"sort_key": "name"}, "rqp"),                     # default dir: desc
    ({"sort": "name:asc"}, "pqr"),
    ({"sort": "name:desc"}, "rqp"),
    ({"sort": "name"}, "rqp"),                         # default dir: desc
    ({"sort": "container_format:asc,name:desc"}, "rqp"),
    ({"sort": "container_format:desc,name:asc"}, "pqr"),
    ({"sort": "container_format:asc,name:asc"}, "qrp"),
    ({"sort": "container_format,name:asc"}, "pqr"),    # default desc
    ({"sort": "disk_format:asc"}, "rpq"),
    ({"sort_key": "disk_format", "sort_dir": "desc"}, "qpr"),
    ([("sort_key", "container_format"), ("sort_key", "name"),
      ("sort_dir", "asc"), ("sort_dir", "asc")], "qrp"),
    ([("sort_key", "container_format"), ("sort_key", "name"),
      ("sort_dir", "asc"), ("sort_dir", "desc")], "rqp"),
    ([("sort_key", "container_format"), ("sort_key", "name"),
      ("sort_dir", "desc")], "prq"),                  # one dir for all keys
])
def test_list_sorting(http, sortable, query, expected):
    params = list(query.items()) if isinstance(query, dict) else list(query)
    params.append(("tag", sortable))
    names = http.list_names(params)
    assert names == [f"{sortable}-{c}" for c in expected], params


# ==========================================================================
# listing: paging
# ==========================================================================

def test_paging_follow_next_links(sixty):
    api, u = sixty["api"], sixty["u"]
    params = {"tag": u, "limit": 7, "sort_key": "name", "sort_dir": "asc"}
    pages = api.pages(params)
    assert [len(p["images"]) for p in pages] == [7] * 8 + [4]
    seen = []
    for n, page in enumerate(pages):
        assert page["schema"] == "/v2/schemas/images"
        first = qs(page["first"])
        assert page["first"].startswith("/v2/images?")
        assert "marker" not in first
        assert first["limit"] == ["7"] and first["tag"] == [u]
        seen += [i["name"] for i in page["images"]]
        if n < len(pages) - 1:
            nxt = page["next"]
            assert nxt.startswith("/v2/images?")
            q = qs(nxt)
            assert q["marker"] == [page["images"][-1]["id"]]
            assert q["limit"] == ["7"]
            assert q["tag"] == [u]
            assert q["sort_key"] == ["name"] and q["sort_dir"] == ["asc"]
        else:
            assert "next" not in page
    assert seen == sixty["names"]            # in order, each exactly once


def test_paging_exact_multiple_ends_with_empty_page(sixty):
    api, u = sixty["api"], sixty["u"]
    pages = api.pages({"tag": u, "limit": 20, "sort": "name:desc"})
    # Glance gives every full page a next link, so its last page is empty;
    # Glass knows when nothing follows and leaves the link out. Both page
    # correctly, and a client following next visits each image once.
    sizes = [len(p["images"]) for p in pages]
    assert sizes in ([20, 20, 20, 0], [20, 20, 20]), sizes
    assert all("next" in p for p in pages[:2]) and "next" not in pages[-1]
    assert qs(pages[0]["next"])["sort"] == ["name:desc"]
    seen = [i["name"] for p in pages for i in p["images"]]
    assert seen == list(reversed(sixty["names"]))


def test_paging_default_sort_each_image_once(sixty):
    api, u = sixty["api"], sixty["u"]
    pages = api.pages({"tag": u, "limit": 25})
    assert [len(p["images"]) for p in pages] == [25, 25, 10]
    ids = [i["id"] for p in pages for i in p["images"]]
    assert len(ids) == 60 and len(set(ids)) == 60
    assert set(ids) == {i["id"] for i in sixty["imgs"].values()}
    created = [i["created_at"] for p in pages for i in p["images"]]
    assert created == sorted(created, reverse=True)


def test_paging_marker_and_limit(sixty):
    api, u, names = sixty["api"], sixty["u"], sixty["names"]
    by_name = {i["name"]: i for i in sixty["imgs"].values()}
    marker = by_name[names[9]]["id"]
    body = api.list_images({"tag": u, "sort": "name:asc", "limit": 5,
                            "marker": marker})
    assert [i["name"] for i in body["images"]] == names[10:15]
    assert qs(body["next"])["marker"] == [by_name[names[14]]["id"]]
    # marker on the last image: empty page, no next
    body = api.list_images({"tag": u, "sort": "name:asc",
                            "marker": by_name[names[-1]]["id"]})
    assert body["images"] == [] and "next" not in body
    # limit larger than the result: everything, no next
    body = api.list_images({"tag": u, "limit": 100, "sort": "name:asc"})
    assert [i["name"] for i in body["images"]] == names
    assert "next" not in body


# ==========================================================================
# JSON patch
# ==========================================================================

def test_patch_core_and_extra_properties(http, uniq):
    img = http.create_image(name=f"{uniq}-orig", os_distro="debian",
                            custom_key="v1", tags=[uniq])
    ops = [
        {"op": "replace", "path": "/name", "value": f"{uniq}-new"},
        {"op": "add", "path": "/min_ram", "value": 512},
        {"op": "replace", "path": "/min_disk", "value": 2},
        {"op": "replace", "path": "/visibility", "value": "private"},
        {"op": "replace", "path": "/protected", "value": True},
        {"op": "add", "path": "/color", "value": "blue"},
        {"op": "replace", "path": "/custom_key", "value": "v2"},
        {"op": "remove", "path": "/os_distro"},
    ]
    r = http.patch_image(img["id"], ops)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    new = r.json()
    assert_core_image(new)
    assert new["name"] == f"{uniq}-new"
    assert new["min_ram"] == 512 and new["min_disk"] == 2
    assert new["visibility"] == "private"
    assert new["protected"] is True
    assert new["color"] == "blue"
    assert new["custom_key"] == "v2"
    assert "os_distro" not in new
    assert new["id"] == img["id"] and new["created_at"] == img["created_at"]
    assert new["updated_at"] >= img["updated_at"]
    assert norm(http.show(img["id"])) == norm(new)

    # 'add' on an existing extra property replaces it
    r = http.patch_image(img["id"], [{"op": "add", "path": "/color",
                                      "value": "red"}])
    assert r.status_code == 200 and r.json()["color"] == "red"
    # back again, and remove an extra property
    r = http.patch_image(img["id"], [
        {"op": "replace", "path": "/protected", "value": False},
        {"op": "replace", "path": "/visibility", "value": "shared"},
        {"op": "remove", "path": "/color"},
        {"op": "replace", "path": "/min_ram", "value": 0},
    ])
    assert r.status_code == 200
    new = r.json()
    assert new["protected"] is False and new["visibility"] == "shared"
    assert "color" not in new and new["min_ram"] == 0
    # empty patch is a no-op
    r = http.patch_image(img["id"], [])
    assert r.status_code == 200 and r.json()["name"] == f"{uniq}-new"


def test_patch_v20_media_type(http, uniq):
    img = http.create_image(name=f"{uniq}-v20")
    r = http.patch_image(img["id"], [{"replace": "/name",
                                      "value": f"{uniq}-v20b"},
                                     {"add": "/k", "value": "v"}],
                         content_type=PATCH_CT_20)
    assert r.status_code == 200, r.text
    assert r.json()["name"] == f"{uniq}-v20b" and r.json()["k"] == "v"


@pytest.mark.parametrize("attr,value", [
    ("size", 5), ("status", "active"), ("id", str(uuid.uuid4())),
    ("checksum", "abc"), ("created_at", "2020-01-01T00:00:00Z"),
    ("os_hash_value", "x"), ("virtual_size", 5),
])
def test_patch_read_only_attribute_is_403(http, uniq, attr, value):
    img = http.create_image(name=uniq)
    r = http.patch_image(img["id"], [{"op": "replace", "path": f"/{attr}",
                                      "value": value}], headers=JSON)
    assert_json_error(r, 403, "Forbidden", f"Attribute '{attr}' is read-only.")
    assert norm(http.show(img["id"])) == norm(img)


@pytest.mark.parametrize("ops,status,message", [
    ([{"op": "remove", "path": "/name"}], 403,
     "Property name may not be removed."),
    ([{"op": "remove", "path": "/min_ram"}], 403,
     "Property min_ram may not be removed."),
    ([{"op": "add", "path": "/os_glance_foo", "value": "x"}], 403,
     "Attribute 'os_glance_foo' is reserved."),
    ([{"op": "remove", "path": "/nope"}], 409, "Property nope does not exist."),
    ([{"op": "replace", "path": "/nope", "value": "x"}], 409,
     "Property nope does not exist."),
    ([{"op": "replace", "path": "/min_ram", "value": -1}], 400,
     "Cannot be a negative value"),
    ([{"op": "replace", "path": "/min_ram", "value": "abc"}], 400,
     "is not of type 'integer'"),
    ([{"op": "replace", "path": "/visibility", "value": "bogus"}], 400,
     "'bogus' is not one of"),
    ([{"op": "add", "path": "/newprop", "value": 5}], 400,
     "5 is not of type 'string'"),
    ([{"op": "move", "from": "/name", "path": "/x"}], 400,
     "Invalid operation: `move`"),
    ([{"op": "replace", "path": "/x/y", "value": "v"}], 400,
     "Invalid JSON pointer for this resource: '/x/y'"),
    ({"op": "add", "path": "/x", "value": "v"}, 400,
     "Request body must be a JSON array of operation objects."),
])
def test_patch_invalid(http, uniq, ops, status, message):
    img = http.create_image(name=uniq, tags=["keep"])
    r = http.patch_image(img["id"], ops, headers=JSON)
    titles = {400: "Bad Request", 403: "Forbidden", 409: "Conflict"}
    assert_json_error(r, status, titles[status], message)
    assert norm(http.show(img["id"])) == norm(img)


def test_patch_is_atomic(http, uniq):
    img = http.create_image(name=f"{uniq}-atomic")
    r = http.patch_image(img["id"], [
        {"op": "replace", "path": "/name", "value": f"{uniq}-changed"},
        {"op": "replace", "path": "/size", "value": 1}])
    assert r.status_code == 403
    assert http.show(img["id"])["name"] == f"{uniq}-atomic"


def test_patch_wrong_content_type_is_415(http, uniq):
    img = http.create_image(name=uniq)
    r = http.patch(f"/v2/images/{img['id']}",
                   data=json.dumps([{"op": "replace", "path": "/name",
                                     "value": "x"}]),
                   headers={"Content-Type": "application/json", **JSON})
    body = assert_json_error(r, 415, "Unsupported Media Type",
                             "application/json is not supported")
    accept = {s.strip() for s in r.headers["Accept-Patch"].split(",")}
    assert accept == {PATCH_CT, PATCH_CT_20}
    assert PATCH_CT in body["message"]
    assert http.show(img["id"])["name"] == uniq


def test_patch_missing_image_is_404(http):
    r = http.patch_image(MISSING, [], headers=JSON)
    assert_json_error(r, 404, "Not Found")


# ==========================================================================
# tags
# ==========================================================================

def test_tags_add_delete(http, uniq):
    img = http.create_image(name=uniq, tags=[uniq, "t1"])
    base = f"/v2/images/{img['id']}/tags"
    r = http.put(f"{base}/newtag")
    assert r.status_code == 204 and r.content == b""
    assert http.put(f"{base}/newtag").status_code == 204      # idempotent
    assert http.put(f"{base}/a%20b").status_code == 204
    assert sorted(http.show(img["id"])["tags"]) == sorted(
        [uniq, "t1", "newtag", "a b"])
    assert http.list_names({"tag": "newtag", "name": uniq}) == [uniq]
    assert http.list_names({"tag": "a b", "name": uniq}) == [uniq]

    r = http.delete(f"{base}/t1")
    assert r.status_code == 204
    assert sorted(http.show(img["id"])["tags"]) == sorted(
        [uniq, "newtag", "a b"])
    r = http.delete(f"{base}/t1", headers=JSON)
    assert_json_error(r, 404, "Not Found")
    assert http.list_names({"tag": "t1", "name": uniq}) == []

    r = http.put(f"{base}/{'x' * 256}", headers=JSON)
    assert_json_error(r, 400, "Bad Request")
    assert len(http.show(img["id"])["tags"]) == 3

    r = http.put(f"/v2/images/{MISSING}/tags/x", headers=JSON)
    assert_json_error(r, 404, "Not Found")


def test_tags_replace_via_patch_and_dedupe_on_create(http, uniq):
    img = http.create_image(name=uniq, tags=["a", "a", "b"])
    assert sorted(img["tags"]) == ["a", "b"]
    r = http.patch_image(img["id"], [{"op": "replace", "path": "/tags",
                                      "value": ["x", "y"]}])
    assert r.status_code == 200
    assert sorted(r.json()["tags"]) == ["x", "y"]


# ==========================================================================
# members
# ==========================================================================

def _member_ids(body):
    return sorted(m["member_id"] for m in body["members"])


def test_members_workflow(make_project, uniq):
    owner, b, c = make_project(), make_project(), make_project()
    img = owner.http.create_image(name=f"{uniq}-shared", tags=[uniq])
    assert img["visibility"] == "shared"
    iid = img["id"]
    mbase = f"/v2/images/{iid}/members"

    # before sharing, B can neither see nor list it
    assert b.http.get(f"/v2/images/{iid}").status_code == 404
    assert b.http.list_names({"tag": uniq}) == []

    r = owner.http.post(mbase, json={"member": b.id})
    assert r.status_code == 200, r.text
    m = r.json()
    assert set(m) == {"member_id", "image_id", "status", "created_at",
                      "updated_at", "schema"}
    assert m["member_id"] == b.id and m["image_id"] == iid
    assert m["status"] == "pending"
    assert m["schema"] == "/v2/schemas/member"

    # duplicate member -> 409
    r = owner.http.post(mbase, json={"member": b.id}, headers=JSON)
    assert_json_error(r, 409, "Conflict",
                      f"Member {b.id} is duplicated for image {iid}")

    # pending: B can GET it but it is not in B's default listing, nor in
    # visibility=shared (which means member_status=accepted)
    assert b.http.get(f"/v2/images/{iid}").status_code == 200
    assert b.http.list_names({"tag": uniq}) == []
    assert b.http.list_names({"tag": uniq, "visibility": "shared"}) == []
    assert b.http.list_names({"tag": uniq, "visibility": "shared",
                              "member_status": "pending"}) == [img["name"]]
    assert b.http.list_names({"tag": uniq, "member_status": "all"}) == [
        img["name"]]
    assert b.http.list_names({"tag": uniq, "visibility": "shared",
                              "member_status": "accepted"}) == []
    # C is not a member
    assert c.http.get(f"/v2/images/{iid}").status_code == 404
    assert c.http.list_names({"tag": uniq, "member_status": "all"}) == []

    # owner lists members
    r = owner.http.get(mbase)
    assert r.status_code == 200
    body = r.json()
    assert body["schema"] == "/v2/schemas/members"
    assert _member_ids(body) == [b.id]
    assert body["members"][0]["status"] == "pending"

    # only the owner may add members / modify the image
    r = b.http.post(mbase, json={"member": c.id}, headers=JSON)
    assert_json_error(r, 403, "Forbidden")
    r = b.http.patch_image(iid, [{"op": "replace", "path": "/name",
                                  "value": "x"}], headers=JSON)
    assert_json_error(r, 403, "Forbidden")

    # B accepts
    r = b.http.put(f"{mbase}/{b.id}", json={"status": "bogus"}, headers=JSON)
    assert_json_error(r, 400, "Bad Request",
                      'Status must be "pending", "accepted" or "rejected"')
    r = b.http.put(f"{mbase}/{b.id}", json={"status": "accepted"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "accepted"
    assert r.json()["member_id"] == b.id and r.json()["image_id"] == iid
    assert b.http.list_names({"tag": uniq}) == [img["name"]]
    assert b.http.list_names({"tag": uniq, "visibility": "shared"}) == [
        img["name"]]
    assert b.http.list_names({"tag": uniq, "visibility": "shared",
                              "member_status": "pending"}) == []
    r = owner.http.get(f"{mbase}/{b.id}")
    assert r.status_code == 200 and r.json()["status"] == "accepted"

    # second member
    r = owner.http.post(mbase, json={"member": c.id})
    assert r.status_code == 200
    assert _member_ids(owner.http.get(mbase).json()) == sorted([b.id, c.id])

    # B rejects: gone from the default listing, found with rejected
    r = b.http.put(f"{mbase}/{b.id}", json={"status": "rejected"})
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    assert b.http.list_names({"tag": uniq}) == []
    assert b.http.list_names({"tag": uniq, "member_status": "rejected"}) == [
        img["name"]]

    # owner deletes B
    r = owner.http.delete(f"{mbase}/{b.id}")
    assert r.status_code == 204
    assert _member_ids(owner.http.get(mbase).json()) == [c.id]
    r = owner.http.get(f"{mbase}/{b.id}", headers=JSON)
    assert_json_error(r, 404, "Not Found")
    r = owner.http.delete(f"{mbase}/{b.id}", headers=JSON)
    assert_json_error(r, 404, "Not Found")
    assert b.http.get(f"/v2/images/{iid}").status_code == 404


@pytest.mark.parametrize("visibility", ["private", "public", "community"])
def test_members_only_for_shared_images(http, make_project, uniq, visibility):
    b = make_project()
    img = http.create_image(name=uniq, visibility=visibility)
    r = http.post(f"/v2/images/{img['id']}/members", json={"member": b.id},
                  headers=JSON)
    assert_json_error(r, 403, "Forbidden",
                      f"Not allowed to create members for image {img['id']}.")


def test_members_bad_requests(http, uniq):
    img = http.create_image(name=uniq)
    r = http.post(f"/v2/images/{img['id']}/members",
                  json={"members": "x"}, headers=JSON)
    assert_json_error(r, 400, "Bad Request",
                      "Member to be added not specified")
    r = http.post(f"/v2/images/{MISSING}/members",
                  json={"member": "b" * 32}, headers=JSON)
    assert_json_error(r, 404, "Not Found")
    r = http.get(f"/v2/images/{img['id']}/members/{'b' * 32}", headers=JSON)
    assert_json_error(r, 404, "Not Found")


def test_making_image_private_keeps_members_hidden(make_project, uniq):
    owner, b = make_project(), make_project()
    img = owner.http.create_image(name=uniq, tags=[uniq])
    r = owner.http.post(f"/v2/images/{img['id']}/members",
                        json={"member": b.id})
    assert r.status_code == 200
    assert b.http.put(f"/v2/images/{img['id']}/members/{b.id}",
                      json={"status": "accepted"}).status_code == 200
    assert b.http.list_names({"tag": uniq}) == [uniq]
    r = owner.http.patch_image(img["id"], [{"op": "replace",
                                            "path": "/visibility",
                                            "value": "private"}])
    assert r.status_code == 200
    assert b.http.list_names({"tag": uniq}) == []
    assert b.http.get(f"/v2/images/{img['id']}").status_code == 404


# ==========================================================================
# deactivate / reactivate (no data: image stays queued)
# ==========================================================================

@pytest.mark.parametrize("action", ["deactivate", "reactivate"])
def test_deactivate_reactivate_queued_image_is_403(http, uniq, action):
    img = http.create_image(name=uniq)
    r = http.post(f"/v2/images/{img['id']}/actions/{action}", headers=JSON)
    assert_json_error(r, 403, "Forbidden",
                      f"Not allowed to {action} image in status 'queued'")
    assert http.show(img["id"])["status"] == "queued"


def test_deactivate_missing_image_is_404(http):
    r = http.post(f"/v2/images/{MISSING}/actions/deactivate", headers=JSON)
    assert_json_error(r, 404, "Not Found")


# ==========================================================================
# protected / delete
# ==========================================================================

def test_protected_delete_refused_then_unprotect_delete(http, uniq):
    img = http.create_image(name=uniq, protected=True)
    assert img["protected"] is True
    url = f"/v2/images/{img['id']}"
    r = http.delete(url, headers=JSON)
    assert_json_error(r, 403, "Forbidden",
                      f"Image {img['id']} is protected and cannot be deleted.")
    assert http.show(img["id"])["status"] == "queued"

    r = http.patch_image(img["id"], [{"op": "replace", "path": "/protected",
                                      "value": False}])
    assert r.status_code == 200 and r.json()["protected"] is False
    r = http.delete(url)
    assert r.status_code == 204 and r.content == b""
    r = http.get(url, headers=JSON)
    assert_json_error(r, 404, "Not Found",
                      f"No image found with ID {img['id']}")
    assert http.list_images({"name": uniq})["images"] == []
    assert http.delete(url).status_code == 404


# ==========================================================================
# golden error cases (Accept: application/json)
# ==========================================================================

def test_error_400_bad_json(http, uniq):
    r = http.post("/v2/images", data='{"name": "broken",',
                  headers={"Content-Type": "application/json", **JSON})
    assert_json_error(r, 400, "Bad Request", "Malformed JSON in request body.")


def test_error_400_bad_sort_key(http):
    r = http.get("/v2/images?sort_key=bogus", headers=JSON)
    body = assert_json_error(r, 400, "Bad Request", "Invalid sort key: bogus.")
    for key in ("name", "status", "container_format", "disk_format", "size",
                "id", "created_at", "updated_at"):
        assert key in body["message"]


def test_error_400_bad_marker(http):
    r = http.get(f"/v2/images?marker={MISSING}", headers=JSON)
    assert_json_error(r, 400, "Bad Request", f"No image found with ID {MISSING}")


def test_error_400_bad_schema(http, uniq):
    r = http.post("/v2/images", json={"name": uniq,
                                      "disk_format": "notaformat"},
                  headers=JSON)
    assert_json_error(r, 400, "Bad Request", "notaformat")


def test_error_404_image(http):
    r = http.get(f"/v2/images/{MISSING}", headers=JSON)
    assert_json_error(r, 404, "Not Found", f"No image found with ID {MISSING}")


def test_error_404_image_default_is_html(http):
    r = http.get(f"/v2/images/{MISSING}")
    assert r.status_code == 404
    assert r.headers["Content-Type"].startswith("text/html")
    assert "404 Not Found" in r.text
    assert f"No image found with ID {MISSING}" in r.text


def test_error_404_unknown_route(http):
    r = http.get("/v2/nonexistent", headers=JSON)
    assert_json_error(r, 404, "Not Found", "The resource could not be found.")


def test_error_405_with_allow_header(http):
    r = http.put("/v2/images", headers=JSON)
    assert_json_error(r, 405, "Method Not Allowed",
                      "The method PUT is not allowed for this resource.")
    allow = {m.strip() for m in r.headers["Allow"].split(",")}
    assert allow == {"GET", "POST"}


def test_error_409_duplicate_id(http, uniq):
    img = http.create_image(name=uniq)
    r = http.post("/v2/images", json={"id": img["id"], "name": "dup"},
                  headers=JSON)
    assert_json_error(r, 409, "Conflict",
                      f"Image ID {img['id']} already exists!")
    assert http.show(img["id"])["name"] == uniq


def test_error_409_duplicate_member(http, uniq):
    img = http.create_image(name=uniq)
    member = "1" * 32
    url = f"/v2/images/{img['id']}/members"
    assert http.post(url, json={"member": member}).status_code == 200
    r = http.post(url, json={"member": member}, headers=JSON)
    assert_json_error(r, 409, "Conflict",
                      f"Member {member} is duplicated for image {img['id']}")


def test_error_415_patch_content_type(http, uniq):
    img = http.create_image(name=uniq)
    r = http.patch(f"/v2/images/{img['id']}", data="[]",
                   headers={"Content-Type": "application/json", **JSON})
    assert_json_error(r, 415, "Unsupported Media Type",
                      "Image PATCH expects Content-Type one of:")
    assert "Accept-Patch" in r.headers
