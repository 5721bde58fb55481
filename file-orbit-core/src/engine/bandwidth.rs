//! The bandwidth governor: in every process that runs transfers, applies each stored
//! endpoint's limit (rate or timetable, read from the store so edits made anywhere apply)
//! and the service-wide limit to this process's rclone, live, and samples the bytes moved
//! for the metrics. The throttling itself is the shim's (`orbit/bwlimit`).

use super::{Inner, Orbit};
use crate::endpoint::{Bandwidth, Endpoint, Rates};
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
        let now = Local::now() + self.inner.options.bandwidth.clock_offset;
        let rates = endpoint
            .bandwidth
            .as_ref()
            .map_or(Rates::UNLIMITED, |limit| limit.rates_at(&now));
        apply(&self.inner, Some(endpoint.name.clone()), rates).await;
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
    let mut parsed: HashMap<String, Bandwidth> = HashMap::new();
    let mut samples: VecDeque<Sample> = VecDeque::new();
    loop {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let options = &inner.options.bandwidth;
        let now: DateTime<Local> = Local::now() + options.clock_offset;
        match inner.store.endpoint_bandwidths().await {
            Ok(limits) => {
                let mut wanted: HashMap<Option<String>, Rates> = limits
                    .into_iter()
                    .filter_map(|(name, text)| {
                        let text = text?;
                        if !parsed.contains_key(&text) {
                            let limit = text.parse().ok()?;
                            parsed.insert(text.clone(), limit);
                        }
                        Some((Some(name), parsed[&text].rates_at(&now)))
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
