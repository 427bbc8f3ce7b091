//! `store-s3`: image data in an S3 bucket (AWS, Ceph RGW, SeaweedFS, Garage, …), signed
//! with AWS Signature V4, reached only through `wasi:http` to the hosts the operator granted.
//!
//! Settings (the store's `settings` table): `endpoint` (`http(s)://host[:port]`, no path),
//! `bucket`, `region` (us-east-1), `access_key`, `secret_key`, `addressing` (`path`, the
//! default, or `virtual`: `<bucket>.<endpoint host>`, which must then be granted),
//! `part_size_mb` (16, at least 5), `large_object_threshold_mb` (= part size, at most
//! 5120), `create_bucket` (false: create the bucket on `add` if missing), `prefix` (none).
//!
//! - An image of known size up to the threshold is read, then sent in one PUT (a PUT whose
//!   body breaks off can leave an object behind on some servers); a larger one, or one of
//!   unknown size, is a multipart upload. With the size known each part is streamed with its
//!   exact length (bytes never enter guest memory), parts made larger than `part_size_mb`
//!   if needed to stay within S3's 10 000 parts; otherwise one part at a time is buffered.
//!   So the store's memory cap must exceed the larger of the part size and the threshold
//!   (16 MiB each by default), plus a few MiB. A failed multipart upload is aborted. An
//!   image of unknown size is limited to 10 000 parts (156 GiB with 16 MiB parts).
//! - Locations are `s3://<bucket>/<key>` with key = prefix + image id; anything else, or
//!   another bucket, is refused before any request.
//! - Every request is signed with SigV4 and sends `x-amz-content-sha256` (the body's hash,
//!   or `UNSIGNED-PAYLOAD` for streamed parts).
//! - Errors keep S3's code and message: 401/403 are `access-denied`, `NoSuchKey` (and other
//!   404s) `not-found`, `NoSuchBucket` and 5xx `unavailable`.

use glass_store_guest::bindings::wasi::clocks::wall_clock;
use glass_store_guest::http::{
    self, Body, HttpError, Method, Ranged, Request, Response, uri_encode,
};
use glass_store_guest::{
    Capabilities, Driver, DriverInfo, InputStream, OutputStream, StoreError, Stored, bool_setting,
    check_image_id, expect_end, number_setting, read_up_to, required_setting, setting, truncate,
};

struct S3Store;

glass_store_guest::export_driver!(S3Store);

const MIB: u64 = 1 << 20;
/// S3's largest single PUT.
const MAX_PUT: u64 = 5 << 30;
/// S3's most parts in one multipart upload.
const MAX_PARTS: u64 = 10_000;

/// The driver's settings.
struct Config {
    /// `http://host:port` (no trailing slash).
    endpoint: String,
    bucket: String,
    region: String,
    access_key: String,
    secret_key: String,
    virtual_hosted: bool,
    part_size: u64,
    threshold: u64,
    create_bucket: bool,
    prefix: String,
}

fn config() -> Result<Config, StoreError> {
    let endpoint = required_setting("endpoint")?
        .trim_end_matches('/')
        .to_owned();
    let authority = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"));
    if authority.is_none_or(|a| a.is_empty() || a.contains(['/', '?', '#', '@'])) {
        return Err(StoreError::Other(format!(
            "setting endpoint must be http(s)://host[:port] without a path: {endpoint:?}"
        )));
    }
    let virtual_hosted = match setting("addressing").as_deref().map(str::trim) {
        None | Some("" | "path") => false,
        Some("virtual") => true,
        Some(other) => {
            return Err(StoreError::Other(format!(
                "setting addressing must be path or virtual: {other:?}"
            )));
        }
    };
    let part_size = number_setting("part_size_mb", 16)?.clamp(5, 5 * 1024) * MIB;
    Ok(Config {
        endpoint,
        bucket: required_setting("bucket")?,
        region: setting("region").unwrap_or_else(|| "us-east-1".into()),
        access_key: required_setting("access_key")?,
        secret_key: required_setting("secret_key")?,
        virtual_hosted,
        part_size,
        threshold: (number_setting("large_object_threshold_mb", part_size / MIB)? * MIB)
            .min(MAX_PUT),
        create_bucket: bool_setting("create_bucket", false),
        prefix: setting("prefix").unwrap_or_default(),
    })
}

