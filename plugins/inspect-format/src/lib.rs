//! Glass's disk-image format inspector (`glass:inspect@0.1.0`, built in as
//! `inspect-format`): reads the image from the host's `wasi:io` input-stream in chunks, as far
//! as the formats need (usually a few KiB; to the end only for a streamOptimized VMDK's
//! footer or claimed LUKS), feeding the streaming parsers of `inspect-core`, and reports what
//! it found. It keeps only the byte ranges the formats name, never the image. Its
//! decompression is `inspect-core`'s too.

pub use inspect_core as formats;
pub use inspect_core::decompress;

/// Bindings generated from `wit/glass-inspect@0.1.0` (wasm only: the parsers are tested
/// natively); the export glue is `unsafe` code of wit-bindgen's making.
#[cfg(target_family = "wasm")]
#[allow(unsafe_code)]
mod bindings {
    use super::Inspector;

    wit_bindgen::generate!({
        path: ["../../wit/deps/io.wit", "../../wit/glass-inspect@0.1.0"],
        world: "glass:inspect/inspect",
        generate_all,
    });

    export!(Inspector);
}

#[cfg(target_family = "wasm")]
struct Inspector;

/// Bytes asked of the input stream at a time.
#[cfg(target_family = "wasm")]
const READ_STEP: u64 = 64 * 1024;

#[cfg(target_family = "wasm")]
impl bindings::exports::glass::inspect::inspector::Guest for Inspector {
    fn info() -> bindings::exports::glass::inspect::inspector::InspectorInfo {
        bindings::exports::glass::inspect::inspector::InspectorInfo {
            name: "inspect-format".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            formats: formats::FORMATS.iter().map(|f| f.to_string()).collect(),
        }
    }

    fn inspect(
        data: bindings::wasi::io::streams::InputStream,
        claimed_format: String,
    ) -> Result<
        bindings::exports::glass::inspect::inspector::Report,
        bindings::exports::glass::inspect::inspector::InspectError,
    > {
        use bindings::exports::glass::inspect::inspector as wit;
        use bindings::wasi::io::streams::StreamError;
        let mut inspection = formats::Inspection::new(&claimed_format);
        while !inspection.done() {
            match data.blocking_read(READ_STEP) {
                Ok(chunk) => inspection.feed(&chunk),
                Err(StreamError::Closed) => inspection.finish(),
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(wit::InspectError::ReadFailed(e.to_debug_string()));
                }
            }
        }
        let report = inspection.report();
        let violation = |v: formats::Violation| wit::Violation {
            check: v.check,
            message: v.message,
        };
        Ok(wit::Report {
            matches: report
                .matches
                .into_iter()
                .map(|d| wit::Detected {
                    format: d.format.into(),
                    virtual_size: d.virtual_size,
                    subformat: d.subformat,
                    violations: d.violations.into_iter().map(violation).collect(),
                })
                .collect(),
            malformed: report.malformed.into_iter().map(violation).collect(),
            bytes_read: report.bytes_read,
            reached_end: report.reached_end,
        })
    }

    fn decompress(
        data: bindings::wasi::io::streams::InputStream,
        out: bindings::wasi::io::streams::OutputStream,
        limit: u64,
    ) -> Result<
        bindings::exports::glass::inspect::inspector::Decompressed,
        bindings::exports::glass::inspect::inspector::InspectError,
    > {
        use bindings::exports::glass::inspect::inspector as wit;
        use bindings::wasi::io::streams::StreamError;
        let input = StreamIn { data: &data };
        let mut sink = |chunk: &[u8]| -> Result<(), String> {
            let mut rest = chunk;
            while !rest.is_empty() {
                let permit = match out.check_write() {
                    Ok(0) => {
                        out.subscribe().block();
                        continue;
                    }
                    Ok(n) => n.min(rest.len() as u64) as usize,
                    Err(StreamError::Closed) => return Err("output closed".into()),
                    Err(StreamError::LastOperationFailed(e)) => return Err(e.to_debug_string()),
                };
                out.write(&rest[..permit])
                    .map_err(|e| format!("writing the output: {e:?}"))?;
                rest = &rest[permit..];
            }
            Ok(())
        };
        let done = decompress::decompress(input, &mut sink, limit).map_err(|e| match e {
            decompress::Error::Read(m) => wit::InspectError::ReadFailed(m),
            other => wit::InspectError::Other(other.to_string()),
        })?;
        out.blocking_flush()
            .map_err(|e| wit::InspectError::Other(format!("flushing the output: {e:?}")))?;
        Ok(wit::Decompressed {
            format: done.format.into(),
            bytes_in: done.bytes_in,
            bytes_out: done.bytes_out,
        })
    }
}

/// The host's input-stream as `std::io::Read`.
#[cfg(target_family = "wasm")]
struct StreamIn<'a> {
    data: &'a bindings::wasi::io::streams::InputStream,
}

#[cfg(target_family = "wasm")]
impl std::io::Read for StreamIn<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use bindings::wasi::io::streams::StreamError;
        loop {
            match self
                .data
                .blocking_read(buf.len().min(READ_STEP as usize) as u64)
            {
                Ok(chunk) if chunk.is_empty() => continue,
                Ok(chunk) => {
                    buf[..chunk.len()].copy_from_slice(&chunk);
                    return Ok(chunk.len());
                }
                Err(StreamError::Closed) => return Ok(0),
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(std::io::Error::other(e.to_debug_string()));
                }
            }
        }
    }
}
