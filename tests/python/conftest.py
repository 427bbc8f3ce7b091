"""Shared fixtures for the Glass black-box interoperability tests.

The server under test is given by the GLASS_URL environment variable
(default http://127.0.0.1:9292).  Only loopback addresses are accepted.

Identity: there is no keystone.  Like the reference Glance (noauth paste
filter + glance's ``context`` middleware), the server takes the caller's
identity from the trusted headers X-Project-Id / X-User-Id / X-Roles and
falls back to an admin identity (roles admin,member,reader) when the request
carries none.  Requests made without identity headers therefore act as the
default *admin* project; ``make_project()`` gives a fresh non-admin project.

How the three clients are configured without keystone:

* requests:      plain ``requests.Session``; identity headers per request.
* glanceclient:  ``glanceclient.Client('2', endpoint=GLASS_URL, token='noauth')``
                 (HTTPClient mode: the dummy token is sent as X-Auth-Token and
                 ignored).  Another identity is set with
                 ``client.http_client.session.headers.update(...)`` -- NOT with
                 the ``identity_headers=`` kwarg, which URL-quotes header
                 values ("member,reader" -> "member%2Creader").
* openstacksdk:  ``openstack.connection.Connection(auth_type='none',
                 image_endpoint_override=GLASS_URL)``; the SDK does version
                 discovery on GLASS_URL (GET / -> 300 version list) and uses
                 .../v2/.  Another identity via
                 ``conn.session.additional_headers.update(...)``.
"""

import ipaddress
import json
import os
import random
import re
import urllib.parse
import uuid
import warnings

import pytest
import requests

GLASS_URL = os.environ.get("GLASS_URL", "http://127.0.0.1:9292").rstrip("/")

PATCH_CT = "application/openstack-images-v2.1-json-patch"
PATCH_CT_20 = "application/openstack-images-v2.0-json-patch"
MISSING = "00000000-0000-0000-0000-000000000000"     # an image id never used

UUID_RE = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Glance renders timestamps as ISO 8601, second precision, 'Z' suffix.
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")

# Every attribute Glance returns for an image without data (queued).
CORE_ATTRS = {
    "id", "name", "status", "visibility", "protected", "os_hidden",
    "checksum", "os_hash_algo", "os_hash_value", "owner", "size",
    "virtual_size", "min_disk", "min_ram", "disk_format", "container_format",
    "created_at", "updated_at", "tags", "self", "file", "schema",
}

# One identifier per pytest run: every image name and tag starts with it, so
# tests never depend on (or disturb) other images in the catalogue.
RUN_ID = uuid.uuid4().hex[:10]


def _check_loopback(url):
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise pytest.UsageError(
            f"GLASS_URL={url!r}: only loopback addresses are allowed")


def pytest_configure(config):
    _check_loopback(GLASS_URL)
    # client libraries' own deprecation noise (not about the server)
    for line in ("ignore::openstack.warnings.OpenStackWarning",
                 "ignore::openstack.warnings.OpenStackDeprecationWarning",
                 "ignore::PendingDeprecationWarning:openstack",
                 "ignore::DeprecationWarning:glanceclient",
                 "ignore::DeprecationWarning:keystoneauth1"):
        config.addinivalue_line("filterwarnings", line)


# --------------------------------------------------------------------------
# identities
# --------------------------------------------------------------------------

class Identity:
    """A keystone-like identity conveyed with trusted headers."""

    def __init__(self, project_id=None, roles="member,reader", user_id=None):
        self.project_id = project_id or uuid.uuid4().hex
        self.user_id = user_id or f"user-{self.project_id[:8]}"
        self.roles = roles

    @property
    def headers(self):
        return {
            "X-Project-Id": self.project_id,
            "X-User-Id": self.user_id,
            "X-Roles": self.roles,
        }


# --------------------------------------------------------------------------
# cleanup
# --------------------------------------------------------------------------