impl Config {
    fn location(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// The key a location names, if it is one of this store's.
    fn key_of<'a>(&self, location: &'a str) -> Result<&'a str, StoreError> {
        let bad = || {
            StoreError::InvalidLocation(format!(
                "not a location of bucket {}: {:?}",
                self.bucket,
                truncate(location)
            ))
        };
        let rest = location.strip_prefix("s3://").ok_or_else(bad)?;
        let (bucket, key) = rest.split_once('/').ok_or_else(bad)?;
        let id = key.strip_prefix(self.prefix.as_str()).ok_or_else(bad)?;
        if bucket != self.bucket || check_image_id(id).is_err() {
            return Err(bad());
        }
        Ok(key)
    }

    /// Sends a signed request for the bucket (`key` None) or one of its objects.
    fn send(
        &self,
        method: Method,
        key: Option<&str>,
        query: &[(&str, &str)],
        headers: &[(&str, String)],
        body: Body,
    ) -> Result<Response, HttpError> {
        let (scheme, authority) = self.endpoint.split_once("://").expect("checked in config");
        let (host, path) = if self.virtual_hosted {
            (
                format!("{}.{authority}", self.bucket),
                format!("/{}", uri_encode(key.unwrap_or(""), false)),
            )
        } else {
            let mut path = format!("/{}", uri_encode(&self.bucket, true));
            if let Some(key) = key {
                path.push('/');
                path.push_str(&uri_encode(key, false));
            }
            (authority.to_owned(), path)
        };
        let query: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let payload_hash = match &body {
            Body::Empty => s3_wire::sigv4::sha256_hex(b""),
            Body::Bytes(b) => s3_wire::sigv4::sha256_hex(b),
            Body::Stream { .. } => s3_wire::sigv4::UNSIGNED_PAYLOAD.to_owned(),
        };
        let now = wall_clock::now().seconds;
        let amz_date = s3_wire::sigv4::amz_date(now);
        let signed = vec![
            ("host".to_string(), host.clone()),
            ("x-amz-content-sha256".to_string(), payload_hash.clone()),
            ("x-amz-date".to_string(), amz_date.clone()),
        ];
        let authorization = s3_wire::sigv4::authorization(&s3_wire::sigv4::Signing {
            method: method.as_str(),
            path: &path,
            query: &query,
            headers: &signed,
            payload_hash: &payload_hash,
            access_key: &self.access_key,
            secret_key: &self.secret_key,
            region: &self.region,
            amz_date: &amz_date,
        });
        let mut all: Vec<(String, String)> =
            signed.into_iter().filter(|(k, _)| k != "host").collect();
        all.push(("authorization".into(), authorization));
        all.extend(headers.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let query = s3_wire::sigv4::canonical_query(&query);
        let url = format!(
            "{scheme}://{host}{path}{}{query}",
            if query.is_empty() { "" } else { "?" }
        );
        http::send(
            &Request {
                method,
                url,
                headers: all,
            },
            body,
        )
    }

    /// Creates the bucket if it does not exist (with `create_bucket`).
    fn ensure_bucket(&self) -> Result<(), StoreError> {
        if !self.create_bucket {
            return Ok(());
        }
        let head = self.send(Method::Head, None, &[], &[], Body::Empty)?;
        match head.status {
            200 => Ok(()),
            404 => {
                let r = self.send(Method::Put, None, &[], &[], Body::Empty)?;
                match r.status {
                    200 => Ok(()),
                    _ => {
                        let e = s3_error(r);
                        match &e {
                            StoreError::Other(m) if m.contains("BucketAlready") => Ok(()),
                            _ => Err(e),
                        }
                    }
                }
            }
            _ => Err(s3_error(head)),
        }
    }

    fn exists(&self, key: &str) -> Result<bool, StoreError> {
        let r = self.send(Method::Head, Some(key), &[], &[], Body::Empty)?;
        match r.status {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(s3_error(r)),
        }
    }

    fn put_object(&self, key: &str, body: Body) -> Result<(), StoreError> {
        let r = self.send(Method::Put, Some(key), &[], &[], body)?;
        match r.status {
            200 => Ok(()),
            _ => Err(s3_error(r)),
        }
    }

    fn delete_object(&self, key: &str) -> Result<(), StoreError> {
        let r = self.send(Method::Delete, Some(key), &[], &[], Body::Empty)?;
        match r.status {
            200 | 204 | 404 => Ok(()),
            _ => Err(s3_error(r)),
        }
    }

    fn abort(&self, key: &str, upload_id: &str) {
        let _ = self.send(
            Method::Delete,
            Some(key),
            &[("uploadId", upload_id)],
            &[],
            Body::Empty,
        );
    }

    /// A multipart upload of everything `data` delivers; aborted on failure.
    fn multipart(
        &self,
        key: &str,
        data: &InputStream,
        size: Option<u64>,
        first: Option<Vec<u8>>,
    ) -> Result<u64, StoreError> {
        let r = self.send(
            Method::Post,
            Some(key),
            &[("uploads", "")],
            &[],
            Body::Empty,
        )?;
        if r.status != 200 {
            return Err(s3_error(r));
        }
        let xml = String::from_utf8_lossy(&r.read_to_vec(64 * 1024)?).into_owned();
        let upload_id = s3_wire::xml::value(&xml, "UploadId")
            .ok_or_else(|| StoreError::Other("CreateMultipartUpload gave no UploadId".into()))?;
        match self.upload_parts(key, &upload_id, data, size, first) {
            Ok(total) => Ok(total),
            Err(e) => {
                self.abort(key, &upload_id);
                Err(e)
            }
        }
    }

    fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        data: &InputStream,
        size: Option<u64>,
        mut first: Option<Vec<u8>>,
    ) -> Result<u64, StoreError> {
        let mut etags = Vec::new();
        let mut total = 0u64;
        let part_size = size.map_or(self.part_size, |size| part_size_for(size, self.part_size));
        loop {
            let number = (etags.len() + 1).to_string();
            let query = [("partNumber", number.as_str()), ("uploadId", upload_id)];
            let r = match size {
                Some(size) => {
                    let length = (size - total).min(part_size);
                    if length == 0 {
                        break;
                    }
                    total += length;
                    self.send(
                        Method::Put,
                        Some(key),
                        &query,
                        &[],
                        Body::Stream { from: data, length },
                    )?
                }
                None => {
                    let part = match first.take() {
                        Some(part) => part,
                        None => read_up_to(data, self.part_size)?,
                    };
                    if part.is_empty() && !etags.is_empty() {
                        break;
                    }
                    total += part.len() as u64;
                    let last = (part.len() as u64) < self.part_size;
                    let r = self.send(Method::Put, Some(key), &query, &[], Body::Bytes(&part))?;
                    if last {
                        etags.push(etag(r)?);
                        break;
                    }
                    r
                }
            };
            etags.push(etag(r)?);
        }
        if size.is_some() {
            expect_end(data, total)?;
        }
        let xml = s3_wire::xml::complete_multipart_upload(&etags);
        let r = self.send(
            Method::Post,
            Some(key),
            &[("uploadId", upload_id)],
            &[],
            Body::Bytes(xml.as_bytes()),
        )?;
        // Some servers answer 200 with an error document.
        if r.status != 200 {
            return Err(s3_error(r));
        }
        let body = String::from_utf8_lossy(&r.read_to_vec(64 * 1024)?).into_owned();
        if body.contains("<Error>") {
            return Err(StoreError::Other(format!(
                "CompleteMultipartUpload failed: {}",
                s3_wire::xml::value(&body, "Message").unwrap_or(body)
            )));
        }
        Ok(total)
    }
}

