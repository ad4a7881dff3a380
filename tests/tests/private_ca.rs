//! Registries on a private certificate authority (Harbor, Artifactory, Nexus inside a
//! company): an untrusted certificate fails at once with its own error, naming the host
//! and the reason, nothing written; the CA given for that host (`--ca-certificate`, or
//! `registries."<host>".caCertificates` in the config) makes a byte-identical copy; and a
//! CA given for one host does not vouch for another.

use ferry_e2e::ferry::{ConfigFile, describe};
use ferry_e2e::imageset::{SetSpec, push_image_set};
use ferry_e2e::tls::{CountingForwarder, PrivateCa, TlsFront};
use ferry_e2e::{Registry, error_codes, run_ferry};
use serde_json::json;

#[test]
fn a_registry_on_a_private_ca_is_trusted_only_through_its_own_setting() {
    let src = Registry::start().expect("source storage");
    let dst = Registry::start().expect("destination");
    let image = push_image_set(&src, &SetSpec::small("corp", 1, 1, 11))
        .expect("push")
        .remove(0);
    let ca = PrivateCa::generate().expect("CA");
    let front = TlsFront::serve(&src, &ca).expect("TLS registry");
    let counted = CountingForwarder::start(front.port()).expect("forwarder");
    // The registry by name (`localhost`), over HTTPS through the counting forwarder.
    let host = format!("localhost:{}", counted.port());
    let endpoints = format!("{host}=https://{host}");
    let env = [("FERRY_REGISTRY_ENDPOINTS", endpoints.as_str())];
    let from = format!("{host}/{}:{}", image.repo, image.tag);
    let to = dst.reference(&image.repo, &image.tag);

    // Untrusted: one connection, no retry, its own error naming the host and the reason
    // with the way to trust the CA; nothing written; no verifier log lines.
    let out = run_ferry(["copy", &from, &to], &env).expect("ferry runs");
    assert!(!out.status.success(), "{}", describe(&out));
    assert_eq!(error_codes(&out), ["tls-untrusted"], "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&host), "{stderr}");
    assert!(stderr.contains("unknown issuer"), "{stderr}");
    assert!(
        stderr.contains(&format!("registries.\"{host}\".caCertificates")),
        "{stderr}"
    );
    assert!(!stderr.contains("rustls_platform_verifier"), "{stderr}");
    assert!(!stderr.contains("transient"), "{stderr}");
    assert_eq!(counted.accepted(), 1, "one attempt, no retry");
    assert!(
        dst.tags(&image.repo).expect("tags").is_empty(),
        "nothing written"
    );

    // Trusted for that host with --ca-certificate: a byte-identical copy.
    let trust = format!("{host}={}", ca.ca_path().display());
    let out = run_ferry(["copy", &from, &to, "--ca-certificate", &trust], &env).expect("ferry");
    assert!(out.status.success(), "{}", describe(&out));
    let (_, copied) = dst
        .manifest(&image.repo, &image.tag)
        .expect("read")
        .expect("copied");
    let (_, original) = src
        .manifest(&image.repo, &image.tag)
        .expect("read")
        .expect("source");
    assert_eq!(copied, original, "byte-identical manifest");

    // Another host (the same registry by address, certificate valid for it) is not
    // vouched for by a CA given for `localhost`.
    let other = format!("127.0.0.1:{}", front.port());
    let other_endpoints = format!("{other}=https://{other}");
    let out = run_ferry(
        [
            "copy",
            &format!("{other}/{}:{}", image.repo, image.tag),
            &dst.reference(&image.repo, "other"),
            "--ca-certificate",
            &trust,
        ],
        &[("FERRY_REGISTRY_ENDPOINTS", other_endpoints.as_str())],
    )
    .expect("ferry runs");
    assert_eq!(error_codes(&out), ["tls-untrusted"], "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&other),
        "{}",
        describe(&out)
    );

    // The config's `registries."<host>".caCertificates` (inline PEM, as from SSM): `sync`
    // copies through it to a second destination repository.
    let config = ConfigFile::write(&json!({
        "source": {"registry": host},
        "registries": {
            host.clone(): {
                "endpoint": format!("https://{host}"),
                "caCertificates": [ca.ca_pem().expect("pem")]
            }
        },
        "rules": [{"destinations": [
            {"registry": dst.host(), "repositoryName": "mirror/{repository}"}
        ]}]
    }))
    .expect("config");
    let no_env: &[(&str, &str)] = &[];
    let out = run_ferry(["sync", "-c", config.arg()], no_env).expect("ferry runs");
    assert!(out.status.success(), "{}", describe(&out));
    let (_, synced) = dst
        .manifest(&format!("mirror/{}", image.repo), &image.tag)
        .expect("read")
        .expect("synced");
    assert_eq!(
        synced, original,
        "byte-identical manifest through the config"
    );
}
