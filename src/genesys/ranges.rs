//! Genesys Cloud's published address ranges, kept fresh for the allow-lists of endpoint groups
//! that follow them (`auth.<group>.allow_genesys_ranges`).
//!
//! `GET /api/v2/ipranges` lists `{cidr, service, region, direction}` rows. Genesys describes
//! none of the `service` values; `data-actions` is the one whose name fits web-services data
//! actions calling out (it was the only value when the endpoint appeared, SDK 64.0.0), so it is
//! the default of `genesys.ip_ranges_services`, an assumption the operator can change. Rows
//! whose `direction` is `inbound` (traffic to Genesys) are never sources; `outbound`, `both` and
//! rows without a direction (older answers) are kept. [`select`] is that policy, pure.
//!
//! [`GenesysRanges`] holds the list in use: `None` until the first successful read (the groups
//! then refuse everyone not in their own `allow_from`), then the last good list, which a failed
//! or empty read never replaces.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use chrono::{DateTime, Utc};
use ipnet::IpNet;

use super::model::IpAddressRange;
use super::{GenesysClient, GenesysError};
use crate::config::GenesysSettings;
use crate::metrics;
use crate::retry::Retryable;

/// After a failed read, the next one comes this soon at most (sooner if the refresh interval is
/// shorter): until the first read succeeds, the data-action group refuses everyone.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum RangesError {
    #[error("reading GET /api/v2/ipranges: {0}")]
    Fetch(#[from] GenesysError),
    #[error("none of the {rows} published ranges is a source of service {services}{regions}")]
    Empty {
        rows: usize,
        services: String,
        regions: String,
    },
}

impl Retryable for RangesError {
    fn is_retryable(&self) -> bool {
        match self {
            RangesError::Fetch(e) => e.is_retryable(),
            // Genesys may publish the rows later; the periodic refresh will see them.
            RangesError::Empty { .. } => false,
        }
    }
}

/// The rows of `rows` that are sources of one of `services` (and, if `regions` is not empty,
/// in one of them), as aggregated networks; rows whose `cidr` does not parse are counted in
/// the second value and left out.
pub fn select(
    rows: &[IpAddressRange],
    services: &[String],
    regions: &[String],
) -> (Vec<IpNet>, usize) {
    let listed = |value: &Option<String>, list: &[String]| {
        value
            .as_deref()
            .is_some_and(|v| list.iter().any(|l| l.trim().eq_ignore_ascii_case(v.trim())))
    };
    let mut unreadable = 0;
    let nets: Vec<IpNet> = rows
        .iter()
        .filter(|row| listed(&row.service, services))
        .filter(|row| regions.is_empty() || listed(&row.region, regions))
        .filter(|row| match row.direction.as_deref().map(str::trim) {
            None | Some("") => true,
            Some(d) => d.eq_ignore_ascii_case("outbound") || d.eq_ignore_ascii_case("both"),
        })
        .filter_map(|row| {
            let parsed = row
                .cidr
                .as_deref()
                .and_then(|c| crate::config::parse_cidr(c).ok());
            if parsed.is_none() {
                unreadable += 1;
            }
            parsed
        })
        .collect();
    (IpNet::aggregate(&nets), unreadable)
}

/// What `/readyz` reports.
#[derive(Debug, Clone, Default)]
pub struct RangesStatus {
    /// Networks in use; `None` until the first successful read.
    pub ranges: Option<usize>,
    pub loaded_at: Option<DateTime<Utc>>,
    /// The last read's error, cleared by a successful one.
    pub last_error: Option<String>,
}

/// The list in use, shared by the allow-list checks and the refresh task.
#[derive(Clone)]
pub struct GenesysRanges {
    inner: Arc<Inner>,
}

struct Inner {
    nets: ArcSwapOption<Vec<IpNet>>,
    status: Mutex<RangesStatus>,
    services: Vec<String>,
    regions: Vec<String>,
}

impl GenesysRanges {
    /// An empty list (everyone refused) for `genesys.ip_ranges_services` / `_regions`.
    pub fn from_settings(settings: &GenesysSettings) -> Self {
        Self::new(
            settings.ip_ranges_services.clone(),
            settings.ip_ranges_regions.clone(),
        )
    }

    /// An empty list that will keep the rows of `services` (in `regions`, if any).
    pub fn new(services: Vec<String>, regions: Vec<String>) -> Self {
        Self {
            inner: Arc::new(Inner {
                nets: ArcSwapOption::empty(),
                status: Mutex::new(RangesStatus::default()),
                services,
                regions,
            }),
        }
    }

    /// Whether `ip` is in the list; `None` while there is no list yet.
    pub fn contains(&self, ip: IpAddr) -> Option<bool> {
        let nets = self.inner.nets.load();
        nets.as_deref()
            .map(|nets| crate::config::contains(nets, ip))
    }

    pub fn status(&self) -> RangesStatus {
        self.lock_status().clone()
    }

