//! Checks of the URLs a configuration points registries at (`registries.<host>.endpoint`,
//! `apiEndpoint`) and of hosts that look like ECR but are spelt otherwise.

use super::registry::misspelt_ecr_host;

/// Checks an endpoint override: an `http(s)://host[:port]` URL without credentials or path,
/// whose scheme agrees with `plainHttp`.
pub(super) fn check_endpoint(text: &str, plain_http: bool) -> Result<(), String> {
    let url = url::Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials do not belong in the endpoint URL (use credentialsSecretArn or Docker's config.json)".into());
    }
    if url.host_str().is_none()
        || url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(format!(
            "`{text}`: expected a base URL such as `http://127.0.0.1:5000`, without path or query"
        ));
    }
    match (url.scheme(), plain_http) {
        ("https", false) | ("http", true) => Ok(()),
        ("http", false) => Err(format!(
            "`{text}` is plain HTTP: set plainHttp: true to allow unencrypted traffic"
        )),
        ("https", true) => Err(format!(
            "`{text}` is HTTPS but plainHttp is true: drop one of them"
        )),
        (scheme, _) => Err(format!("`{text}`: scheme `{scheme}` is not http or https")),
    }
}

/// Checks `apiEndpoint`: an `https://host[:port]` URL without credentials or path;
/// `http://` only for a loopback host (a local test endpoint) or with `plainHttp`.
pub(super) fn check_api_endpoint(text: &str, plain_http: bool) -> Result<(), String> {
    let url = url::Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials do not belong in the endpoint URL".into());
    }
    if url.host_str().is_none()
        || url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(format!(
            "`{text}`: expected a base URL such as `https://vpce-0abc-1234.api.ecr.us-east-1.vpce.amazonaws.com`, \
             without path or query"
        ));
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback || plain_http => Ok(()),
        "http" => Err(format!(
            "`{text}` is plain HTTP: the ECR API carries request signatures and tokens, so it must be HTTPS \
             (plain HTTP is allowed for a loopback address, or with plainHttp: true)"
        )),
        scheme => Err(format!("`{text}`: scheme `{scheme}` is not http or https")),
    }
}

/// Refuses a host shaped like an ECR registry whose DNS suffix does not serve its region:
/// it would be read as an OCI registry of that name, which is not ECR's.
pub(super) fn check_ecr_spelling(host: &str) -> Result<(), String> {
    match misspelt_ecr_host(host) {
        Some(right) => Err(format!(
            "`{host}` is no ECR registry host: ECR serves that region under `{right}`"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_endpoint_checks() {
        assert_eq!(
            check_api_endpoint(
                "https://vpce-1.api.ecr.cn-north-1.vpce.amazonaws.com.cn",
                false
            ),
            Ok(())
        );
        assert_eq!(check_api_endpoint("http://127.0.0.1:5000", false), Ok(()));
        assert_eq!(check_api_endpoint("http://[::1]:5000/", false), Ok(()));
        assert_eq!(check_api_endpoint("http://localhost:5000", false), Ok(()));
        assert_eq!(check_api_endpoint("http://ecr.internal", true), Ok(()));
        let error = check_api_endpoint("http://ecr.internal", false).unwrap_err();
        assert!(error.contains("must be HTTPS"), "{error}");
        assert!(check_api_endpoint("https://u:p@x.example", false).is_err());
        assert!(check_api_endpoint("https://x.example/api", false).is_err());
        assert!(check_api_endpoint("ftp://x.example", false).is_err());
        assert!(check_api_endpoint("x.example", false).is_err());
    }

    #[test]
    fn endpoint_checks() {
        assert_eq!(check_endpoint("http://127.0.0.1:5000", true), Ok(()));
        assert_eq!(check_endpoint("https://mirror.example/", false), Ok(()));
        assert!(
            check_endpoint("http://127.0.0.1:5000", false)
                .unwrap_err()
                .contains("plainHttp: true")
        );
        assert!(check_endpoint("https://x.example", true).is_err());
        assert!(
            check_endpoint("http://u:p@x.example", true)
                .unwrap_err()
                .contains("credentials")
        );
        assert!(check_endpoint("https://x.example/v2/", false).is_err());
        assert!(check_endpoint("ftp://x.example", false).is_err());
        assert!(check_endpoint("x.example:5000", false).is_err());
    }
}
