//! Where the engine's time goes: a tracing layer that adds up, per span name, how many
//! spans closed and the wall time each lived (creation to close), for the engine's phase
//! spans (`lease_many`, `execute`, `endpoints`, `transfer_start`, `transfer_wait`,
//! `complete_many`, and rclone's `rclone_job_start`, `poll_sleep`, `poll_status`,
//! `stats_delete`, ...).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tracing::span::{Attributes, Id};
use tracing::{Subscriber, span};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Span name → (spans closed, their total wall time).
pub type Totals = BTreeMap<&'static str, (u64, Duration)>;

static TOTALS: Mutex<Totals> = Mutex::new(BTreeMap::new());

/// Installs the layer for the whole process (spans only; events stay off).
pub fn install() {
    use tracing_subscriber::prelude::*;
    let spans_only = tracing_subscriber::filter::filter_fn(|meta| meta.is_span());
    tracing_subscriber::registry()
        .with(PhaseLayer.with_filter(spans_only))
        .init();
}

/// The totals since the last call, which starts new ones.
pub fn take() -> Totals {
    std::mem::take(&mut *TOTALS.lock().unwrap())
}

struct PhaseLayer;

struct Born(Instant);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for PhaseLayer {
    fn on_new_span(&self, _: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Born(Instant::now()));
        }
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(born) = span.extensions().get::<Born>().map(|born| born.0) else {
            return;
        };
        let mut totals = TOTALS.lock().unwrap();
        let entry = totals.entry(span.name()).or_default();
        entry.0 += 1;
        entry.1 += born.elapsed();
    }
}
