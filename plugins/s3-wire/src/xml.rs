//! The little XML S3 answers need: the text of an element (entities decoded) and the
//! blocks of a repeated element. S3's documents are flat and small; no parser is needed.

/// The text of the first `<tag>…</tag>`, XML entities decoded.
pub fn value(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(
        xml[start..end]
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
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
}
