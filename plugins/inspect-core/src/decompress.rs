//! Streaming decompression of gzip (RFC 1952, concatenated members too) and zstd data for
//! the import plugins, free of WASI so it is tested natively. The output is capped: a
//! stream that decompresses to more than the limit is refused (a decompression bomb) as
//! soon as it crosses it.

use std::io::Read;

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b, 0x08];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// What a decompression did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub format: &'static str,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Reading the input failed.
    Read(String),
    /// Neither gzip nor zstd.
    NotCompressed,
    /// The data decompresses to more than the limit.
    TooLarge(u64),
    /// Corrupt compressed data, or the output failed.
    Corrupt(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Read(m) => write!(f, "reading the compressed data: {m}"),
            Error::NotCompressed => f.write_str("the data is neither gzip nor zstd"),
            Error::TooLarge(limit) => {
                write!(f, "the data decompresses to more than {limit} bytes")
            }
            Error::Corrupt(m) => write!(f, "decompressing: {m}"),
        }
    }
}

/// Which compression the first bytes show, if any.
pub fn detect(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(GZIP_MAGIC) {
        Some("gzip")
    } else if head.starts_with(ZSTD_MAGIC) {
        Some("zstd")
    } else {
        None
    }
}

/// Counts what is read.
struct Counting<R> {
    inner: R,
    count: u64,
    failed: Option<String>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.count += n as u64;
                Ok(n)
            }
            Err(e) => {
                self.failed = Some(e.to_string());
                Err(e)
            }
        }
    }
}

/// Decompresses `input` into `sink`, at most `limit` bytes.
pub fn decompress<R: Read>(
    input: R,
    sink: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    limit: u64,
) -> Result<Done, Error> {
    let mut input = Counting {
        inner: input,
        count: 0,
        failed: None,
    };
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < head.len() {
        match input.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(Error::Read(e.to_string())),
        }
    }
    let format = detect(&head[..got]).ok_or(Error::NotCompressed)?;
    let chained = std::io::Cursor::new(head[..got].to_vec()).chain(&mut input);
    let mut decoder: Box<dyn Read + '_> = match format {
        "gzip" => Box::new(flate2::read::MultiGzDecoder::new(chained)),
        _ => Box::new(
            ruzstd::decoding::StreamingDecoder::new(chained)
                .map_err(|e| Error::Corrupt(e.to_string()))?,
        ),
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = 0u64;
    loop {
        let n = match decoder.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => return Err(Error::Corrupt(e.to_string())),
        };
        out += n as u64;
        if out > limit {
            return Err(Error::TooLarge(limit));
        }
        sink(&buf[..n]).map_err(Error::Corrupt)?;
    }
    drop(decoder);
    if let Some(e) = input.failed {
        return Err(Error::Read(e));
    }
    Ok(Done {
        format,
        bytes_in: input.count,
        bytes_out: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(data: &[u8], limit: u64) -> Result<(Done, Vec<u8>), Error> {
        let mut out = Vec::new();
        let done = decompress(
            data,
            &mut |c| {
                out.extend_from_slice(c);
                Ok(())
            },
            limit,
        )?;
        Ok((done, out))
    }

    #[test]
    fn gzip_round_trip_and_bomb() {
        use std::io::Write;
        let plain: Vec<u8> = (0..300_000u32).map(|i| (i % 7) as u8).collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let (done, out) = run(&gz, 1 << 20).unwrap();
        assert_eq!(done.format, "gzip");
        assert_eq!(out, plain);
        assert_eq!(done.bytes_in, gz.len() as u64);
        assert_eq!(run(&gz, 1000).unwrap_err(), Error::TooLarge(1000));
        assert_eq!(run(b"plain", 10).unwrap_err(), Error::NotCompressed);
        assert!(matches!(
            run(&gz[..100], 1 << 20).unwrap_err(),
            Error::Corrupt(_)
        ));
    }
}
