//! `store-fs`: Glass's default image store. Keeps each image as one file named by its UUID in
//! the single directory the host grants it. See README.md for the contract.

use glass_store_guest::bindings::wasi::filesystem::preopens;
use glass_store_guest::bindings::wasi::filesystem::types::{
    Descriptor, DescriptorFlags, DescriptorType, ErrorCode, OpenFlags, PathFlags,
};
use glass_store_guest::{
    Capabilities, Driver, DriverInfo, InputStream, OutputStream, StoreError, Stored,
    check_image_id, is_canonical_uuid, splice, truncate,
};

/// Every location this driver hands out is this prefix followed by a canonical image UUID.
const LOCATION_PREFIX: &str = "file:///";
/// Suffix of the file an unfinished `add` writes before renaming it into place.
const PARTIAL_SUFFIX: &str = ".partial";

struct FileStore;

glass_store_guest::export_driver!(FileStore);

impl Driver for FileStore {
    fn info() -> DriverInfo {
        DriverInfo {
            name: "store-fs".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            capabilities: Capabilities::READ
                | Capabilities::WRITE
                | Capabilities::DELETE
                | Capabilities::RANGED_READS,
        }
    }

    fn add(
        image_id: String,
        data: InputStream,
        _size_hint: Option<u64>,
    ) -> Result<Stored, StoreError> {
        check_image_id(&image_id)?;
        let root = root()?;
        if exists(&root, &image_id)? {
            return Err(StoreError::AlreadyExists);
        }
        let partial = format!("{image_id}{PARTIAL_SUFFIX}");
        let size = match write_file(&root, &partial, data) {
            Ok(size) => size,
            Err(e) => {
                // Best effort: if this fails too, discard-partial removes it later.
                let _ = root.unlink_file_at(&partial);
                return Err(e);
            }
        };
        // The registry lets one upload per image run at a time; this check catches data that
        // another path left in place, it is not a lock.
        if exists(&root, &image_id)? {
            let _ = root.unlink_file_at(&partial);
            return Err(StoreError::AlreadyExists);
        }
        root.rename_at(&partial, &root, &image_id)
            .map_err(fs_error)?;
        root.sync().map_err(fs_error)?;
        Ok(Stored {
            location: format!("{LOCATION_PREFIX}{image_id}"),
            size,
        })
    }

    fn get(
        location: String,
        offset: u64,
        length: Option<u64>,
        sink: OutputStream,
    ) -> Result<u64, StoreError> {
        let name = file_name(&location)?;
        let file = root()?
            .open_at(
                PathFlags::empty(),
                name,
                OpenFlags::empty(),
                DescriptorFlags::READ,
            )
            .map_err(fs_error)?;
        let source = file.read_via_stream(offset).map_err(fs_error)?;
        let written = splice(&sink, &source, length)?;
        Ok(written)
    }

    fn size(location: String) -> Result<u64, StoreError> {
        let name = file_name(&location)?;
        let stat = root()?
            .stat_at(PathFlags::empty(), name)
            .map_err(fs_error)?;
        match stat.type_ {
            DescriptorType::RegularFile => Ok(stat.size),
            _ => Err(StoreError::NotFound),
        }
    }

    fn delete(location: String) -> Result<(), StoreError> {
        let name = file_name(&location)?;
        let root = root()?;
        root.unlink_file_at(name).map_err(fs_error)?;
        root.sync().map_err(fs_error)
    }

    fn discard_partial(image_id: String) -> Result<(), StoreError> {
        check_image_id(&image_id)?;
        let root = root()?;
        // The partial file, and the complete one an add renamed into place just before
        // the host died (the host has no location recorded for it).
        for name in [format!("{image_id}{PARTIAL_SUFFIX}"), image_id] {
            match root.unlink_file_at(&name) {
                Ok(()) | Err(ErrorCode::NoEntry) => {}
                Err(e) => return Err(fs_error(e)),
            }
        }
        root.sync().map_err(fs_error)
    }
}

/// The one directory the host granted. No grant (or more than one) is a configuration error.
fn root() -> Result<Descriptor, StoreError> {
    let mut dirs = preopens::get_directories();
    match dirs.len() {
        1 => Ok(dirs.pop().expect("one directory").0),
        0 => Err(StoreError::AccessDenied(
            "no directory granted to store-fs".into(),
        )),
        n => Err(StoreError::AccessDenied(format!(
            "store-fs needs exactly one granted directory, got {n}"
        ))),
    }
}

/// The file name a location refers to: the UUID after `file:///`, nothing else accepted.
fn file_name(location: &str) -> Result<&str, StoreError> {
    match location.strip_prefix(LOCATION_PREFIX) {
        Some(id) if is_canonical_uuid(id) => Ok(id),
        _ => Err(StoreError::InvalidLocation(format!(
            "not a store-fs location (file:///<image uuid>): {:?}",
            truncate(location)
        ))),
    }
}

fn exists(root: &Descriptor, name: &str) -> Result<bool, StoreError> {
    match root.stat_at(PathFlags::empty(), name) {
        Ok(_) => Ok(true),
        Err(ErrorCode::NoEntry) => Ok(false),
        Err(e) => Err(fs_error(e)),
    }
}

/// Creates (or truncates) `name`, splices all of `data` into it and syncs it to disk.
fn write_file(root: &Descriptor, name: &str, data: InputStream) -> Result<u64, StoreError> {
    let file = root
        .open_at(
            PathFlags::empty(),
            name,
            OpenFlags::CREATE | OpenFlags::TRUNCATE,
            DescriptorFlags::WRITE,
        )
        .map_err(fs_error)?;
    let sink = file.write_via_stream(0).map_err(fs_error)?;
    let size = splice(&sink, &data, None)?;
    drop(sink);
    drop(data);
    file.sync_data().map_err(fs_error)?;
    Ok(size)
}

fn fs_error(code: ErrorCode) -> StoreError {
    match code {
        ErrorCode::NoEntry => StoreError::NotFound,
        ErrorCode::Exist => StoreError::AlreadyExists,
        ErrorCode::Access | ErrorCode::NotPermitted | ErrorCode::ReadOnly => {
            StoreError::AccessDenied(format!("{code:?}"))
        }
        ErrorCode::InsufficientSpace
        | ErrorCode::Quota
        | ErrorCode::Io
        | ErrorCode::Busy
        | ErrorCode::WouldBlock
        | ErrorCode::InsufficientMemory => StoreError::Unavailable(format!("{code:?}")),
        other => StoreError::Other(format!("{other:?}")),
    }
}
