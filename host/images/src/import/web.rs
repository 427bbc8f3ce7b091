//! web-download that cannot be turned against the deployment (SSRF): every URL, the first
//! and each redirect's, passes Glance's import filtering (`[import.web_download]`: allowed
//! and disallowed schemes, hosts and ports; an allow list wins over its deny list), then its
//! host is resolved and **every** address it resolves to must be public (not loopback,
//! private, link-local, shared, multicast, reserved, documentation, cloud metadata, nor an
//! IPv6 form embedding such an IPv4 address) unless `allowed_networks` contains it. The
//! connection goes to the checked addresses only (a resolver that answers nothing else), so
//! a second DNS answer cannot rebind it. Redirects are followed by hand, at most
//! `max_redirects`; proxies from the environment are ignored. The body is capped in size
//! (the stream fails past the cap) and the whole transfer in time.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::Url;

use super::BodyStream;
use super::config::WebDownloadConfig;
use super::network::{canonical, parse_network};

/// An open download: the body and its announced length.
pub struct Download {
    pub body: BodyStream,
    pub length: Option<u64>,
}

/// Why an address is not public, or `None` if it is.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip == Ipv4Addr::new(169, 254, 169, 254) => "the cloud metadata address",
        (0, _, _) => "an unspecified (0.0.0.0/8) address",
        (127, _, _) => "a loopback address",
        (10, _, _) => "a private (RFC 1918) address",
        (172, 16..=31, _) => "a private (RFC 1918) address",
        (192, 168, _) => "a private (RFC 1918) address",
        (169, 254, _) => "a link-local address",
        (100, 64..=127, _) => "a shared (carrier-grade NAT) address",
        (192, 0, 0) => "an IETF protocol assignment address",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "a documentation address",
        (198, 18..=19, _) => "a benchmarking address",
        (224..=239, _, _) => "a multicast address",
        (240..=255, _, _) => "a reserved address",
        _ => return None,
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_unspecified() {
        return Some("an unspecified address");
    }
    if ip.is_loopback() {
        return Some("a loopback address");
    }
    // Forms that embed an IPv4 address: judged by it (and never the way around a v4 rule).
    if s[0] == 0x0064 && s[1] == 0xff9b {
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return non_public_v4(v4).map(|_| "a NAT64 address embedding a non-public IPv4 address");
    }
    if s[0] == 0x2002 {
        let v4 = Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
        return non_public_v4(v4).map(|_| "a 6to4 address embedding a non-public IPv4 address");
    }
    if s[0..6] == [0, 0, 0, 0, 0, 0] {
        return Some("an IPv4-compatible IPv6 address");
    }
    Some(match s[0] {
        0xfd00 if s[1] == 0x0ec2 && s[2..7] == [0, 0, 0, 0, 0] && s[7] == 0x0254 => {
            "the cloud metadata address"
        }
        x if x & 0xfe00 == 0xfc00 => "a unique local (private) address",
        x if x & 0xffc0 == 0xfe80 => "a link-local address",
        x if x & 0xffc0 == 0xfec0 => "a site-local address",
        x if x & 0xff00 == 0xff00 => "a multicast address",
        0x2001 if s[1] == 0x0db8 => "a documentation address",
        0x2001 if s[1] == 0 => "a Teredo address",
        x if x & 0xe000 == 0x2000 => return None,
        _ => "a reserved address",
    })
}

/// Glance's `normalize_hostname`: an IP address in its canonical form, a host name
/// lowercased, or `None` for the numeric shorthands (`2130706433`, `127.1`, `0x7f.1`) that
/// resolvers read as addresses.
pub fn normalize_host(host: &str) -> Option<String> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(canonical(ip).to_string());
    }
    let lower = host.to_ascii_lowercase();
    let labels: Vec<&str> = lower.trim_end_matches('.').split('.').collect();
    let numeric = |l: &&str| {
        !l.is_empty()
            && (l.bytes().all(|b| b.is_ascii_digit())
                || (l.starts_with("0x") && l[2..].bytes().all(|b| b.is_ascii_hexdigit())))
    };
    if labels.iter().all(numeric) || labels.last().is_some_and(numeric) {
        return None;
    }
    Some(lower)
}

