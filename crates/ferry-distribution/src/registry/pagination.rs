//! Listings (`tags/list`, `_catalog`, referrers) read as a bounded walk: each page's body
//! is capped, `Link: <…>; rel="next"` is parsed strictly and must stay on the same
//! origin and the same listing path, a page already read is an error (not a loop), and
//! the walk stops with an error after [`MAX_LISTING_PAGES`] pages. A listing is either
//! read whole or not used: never silently truncated.

use std::collections::HashSet;

use http::HeaderMap;
use url::Url;

use super::{Call, RegistryClient};
use crate::error::Error;

/// Most pages one listing follows (10,000 pages of `n=1000` are ten million names).
pub const MAX_LISTING_PAGES: usize = 10_000;

/// Largest body of one listing page or referrers index Ferry reads: 4 MiB, the size ECR
/// and Ferry allow for a manifest.
pub const MAX_LISTING_PAGE_BYTES: u64 = 4 * 1024 * 1024;

/// Largest total of page bodies one listing reads, across all its pages: 256 MiB.
pub const MAX_LISTING_BYTES: u64 = 256 * 1024 * 1024;

/// Longest excerpt of a refused link quoted in an error.
const QUOTE: usize = 120;

/// The next page of a listing from its `Link` header values (all of them, in order),
/// relative to `current`, the URL of the page just read.
///
/// `Ok(None)`: no `Link` header, this was the last page. `Ok(Some(url))`: the `rel="next"`
/// link, resolved against `current`, with the same origin (scheme, host, port) and the
/// same path as `current` (only the query differs: `n`, `last`), no credentials and no
/// fragment. Anything else is an `Err` with the reason: a header that is not UTF-8, a
/// link-value without `<…>`, a header without a `rel="next"` link, a link to another
/// origin, another repository or another endpoint. Never panics.
pub fn next_page(values: &[&[u8]], current: &Url) -> Result<Option<Url>, String> {
    if values.is_empty() {
        return Ok(None);
    }
    let mut text = String::new();
    for v in values {
        let s = std::str::from_utf8(v).map_err(|_| "the Link header is not UTF-8".to_string())?;
        if !text.is_empty() {
            text.push_str(", ");
        }
        text.push_str(s);
    }
    let links = parse_links(&text)?;
    let next = links
        .iter()
        .find(|(_, rel)| {
            rel.as_deref().is_some_and(|r| {
                r.split_ascii_whitespace()
                    .any(|t| t.eq_ignore_ascii_case("next"))
            })
        })
        .map(|(target, _)| *target)
        .ok_or_else(|| format!("the Link header {} has no rel=\"next\" link", quote(&text)))?;
    let mut url = current
        .join(next)
        .map_err(|e| format!("the next link {} is not a URL: {e}", quote(next)))?;
    url.set_fragment(None);
    if url.origin() != current.origin() {
        return Err(format!(
            "the next link {} points to another origin",
            quote(next)
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("the next link {} carries credentials", quote(next)));
    }
    if url.path() != current.path() {
        return Err(format!(
            "the next link {} leaves {} (another repository or endpoint)",
            quote(next),
            current.path()
        ));
    }
    Ok(Some(url))
}

/// `link-value *( "," link-value )` of RFC 8288: each target and its first `rel`.
fn parse_links(text: &str) -> Result<Vec<(&str, Option<String>)>, String> {
    let ws = [' ', '\t'];
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return Ok(out);
        }
        let r = rest
            .strip_prefix('<')
            .ok_or_else(|| format!("a link in {} does not start with `<`", quote(text)))?;
        let end = r
            .find('>')
            .ok_or_else(|| format!("a link in {} has no closing `>`", quote(text)))?;
        let target = &r[..end];
        rest = &r[end + 1..];
        let mut rel = None;
        loop {
            rest = rest.trim_start_matches(ws);
            let Some(r) = rest.strip_prefix(';') else {
                break;
            };
            rest = r.trim_start_matches(ws);
            let name_end = rest.find(['=', ';', ',', ' ', '\t']).unwrap_or(rest.len());
            let name = &rest[..name_end];
            if name.is_empty() {
                return Err(format!("a link parameter in {} has no name", quote(text)));
            }
            rest = rest[name_end..].trim_start_matches(ws);
            let mut value = String::new();
            if let Some(r) = rest.strip_prefix('=') {
                rest = r.trim_start_matches(ws);
                if let Some(r) = rest.strip_prefix('"') {
                    let mut closed = None;
                    let mut chars = r.char_indices();
                    while let Some((i, c)) = chars.next() {
                        match c {
                            '\\' => value.extend(chars.next().map(|(_, c)| c)),
                            '"' => {
                                closed = Some(i + 1);
                                break;
                            }
                            c => value.push(c),
                        }
                    }
                    let at = closed.ok_or_else(|| {
                        format!("a quoted link parameter in {} is not closed", quote(text))
                    })?;
                    rest = &r[at..];
                } else {
                    let end = rest.find([';', ',', ' ', '\t']).unwrap_or(rest.len());
                    value.push_str(&rest[..end]);
                    rest = &rest[end..];
                }
            }
            if rel.is_none() && name.eq_ignore_ascii_case("rel") {
                rel = Some(value);
            }
        }
        rest = rest.trim_start_matches(ws);
        if !rest.is_empty() && !rest.starts_with(',') {
            return Err(format!("unexpected text after a link in {}", quote(text)));
        }
        out.push((target, rel));
    }
}

