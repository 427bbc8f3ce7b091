"""Interoperable image import with the real clients: python-glanceclient and openstacksdk
drive glance-direct (stage + import), web-download (from a loopback HTTP server that the
server under test allows: tests/python/run.sh configures `[import.web_download]`),
copy-image between the two file stores, the import discovery, and the tasks API; plus the
refusals a Glance deployment gives (SSRF targets, unsafe disk images)."""

import hashlib
import http.server
import io
import os
import threading
import time

import pytest

from conftest import GLASS_URL, assert_json_error

# run.sh starts Glass with allowed_networks = 127.0.0.1: only that address is reachable.
WEB_HOST = "127.0.0.1"


class _Handler(http.server.BaseHTTPRequestHandler):
    files = {}

    def do_GET(self):  # noqa: N802 (http.server API)
        body = self.files.get(self.path)
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if isinstance(body, tuple) and body[0] == "redirect":
            self.send_response(302)
            self.send_header("Location", body[1])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def web():
    server = http.server.ThreadingHTTPServer((WEB_HOST, 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]

    class Web:
        files = _Handler.files

        @staticmethod
        def url(path):
            return f"http://{WEB_HOST}:{port}{path}"

    yield Web
    server.shutdown()


def wait_import(http, image_id, timeout=60):
    """The image once its import is over (no lock, not importing)."""
    deadline = time.time() + timeout
    while True:
        img = http.show(image_id)
        if "os_glance_import_task" not in img and img["status"] != "importing":
            return img
        assert time.time() < deadline, f"import did not end: {img}"
        time.sleep(0.1)


def test_discovery_and_create_headers(gc, http, uniq):
    info = gc.images.get_import_info()
    methods = info["import-methods"]["value"]
    assert {"glance-direct", "web-download", "copy-image"} <= set(methods)
    r = http.post("/v2/images", json={"name": uniq})
    assert r.status_code == 201
    http.tracker.add(r.json()["id"])
    assert "glance-direct" in r.headers["OpenStack-image-import-methods"]
    assert set(r.headers["OpenStack-image-store-ids"].split(",")) == {"fs", "fs2"}


def test_glanceclient_glance_direct(gc, http, uniq):
    data = os.urandom(150_000)
    image = gc.images.create(name=uniq, disk_format="raw",
                             container_format="bare")
    http.tracker.add(image["id"])
    gc.images.stage(image["id"], io.BytesIO(data), image_size=len(data))
    assert gc.images.get(image["id"])["status"] == "uploading"
    gc.images.image_import(image["id"], method="glance-direct")
    done = wait_import(http, image["id"])
    assert done["status"] == "active"
    assert done["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert b"".join(gc.images.data(image["id"])) == data
    tasks = gc.images.get_associated_image_tasks(image["id"])["tasks"]
    assert tasks[0]["status"] == "success"
    assert tasks[0]["result"] == {"image_id": image["id"]}
    # The tasks API (admin).
    task = gc.tasks.get(tasks[0]["id"])
    assert task.status == "success"
    assert task.type == "api_image_import"
    assert any(t["id"] == task.id for t in gc.tasks.list())


def test_glanceclient_web_download_to_both_stores(gc, http, uniq, web):
    data = os.urandom(80_000)
    web.files["/gc.raw"] = data
    image = gc.images.create(name=uniq, disk_format="raw",
                             container_format="bare")
    http.tracker.add(image["id"])
    gc.images.image_import(image["id"], method="web-download",
                           uri=web.url("/gc.raw"), stores=["fs", "fs2"],
                           allow_failure=False)
    done = wait_import(http, image["id"])
    assert done["status"] == "active", done
    assert sorted(done["stores"].split(",")) == ["fs", "fs2"]
    assert done["os_glance_failed_import"] == ""
    assert b"".join(gc.images.data(image["id"])) == data


def test_glanceclient_copy_image(gc, http, uniq):
    data = os.urandom(20_000)
    image = gc.images.create(name=uniq, disk_format="raw",
                             container_format="bare")
    http.tracker.add(image["id"])
    gc.images.upload(image["id"], io.BytesIO(data), image_size=len(data))
    assert gc.images.get(image["id"])["stores"] == "fs"
    gc.images.image_import(image["id"], method="copy-image", all_stores=True)
    done = wait_import(http, image["id"])
    assert sorted(done["stores"].split(",")) == ["fs", "fs2"]
    # Removing the original copy, the data still comes from fs2.
    gc.images.delete_from_store("fs", image["id"])
    assert b"".join(gc.images.data(image["id"])) == data


def test_openstacksdk_use_import_and_web_download(sdk, http, uniq, web):
    data = os.urandom(60_000)
    img = sdk.image.create_image(name=uniq, data=io.BytesIO(data),
                                 disk_format="raw", container_format="bare",
                                 use_import=True, wait=True, timeout=60)
    http.tracker.add(img.id)
    done = wait_import(http, img.id)
    assert done["status"] == "active", done
    assert b"".join(sdk.image.download_image(img.id, stream=True)
                    .iter_content(65536)) == data

    web.files["/sdk.raw"] = data
    img2 = sdk.image.create_image(name=f"{uniq}-web", disk_format="raw",
                                  container_format="bare",
                                  allow_duplicates=True)
    http.tracker.add(img2.id)
    sdk.image.import_image(img2, method="web-download",
                           uri=web.url("/sdk.raw"), stores=["fs2"])
    done = wait_import(http, img2.id)
    assert done["stores"] == "fs2"
    info = sdk.image.get_import_info()
    assert "web-download" in info.import_methods["value"]
    tasks = list(sdk.image.tasks(status="success"))
    assert tasks, "the SDK lists tasks"


def test_ssrf_targets_are_refused(http, uniq, web):
    web.files["/redirect-meta"] = ("redirect",
                                   "http://169.254.169.254/latest/meta-data/")
    for uri in ["http://169.254.169.254/latest/meta-data/",
                "http://127.0.0.2/x", "file:///etc/passwd",
                "http://[::1]/x", "http://10.1.1.1/x"]:
        img = http.create_image(name=uniq, disk_format="raw",
                                container_format="bare")
        r = http.post(f"/v2/images/{img['id']}/import",
                      json={"method": {"name": "web-download", "uri": uri}},
                      headers={"Accept": "application/json"})
        assert_json_error(r, 400, "Bad Request", "does not pass filtering")
    img = http.create_image(name=uniq, disk_format="raw",
                            container_format="bare")
    r = http.post(f"/v2/images/{img['id']}/import",
                  json={"method": {"name": "web-download",
                                   "uri": web.url("/redirect-meta")}})
    assert r.status_code == 202
    done = wait_import(http, img["id"])
    assert done["status"] == "queued"
    task = http.get(f"/v2/images/{img['id']}/tasks").json()["tasks"][0]
    assert task["status"] == "failure"
    assert "metadata" in task["message"]


def test_unsafe_qcow2_is_refused(gc, http, uniq):
    header = bytearray(4096)
    header[0:4] = b"QFI\xfb"
    header[4:8] = (3).to_bytes(4, "big")
    header[8:16] = (512).to_bytes(8, "big")   # a backing file
    image = gc.images.create(name=uniq, disk_format="qcow2",
                             container_format="bare")
    http.tracker.add(image["id"])
    r = http.put(f"/v2/images/{image['id']}/file", data=bytes(header),
                 headers={"Content-Type": "application/octet-stream",
                          "Accept": "application/json"})
    assert_json_error(r, 400, "Bad Request", "backing-file")
    assert http.show(image["id"])["status"] == "queued"
    r = http.put(f"/v2/images/{image['id']}/stage", data=bytes(header),
                 headers={"Content-Type": "application/octet-stream",
                          "Accept": "application/json"})
    assert_json_error(r, 400, "Bad Request", "backing-file")
    assert http.show(image["id"])["status"] == "queued"


def test_glass_url_is_loopback():
    assert GLASS_URL.startswith("http://127.") or "localhost" in GLASS_URL