class ImageTracker:
    """Remembers image ids and deletes them (as admin) at teardown."""

    def __init__(self, session):
        self.session = session
        self.ids = []

    def add(self, image_id):
        if image_id not in self.ids:
            self.ids.append(image_id)
        return image_id

    def cleanup(self):
        for image_id in reversed(self.ids):
            url = f"{GLASS_URL}/v2/images/{image_id}"
            try:
                r = self.session.get(url, timeout=30)
                if r.status_code == 404:
                    continue
                if r.ok and r.json().get("protected"):
                    self.session.patch(
                        url, timeout=30,
                        data=json.dumps([{"op": "replace", "path": "/protected",
                                          "value": False}]),
                        headers={"Content-Type": PATCH_CT})
                self.session.delete(url, timeout=30)
            except requests.RequestException:
                pass
        self.ids.clear()


# --------------------------------------------------------------------------
# raw HTTP helper
# --------------------------------------------------------------------------

class Api:
    """Thin wrapper around a requests.Session bound to GLASS_URL."""

    def __init__(self, session, tracker, headers=None):
        self.session = session
        self.tracker = tracker
        self.headers = dict(headers or {})
        self.base = GLASS_URL

    def as_identity(self, identity):
        return Api(self.session, self.tracker, identity.headers)

    def url(self, path):
        return path if path.startswith("http") else self.base + path

    def request(self, method, path, headers=None, **kw):
        h = dict(self.headers)
        h.update(headers or {})
        kw.setdefault("timeout", 60)
        return self.session.request(method, self.url(path), headers=h, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    # images -----------------------------------------------------------
    def create_image(self, **body):
        r = self.post("/v2/images", json=body)
        assert r.status_code == 201, (r.status_code, r.text)
        img = r.json()
        self.tracker.add(img["id"])
        return img

    def show(self, image_id):
        r = self.get(f"/v2/images/{image_id}")
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()

    def patch_image(self, image_id, ops, content_type=PATCH_CT, **kw):
        headers = {"Content-Type": content_type}
        headers.update(kw.pop("headers", {}))
        return self.patch(f"/v2/images/{image_id}", data=json.dumps(ops),
                          headers=headers, **kw)

    def list_images(self, params=None):
        r = self.get("/v2/images", params=params)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()

    def list_names(self, params):
        return [i["name"] for i in self.list_images(params)["images"]]

    def list_ids(self, params):
        return [i["id"] for i in self.list_images(params)["images"]]

    def pages(self, params, max_pages=1000):
        """Follow ``next`` links; return the list of page bodies."""
        out = []
        r = self.get("/v2/images", params=params)
        while True:
            assert r.status_code == 200, (r.status_code, r.text)
            body = r.json()
            out.append(body)
            nxt = body.get("next")
            if not nxt:
                return out
            assert len(out) < max_pages, "next links do not terminate"
            r = self.get(nxt)


# --------------------------------------------------------------------------
# client factories
# --------------------------------------------------------------------------

def make_glanceclient(headers=None):
    import glanceclient
    with warnings.catch_warnings():
        # Client('2', ...) warns that the version kwarg is deprecated.
        warnings.simplefilter("ignore", DeprecationWarning)
        client = glanceclient.Client("2", endpoint=GLASS_URL, token="noauth")
    if headers:
        # Merged by requests into every request, unquoted.
        client.http_client.session.headers.update(headers)
    return client


def make_sdk(headers=None):
    import openstack.connection
    conn = openstack.connection.Connection(
        auth_type="none", image_endpoint_override=GLASS_URL)
    if headers:
        conn.session.additional_headers.update(headers)
    return conn


class Project:
    """A non-admin project with clients acting as it."""

    def __init__(self, api, identity):
        self.identity = identity
        self.id = identity.project_id
        self.headers = identity.headers
        self.http = api.as_identity(identity)
        self._gc = None
        self._sdk = None

    @property
    def gc(self):
        if self._gc is None:
            self._gc = make_glanceclient(self.headers)
        return self._gc

    @property
    def sdk(self):
        if self._sdk is None:
            self._sdk = make_sdk(self.headers)
        return self._sdk


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------

@pytest.fixture(scope="session")
def glass_url():
    return GLASS_URL


@pytest.fixture(scope="session")
def session():
    s = requests.Session()
    yield s
    s.close()


@pytest.fixture
def cleanup(session):
    """Tracker of images created by the test; deleted at teardown."""
    tracker = ImageTracker(session)
    yield tracker
    tracker.cleanup()


@pytest.fixture
def http(session, cleanup):
    """Raw HTTP as the default (admin) identity."""
    return Api(session, cleanup)


@pytest.fixture(scope="session")
def gc():
    """python-glanceclient v2 client, default (admin) identity."""
    return make_glanceclient()


@pytest.fixture(scope="session")
def sdk():
    """openstacksdk connection, default (admin) identity."""
    conn = make_sdk()
    yield conn
    conn.close()


@pytest.fixture
def make_project(http):
    """Factory: make_project(roles='member,reader') -> Project."""
    def _make(roles="member,reader", project_id=None):
        return Project(http, Identity(project_id=project_id, roles=roles))
    return _make


@pytest.fixture
def uniq(request):
    """A per-test unique string to use as image name prefix and tag."""
    return f"glass-{RUN_ID}-{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------
# shared data sets (module scoped: one per test module)
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def catalogue(session):
    """Five images sharing a unique tag; module scoped."""
    tracker = ImageTracker(session)
    api = Api(session, tracker)
    u = f"glass-{RUN_ID}-{uuid.uuid4().hex[:8]}"
    specs = {
        "a": dict(disk_format="raw", container_format="bare",
                  visibility="private", tags=[u, "red"], os_distro="debian"),
        "b": dict(disk_format="qcow2", container_format="ovf",
                  visibility="shared", tags=[u, "red", "blue"],
                  protected=True),
        "c": dict(disk_format="iso", container_format="bare",
                  visibility="public", tags=[u, "blue"], os_distro="ubuntu"),
        "d": dict(disk_format="vhd", container_format="bare",
                  visibility="community", tags=[u]),
        "e": dict(disk_format="raw", container_format="bare",
                  visibility="shared", tags=[u, "red"], os_hidden=True),
    }
    imgs = {k: api.create_image(name=f"{u}-{k}", **v) for k, v in
            specs.items()}
    yield {"u": u, "imgs": imgs, "api": api,
           "owner": imgs["a"]["owner"]}
    tracker.cleanup()


@pytest.fixture(scope="module")
def sixty(session):
    """60 images named <u>-000 .. <u>-059 (created in shuffled order)."""
    tracker = ImageTracker(session)
    api = Api(session, tracker)
    u = f"glass-{RUN_ID}-{uuid.uuid4().hex[:8]}"
    order = list(range(60))
    random.Random(4).shuffle(order)      # creation order != name order
    imgs = {}
    for i in order:
        img = api.create_image(name=f"{u}-{i:03d}", tags=[u],
                               disk_format="raw", container_format="bare")
        imgs[i] = img
    yield {"u": u, "api": api, "imgs": imgs,
           "names": [f"{u}-{i:03d}" for i in range(60)]}
    tracker.cleanup()


# Filter expectations against `catalogue` (listing as the admin default
# identity, always AND-ed with tag=<u>): (query, expected image keys).
FILTER_CASES = [
    # (query, expected image keys)
    ([], "abcd"),                                    # hidden 'e' excluded
    ([("name", "{u}-a")], "a"),
    ([("name", "{u}-zzz")], ""),
    ([("name", "in:{u}-a,{u}-c")], "ac"),
    ([("name", 'in:"{u}-b",{u}-nope')], "b"),
    ([("id", "in:{id_a},{id_d}")], "ad"),
    ([("status", "queued")], "abcd"),
    ([("status", "active")], ""),
    ([("status", "in:active,queued")], "abcd"),
    ([("visibility", "private")], "a"),
    ([("visibility", "shared")], "b"),
    ([("visibility", "public")], "c"),
    ([("visibility", "community")], "d"),
    ([("visibility", "all")], "abcd"),
    ([("owner", "{owner}")], "abcd"),
    ([("owner", "ffffffffffffffffffffffffffffffff")], ""),
    ([("tag", "red")], "ab"),
    ([("tag", "blue")], "bc"),
    ([("tag", "red"), ("tag", "blue")], "b"),          # repeated tag = AND
    ([("tag", "red"), ("tag", "nosuchtag")], ""),
    ([("disk_format", "qcow2")], "b"),
    ([("disk_format", "in:raw,iso")], "ac"),
    ([("container_format", "ovf")], "b"),
    ([("container_format", "bare")], "acd"),
    ([("container_format", "in:ovf,docker")], "b"),
    ([("protected", "true")], "b"),
    ([("protected", "false")], "acd"),
    ([("os_hidden", "true")], "e"),
    ([("os_hidden", "false")], "abcd"),
    ([("os_hidden", "true"), ("tag", "red")], "e"),
    ([("os_distro", "debian")], "a"),                  # extra property
    ([("os_distro", "fedora")], ""),
    # size is null on queued images: any size bound excludes them all
    ([("size_min", "0")], ""),
    ([("size_max", "1099511627776")], ""),
    ([("size_min", "0"), ("size_max", "1099511627776")], ""),
    # combinations
    ([("tag", "red"), ("visibility", "shared")], "b"),
    ([("disk_format", "in:raw,iso,qcow2"), ("container_format", "bare")],
     "ac"),
]

FILTER_IDS = ["&".join(f"{k}={v}" for k, v in q) or "no-filter"
              for q, _ in FILTER_CASES]


def format_query(query, catalogue):
    """Fill {u}, {owner}, {id_a}.. placeholders of a FILTER_CASES query."""
    fmt = {"u": catalogue["u"], "owner": catalogue["owner"]}
    fmt.update({f"id_{k}": v["id"] for k, v in catalogue["imgs"].items()})
    return [(k, v.format(**fmt)) for k, v in query]


# --------------------------------------------------------------------------
# assertion helpers (imported by the test modules)
# --------------------------------------------------------------------------

def assert_json_error(resp, status, title, message_part=None):
    """Glance-style JSON error body (request sent Accept: application/json)."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers.get("Content-Type", "").startswith("application/json")
    body = resp.json()
    assert set(body) >= {"message", "code", "title"}, body
    assert body["code"] == f"{status} {title}", body
    assert body["title"] == title, body
    assert isinstance(body["message"], str)
    if message_part is not None:
        assert message_part in body["message"], body["message"]
    return body


def norm(img):
    """Image dict with tags sorted: Glance keeps tags as a set, so their
    order differs between responses."""
    d = dict(img)
    if isinstance(d.get("tags"), list):
        d["tags"] = sorted(d["tags"])
    return d


def assert_core_image(img):
    """Every core attribute present, with the right JSON type."""
    missing = CORE_ATTRS - set(img)
    assert not missing, f"missing core attributes: {missing}"
    assert UUID_RE.match(img["id"]), img["id"]
    assert img["name"] is None or isinstance(img["name"], str)
    assert img["status"] in {"queued", "saving", "active", "killed", "deleted",
                             "pending_delete", "deactivated", "uploading",
                             "importing"}
    assert img["visibility"] in {"public", "private", "shared", "community"}
    for k in ("protected", "os_hidden"):
        assert isinstance(img[k], bool), (k, img[k])
    for k in ("min_disk", "min_ram"):
        assert isinstance(img[k], int) and not isinstance(img[k], bool), k
        assert img[k] >= 0
    for k in ("size", "virtual_size"):
        assert img[k] is None or (isinstance(img[k], int)
                                  and not isinstance(img[k], bool)), k
    for k in ("checksum", "os_hash_algo", "os_hash_value", "owner",
              "disk_format", "container_format"):
        assert img[k] is None or isinstance(img[k], str), (k, img[k])
    for k in ("created_at", "updated_at"):
        assert isinstance(img[k], str) and TS_RE.match(img[k]), (k, img[k])
    assert img["updated_at"] >= img["created_at"]
    assert isinstance(img["tags"], list)
    assert all(isinstance(t, str) for t in img["tags"])
    assert img["self"] == f"/v2/images/{img['id']}"
    assert img["file"] == f"/v2/images/{img['id']}/file"
    assert img["schema"] == "/v2/schemas/image"