/// Glance's `validate_import_uri` (scheme, host, port against the allow and deny lists),
/// plus: only http and https, a host is required, no numeric host shorthands, and an
/// address literal must be public unless `allowed_networks` contains it.
pub fn check_uri(cfg: &WebDownloadConfig, uri: &str) -> Result<Url, String> {
    let url = Url::parse(uri).map_err(|e| format!("not a valid URL ({e})"))?;
    let scheme = url.scheme();
    let schemes_ok = if !cfg.allowed_schemes.is_empty() {
        cfg.allowed_schemes.iter().any(|s| s == scheme)
    } else {
        !cfg.disallowed_schemes.iter().any(|s| s == scheme)
    };
    if !schemes_ok || !matches!(scheme, "http" | "https") {
        return Err(format!("the scheme {scheme:?} is not allowed"));
    }
    let raw_host = url
        .host_str()
        .ok_or_else(|| "the URL has no host".to_string())?;
    let host = normalize_host(raw_host)
        .ok_or_else(|| format!("the host {raw_host:?} is not a valid host name or address"))?;
    let hosts_ok = if !cfg.allowed_hosts.is_empty() {
        cfg.allowed_hosts
            .iter()
            .any(|h| normalize_host(h).as_deref() == Some(&host))
    } else {
        !cfg.disallowed_hosts
            .iter()
            .any(|h| normalize_host(h).as_deref() == Some(&host))
    };
    if !hosts_ok {
        return Err(format!("the host {host} is not allowed"));
    }
    let port = url
        .port_or_known_default()
        .ok_or_else(|| "the URL has no port".to_string())?;
    let ports_ok = if !cfg.allowed_ports.is_empty() {
        cfg.allowed_ports.contains(&port)
    } else {
        !cfg.disallowed_ports.contains(&port)
    };
    if !ports_ok {
        return Err(format!("the port {port} is not allowed"));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        check_address(cfg, ip)?;
    }
    Ok(url)
}

/// An address may be reached: public, or inside `allowed_networks`.
fn check_address(cfg: &WebDownloadConfig, ip: IpAddr) -> Result<(), String> {
    let Some(why) = non_public(ip) else {
        return Ok(());
    };
    let allowed = cfg
        .allowed_networks
        .iter()
        .filter_map(|n| parse_network(n).ok())
        .any(|n| n.contains(ip));
    if allowed {
        Ok(())
    } else {
        Err(format!(
            "{ip} is {why}, which web-download may not reach (allowed_networks)"
        ))
    }
}

/// [`check_uri`], then the host resolved now and each address checked, so a name that does
/// not resolve or points inside is refused when the import is asked for (the download checks
/// again: a name may resolve differently later).
pub async fn check_uri_now(cfg: &WebDownloadConfig, uri: &str) -> Result<Url, String> {
    let url = check_uri(cfg, uri)?;
    resolve(cfg, &url).await?;
    Ok(url)
}

/// Resolves the URL's host; every address must pass [`check_address`].
async fn resolve(cfg: &WebDownloadConfig, url: &Url) -> Result<Vec<SocketAddr>, String> {
    let port = url.port_or_known_default().unwrap_or(80);
    let host = url.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => {
            let lookup = tokio::time::timeout(
                Duration::from_secs(cfg.connect_timeout_s.max(1)),
                tokio::net::lookup_host((bare, port)),
            )
            .await
            .map_err(|_| format!("resolving {bare} timed out"))?
            .map_err(|e| format!("cannot resolve {bare}: {e}"))?;
            lookup.collect()
        }
    };
    if addrs.is_empty() {
        return Err(format!("{bare} resolves to no address"));
    }
    let named = bare.parse::<IpAddr>().is_err();
    for a in &addrs {
        check_address(cfg, a.ip()).map_err(|e| {
            if named {
                // What a name resolved to is not the caller's to learn (internal DNS):
                // the detail goes to the log only.
                tracing::info!(host = %bare, refused = %e, "web-download: host refused");
                format!(
                    "{bare} resolves to an address web-download may not reach \
                     (allowed_networks)"
                )
            } else {
                e
            }
        })?;
    }
    Ok(addrs)
}

/// A resolver that knows only the addresses already checked for one host.
struct Pinned {
    host: String,
    addrs: Vec<SocketAddr>,
}

impl reqwest::dns::Resolve for Pinned {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let answer = if name.as_str().eq_ignore_ascii_case(&self.host) {
            let addrs: reqwest::dns::Addrs = Box::new(self.addrs.clone().into_iter());
            Ok(addrs)
        } else {
            Err(format!("{} was not checked for web-download", name.as_str()).into())
        };
        Box::pin(std::future::ready(answer))
    }
}

