//! The bandwidth governor: in every process that runs transfers, applies each stored
//! endpoint's limit (rate or timetable, read from the store so edits made anywhere apply)
//! and the service-wide limit to this process's rclone, live, and samples the bytes moved
//! for the metrics. Processes sharing a store share each endpoint's cap in proportion to
//! the transfers each runs on it. The throttling itself is the shim's (`orbit/bwlimit`).

use super::worker::held_by_this_process;
use super::{Inner, Orbit};
use crate::endpoint::{Bandwidth, Endpoint, MIN_RATE, Rates};
use crate::rclone::methods::{MeterStats, OrbitBwLimit, OrbitBwStats};
use chrono::{DateTime, Local, TimeDelta};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// How the governor runs.
#[derive(Debug, Clone)]
pub struct BandwidthOptions {
    /// The most all transfers to and from remote endpoints (S3, SFTP, SMB) of this process
    /// may move together, on top of each endpoint's own limit; local disks are not charged.
    /// One per process: with several orbits in one process, the last one set holds.
    pub service: Option<Bandwidth>,
    /// How often limits are re-read from the store and timetables re-evaluated.
    pub check_every: Duration,
    /// Added to the clock when timetables are evaluated (drills and tests).
    pub clock_offset: TimeDelta,
}

impl Default for BandwidthOptions {
    fn default() -> Self {
        BandwidthOptions {
            service: None,
            check_every: Duration::from_millis(500),
            clock_offset: TimeDelta::zero(),
        }
    }
}

/// What one endpoint's transfers in this process are allowed and moving now.
#[derive(Debug, Clone, Serialize)]
pub struct BandwidthUsage {
    /// The endpoint; none for the service-wide limit.
    pub endpoint: Option<String>,
    /// The rates in force (bytes per second; none is no limit).
    pub limit: Rates,
    /// Bytes per second over the last two seconds or so.
    pub upload_rate: f64,
    pub download_rate: f64,
    /// Bytes moved since the process started.
    pub upload_bytes: u64,
    pub download_bytes: u64,
}

/// The governor's state shared with `Orbit::bandwidth_usage`.
#[derive(Default)]
pub(super) struct Governor {
    started: std::sync::atomic::AtomicBool,
    usage: Mutex<Vec<BandwidthUsage>>,
    /// The rates set in the shim per endpoint (none: the service-wide ones); absent is
    /// no limit.
    applied: Mutex<HashMap<Option<String>, Rates>>,
    /// This process's part of each endpoint's cap (absent: all of it).
    shares: Mutex<HashMap<String, f64>>,
}

/// Byte counters of every endpoint at one instant.
type Sample = (Instant, HashMap<Option<String>, MeterStats>);

/// Samples kept for the rates: about two seconds at the default check interval.
const SAMPLES: usize = 5;

impl Orbit {
    /// Starts this orbit's governor unless it runs already; it stops when the orbit's
    /// last handle is dropped.
    pub(super) fn govern_bandwidth(&self) {
        let weak = Arc::downgrade(&self.inner);
        let started = &self.inner.governor.started;
        if !started.swap(true, std::sync::atomic::Ordering::AcqRel) {
            tokio::spawn(govern(weak));
        }
    }

    /// Sets `endpoint`'s limit as this copy of it says, now, unless the shim has it
    /// already: a job's transfer starts under its endpoint's limit even when the governor
    /// has not yet seen a change just made.
    pub(super) async fn apply_bandwidth(&self, endpoint: &Endpoint) {
        let now = self.inner.timetable_now();
        let governor = &self.inner.governor;
        let share = governor
            .shares
            .lock()
            .ok()
            .and_then(|s| s.get(&endpoint.name).copied());
        let rates = endpoint
            .bandwidth
            .as_ref()
            .map_or(Rates::UNLIMITED, |limit| limit.rates_at(&now));
        apply(
            &self.inner,
            Some(endpoint.name.clone()),
            shared(rates, share.unwrap_or(1.0)),
        )
        .await;
    }

