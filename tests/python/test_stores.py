"""Multi-store with the real clients: python-glanceclient's stores-info, stores-info
detail, upload to a named store (``backend=``) and delete-from-store; openstacksdk's
``image.stores()``. run.sh starts Glass with two file stores: ``fs`` (the default) and
``fs2``. Skipped when the server has a single store (the reference Glance of this suite).
"""

import io
import os

import pytest
from glanceclient import exc as gexc


def _stores(gc):
    return {s["id"]: s for s in gc.images.get_stores_info()["stores"]}


@pytest.fixture
def two_stores(gc):
    try:
        stores = _stores(gc)
    except gexc.HTTPNotFound:
        pytest.skip("multi-store is not enabled on this server")
    if "fs2" not in stores:
        pytest.skip("run.sh's second store fs2 is not configured")
    return stores


def test_stores_info_lists_the_default(gc, two_stores):
    assert two_stores["fs"].get("default") == "true"
    assert "default" not in two_stores["fs2"]
    detail = {s["id"]: s for s in gc.images.get_stores_info_detail()["stores"]}
    assert detail["fs2"]["type"] == "file"
    assert "weight" in detail["fs2"]


def test_upload_to_a_named_store_and_back(gc, two_stores, cleanup, uniq):
    image = gc.images.create(name=uniq, disk_format="raw", container_format="bare")
    cleanup.add(image["id"])
    data = os.urandom(300_000)
    gc.images.upload(image["id"], io.BytesIO(data), backend="fs2")
    image = gc.images.get(image["id"])
    assert image["status"] == "active"
    assert image["stores"] == "fs2"
    assert b"".join(gc.images.data(image["id"])) == data
    # The only copy cannot be removed from its store (Glance answers 403).
    with pytest.raises(gexc.HTTPForbidden):
        gc.images.delete_from_store("fs2", image["id"])


def test_upload_to_an_unknown_store_is_refused(gc, two_stores, cleanup, uniq):
    image = gc.images.create(name=uniq, disk_format="raw", container_format="bare")
    cleanup.add(image["id"])
    with pytest.raises(gexc.HTTPBadRequest):
        gc.images.upload(image["id"], io.BytesIO(b"x"), backend="nowhere")
    assert gc.images.get(image["id"])["status"] == "queued"


def test_sdk_lists_stores(sdk, two_stores):
    stores = {s.id: s for s in sdk.image.stores()}
    assert set(stores) >= {"fs", "fs2"}
    assert stores["fs"].is_default