    fn lock_status(&self) -> std::sync::MutexGuard<'_, RangesStatus> {
        self.inner
            .status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads the ranges once and, if any row is usable, makes them the list in use. Logs and
    /// counts the outcome.
    pub async fn refresh(&self, client: &GenesysClient) -> Result<usize, RangesError> {
        let outcome = match client.ip_ranges().await {
            Err(e) => Err(RangesError::from(e)),
            Ok(rows) => {
                let (nets, unreadable) = select(&rows, &self.inner.services, &self.inner.regions);
                if unreadable > 0 {
                    tracing::warn!(
                        unreadable,
                        "published ranges whose cidr does not parse were left out"
                    );
                }
                if nets.is_empty() {
                    Err(RangesError::Empty {
                        rows: rows.len(),
                        services: self.inner.services.join(", "),
                        regions: if self.inner.regions.is_empty() {
                            String::new()
                        } else {
                            format!(" in region {}", self.inner.regions.join(", "))
                        },
                    })
                } else {
                    Ok(nets)
                }
            }
        };
        let mut status = self.lock_status();
        match outcome {
            Ok(nets) => {
                let count = nets.len();
                let changed = self.inner.nets.load().as_deref() != Some(&nets);
                self.inner.nets.store(Some(Arc::new(nets)));
                *status = RangesStatus {
                    ranges: Some(count),
                    loaded_at: Some(Utc::now()),
                    last_error: None,
                };
                ::metrics::counter!(metrics::IP_RANGE_REFRESHES, "result" => "ok").increment(1);
                ::metrics::gauge!(metrics::IP_RANGES).set(count as f64);
                if changed {
                    tracing::info!(ranges = count, "Genesys address ranges loaded");
                }
                Ok(count)
            }
            Err(e) => {
                let result = match e {
                    RangesError::Fetch(_) => "error",
                    RangesError::Empty { .. } => "empty",
                };
                ::metrics::counter!(metrics::IP_RANGE_REFRESHES, "result" => result).increment(1);
                status.last_error = Some(e.to_string());
                match status.ranges {
                    Some(kept) => {
                        tracing::warn!(error = %e, kept, "Genesys address ranges not refreshed; keeping the last good list");
                    }
                    None => {
                        tracing::error!(error = %e, "Genesys address ranges not loaded; groups that follow them refuse everyone not in their allow_from");
                    }
                }
                Err(e)
            }
        }
    }

    /// Refreshes now and then every `every` (after a failure, within [`RETRY_AFTER_FAILURE`]),
    /// until the task is aborted.
    pub async fn keep_fresh(self, client: GenesysClient, every: Duration) {
        loop {
            let wait = match self.refresh(&client).await {
                Ok(_) => every,
                Err(_) => every.min(RETRY_AFTER_FAILURE),
            };
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cidr: &str, service: &str, region: &str, direction: Option<&str>) -> IpAddressRange {
        IpAddressRange {
            cidr: Some(cidr.to_owned()),
            service: Some(service.to_owned()),
            region: Some(region.to_owned()),
            direction: direction.map(str::to_owned),
        }
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn selected(rows: &[IpAddressRange], services: &[&str], regions: &[&str]) -> Vec<String> {
        select(rows, &strings(services), &strings(regions))
            .0
            .iter()
            .map(IpNet::to_string)
            .collect()
    }

    #[test]
    fn only_rows_of_the_named_services_are_sources() {
        let rows = [
            row(
                "192.0.2.0/28",
                "data-actions",
                "us-east-1",
                Some("outbound"),
            ),
            row("198.51.100.0/24", "api", "us-east-1", Some("outbound")),
            row("203.0.113.0/28", "smtp", "us-east-1", Some("both")),
        ];
        assert_eq!(selected(&rows, &["data-actions"], &[]), ["192.0.2.0/28"]);
        assert_eq!(
            selected(&rows, &["DATA-ACTIONS", "smtp"], &[]),
            ["192.0.2.0/28", "203.0.113.0/28"]
        );
    }

    #[test]
    fn inbound_rows_are_never_sources_and_rows_without_a_direction_are() {
        let rows = [
            row("192.0.2.0/28", "data-actions", "r", Some("inbound")),
            row("192.0.2.16/28", "data-actions", "r", Some("Both")),
            row("192.0.2.32/28", "data-actions", "r", None),
            row("192.0.2.48/28", "data-actions", "r", Some("sideways")),
        ];
        assert_eq!(
            selected(&rows, &["data-actions"], &[]),
            ["192.0.2.16/28", "192.0.2.32/28"]
        );
    }

    #[test]
    fn regions_narrow_the_list_only_when_named() {
        let rows = [
            row("192.0.2.0/28", "data-actions", "us-east-1", None),
            row("2001:db8::/48", "data-actions", "eu-west-1", None),
        ];
        assert_eq!(selected(&rows, &["data-actions"], &[]).len(), 2);
        assert_eq!(
            selected(&rows, &["data-actions"], &["eu-west-1"]),
            ["2001:db8::/48"]
        );
    }

    #[test]
    fn unreadable_cidrs_are_counted_and_adjacent_networks_merged() {
        let mut rows = vec![
            row("192.0.2.0/25", "data-actions", "r", None),
            row("192.0.2.128/25", "data-actions", "r", None),
            row("not a network", "data-actions", "r", None),
            row("198.51.100.7", "data-actions", "r", None),
        ];
        rows.push(IpAddressRange {
            service: Some("data-actions".to_owned()),
            ..IpAddressRange::default()
        });
        let (nets, unreadable) = select(&rows, &strings(&["data-actions"]), &[]);
        let nets: Vec<String> = nets.iter().map(IpNet::to_string).collect();
        assert_eq!(nets, ["192.0.2.0/24", "198.51.100.7/32"]);
        assert_eq!(unreadable, 2);
    }
}
