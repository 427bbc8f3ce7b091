//! Outgoing HTTP for plugins (`wasi:http/outgoing-handler`): deny by default. A request goes
//! out only to a `host:port` the operator granted the plugin (`Grants::hosts`), and every
//! phase of it is bounded by the plugin's network timeout, so an unreachable or stalled
//! backend fails the call in bounded time instead of hanging it (waiting in the host does not
//! count against the CPU deadline; see `call`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::uri::Scheme;
use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// The hooks of one call: which authorities it may reach and how long each phase may take.
pub(crate) struct OutboundHttp {
    pub plugin: Arc<str>,
    pub hosts: Arc<[String]>,
    pub timeout: Duration,
}

type Response = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ),
    HttpError,
>;

/// Writes a driver may queue on an outgoing body before it waits for the connection: with
/// wasmtime's default of one, every 64 KiB splice step waited for the previous one to reach
/// the socket.
const OUTGOING_BODY_CHUNKS: usize = 16;

impl WasiHttpHooks for OutboundHttp {
    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        OUTGOING_BODY_CHUNKS
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = Response> + Send> {
        drop(fut);
        let authority = authority_of(request.uri());
        if !authority
            .as_deref()
            .is_some_and(|a| granted(&self.hosts, a))
        {
            tracing::warn!(plugin = %self.plugin, uri = %request.uri(),
                "plugin request to a host it was not granted refused");
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        let options = bounded(options, self.timeout);
        Box::new(async move {
            let (response, io) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

/// `host:port` of a request URI, with the scheme's default port when none is given.
fn authority_of(uri: &http::Uri) -> Option<String> {
    let host = uri.host()?;
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme() == Some(&Scheme::HTTPS) {
            443
        } else {
            80
        });
    Some(format!("{}:{port}", host.to_ascii_lowercase()))
}

/// True when `authority` (`host:port`, lowercase) is among the grants. A grant without a port
/// allows the scheme's default ports (80 and 443).
fn granted(hosts: &[String], authority: &str) -> bool {
    hosts.iter().any(|h| {
        let h = h.to_ascii_lowercase();
        if h.contains(':') && !h.starts_with('[') || h.contains("]:") {
            h == authority
        } else {
            authority == format!("{h}:80") || authority == format!("{h}:443")
        }
    })
}

/// The plugin's own options, each capped at `limit` (and set to it when absent).
fn bounded(options: Option<RequestOptions>, limit: Duration) -> RequestOptions {
    let options = options.unwrap_or_default();
    let cap = |d: Option<Duration>| Some(d.map_or(limit, |d| d.min(limit)));
    RequestOptions {
        connect_timeout: cap(options.connect_timeout),
        first_byte_timeout: cap(options.first_byte_timeout),
        between_bytes_timeout: cap(options.between_bytes_timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_match_host_and_port() {
        let hosts = vec!["127.0.0.1:8333".to_string(), "S3.Example.com".to_string()];
        let uri = |s: &str| authority_of(&s.parse().unwrap()).unwrap();
        assert!(granted(&hosts, &uri("http://127.0.0.1:8333/bucket")));
        assert!(!granted(&hosts, &uri("http://127.0.0.1:8334/bucket")));
        assert!(!granted(&hosts, &uri("http://127.0.0.2:8333/")));
        assert!(granted(&hosts, &uri("https://s3.example.com/x")));
        assert!(granted(&hosts, &uri("http://s3.example.com/x")));
        assert!(!granted(&hosts, &uri("http://s3.example.com:9000/x")));
        assert!(!granted(&hosts, &uri("http://169.254.169.254/latest")));
    }

    #[test]
    fn timeouts_are_capped() {
        let limit = Duration::from_secs(5);
        let o = bounded(
            Some(RequestOptions {
                connect_timeout: Some(Duration::from_secs(60)),
                first_byte_timeout: Some(Duration::from_secs(1)),
                between_bytes_timeout: None,
            }),
            limit,
        );
        assert_eq!(o.connect_timeout, Some(limit));
        assert_eq!(o.first_byte_timeout, Some(Duration::from_secs(1)));
        assert_eq!(o.between_bytes_timeout, Some(limit));
    }
}
