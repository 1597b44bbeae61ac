//! Ship-by awareness: a shipment still not labelled `fulfilment_ship_by_alert_minutes` before its
//! ship-by time (`expectedShippingDateTimeInUTC`) raises `ShipByAtRisk` and the CloudWatch
//! metric `ShipByAtRisk` (dimension `Location`), once per shipment. Run by the order poller.

use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::events::{EventName, OutboundEvent, ShipByAtRisk};
use crate::fulfilment::policy;
use crate::fulfilment::worker::Fulfiller;
use crate::runtime::Invocation;
use crate::shipment::{parse_amazon_time, ShipmentRecord, Stage};

use crate::metrics::Alert;

/// Default minutes before ship-by.
pub const DEFAULT_ALERT_MINUTES: i64 = 120;

impl Fulfiller {
    /// Raises the alert for every unlabelled shipment now inside its window. Returns how many.
    pub async fn ship_by_sweep(&self, now: DateTime<Utc>, inv: &Invocation) -> Result<usize> {
        self.each_open(
            &[Stage::Confirmed, Stage::HandedOver, Stage::Packed],
            inv,
            |r| self.ship_by_one(r, now),
        )
        .await
    }

    /// The ship-by check of one shipment; whether it raised the alert.
    async fn ship_by_one(&self, r: ShipmentRecord, now: DateTime<Utc>) -> Result<bool> {
        let f = r.fulfilment();
        let Some(ship_by) = r.ship_by.as_deref().and_then(parse_amazon_time) else {
            return Ok(false);
        };
        if f.ship_by_alerted {
            return Ok(false);
        }
        let minutes: i64 = policy::for_location(
            self.settings.as_ref(),
            policy::SHIP_BY_ALERT_MINUTES,
            &r.location_id,
            DEFAULT_ALERT_MINUTES,
        )
        .await?;
        if ship_by - chrono::Duration::minutes(minutes) > now {
            return Ok(false);
        }
        let hub = self.hub(&r.location_id).await?;
        let ev = OutboundEvent::new(
            EventName::ShipByAtRisk,
            &r.id,
            now,
            ShipByAtRisk {
                shipment_id: r.id.clone(),
                hub,
                ship_by: crate::shipment::sort_time(ship_by),
                stage: r.stage.as_str().into(),
                minutes_before: (ship_by - now).num_minutes(),
            },
        )?;
        self.events.publish(&[ev]).await?;
        let mut r = r;
        let mut f = f;
        f.ship_by_alerted = true;
        r.fulfilment = Some(f);
        // A lost race means another writer moved it on; the event ID is stable.
        if self.save(&mut r).await? {
            self.metrics
                .alert(Alert::ShipByAtRisk, &[("Location", &r.location_id)]);
            tracing::warn!(shipment_id = %r.id, ship_by = %ship_by, alert = %Alert::ShipByAtRisk, "shipment not labelled close to its ship-by time");
            return Ok(true);
        }
        Ok(false)
    }
}