    /// Per endpoint (and service-wide), the limit in force in this process and the bytes
    /// its transfers move; empty until workers have started.
    pub fn bandwidth_usage(&self) -> Vec<BandwidthUsage> {
        self.inner
            .governor
            .usage
            .lock()
            .map(|usage| usage.clone())
            .unwrap_or_default()
    }
}

impl Inner {
    /// The time timetables are evaluated at: now, plus the configured clock offset.
    pub(super) fn timetable_now(&self) -> DateTime<Local> {
        Local::now() + self.options.bandwidth.clock_offset
    }
}

/// `rates` scaled to `share` of them, never below the lowest rate a limit may set.
fn shared(rates: Rates, share: f64) -> Rates {
    let part = |rate: Option<u64>| rate.map(|r| ((r as f64 * share) as u64).max(MIN_RATE));
    Rates {
        upload: part(rates.upload),
        download: part(rates.download),
    }
}

/// This process's share of each endpoint's cap, from the running transfers of all
/// processes: its own over all of them, or, with none running here, the part the next
/// one would have.
fn shares_of(running: &[(String, String, String)]) -> HashMap<String, f64> {
    let mut counts: HashMap<&str, (u32, u32)> = HashMap::new();
    for (source, destination, owner) in running {
        let mine = u32::from(held_by_this_process(owner));
        for endpoint in [source, destination] {
            let (own, all) = counts.entry(endpoint).or_default();
            *own += mine;
            *all += 1;
            if source == destination {
                break;
            }
        }
    }
    counts
        .into_iter()
        .map(|(endpoint, (own, all))| {
            let share = if own == 0 {
                1.0 / f64::from(all + 1)
            } else {
                f64::from(own) / f64::from(all)
            };
            (endpoint.to_string(), share)
        })
        .collect()
}

/// Sets `endpoint`'s rates in the shim unless they are set already.
async fn apply(inner: &Inner, endpoint: Option<String>, rates: Rates) {
    let applied = &inner.governor.applied;
    let current = |map: &HashMap<Option<String>, Rates>| map.get(&endpoint).copied();
    if applied
        .lock()
        .ok()
        .and_then(|map| current(&map))
        .unwrap_or(Rates::UNLIMITED)
        == rates
    {
        return;
    }
    let call = OrbitBwLimit {
        endpoint: endpoint.clone(),
        upload: rates.upload.unwrap_or(0),
        download: rates.download.unwrap_or(0),
    };
    match inner.rclone.call_async(&call).await {
        Ok(_) => {
            if let Ok(mut map) = applied.lock() {
                if rates == Rates::UNLIMITED {
                    map.remove(&endpoint);
                } else {
                    map.insert(endpoint, rates);
                }
            }
        }
        Err(err) => tracing::warn!(?endpoint, %err, "setting a bandwidth limit"),
    }
}

async fn govern(inner: Weak<Inner>) {
    let mut samples: VecDeque<Sample> = VecDeque::new();
    loop {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let options = &inner.options.bandwidth;
        let now = inner.timetable_now();
        match limits_and_shares(&inner).await {
            Ok((limits, shares)) => {
                let mut wanted: HashMap<Option<String>, Rates> = limits
                    .into_iter()
                    .map(|(name, limit)| {
                        let share = shares.get(&name).copied().unwrap_or(1.0);
                        (Some(name), shared(limit.rates_at(&now), share))
                    })
                    .collect();
                let service = options.service.as_ref();
                wanted.insert(None, service.map_or(Rates::UNLIMITED, |l| l.rates_at(&now)));
                let limited: Vec<Option<String>> = match inner.governor.applied.lock() {
                    Ok(map) => map.keys().cloned().collect(),
                    Err(_) => Vec::new(),
                };
                for gone in limited {
                    wanted.entry(gone).or_insert(Rates::UNLIMITED);
                }
                if let Ok(mut kept) = inner.governor.shares.lock() {
                    *kept = shares;
                }
                for (endpoint, rates) in wanted {
                    apply(&inner, endpoint, rates).await;
                }
            }
            Err(err) => tracing::warn!(%err, "reading bandwidth limits"),
        }
        match inner.rclone.call_async(&OrbitBwStats {}).await {
            Ok(stats) => {
                let mut meters: HashMap<Option<String>, MeterStats> = stats
                    .endpoints
                    .into_iter()
                    .map(|(k, v)| (Some(k), v))
                    .collect();
                meters.insert(None, stats.service);
                samples.push_back((Instant::now(), meters));
                if samples.len() > SAMPLES {
                    samples.pop_front();
                }
                if let Ok(mut usage) = inner.governor.usage.lock() {
                    *usage = usage_of(&samples);
                }
            }
            Err(err) => tracing::warn!(%err, "reading bandwidth counters"),
        }
        let pause = options.check_every;
        drop(inner);
        tokio::time::sleep(pause).await;
    }
}

