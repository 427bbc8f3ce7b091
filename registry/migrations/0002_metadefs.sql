-- Glass registry on PostgreSQL, version 2: metadata definitions.
--
-- A namespace's contents reference it by name, so deleting a namespace deletes them and
-- renaming it moves them (ON UPDATE CASCADE); the `namespace` field inside a content
-- record is not read back, the column is. Names are bytea, as in 0001.

CREATE TABLE metadef_namespaces (
    name bytea PRIMARY KEY,
    record bytea NOT NULL
);

CREATE TABLE metadef_objects (
    namespace bytea NOT NULL REFERENCES metadef_namespaces (name) ON DELETE CASCADE ON UPDATE CASCADE,
    name bytea NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (namespace, name)
);

CREATE TABLE metadef_properties (
    namespace bytea NOT NULL REFERENCES metadef_namespaces (name) ON DELETE CASCADE ON UPDATE CASCADE,
    name bytea NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (namespace, name)
);

CREATE TABLE metadef_tags (
    namespace bytea NOT NULL REFERENCES metadef_namespaces (name) ON DELETE CASCADE ON UPDATE CASCADE,
    name bytea NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (namespace, name)
);

-- A namespace's association with a resource type, named by the resource type.
CREATE TABLE metadef_associations (
    namespace bytea NOT NULL REFERENCES metadef_namespaces (name) ON DELETE CASCADE ON UPDATE CASCADE,
    name bytea NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (namespace, name)
);

-- Resource types stay when their associations go.
CREATE TABLE metadef_resource_types (
    name bytea PRIMARY KEY,
    record bytea NOT NULL
);