/// The part length for an upload of `size` bytes: `configured`, or more (whole MiB) if
/// `size` would need more than S3's 10 000 parts.
fn part_size_for(size: u64, configured: u64) -> u64 {
    configured.max(size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB)
}

/// The ETag of an UploadPart answer.
fn etag(r: Response) -> Result<String, StoreError> {
    if r.status != 200 {
        return Err(s3_error(r));
    }
    r.header("etag")
        .map(str::to_owned)
        .ok_or_else(|| StoreError::Other("UploadPart gave no ETag".into()))
}

/// An S3 error answer as a store error, with S3's code and message.
fn s3_error(r: Response) -> StoreError {
    let status = r.status;
    let body = r.text();
    let code = s3_wire::xml::value(&body, "Code").unwrap_or_default();
    let message = s3_wire::xml::value(&body, "Message").unwrap_or_default();
    let what = if code.is_empty() {
        format!("S3 answered {status}")
    } else {
        format!("S3 answered {status} {code}: {message}")
    };
    match (status, code.as_str()) {
        (404, "NoSuchBucket") => StoreError::Unavailable(what),
        (404, _) => StoreError::NotFound,
        (401 | 403, _) => StoreError::AccessDenied(what),
        (500..=599, _) => StoreError::Unavailable(what),
        _ => StoreError::Other(what),
    }
}

