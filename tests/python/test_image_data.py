"""Image data through the real clients: python-glanceclient verifies the md5 on download,
openstacksdk uploads and downloads; both compare bytes with what was sent."""

import hashlib
import io
import os


def _payload(n, seed):
    return hashlib.sha512(seed).digest() * (n // 64) + b"x" * (n % 64)


def test_glanceclient_upload_download_round_trip(gc, cleanup, uniq):
    data = _payload(5 * 1024 * 1024 + 3, b"gc")
    image = gc.images.create(name=f"{uniq}-gc-data", disk_format="raw",
                             container_format="bare")
    cleanup.add(image["id"])
    gc.images.upload(image["id"], io.BytesIO(data), image_size=len(data))
    shown = gc.images.get(image["id"])
    assert shown["status"] == "active"
    assert shown["size"] == len(data)
    assert shown["checksum"] == hashlib.md5(data).hexdigest()
    assert shown["os_hash_algo"] == "sha512"
    assert shown["os_hash_value"] == hashlib.sha512(data).hexdigest()
    # glanceclient checks the md5 (and the multihash) of what it downloads
    body = b"".join(gc.images.data(image["id"]))
    assert body == data


def test_openstacksdk_upload_download_round_trip(sdk, cleanup, uniq):
    data = os.urandom(2 * 1024 * 1024 + 11)
    image = sdk.image.create_image(name=f"{uniq}-sdk-data", disk_format="raw",
                                   container_format="bare", data=io.BytesIO(data),
                                   validate_checksum=False)
    cleanup.add(image.id)
    image = sdk.image.get_image(image.id)
    assert image.status == "active"
    assert image.size == len(data)
    assert image.checksum == hashlib.md5(data).hexdigest()
    got = sdk.image.download_image(image)
    assert got.content == data
