//! The little XML S3 needs: the text of an element (entities decoded), the blocks of a
//! repeated element, and text escaped for the documents the driver sends. S3's documents are
//! flat and small; no parser is needed.

/// The text of the first `<tag>…</tag>`, XML entities decoded.
pub fn value(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(unescape(&xml[start..end]))
}

/// Every `<tag>…</tag>` block's text.
pub fn blocks<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let from = start + open.len();
        let Some(len) = rest[from..].find(&close) else {
            break;
        };
        out.push(&rest[from..from + len]);
        rest = &rest[from + len + close.len()..];
    }
    out
}

/// `text` as XML character data: `&`, `<`, `>`, `"` and `'` escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Decodes the five named entities and numeric character references in one pass (so that
/// `&amp;lt;` is `&lt;`, never `<`); anything else that starts with `&` is kept as it is.
pub fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let decoded = rest
            .get(1..)
            .and_then(|r| r.find(';').filter(|&n| n <= 10).map(|n| (&r[..n], n + 2)))
            .and_then(|(name, len)| entity(name).map(|c| (c, len)));
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let code = match name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => name.strip_prefix('#')?.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

/// The body of `CompleteMultipartUpload`: the parts in order with the ETags S3 gave them
/// (escaped: an ETag is the server's text, quotes included).
pub fn complete_multipart_upload(etags: &[String]) -> String {
    let mut xml = String::from("<CompleteMultipartUpload>");
    for (i, tag) in etags.iter().enumerate() {
        xml.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
            i + 1,
            escape(tag)
        ));
    }
    xml.push_str("</CompleteMultipartUpload>");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_helpers() {
        let xml = "<R><UploadId>a&amp;b</UploadId><Upload><Key>k1</Key><UploadId>1</UploadId></Upload>\
                   <Upload><Key>k2</Key><UploadId>2</UploadId></Upload></R>";
        assert_eq!(value(xml, "UploadId").as_deref(), Some("a&b"));
        let blocks = blocks(xml, "Upload");
        assert_eq!(blocks.len(), 2);
        assert_eq!(value(blocks[1], "Key").as_deref(), Some("k2"));
    }

    #[test]
    fn entities_decode_once() {
        assert_eq!(unescape("&amp;lt;"), "&lt;");
        assert_eq!(unescape("&lt;&#60;&#x3C;&#X3c;"), "<<<<");
        assert_eq!(
            unescape("a & b &bogus; &#xD800; &#;&"),
            "a & b &bogus; &#xD800; &#;&"
        );
        assert_eq!(unescape("&quot;etag&quot;"), "\"etag\"");
    }

    #[test]
    fn escaped_text_round_trips() {
        for text in [
            "\"abc\"",
            "</ETag><Part>",
            "&amp;",
            "a&b<c>d\"e'f",
            "é&#60;",
        ] {
            let doc = format!("<ETag>{}</ETag>", escape(text));
            assert_eq!(value(&doc, "ETag").as_deref(), Some(text));
        }
        let doc = complete_multipart_upload(&["\"1\"".into(), "</ETag>".into()]);
        assert_eq!(blocks(&doc, "Part").len(), 2);
        assert_eq!(
            value(blocks(&doc, "Part")[1], "ETag").as_deref(),
            Some("</ETag>")
        );
    }
}