impl Driver for S3Store {
    fn info() -> DriverInfo {
        DriverInfo {
            name: "store-s3".into(),
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
        size_hint: Option<u64>,
    ) -> Result<Stored, StoreError> {
        check_image_id(&image_id)?;
        let cfg = config()?;
        let key = format!("{}{image_id}", cfg.prefix);
        cfg.ensure_bucket()?;
        if cfg.exists(&key)? {
            return Err(StoreError::AlreadyExists);
        }
        let size = match size_hint {
            Some(size) if size <= cfg.threshold => {
                // Read first, send after: a PUT whose body breaks off can still leave an
                // object behind on some servers (SeaweedFS, shortly after), while a failed
                // part of a multipart upload never does. At most one part is buffered.
                let bytes = read_up_to(&data, size)?;
                if (bytes.len() as u64) < size {
                    return Err(StoreError::Other(format!(
                        "the data ended after {} of {size} bytes",
                        bytes.len()
                    )));
                }
                expect_end(&data, size)?;
                cfg.put_object(&key, Body::Bytes(&bytes))?;
                size
            }
            Some(size) => cfg.multipart(&key, &data, Some(size), None)?,
            None => {
                let first = read_up_to(&data, cfg.part_size)?;
                if (first.len() as u64) < cfg.part_size {
                    cfg.put_object(&key, Body::Bytes(&first))?;
                    first.len() as u64
                } else {
                    cfg.multipart(&key, &data, None, Some(first))?
                }
            }
        };
        Ok(Stored {
            location: cfg.location(&key),
            size,
        })
    }

    fn get(
        location: String,
        offset: u64,
        length: Option<u64>,
        sink: OutputStream,
    ) -> Result<u64, StoreError> {
        let cfg = config()?;
        let key = cfg.key_of(&location)?;
        if length == Some(0) {
            return Ok(0);
        }
        let headers: Vec<(&str, String)> = http::range(offset, length)
            .map(|r| vec![("range", r)])
            .unwrap_or_default();
        let r = cfg.send(Method::Get, Some(key), &[], &headers, Body::Empty)?;
        match http::splice_ranged(r, offset, length, &sink)? {
            Ranged::Done(n) => Ok(n),
            Ranged::Refused(r) if r.status == 200 => Err(StoreError::Unavailable(
                "the S3 server ignored the range request".into(),
            )),
            Ranged::Refused(r) => Err(s3_error(r)),
        }
    }

    fn size(location: String) -> Result<u64, StoreError> {
        let cfg = config()?;
        let key = cfg.key_of(&location)?;
        let r = cfg.send(Method::Head, Some(key), &[], &[], Body::Empty)?;
        if r.status != 200 {
            return Err(s3_error(r));
        }
        r.header("content-length")
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| StoreError::Other("HEAD gave no content-length".into()))
    }

    fn delete(location: String) -> Result<(), StoreError> {
        let cfg = config()?;
        let key = cfg.key_of(&location)?;
        if !cfg.exists(key)? {
            return Err(StoreError::NotFound);
        }
        cfg.delete_object(key)
    }

    fn discard_partial(image_id: String) -> Result<(), StoreError> {
        check_image_id(&image_id)?;
        let cfg = config()?;
        let key = format!("{}{image_id}", cfg.prefix);
        let r = cfg.send(
            Method::Get,
            None,
            &[("prefix", &key), ("uploads", "")],
            &[],
            Body::Empty,
        )?;
        match r.status {
            200 => {
                let xml = String::from_utf8_lossy(&r.read_to_vec(1 << 20)?).into_owned();
                for upload in s3_wire::xml::blocks(&xml, "Upload") {
                    if let (Some(k), Some(id)) = (
                        s3_wire::xml::value(upload, "Key"),
                        s3_wire::xml::value(upload, "UploadId"),
                    ) && k == key
                    {
                        cfg.abort(&key, &id);
                    }
                }
            }
            404 => return Ok(()), // no bucket: nothing was ever written
            _ => return Err(s3_error(r)),
        }
        cfg.delete_object(&key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_sizes_stay_within_10000_parts() {
        let p = 16 * MIB;
        assert_eq!(part_size_for(0, p), p);
        assert_eq!(part_size_for(MAX_PARTS * p, p), p);
        let big = MAX_PARTS * p + 1;
        let q = part_size_for(big, p);
        assert_eq!(q, 17 * MIB);
        assert!(big.div_ceil(q) <= MAX_PARTS);
        let huge = 5u64 << 40; // S3's largest object
        assert!(huge.div_ceil(part_size_for(huge, p)) <= MAX_PARTS);
    }
}
