//! Name resolution for the HTTP clients of [`transport`](crate::transport).
//!
//! ureq resolves a request's host *before* it looks for a pooled connection, so every request
//! resolves, even one that goes out on a kept-alive connection; and with a timeout configured (ours
//! always are) its resolver spawns a thread for each lookup. That was a thread created and joined,
//! and a `getaddrinfo` (for a host name, a DNS query), per batch sent: `strace` of the Node
//! end-to-end bench counted 1,384 `clone3` from the four sender threads for ≈ 820 batches, and
//! `perf` put thread creation, `getaddrinfo` and the dropped resolver channel among the senders'
//! leading items.
//!
//! This resolver answers an IP address in the URL at once, with no lookup, and remembers what a
//! host name resolved to for [`RESOLVED_LIFETIME`]. The addresses are only used when a new
//! connection is opened (a request on a pooled connection ignores them), so a DNS change reaches
//! new connections within that time; a failed lookup is never remembered.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ureq::config::{Config, IpFamily};
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// How long the addresses of a host name are used before it is looked up again. Short against
/// DNS-based failover (connections are opened rarely: they are kept alive), long against a lookup
/// per batch.
pub(crate) const RESOLVED_LIFETIME: Duration = Duration::from_secs(10);

/// ureq's resolver behind an answer for IP addresses and a one-entry memory for host names (each
/// client talks to one collector).
#[derive(Debug, Default)]
pub(crate) struct CachingResolver {
    lookup: DefaultResolver,
    last: Mutex<Option<Resolved>>,
}

#[derive(Debug)]
struct Resolved {
    scheme: String,
    authority: String,
    addrs: ResolvedSocketAddrs,
    at: Instant,
}

impl Resolver for CachingResolver {
    fn resolve(&self, uri: &Uri, config: &Config, timeout: NextTimeout) -> Result<ResolvedSocketAddrs, ureq::Error> {
        if let Some(addr) = literal_address(uri, config) {
            let mut out = self.empty();
            out.push(addr);
            return Ok(out);
        }
        let (scheme, authority) = (uri.scheme_str().unwrap_or(""), uri.authority().map_or("", |a| a.as_str()));
        if let Ok(last) = self.last.lock() {
            if let Some(r) = last.as_ref() {
                if r.scheme == scheme && r.authority == authority && r.at.elapsed() < RESOLVED_LIFETIME {
                    return Ok(r.addrs.clone());
                }
            }
        }
        let addrs = self.lookup.resolve(uri, config, timeout)?;
        if let Ok(mut last) = self.last.lock() {
            *last = Some(Resolved {
                scheme: scheme.to_owned(),
                authority: authority.to_owned(),
                addrs: addrs.clone(),
                at: Instant::now(),
            });
        }
        Ok(addrs)
    }
}

/// The socket address of an `http`/`https` URL whose host is an IP address, when the client takes
/// any address family (what ureq's resolver would return for it, without its lookup thread).
fn literal_address(uri: &Uri, config: &Config) -> Option<SocketAddr> {
    if config.ip_family() != IpFamily::Any {
        return None;
    }
    let default_port = match uri.scheme_str()? {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = uri.authority()?;
    let host = authority.host();
    // An IPv6 address comes in brackets.
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let ip: IpAddr = host.parse().ok()?;
    Some(SocketAddr::new(ip, authority.port_u16().unwrap_or(default_port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A five-second budget, as a client with a timeout gives ureq's resolver (which then looks up
    /// on a thread of its own).
    fn timeout() -> NextTimeout {
        NextTimeout {
            after: Duration::from_secs(5).into(),
            reason: ureq::Timeout::Resolve,
            per_read: None,
            per_write: None,
        }
    }

    fn resolve(url: &str) -> Vec<SocketAddr> {
        let config = ureq::Agent::config_builder().build();
        let uri: Uri = url.parse().unwrap();
        CachingResolver::default().resolve(&uri, &config, timeout()).unwrap().to_vec()
    }

    #[test]
    fn ip_addresses_are_answered_without_a_lookup() {
        let config = ureq::Agent::config_builder().build();
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        let at = |s: &str| literal_address(&uri(s), &config);
        assert_eq!(at("http://127.0.0.1:4318/v1/batches"), Some("127.0.0.1:4318".parse().unwrap()));
        assert_eq!(at("https://10.0.0.7/v1/batches"), Some("10.0.0.7:443".parse().unwrap()));
        assert_eq!(at("http://[::1]:9000/v1/batches"), Some("[::1]:9000".parse().unwrap()));
        assert_eq!(at("http://[::1]/"), Some("[::1]:80".parse().unwrap()));
        // Names, and schemes whose default port is not HTTP's, go to the lookup.
        assert_eq!(at("http://localhost:4318/"), None);
        assert_eq!(at("socks5://127.0.0.1/"), None);
        let v4_only = ureq::Agent::config_builder().ip_family(IpFamily::Ipv4Only).build();
        assert_eq!(literal_address(&uri("http://127.0.0.1:1/"), &v4_only), None);
    }

    #[test]
    fn the_resolver_answers_as_ureqs_does() {
        assert_eq!(resolve("http://127.0.0.1:4318/v1/batches"), vec!["127.0.0.1:4318".parse().unwrap()]);
        let local = resolve("http://localhost:4318/");
        assert!(!local.is_empty() && local.iter().all(|a| a.ip().is_loopback() && a.port() == 4318), "{local:?}");
    }

    #[test]
    fn a_host_name_is_looked_up_once_within_its_lifetime() {
        let config = ureq::Agent::config_builder().build();
        let r = CachingResolver::default();
        let uri: Uri = "http://localhost:4318/".parse().unwrap();
        let first = r.resolve(&uri, &config, timeout()).unwrap();
        let at = r.last.lock().unwrap().as_ref().unwrap().at;
        assert_eq!(r.resolve(&uri, &config, timeout()).unwrap().to_vec(), first.to_vec());
        assert_eq!(r.last.lock().unwrap().as_ref().unwrap().at, at, "answered from memory");
        // Another port is another authority: looked up.
        let other: Uri = "http://localhost:4319/".parse().unwrap();
        assert!(r.resolve(&other, &config, timeout()).unwrap().iter().all(|a| a.port() == 4319));
        // Past its lifetime, looked up again.
        r.last.lock().unwrap().as_mut().unwrap().at -= RESOLVED_LIFETIME;
        let before = r.last.lock().unwrap().as_ref().unwrap().at;
        r.resolve(&other, &config, timeout()).unwrap();
        assert!(r.last.lock().unwrap().as_ref().unwrap().at > before);
    }
}
