"""Metadata definitions through python-glanceclient's v2 ``metadefs_*`` API
(what ``glance md-namespace-*``, ``md-object-*``, ``md-property-*``,
``md-tag-*`` and ``md-resource-type-*`` call), against Glass.

The client validates its requests with the schemas it downloads from
/v2/schemas/metadefs/*, so these tests also check those schemas are usable.
Every namespace is named after the run and deleted at the end.
"""

import uuid

import pytest
from glanceclient import exc


@pytest.fixture
def ns_name(gc):
    name = f"GLASS::PyTest::{uuid.uuid4().hex[:10]}"
    yield name
    try:
        gc.metadefs_namespace.update(name, namespace=name, protected=False)
    except exc.HTTPException:
        pass
    try:
        gc.metadefs_namespace.delete(name)
    except exc.HTTPException:
        pass


def test_namespace_create_show_update_list(gc, ns_name):
    ns = gc.metadefs_namespace.create(
        namespace=ns_name, display_name="PyTest", visibility="public",
        description="made by glanceclient",
        resource_type_associations=[{"name": "OS::Glance::Image",
                                     "prefix": "pt_"}],
        properties={"speed": {"type": "integer", "title": "Speed",
                              "minimum": 1, "maximum": 10}},
        tags=[{"name": "one"}, {"name": "two"}])
    assert ns.namespace == ns_name
    assert ns.visibility == "public"

    got = gc.metadefs_namespace.get(ns_name)
    assert got.display_name == "PyTest"
    assert got.properties["speed"]["maximum"] == 10
    assert [a["name"] for a in got.resource_type_associations] == [
        "OS::Glance::Image"]
    prefixed = gc.metadefs_namespace.get(
        ns_name, resource_type="OS::Glance::Image")
    assert "pt_speed" in prefixed.properties

    updated = gc.metadefs_namespace.update(
        ns_name, description="changed", protected=True)
    assert updated.description == "changed"
    assert updated.protected is True
    with pytest.raises(exc.HTTPForbidden):
        gc.metadefs_namespace.delete(ns_name)

    listed = [n.namespace for n in gc.metadefs_namespace.list(
        filters={"resource_types": ["OS::Glance::Image"]})]
    assert ns_name in listed

    with pytest.raises(exc.HTTPConflict):
        gc.metadefs_namespace.create(namespace=ns_name)


def test_objects_properties_tags(gc, http, ns_name):
    gc.metadefs_namespace.create(namespace=ns_name)

    obj = gc.metadefs_object.create(
        ns_name, name="Limits", description="cpu limits",
        required=["period"],
        properties={"period": {"type": "integer", "title": "Period"}})
    assert obj.name == "Limits"
    assert [o.name for o in gc.metadefs_object.list(ns_name)] == ["Limits"]
    obj = gc.metadefs_object.update(ns_name, "Limits", description="new")
    assert obj.description == "new"
    assert gc.metadefs_object.get(ns_name, "Limits").required == ["period"]
    gc.metadefs_object.delete(ns_name, "Limits")
    with pytest.raises(exc.HTTPNotFound):
        gc.metadefs_object.get(ns_name, "Limits")

    prop = gc.metadefs_property.create(
        ns_name, name="color", title="Color", type="string",
        enum=["red", "blue"])
    assert prop.name == "color"
    props = {p.name: p for p in gc.metadefs_property.list(ns_name)}
    assert props["color"].enum == ["red", "blue"]
    prop = gc.metadefs_property.update(ns_name, "color", title="Colour")
    assert prop.title == "Colour"
    with pytest.raises(exc.HTTPConflict):
        gc.metadefs_property.create(ns_name, name="color", title="C",
                                    type="string")
    gc.metadefs_property.delete_all(ns_name)
    assert list(gc.metadefs_property.list(ns_name)) == []

    tag = gc.metadefs_tag.create(ns_name, "alpha")
    assert tag.name == "alpha"
    made = [t.name for t in gc.metadefs_tag.create_multiple(
        ns_name, tags=["beta", "gamma"])]
    assert made == ["beta", "gamma"]
    assert sorted(t.name for t in gc.metadefs_tag.list(ns_name)) == [
        "beta", "gamma"]
    # glanceclient's append=True sends a bool header and fails inside the
    # client (TypeError in urllib quote), before any request: append by hand.
    r = http.post(f"/v2/metadefs/namespaces/{ns_name}/tags",
                  json={"tags": [{"name": "delta"}]},
                  headers={"X-Openstack-Append": "True"})
    assert r.status_code == 201, r.text
    assert sorted(t.name for t in gc.metadefs_tag.list(ns_name)) == [
        "beta", "delta", "gamma"]
    tag = gc.metadefs_tag.update(ns_name, "beta", name="bravo")
    assert tag.name == "bravo"
    gc.metadefs_tag.delete(ns_name, "bravo")
    gc.metadefs_tag.delete_all(ns_name)
    assert list(gc.metadefs_tag.list(ns_name)) == []


def test_resource_types(gc, ns_name):
    gc.metadefs_namespace.create(namespace=ns_name)
    rt = f"GLASS::PyTest::Type{uuid.uuid4().hex[:6]}"
    assoc = gc.metadefs_resource_type.associate(
        ns_name, name=rt, prefix="x_", properties_target="image")
    assert assoc.name == rt
    assert [a.name for a in gc.metadefs_resource_type.get(ns_name)] == [rt]
    assert rt in [t.name for t in gc.metadefs_resource_type.list()]
    gc.metadefs_resource_type.deassociate(ns_name, rt)
    assert list(gc.metadefs_resource_type.get(ns_name)) == []
    with pytest.raises(exc.HTTPNotFound):
        gc.metadefs_resource_type.deassociate(ns_name, rt)


def test_non_admin_sees_public_only(gc, ns_name, make_project):
    gc.metadefs_namespace.create(namespace=ns_name)   # private
    other = make_project().gc
    with pytest.raises(exc.HTTPNotFound):
        other.metadefs_namespace.get(ns_name)
    assert ns_name not in [n.namespace
                           for n in other.metadefs_namespace.list()]
    with pytest.raises(exc.HTTPForbidden):
        other.metadefs_namespace.create(namespace=ns_name + "-mine")