/// Opens `uri` for web-download: filters and address checks on it and every redirect, then
/// the body, capped at `cap` bytes and `timeout_s` in all. `token` is sent as
/// `X-Auth-Token` (glance-download).
pub async fn open(
    cfg: &WebDownloadConfig,
    uri: &str,
    cap: u64,
    token: Option<&str>,
) -> Result<Download, String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(cfg.timeout_s.max(1));
    let mut url = check_uri(cfg, uri)?;
    let origin = url.origin();
    let mut hops = 0usize;
    let response = loop {
        let addrs = resolve(cfg, &url).await?;
        let host = url.host_str().unwrap_or_default().to_string();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(Pinned {
                host: host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
                addrs,
            }))
            .connect_timeout(Duration::from_secs(cfg.connect_timeout_s.max(1)))
            .read_timeout(Duration::from_secs(cfg.connect_timeout_s.max(1)))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let mut request = client.get(url.clone());
        // The caller's token goes to the endpoint it was meant for, never to where a
        // redirect points elsewhere (another host, port or scheme).
        if let Some(token) = token
            && url.origin() == origin
        {
            request = request.header("X-Auth-Token", token);
        }
        let response = tokio::time::timeout_at(deadline, request.send())
            .await
            .map_err(|_| "the download timed out".to_string())?
            .map_err(|e| format!("{url}: {}", error_chain(&e)))?;
        if response.status().is_redirection() {
            hops += 1;
            if hops > cfg.max_redirects {
                return Err(format!("more than {} redirects", cfg.max_redirects));
            }
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| format!("{url}: redirect without a Location"))?;
            let next = url
                .join(location)
                .map_err(|e| format!("{url}: bad redirect Location {location:?}: {e}"))?;
            url = check_uri(cfg, next.as_str()).map_err(|e| format!("redirect to {next}: {e}"))?;
            continue;
        }
        break response;
    };
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    let length = response.content_length();
    if let Some(len) = length
        && len > cap
    {
        return Err(format!(
            "{url} announces {len} bytes, more than the {cap} bytes allowed"
        ));
    }
    let mut seen = 0u64;
    let body = response
        .bytes_stream()
        .map(move |chunk| -> std::io::Result<Bytes> {
            let chunk = chunk.map_err(|e| std::io::Error::other(error_chain(&e)))?;
            seen += chunk.len() as u64;
            if seen > cap {
                return Err(std::io::Error::other(format!(
                    "the download is larger than the {cap} bytes allowed"
                )));
            }
            Ok(chunk)
        });
    let body = futures_util::stream::unfold(
        (Box::pin(body), false),
        move |(mut body, done)| async move {
            if done {
                return None;
            }
            match tokio::time::timeout_at(deadline, body.next()).await {
                Ok(Some(item)) => Some((item, (body, false))),
                Ok(None) => None,
                Err(_) => Some((
                    Err(std::io::Error::other(
                        "the download took longer than allowed",
                    )),
                    (body, true),
                )),
            }
        },
    );
    Ok(Download {
        body: Box::pin(body),
        length,
    })
}

/// An error with its causes, one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> WebDownloadConfig {
        WebDownloadConfig::default()
    }

    #[test]
    fn addresses_are_classified() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "::127.0.0.1",
        ] {
            assert!(non_public(bad.parse().unwrap()).is_some(), "{bad}");
        }
        for good in [
            "8.8.8.8",
            "1.1.1.1",
            "2001:4860:4860::8888",
            "2002:808:808::",
        ] {
            assert_eq!(non_public(good.parse().unwrap()), None, "{good}");
        }
    }

    #[test]
    fn networks_allow_what_they_contain() {
        let mut c = cfg();
        c.allowed_networks = vec!["127.0.0.0/8".into()];
        assert!(check_address(&c, "127.0.0.1".parse().unwrap()).is_ok());
        assert!(check_address(&c, "::ffff:127.0.0.2".parse().unwrap()).is_ok());
        assert!(check_address(&c, "10.0.0.1".parse().unwrap()).is_err());
        assert!(parse_network("10.0.0.0/33").is_err());
        assert!(parse_network("nope").is_err());
    }

    #[test]
    fn glance_filters_apply() {
        let mut c = cfg();
        assert!(check_uri(&c, "file:///etc/passwd").is_err());
        assert!(check_uri(&c, "ftp://example.com/x").is_err());
        assert!(check_uri(&c, "http://127.0.0.1/x").is_err());
        assert!(check_uri(&c, "http://2130706433/x").is_err());
        assert!(check_uri(&c, "http://127.1/x").is_err());
        assert!(check_uri(&c, "http://0x7f000001/x").is_err());
        assert!(check_uri(&c, "http://[::1]/x").is_err());
        assert!(check_uri(&c, "http://example.com:8080/x").is_err());
        assert!(check_uri(&c, "http://example.com/x").is_ok());
        c.disallowed_hosts = vec!["example.com".into()];
        assert!(check_uri(&c, "http://EXAMPLE.com/x").is_err());
        c.allowed_hosts = vec!["other.org".into()];
        assert!(check_uri(&c, "http://other.org/x").is_ok());
        assert!(check_uri(&c, "http://example.org/x").is_err());
        c.allowed_ports = vec![];
        c.disallowed_ports = vec![8080];
        assert!(check_uri(&c, "http://other.org:8080/x").is_err());
        assert!(check_uri(&c, "http://other.org:8081/x").is_ok());
    }
}
