-- Glass registry on PostgreSQL, version 1: images, members, tasks.
--
-- Each row holds the whole record in `record` (the registry's versioned record codec: a
-- format-version byte, then JSON), plus the columns listings sort and filter on. Strings that
-- are sorted or compared are bytea: byte order is the order the registry promises (no
-- collation involved), and bytea holds any string, NUL included, which text refuses.
-- `revision` is authoritative (compare-and-swap runs on it); the copy inside `record` is not
-- read back.

CREATE TABLE images (
    id uuid PRIMARY KEY,
    revision bigint NOT NULL,
    status text COLLATE "C" NOT NULL,
    visibility text NOT NULL,
    owner bytea,
    name bytea,
    disk_format bytea,
    container_format bytea,
    size bigint,
    protected boolean NOT NULL,
    os_hidden boolean NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    -- Each tag's bytes.
    tags bytea[] NOT NULL,
    -- Each extra property as: key length (4 bytes, big-endian), key, value.
    properties bytea[] NOT NULL,
    record bytea NOT NULL
);

-- One index per sort key, with the tie-breakers (created_at, id) after it; NULLs first
-- ascending, as listings order them, so both directions are a plain index scan.
CREATE INDEX images_by_created ON images (created_at, id);
CREATE INDEX images_by_updated ON images (updated_at, created_at, id);
CREATE INDEX images_by_name ON images (name NULLS FIRST, created_at, id);
CREATE INDEX images_by_status ON images (status, created_at, id);
CREATE INDEX images_by_disk_format ON images (disk_format NULLS FIRST, created_at, id);
CREATE INDEX images_by_container_format ON images (container_format NULLS FIRST, created_at, id);
CREATE INDEX images_by_size ON images (size NULLS FIRST, created_at, id);
CREATE INDEX images_by_owner ON images (owner);
CREATE INDEX images_tags ON images USING gin (tags);
CREATE INDEX images_properties ON images USING gin (properties);

CREATE TABLE image_members (
    image_id uuid NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    member bytea NOT NULL,
    status text NOT NULL,
    created_at timestamptz NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (image_id, member)
);
CREATE INDEX image_members_by_member ON image_members (member, image_id) INCLUDE (status);

-- Tasks outlive their image: no foreign key.
CREATE TABLE tasks (
    id uuid PRIMARY KEY,
    image_id uuid,
    created_at timestamptz NOT NULL,
    revision bigint NOT NULL,
    record bytea NOT NULL
);
CREATE INDEX tasks_by_created ON tasks (created_at DESC, id);
CREATE INDEX tasks_by_image ON tasks (image_id, created_at DESC, id);
