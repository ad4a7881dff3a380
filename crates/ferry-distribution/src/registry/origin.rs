//! Which client a request goes through, and with what: the registry's own origin (its
//! endpoint, set by the operator) gets the main client and the registry's credentials;
//! any other origin a registry sends Ferry to (blob redirects, upload `Location`s, token
//! realms) is checked first ([`netguard`]) and goes through a client whose names resolve
//! through [`GuardedResolver`], without the registry's `Authorization`.

use std::sync::Arc;

use super::netguard::{self, AddrClass, GuardedResolver};
use super::{ClientOptions, RegistryClient, describe_reqwest};
use crate::error::Error;
use crate::secret::Secret;

impl RegistryClient {
    /// The client for a URL on another origin than the registry's endpoint, sent by a
    /// registry of address class `class` (see [`netguard`]).
    pub(crate) fn outbound(&self, class: AddrClass) -> Result<reqwest::Client, Error> {
        let mut map = self
            .inner
            .outbound
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(c) = map.get(&class) {
            return Ok(c.clone());
        }
        let c = build_http(&self.inner.options, Some(GuardedResolver::new(class)), true)?;
        map.insert(class, c.clone());
        Ok(c)
    }

    /// The registry's endpoint as a URL.
    pub(crate) fn endpoint(&self, registry: &str) -> Result<url::Url, Error> {
        let base = self.inner.endpoints.base_url(registry);
        url::Url::parse(&format!("{base}/"))
            .map_err(|_| Error::Unsupported(format!("bad base URL {base}")))
    }

    /// The client to send `url` with, which `registry` sent in an answer to `previous`,
    /// and whether it is the registry's own origin (scheme, host and port: the only one
    /// that gets the registry's `Authorization`). Another origin is checked first
    /// ([`netguard::check_next_hop`]: no https → http, no loopback or link-local address
    /// the registry is not on) and sent through the guarded outbound client.
    pub(crate) fn client_for(
        &self,
        registry: &str,
        previous: &url::Url,
        url: &url::Url,
    ) -> Result<(reqwest::Client, bool), Error> {
        let endpoint = self.endpoint(registry)?;
        if endpoint.origin() == url.origin() {
            return Ok((self.inner.http.clone(), true));
        }
        let class = netguard::registry_class(&endpoint);
        netguard::check_next_hop(class, previous, url).map_err(|reason| Error::Refused {
            registry: registry.to_string(),
            target: netguard::origin_text(url),
            reason,
        })?;
        Ok((self.outbound(class)?, false))
    }

    /// The error for a failed send to `target` on behalf of `registry`: refused by the
    /// guarded resolver, or `unreachable` (the registry, or the other host it sent us to).
    pub(crate) fn transport_error(
        registry: &str,
        target: &url::Url,
        unreachable: &str,
        e: &reqwest::Error,
    ) -> Error {
        crate::net::transport_error(registry, target, unreachable, e)
    }

    /// Answer a 401 from the registry itself: refresh the credentials (Bearer tokens are
    /// fetched from the challenge's realm through the outbound client).
    pub(crate) async fn refresh_auth(
        &self,
        host: &str,
        scope: &str,
        resp: &reqwest::Response,
    ) -> Result<Option<Secret>, Error> {
        let challenge = resp
            .headers()
            .get(http::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let endpoint = self.endpoint(host)?;
        let http = self.outbound(netguard::registry_class(&endpoint))?;
        self.inner
            .auth
            .unauthorized(&http, host, &endpoint, scope, challenge.as_deref())
            .await
    }
}

/// The HTTP client with Ferry's settings (rustls with the process's shared TLS
/// settings, see [`super::tls`]; timeouts, no automatic redirects), resolving names
/// through `resolver` if given.
/// `read_timeout`: false for the upload client, since in `reqwest` the read timeout also
/// runs while a request body is still being sent (a PUT longer than it would fail); the
/// blob deadline bounds uploads instead. Every request has a total deadline
/// (`request_deadline` unless the request sets its own).
pub(super) fn build_http(
    options: &ClientOptions,
    resolver: Option<GuardedResolver>,
    read_timeout: bool,
) -> Result<reqwest::Client, Error> {
    let mut b = reqwest::Client::builder()
        .tls_backend_preconfigured(super::tls::for_hosts(&options.ca_certificates)?)
        .connect_timeout(options.connect_timeout)
        .timeout(options.request_deadline)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(options.max_per_host.max(options.max_per_paced_host))
        .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")));
    if read_timeout {
        b = b.read_timeout(options.read_timeout);
    }
    if let Some(r) = resolver {
        b = b.dns_resolver(Arc::new(r));
    }
    b.build().map_err(|e| {
        Error::Unsupported(format!(
            "cannot build the HTTP client: {}",
            describe_reqwest(&e)
        ))
    })
}
