//! `s3-wire`: the XML of S3's answers (element text, repeated blocks, entities), the
//! escaping of the documents the driver sends (round trip), and SigV4 signing of any
//! request shape.

use s3_wire::{sigv4, xml};

use super::u64_at;
use crate::driver::{Target, signature};

pub struct S3Wire;

const SEEDS: &[&str] = &[
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Key>k</Key></Error>",
    "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>a&amp;b</UploadId></InitiateMultipartUploadResult>",
    "<ListMultipartUploadsResult><Upload><Key>k1</Key><UploadId>1</UploadId></Upload><Upload><Key>k2</Key><UploadId>2</UploadId></Upload></ListMultipartUploadsResult>",
    "<CompleteMultipartUploadResult><ETag>&quot;3858f62230ac3c915f300c664312c11f-9&quot;</ETag></CompleteMultipartUploadResult>",
    "<Error><Code>SlowDown</Code><Message>&lt;&#60;&#x3C;</Message></Error>",
    "PUT\n/bucket/key\nuploadId\n2\nhost\n127.0.0.1:8333\nx-amz-date\n20261122T123456Z",
];

const DICT: &[&str] = &[
    "<",
    "</",
    ">",
    "&amp;",
    "&lt;",
    "&gt;",
    "&quot;",
    "&apos;",
    "&#",
    "&#x",
    ";",
    "<Code>",
    "</Code>",
    "<Upload>",
    "</Upload>",
    "<Key>",
    "</Key>",
    "<UploadId>",
    "</UploadId>",
    "<Message>",
    "</Message>",
    "<ETag>",
    "</ETag>",
    "]]>",
    "<![CDATA[",
    "&#1114111;",
    "&#xD800;",
    "\n",
    "é",
];

impl Target for S3Wire {
    fn name(&self) -> &'static str {
        "s3-wire"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        SEEDS.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    fn dictionary(&self) -> &'static [&'static str] {
        DICT
    }

    fn run(&self, input: &[u8]) -> Result<u64, String> {
        let s = String::from_utf8_lossy(input);
        let mut found = 0u64;
        for tag in ["Code", "Message", "UploadId", "Key", "ETag"] {
            found = found * 2 + u64::from(xml::value(&s, tag).is_some());
        }
        let blocks = xml::blocks(&s, "Upload");
        for b in &blocks {
            let _ = (xml::value(b, "Key"), xml::value(b, "UploadId"));
        }
        // Escaping round trip: any text survives a document and back.
        let doc = format!("<T>{}</T>", xml::escape(&s));
        if xml::value(&doc, "T").as_deref() != Some(&*s) {
            return Err(format!("escape round trip lost {s:?}"));
        }
        if xml::unescape(&xml::escape(&s)) != s {
            return Err(format!("unescape(escape) differs for {s:?}"));
        }
        let body = xml::complete_multipart_upload(&[s.to_string(), "\"1\"".into()]);
        let parts = xml::blocks(&body, "Part");
        if parts.len() != 2 || xml::value(parts[0], "ETag").as_deref() != Some(&*s) {
            return Err(format!("CompleteMultipartUpload garbles the ETag {s:?}"));
        }
        // Signing: any request shape signs, never panics.
        let fields: Vec<&str> = s.split('\n').collect();
        let field = |i: usize| fields.get(i).copied().unwrap_or("");
        let query = vec![(field(2).to_owned(), field(3).to_owned())];
        let headers = vec![
            (field(4).to_owned(), field(5).to_owned()),
            ("x-amz-date".to_owned(), field(7).to_owned()),
        ];
        let date = if input.first().is_some_and(|b| b % 2 == 0) {
            sigv4::amz_date(u64_at(input, 0))
        } else {
            field(7).to_owned()
        };
        let auth = sigv4::authorization(&sigv4::Signing {
            method: field(0),
            path: field(1),
            query: &query,
            headers: &headers,
            payload_hash: sigv4::UNSIGNED_PAYLOAD,
            access_key: field(8),
            secret_key: field(9),
            region: field(10),
            amz_date: &date,
        });
        if !auth.starts_with("AWS4-HMAC-SHA256 Credential=") {
            return Err(format!("authorization {auth:?}"));
        }
        Ok(signature((found, blocks.len().min(4))))
    }
}
