//! `Link` pagination headers of registry listings (`ferry::registry::next_page`).
//!
//! The first byte picks a mode (modulo 3); the rest is the input:
//! - `0`: the bytes as the `Link` header of the page
//!   `https://r.example/v2/team/api/tags/list?n=1000`;
//! - `1`: `<page URL> NUL <Link header>`: any page URL that parses as http(s);
//! - `2`: a fuzzed `last` value, percent-encoded into a well-formed next link of the
//!   same listing: it is accepted, with exactly that query.
//!
//! Invariant in every mode: no panic, and the answer is `Ok(None)` (no header), an
//! error, or a URL with the page's origin, the page's path, no credentials and no
//! fragment.
#![no_main]

use ferry::registry::next_page;
use libfuzzer_sys::fuzz_target;
use url::Url;

const PAGE: &str = "https://r.example/v2/team/api/tags/list?n=1000";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => check(rest, &Url::parse(PAGE).expect("page URL")),
        1 => {
            let Some(nul) = rest.iter().position(|&b| b == 0) else {
                return;
            };
            let Ok(page) = std::str::from_utf8(&rest[..nul]) else {
                return;
            };
            match Url::parse(page) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                    check(&rest[nul + 1..], &u)
                }
                _ => {}
            }
        }
        _ => {
            let last: String = url::form_urlencoded::byte_serialize(rest).collect();
            let header = format!("</v2/team/api/tags/list?n=1000&last={last}>; rel=\"next\"");
            let page = Url::parse(PAGE).expect("page URL");
            let next = next_page(&[header.as_bytes()], &page)
                .unwrap_or_else(|e| panic!("{header:?} refused: {e}"))
                .unwrap_or_else(|| panic!("{header:?}: no next page"));
            assert_eq!(next.query(), Some(format!("n=1000&last={last}").as_str()));
            assert_eq!(next.path(), page.path());
        }
    }
});

fn check(header: &[u8], page: &Url) {
    let values: Vec<&[u8]> = if header.is_empty() {
        Vec::new()
    } else {
        header.split(|&b| b == b'\n').collect()
    };
    match next_page(&values, page) {
        Ok(None) => assert!(values.is_empty(), "a header without a verdict"),
        Ok(Some(next)) => {
            assert_eq!(next.origin(), page.origin(), "{next} left {page}");
            assert_eq!(next.path(), page.path(), "{next} left {page}");
            assert!(next.username().is_empty() && next.password().is_none());
            assert!(next.fragment().is_none());
        }
        Err(reason) => assert!(!reason.is_empty()),
    }
}
