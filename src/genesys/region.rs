//! Genesys Cloud regions: the SDK region names (as in the Genesys SDKs' region tables) and the
//! domains they stand for. Plain data with no dependency, so configuration can check
//! `genesys.region` at load and the client can derive its hosts from it.

/// SDK region names mapped to their domains.
const SDK_REGIONS: &[(&str, &str)] = &[
    ("us_east_1", "mypurecloud.com"),
    ("eu_west_1", "mypurecloud.ie"),
    ("ap_southeast_2", "mypurecloud.com.au"),
    ("ap_northeast_1", "mypurecloud.jp"),
    ("eu_central_1", "mypurecloud.de"),
    ("us_west_2", "usw2.pure.cloud"),
    ("ca_central_1", "cac1.pure.cloud"),
    ("ap_northeast_2", "apne2.pure.cloud"),
    ("eu_west_2", "euw2.pure.cloud"),
    ("ap_south_1", "aps1.pure.cloud"),
    ("us_east_2", "use2.us-gov-pure.cloud"),
    ("sa_east_1", "sae1.pure.cloud"),
    ("me_central_1", "mec1.pure.cloud"),
    ("ap_northeast_3", "apne3.pure.cloud"),
    ("eu_central_2", "euc2.pure.cloud"),
    ("mx_central_1", "mxc1.pure.cloud"),
    ("ap_southeast_1", "apse1.pure.cloud"),
    ("eusc_de_east_1", "edee1.eusc-pure.cloud"),
];

/// A base URL as given (`https://api.mypurecloud.com`, `https://gw.example.com/genesys/`),
/// ending in exactly one `/`, so that joining `api/v2/...` or `oauth/token` onto it keeps a
/// gateway's path prefix: `Url::join` replaces the last path segment of a base without a
/// trailing slash (RFC 3986 section 5.2.3). The Genesys SDKs support gateways with path
/// prefixes (`set_gateway`, `path_params_login`, `path_params_api` in
/// MyPureCloud/platform-client-sdk-python `api_client.py`).
pub fn base_url(raw: &str) -> String {
    format!("{}/", raw.trim().trim_end_matches('/'))
}

/// A region that is neither a domain nor an SDK region name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is neither a Genesys domain (e.g. mypurecloud.com, usw2.pure.cloud) nor an SDK region name (e.g. us_west_2)")]
pub struct UnknownRegion(pub String);

/// Accepts a domain (`usw2.pure.cloud`, also with a stray `api.`/`login.` or scheme) or an SDK
/// region name (`us_west_2`, `US-WEST-2`) and returns the domain.
pub fn region_domain(region: &str) -> Result<String, UnknownRegion> {
    let r = region.trim().to_ascii_lowercase();
    let sdk = r.replace('-', "_");
    if let Some((_, domain)) = SDK_REGIONS.iter().find(|(name, _)| *name == sdk) {
        return Ok((*domain).to_owned());
    }
    let r = r
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let r = r
        .strip_prefix("api.")
        .or_else(|| r.strip_prefix("login."))
        .unwrap_or(r);
    let valid = r.contains('.')
        && r.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if valid {
        Ok(r.to_owned())
    } else {
        Err(UnknownRegion(region.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_region_names_and_domains_both_resolve() {
        assert_eq!(region_domain("us_west_2").unwrap(), "usw2.pure.cloud");
        assert_eq!(region_domain("eu-west-1").unwrap(), "mypurecloud.ie");
        assert_eq!(region_domain("usw2.pure.cloud").unwrap(), "usw2.pure.cloud");
        assert_eq!(
            region_domain("api.mypurecloud.de").unwrap(),
            "mypurecloud.de"
        );
        assert!(region_domain("not a region").is_err());
    }

    #[test]
    fn a_base_url_ends_in_one_slash_so_a_gateway_path_survives_joining() {
        for raw in [
            "https://gw.example.com/genesys",
            "https://gw.example.com/genesys/",
            " https://gw.example.com/genesys// ",
        ] {
            let base = url::Url::parse(&base_url(raw)).unwrap();
            assert_eq!(
                base.join("api/v2/conversations/c1").unwrap().as_str(),
                "https://gw.example.com/genesys/api/v2/conversations/c1"
            );
        }
        assert_eq!(
            base_url("https://api.mypurecloud.com"),
            "https://api.mypurecloud.com/"
        );
    }
}