/// A bounded, escaped excerpt of untrusted text for an error message.
fn quote(s: &str) -> String {
    let excerpt: String = s.chars().take(QUOTE).collect();
    if excerpt.len() < s.len() {
        format!("{excerpt:?}…")
    } else {
        format!("{excerpt:?}")
    }
}

/// One page of a listing, as [`RegistryClient::paginate`] hands it over.
pub(crate) struct Page<'a> {
    /// HTTP status (one of the `ok` statuses).
    pub status: u16,
    /// Response headers.
    pub headers: &'a HeaderMap,
    /// The body (empty unless 200), at most [`MAX_LISTING_PAGE_BYTES`].
    pub body: &'a [u8],
}

impl RegistryClient {
    /// Walk a listing from `first`: GET each page (`call` builds the request for a page
    /// URL), hand it to `on_page`, and follow `Link` while `on_page` answers `true` and the
    /// page is a 200. Bounded by [`MAX_LISTING_PAGES`], [`MAX_LISTING_PAGE_BYTES`] per page
    /// and [`MAX_LISTING_BYTES`] in all; a repeated page or a bad link is
    /// [`Error::Pagination`].
    pub(crate) async fn paginate<'r, C, P>(
        &self,
        first: Url,
        ok: &[u16],
        call: C,
        mut on_page: P,
    ) -> Result<(), Error>
    where
        C: Fn(&Url) -> Call<'r>,
        P: FnMut(Page<'_>) -> Result<bool, Error>,
    {
        let mut seen = HashSet::new();
        let mut total = 0u64;
        let mut next = Some(first);
        let mut pages = 0usize;
        while let Some(url) = next.take() {
            let c = call(&url);
            let listing = url.path().to_string();
            let stop = |reason: String| Error::Pagination {
                registry: c.repo.registry.clone(),
                url: listing.clone(),
                reason,
            };
            if !seen.insert(url.as_str().to_string()) {
                return Err(stop(format!(
                    "the registry links back to a page already read ({})",
                    quote(url.as_str())
                )));
            }
            if pages == MAX_LISTING_PAGES {
                return Err(stop(format!(
                    "more than {MAX_LISTING_PAGES} pages; the listing is not used truncated"
                )));
            }
            pages += 1;
            let (status, headers, body) = self.get_document(&c, ok, MAX_LISTING_PAGE_BYTES).await?;
            total += body.len() as u64;
            if total > MAX_LISTING_BYTES {
                return Err(Error::ResponseTooLarge {
                    registry: c.repo.registry.clone(),
                    what: format!("the listing {listing}, over {pages} pages,"),
                    limit: MAX_LISTING_BYTES,
                });
            }
            let more = on_page(Page {
                status,
                headers: &headers,
                body: &body,
            })?;
            if more && status == 200 {
                let values: Vec<&[u8]> = headers
                    .get_all(http::header::LINK)
                    .iter()
                    .map(|v| v.as_bytes())
                    .collect();
                next = next_page(&values, &url).map_err(stop)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> Url {
        Url::parse("https://r.example/v2/team/api/tags/list?n=1000").expect("url")
    }

    fn next(link: &str) -> Result<Option<String>, String> {
        next_page(&[link.as_bytes()], &page()).map(|u| u.map(|u| u.to_string()))
    }

    fn ok(url: &str) -> Result<Option<String>, String> {
        Ok(Some(url.to_string()))
    }

    #[test]
    fn follows_next_links_on_the_same_listing() {
        assert_eq!(next_page(&[], &page()), Ok(None));
        assert_eq!(
            next("</v2/team/api/tags/list?last=v9&n=1000>; rel=\"next\""),
            ok("https://r.example/v2/team/api/tags/list?last=v9&n=1000")
        );
        assert_eq!(
            next("<https://r.example/v2/team/api/tags/list?last=a#frag>;rel=next"),
            ok("https://r.example/v2/team/api/tags/list?last=a")
        );
        assert_eq!(
            next("</v2/team/api/tags/list?last=p>; rel=\"prev\", <?last=z>; rel=\"next last\""),
            ok("https://r.example/v2/team/api/tags/list?last=z")
        );
    }

    #[test]
    fn refuses_malformed_and_foreign_links() {
        for bad in [
            "/v2/team/api/tags/list?last=v9; rel=\"next\"",
            "</v2/team/api/tags/list?last=v9; rel=\"next\"",
            "</v2/team/api/tags/list?last=v9>; rel=\"prev\"",
            "</v2/team/api/tags/list?last=v9>",
            "",
            "</v2/team/api/tags/list?last=v9>; rel=\"next",
            "</v2/team/api/tags/list?last=v9>; rel=next junk",
            "<http://other/v2/team/api/tags/list?n=1>; rel=\"next\"",
            "<http://r.example/v2/team/api/tags/list?n=1>; rel=\"next\"",
            "<https://r.example:444/v2/team/api/tags/list?n=1>; rel=\"next\"",
            "<//evil.example/v2/team/api/tags/list>; rel=\"next\"",
            "<https://u:p@r.example/v2/team/api/tags/list>; rel=\"next\"",
            "</v2/evil/tags/list?n=1>; rel=\"next\"",
            "</v2/team/api/../../other/tags/list>; rel=\"next\"",
            "</v2/team/api/tags/list/../../../other/manifests/v1>; rel=\"next\"",
            "</v2/team/api/manifests/v1>; rel=\"next\"",
            "<http://[::1>; rel=\"next\"",
        ] {
            assert!(next(bad).is_err(), "{bad:?} was accepted: {:?}", next(bad));
        }
        assert!(next_page(&[b"</v2/team/api/tags/list?last=\xff>; rel=next"], &page()).is_err());
    }

    #[test]
    fn several_header_lines_are_one_list() {
        let got = next_page(
            &[
                b"</x>; rel=\"prev\"",
                b"</v2/team/api/tags/list?last=b>; rel=next",
            ],
            &page(),
        );
        assert_eq!(
            got.map(|u| u.map(|u| u.to_string())),
            ok("https://r.example/v2/team/api/tags/list?last=b")
        );
    }
}
