//! `swift-wire`: what Swift and Keystone answer (tempauth headers, Keystone tokens and
//! catalogs, expiry dates, SLO delete results, listings, error pages) and the driver's
//! locations and token file, with their round trips.

use swift_wire::{self as wire, Session, SwiftError};

use super::u64_at;
use crate::driver::{Target, signature};

pub struct SwiftWire;

const ID: &str = "8a1f3e6c-2b1e-4c59-9d8e-3f2a1b0c9d8e";

const SEEDS: &[&str] = &[
    r#"{"token": {"expires_at": "2026-11-22T12:34:56.000000Z", "catalog": [{"type": "object-store", "name": "swift", "endpoints": [{"interface": "public", "region": "RegionOne", "region_id": "RegionOne", "url": "http://one:8080/v1/AUTH_p1/"}, {"interface": "internal", "region_id": "RegionTwo", "url": "http://two:8080/v1/AUTH_p1"}]}]}}"#,
    r#"[{"name": "8a1f3e6c-2b1e-4c59-9d8e-3f2a1b0c9d8e/00000001", "bytes": 1}, {"name": "x", "bytes": 1}]"#,
    r#"{"Response Status": "409 Conflict", "Response Body": "", "Number Deleted": 1, "Errors": [["/glance_segments/x/00000002", "409 Conflict"]]}"#,
    r#"{"fingerprint": "fp", "token": "AUTH_tk", "storage_url": "http://s/v1/AUTH_a", "expires_at": 99999999999}"#,
    "<html><h1>Unauthorized</h1><p>This server could not verify that you are authorized.</p></html>",
    r#"{"error": {"message": "The request you have made requires authentication.", "code": 401}}"#,
    "swift://glance/8a1f3e6c-2b1e-4c59-9d8e-3f2a1b0c9d8e",
    "2038-01-19T03:14:08+00:00",
    "AUTH_tk\nhttp://127.0.0.1:8080/v1/AUTH_test/\n86400",
];

const DICT: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\"token\"",
    "\"catalog\"",
    "\"endpoints\"",
    "\"object-store\"",
    "\"interface\"",
    "\"public\"",
    "\"url\"",
    "\"region_id\"",
    "\"expires_at\"",
    "\"Errors\"",
    "\"Response Status\"",
    "\"name\"",
    "swift://",
    "glance/",
    "T",
    "Z",
    "-",
    "+00:00",
    ".000000",
    "9223372036854775807",
    "<",
    ">",
    "\n",
    "/",
    "é",
];

const NOW: u64 = 1_795_000_000;

impl Target for SwiftWire {
    fn name(&self) -> &'static str {
        "swift-wire"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        SEEDS.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    fn dictionary(&self) -> &'static [&'static str] {
        DICT
    }

    fn run(&self, input: &[u8]) -> Result<u64, String> {
        let s = String::from_utf8_lossy(input);
        let mut bits = 0u64;
        let mut bit = |b: bool| bits = bits * 2 + u64::from(b);

        // Locations: only exactly swift://<container>/<uuid>, and they round-trip.
        if let Ok(object) = wire::object_of(&s, "glance") {
            if !wire::is_canonical_uuid(object) || wire::location("glance", object) != s {
                return Err(format!("object_of accepted {s:?}"));
            }
            bit(true);
        }
        if wire::check_container(&s).is_ok() {
            let location = wire::location(&s, ID);
            if wire::object_of(&location, &s) != Ok(ID) {
                return Err(format!(
                    "the location in container {s:?} does not round-trip"
                ));
            }
            bit(true);
        }
        // Authentication answers.
        let lines: Vec<&str> = s.split('\n').collect();
        if let Ok(session) = wire::v1_session(
            lines.first().copied(),
            lines.get(1).copied(),
            lines.get(2).copied(),
            NOW,
        ) {
            if session.token.is_empty() || session.storage_url.ends_with('/') {
                return Err(format!("v1 session {session:?}"));
            }
            bit(true);
        }
        for (region, fallback) in [(None, None), (Some("RegionOne"), Some("http://f/v1"))] {
            match wire::v3_session(Some("tok"), input, "publicURL", region, fallback, NOW) {
                Ok(session) => {
                    if session.storage_url.ends_with('/') {
                        return Err(format!("v3 session {session:?}"));
                    }
                    bit(true);
                }
                Err(_) => bit(false),
            }
        }
        bit(wire::parse_iso8601(&s).is_some());
        // Answers and error pages.
        bit(wire::slo_delete_result(input).is_ok());
        if let Ok((names, _)) = wire::listing_names(input, "x/") {
            if names.iter().any(|n| !n.starts_with("x/")) {
                return Err("a listing name outside the prefix".into());
            }
            bit(!names.is_empty());
        }
        let said = wire::server_message(&s);
        if said.chars().count() > 201 {
            return Err(format!(
                "server_message of {} characters",
                said.chars().count()
            ));
        }
        let status = 100 + (u64_at(input, 0) % 500) as u16;
        let e = wire::swift_error(status, "PUT glance/x", &s);
        bit(matches!(e, SwiftError::NotFound));
        // The token file.
        if let Some(session) = Session::from_file(input, "fp", NOW) {
            if !session.usable(NOW) || session.token.is_empty() {
                return Err(format!("from_file gave {session:?}"));
            }
            bit(true);
        }
        let session = Session {
            token: s.to_string(),
            storage_url: "http://s/v1".into(),
            expires_at: u64_at(input, 0),
        };
        let back = Session::from_file(session.to_file("fp").as_bytes(), "fp", NOW);
        let expected = (!session.token.is_empty() && session.usable(NOW)).then_some(session);
        if back != expected {
            return Err(format!("token file round trip: {expected:?} vs {back:?}"));
        }
        // Segment sizes stay within Swift's object limit.
        if let Ok(n) = wire::known_segment_size(u64_at(input, 0), u64_at(input, 8))
            && n > wire::MAX_OBJECT_SIZE
        {
            return Err(format!("segment of {n} bytes"));
        }
        let n = wire::unknown_segment_size(
            u64_at(input, 0) % (wire::MAX_OBJECT_SIZE + 1),
            u64_at(input, 8),
        );
        if n > wire::MAX_OBJECT_SIZE {
            return Err(format!("unknown-size segment of {n} bytes"));
        }
        Ok(signature(bits))
    }
}
