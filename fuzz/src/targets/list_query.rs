//! The list-query parser (`GET /v2/images?…` → `ImageQuery`): bad queries are 400s, an
//! accepted query respects `api_limit_max` and ends with Glance's tie-breakers, and the query
//! string Glass writes in `first`/`next` links parses back to the same query.

use std::sync::LazyLock;

use glass_api::v2::image_list::{parse_query, query_pairs};
use glass_images::Identity;
use glass_images::config::Config;
use glass_registry::SortKey;

use crate::driver::{Target, signature};

pub struct ListQuery;

const SEEDS: &[&str] = &[
    "sort=name:asc,size",
    "sort_key=name&sort_key=size&sort_dir=asc",
    "limit=5000",
    "limit=-1",
    "created_at=gte:2020-01-01T00:00:00Z",
    "name=in:\"a,b\",c",
    "status=in:active,queued",
    "visibility=all&member_status=all",
    "tag=a&tag=b&os_hidden=TRUE",
    "size_min=1&size_max=2&protected=true",
    "marker=8a1f3e6c-2b1e-4c59-9d8e-3f2a1b0c9d8e&limit=2",
    "updated_at=lt:2020-01-01",
    "foo=bar&owner=x",
    "id=eq:x&disk_format=qcow2&container_format=bare",
    "sort=created_at:desc,id:asc&limit=0",
    "size=1024&os_distro=debian",
];

const DICT: &[&str] = &[
    "&",
    "=",
    "in:",
    "eq:",
    "gte:",
    "gt:",
    "lt:",
    "lte:",
    "neq:",
    "\"",
    ",",
    ":",
    "%",
    "%22",
    "%2C",
    "%26",
    "%3D",
    "+",
    "sort=",
    "sort_key=",
    "sort_dir=",
    "limit=",
    "marker=",
    "created_at=",
    "updated_at=",
    "2016-04-18T21:38:54Z",
    "2016-04-18",
    "asc",
    "desc",
    "name",
    "size",
    "visibility=",
    "member_status=",
    "status=",
    "os_hidden=",
    "%FF",
    "%C3%A9",
    "tag=",
    "9223372036854775807",
    "-9223372036854775808",
    "99999999999999999999",
];

fn reader() -> Identity {
    Identity {
        project: Some("p".into()),
        user: Some("u".into()),
        roles: vec!["reader".into(), "member".into()],
    }
}

/// The query string of `pairs` as the `first`/`next` links write it.
fn render(pairs: &[(String, String)]) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    ser.finish()
}

impl Target for ListQuery {
    fn name(&self) -> &'static str {
        "list-query"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        SEEDS.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    fn dictionary(&self) -> &'static [&'static str] {
        DICT
    }

    fn run(&self, input: &[u8]) -> Result<u64, String> {
        let raw = String::from_utf8_lossy(input);
        let pairs = query_pairs(Some(&raw));
        static CONFIG: LazyLock<Config> = LazyLock::new(Config::default);
        let config = &*CONFIG;
        let who = reader();
        match parse_query(&pairs, &who, config) {
            Err(e) => {
                if glass_api::error::status(&e).as_u16() != 400 {
                    return Err(format!(
                        "{} for a bad query: {e}",
                        glass_api::error::status(&e)
                    ));
                }
                let message = e.to_string();
                Ok(signature(message.split(':').next().unwrap_or_default()))
            }
            Ok(query) => {
                if query.limit > config.api_limit_max {
                    return Err(format!("limit {} past api_limit_max", query.limit));
                }
                for key in [SortKey::CreatedAt, SortKey::Id] {
                    if !query.sort.iter().any(|(k, _)| *k == key) {
                        return Err(format!("sort {:?} lacks {key:?}", query.sort));
                    }
                }
                let again = parse_query(&query_pairs(Some(&render(&pairs))), &who, config)
                    .map_err(|e| format!("the link's query is refused: {e}"))?;
                if again != query {
                    return Err(format!("the link's query differs: {query:?} vs {again:?}"));
                }
                Ok(signature((
                    query.filters.len(),
                    query.sort.len(),
                    query.limit,
                )))
            }
        }
    }
}
