-- Glass registry on PostgreSQL, version 3: every equality filter a listing takes is served
-- by an index in the listing's default order (created_at, id), so a filtered page reads
-- about a page of rows whatever the catalogue's size; both directions are a plain index scan.
--
-- checksum and os_hash_value become columns (bytea, as the other strings), filled for the
-- rows already stored by the Rust step that runs right after this file, in the same
-- transaction (it decodes each record: see migrations.rs).

ALTER TABLE images
    ADD COLUMN checksum bytea,
    ADD COLUMN os_hash_value bytea;

-- Each filtered column, then the default order's keys. name, status, disk_format and
-- container_format have theirs since version 1 (as sort keys).
DROP INDEX images_by_owner;
CREATE INDEX images_by_owner ON images (owner NULLS FIRST, created_at, id);
-- A project's images of one visibility ("shared", "public": tabs of a dashboard): the
-- owned part of a non-admin's scope when a visibility is asked for (scope.rs).
CREATE INDEX images_by_owner_visibility ON images (owner, visibility, created_at, id);
CREATE INDEX images_by_visibility ON images (visibility, created_at, id);
-- Hashes by their first 8 bytes (hex digits: 32 bits), which find an image as well as the
-- whole value (a clash costs a row read and rejected) in a third of the space (a sha512's
-- hex digits made its index 326 bytes per image); listings compare both (list.rs).
CREATE INDEX images_by_checksum ON images ((substr(checksum, 1, 8)), created_at, id);
CREATE INDEX images_by_os_hash_value ON images ((substr(os_hash_value, 1, 8)), created_at, id);
-- The prefix follows from the value: without these the planner multiplies the two
-- conditions' frequencies, thinks a checksum that 200 copies share matches nothing, and
-- sorts all 200 rather than read a page in order. (Expression statistics: PostgreSQL 14.)
CREATE STATISTICS images_checksum_prefix (dependencies)
    ON checksum, (substr(checksum, 1, 8)) FROM images;
CREATE STATISTICS images_os_hash_value_prefix (dependencies)
    ON os_hash_value, (substr(os_hash_value, 1, 8)) FROM images;

-- Flags: the rare value only (false walks images_by_created and rarely skips a row).
CREATE INDEX images_protected ON images (created_at, id) WHERE protected;
CREATE INDEX images_os_hidden ON images (created_at, id) WHERE os_hidden;

-- A project's memberships, by status: the shared part of a non-admin's scope.
DROP INDEX image_members_by_member;
CREATE INDEX image_members_by_member ON image_members (member, status, image_id);

-- Tags and extra properties: one row per label of an image, a label being a tag ('t', then
-- its bytes) or an extra property ('p', then the entry as `properties` keeps it). The key
-- is the listing's default order after the label, so a filtered page walks one label's
-- rows in order and reads a page of images, however common or rare the label. (The GIN
-- indexes on the arrays found every match, unordered: the planner chose between sorting
-- all of them and walking the catalogue in order, rejecting, and chose wrong whenever the
-- statistics misled it.) The engine writes an image's label rows in the statement that
-- writes its row (INSERT, UPDATE, DELETE), from `tags` and `properties`, which stay in the
-- row as the record of what label rows it has. No foreign key: its checks would lock the
-- image row once per label, and its cascade would need an index by image; a listing joins
-- on created_at and id, so a row left behind by a deleted image would join nothing.
-- An image's labels, from its row: the backfill below and the engine's writes.
CREATE FUNCTION image_labels_of(tags bytea[], properties bytea[]) RETURNS bytea[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN ARRAY(SELECT 't'::bytea || t FROM unnest(tags) t
                 UNION ALL SELECT 'p'::bytea || p FROM unnest(properties) p);
CREATE TABLE image_labels (
    label bytea NOT NULL,
    created_at timestamptz NOT NULL,
    image_id uuid NOT NULL
);
INSERT INTO image_labels (label, created_at, image_id)
    SELECT l, i.created_at, i.id FROM images i, unnest(image_labels_of(i.tags, i.properties)) l;
ALTER TABLE image_labels ADD PRIMARY KEY (label, created_at, image_id);
DROP INDEX images_tags;
DROP INDEX images_properties;