/// The stored endpoints' limits and, when any is set, this process's share of each
/// endpoint's cap (the running transfers are only read when there is a cap to share).
async fn limits_and_shares(
    inner: &Inner,
) -> crate::error::Result<(Vec<(String, Bandwidth)>, HashMap<String, f64>)> {
    let limits: Vec<(String, Bandwidth)> = inner
        .store
        .endpoint_bandwidths()
        .await?
        .into_iter()
        .filter_map(|(name, text)| Some((name, text?.parse().ok()?)))
        .collect();
    let shares = if limits.is_empty() {
        HashMap::new()
    } else {
        shares_of(&inner.store.running_transfers().await?)
    };
    Ok((limits, shares))
}

/// The latest counters with rates over the samples kept.
fn usage_of(samples: &VecDeque<Sample>) -> Vec<BandwidthUsage> {
    let (Some((first_at, first)), Some((last_at, last))) = (samples.front(), samples.back()) else {
        return Vec::new();
    };
    let seconds = last_at.duration_since(*first_at).as_secs_f64();
    let rate = |now: u64, then: u64| {
        if seconds > 0.0 {
            now.saturating_sub(then) as f64 / seconds
        } else {
            0.0
        }
    };
    let mut usage: Vec<BandwidthUsage> = last
        .iter()
        .map(|(endpoint, meter)| {
            let before = first.get(endpoint).copied().unwrap_or_default();
            let limit = |bytes: u64| (bytes > 0).then_some(bytes);
            BandwidthUsage {
                endpoint: endpoint.clone(),
                limit: Rates {
                    upload: limit(meter.upload_limit),
                    download: limit(meter.download_limit),
                },
                upload_rate: rate(meter.upload_bytes, before.upload_bytes),
                download_rate: rate(meter.download_bytes, before.download_bytes),
                upload_bytes: meter.upload_bytes,
                download_bytes: meter.download_bytes,
            }
        })
        .collect();
    usage.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
    usage
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_process_takes_the_share_of_its_running_transfers() {
        let here = format!(
            "{}-{}-w0",
            super::super::sources::host_name(),
            std::process::id()
        );
        let there = "elsewhere-1-w0".to_string();
        let job = |source: &str, destination: &str, owner: &str| {
            (
                source.to_string(),
                destination.to_string(),
                owner.to_string(),
            )
        };
        let shares = shares_of(&[
            job("in", "sftp", &here),
            job("in", "sftp", &there),
            job("in", "sftp", &there),
            job("in", "s3", &there),
            job("disk", "disk", &here),
        ]);
        assert_eq!(shares["sftp"], 1.0 / 3.0);
        assert_eq!(shares["in"], 1.0 / 4.0);
        assert_eq!(shares["s3"], 0.5, "none here: the next one's part");
        assert_eq!(shares["disk"], 1.0, "a job within one endpoint counts once");
        let half = shared(
            Rates {
                upload: Some(4 << 20),
                download: None,
            },
            0.5,
        );
        assert_eq!(
            half,
            Rates {
                upload: Some(2 << 20),
                download: None
            }
        );
        assert_eq!(
            shared(
                Rates {
                    upload: Some(2048),
                    download: None
                },
                0.01
            )
            .upload,
            Some(MIN_RATE)
        );
    }
}
