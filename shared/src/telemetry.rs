//! Logging setup, the same for every function: JSON lines in Lambda (CloudWatch Logs
//! Insights can query them), compact text on a terminal. The level comes from `RUST_LOG`
//! (the template sets it from the `LogLevel` parameter), default `info`, and applies to our
//! crates only ([`filter_for`]).
//!
//! Never log secrets or buyer addresses: wrap such values in [`Redacted`] when a struct
//! holding them must be `Debug`.

use std::fmt;

use tracing_subscriber::EnvFilter;

/// The JSON lines every function writes in Lambda, to `writer`: one object per event with
/// `level`, `target`, `fields` and, inside a [`shipment_span`], `span` with the shipment's
/// `shipment_id` and `correlation_id`. Public so tests read exactly what CloudWatch gets.
pub fn json_subscriber<W>(writer: W, filter: EnvFilter) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_ansi(false)
        .without_time() // CloudWatch stamps every line
        .with_writer(writer)
        .finish()
}

/// A new correlation ID (given to a shipment when it is first stored).
pub fn new_correlation_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The span every log line about one shipment is written in, from the poll that stores it to
/// the label job: CloudWatch Logs Insights finds its whole story with
/// `filter span.correlation_id = "…"`.
pub fn shipment_span(shipment_id: &str, correlation_id: Option<&str>) -> tracing::Span {
    tracing::info_span!(
        "shipment",
        shipment_id,
        correlation_id = correlation_id.unwrap_or("-")
    )
}

/// The crates whose lines `LogLevel` turns up: ours (the library and every function crate).
/// `tests/tests/e2e/foundation_template.rs` checks the list against `functions/`.
pub const OUR_CRATES: &[&str] = &[
    "flexbridge",
    "cancellation_worker",
    "health_report",
    "heartbeat",
    "inventory_pusher",
    "label_worker",
    "notification_consumer",
    "order_poller",
    "outbound_webhook",
    "price_pusher",
    "returns_poller",
    "upload_ingest",
    "warehouse_api",
];

/// The filter for a `RUST_LOG` value (the template sets it from `LogLevel`). A bare level
/// applies to our crates only, everything else stays at `info` at most: at `debug` or `trace`
/// lambda_runtime and the HTTP stack log raw events and bodies (buyer addresses, signed label
/// links). A value with directives (`=`, `,`) is taken as written, for an operator who asks
/// for exactly that.
pub fn filter_for(rust_log: Option<&str>) -> EnvFilter {
    let value = rust_log
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or("info");
    if value.contains(['=', ',']) {
        if let Ok(f) = EnvFilter::try_new(value) {
            return f;
        }
    }
    let level = match value.to_ascii_lowercase().as_str() {
        l @ ("off" | "error" | "warn" | "info" | "debug" | "trace") => l.to_string(),
        _ => "info".to_string(),
    };
    let others = if matches!(level.as_str(), "debug" | "trace") {
        "info"
    } else {
        level.as_str()
    };
    let ours: Vec<String> = OUR_CRATES.iter().map(|c| format!("{c}={level}")).collect();
    EnvFilter::new(format!("{others},{}", ours.join(",")))
}

/// Installs the global subscriber; later calls (tests, the local runner) are no-ops.
pub fn init() {
    let filter = filter_for(std::env::var("RUST_LOG").ok().as_deref());
    let in_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let result = if in_lambda {
        tracing::subscriber::set_global_default(json_subscriber(std::io::stdout, filter))
            .map_err(|e| e.to_string())
    } else {
        tracing_subscriber::fmt()
            .compact()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init()
            .map_err(|e| e.to_string())
    };
    // Err only means a subscriber is already installed, which is fine.
    let _ = result;
}

/// A value that prints as `***` in `Debug` and `Display`, so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Redacted<T>(pub T);

impl<T> Redacted<T> {
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<T> fmt::Display for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_never_prints_its_value() {
        let r = Redacted("s3cr3t".to_string());
        assert_eq!(format!("{r:?} {r}"), "*** ***");
        assert_eq!(r.expose(), "s3cr3t");
    }

    #[derive(Clone, Default)]
    struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_in_a_shipment_span_are_json_with_its_correlation_id() {
        let buf = Buffer::default();
        let writer = buf.clone();
        let sub = json_subscriber(move || writer.clone(), EnvFilter::new("info"));
        let id = new_correlation_id();
        assert_eq!(id.len(), 32);
        assert_ne!(id, new_correlation_id());
        tracing::subscriber::with_default(sub, || {
            let _g = shipment_span("S1", Some(&id)).entered();
            tracing::info!(step = "x", "label step done");
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["fields"]["message"], "label step done");
        assert_eq!(line["span"]["correlation_id"], id.as_str());
        assert_eq!(line["span"]["shipment_id"], "S1");
    }

    #[test]
    fn a_bare_log_level_turns_up_our_crates_only() {
        use tracing::Level;
        let under = |value: Option<&str>, check: &dyn Fn()| {
            let sub = tracing_subscriber::fmt()
                .with_env_filter(filter_for(value))
                .with_writer(std::io::sink)
                .finish();
            tracing::subscriber::with_default(sub, check);
        };
        under(Some("trace"), &|| {
            assert!(tracing::enabled!(target: "flexbridge::spapi", Level::TRACE));
            assert!(tracing::enabled!(target: "label_worker", Level::DEBUG));
            // lambda_runtime logs raw events (bodies) at debug and trace.
            assert!(!tracing::enabled!(target: "lambda_runtime", Level::TRACE));
            assert!(!tracing::enabled!(target: "lambda_runtime", Level::DEBUG));
            assert!(tracing::enabled!(target: "lambda_runtime", Level::INFO));
        });
        under(None, &|| {
            assert!(!tracing::enabled!(target: "flexbridge::spapi", Level::DEBUG));
            assert!(tracing::enabled!(target: "flexbridge::spapi", Level::INFO));
            assert!(tracing::enabled!(target: "lambda_runtime", Level::INFO));
        });
        under(Some("warn"), &|| {
            assert!(!tracing::enabled!(target: "flexbridge::spapi", Level::INFO));
            assert!(!tracing::enabled!(target: "hyper", Level::INFO));
        });
        // Directives are taken as written.
        under(Some("warn,lambda_runtime=trace"), &|| {
            assert!(tracing::enabled!(target: "lambda_runtime", Level::TRACE));
            assert!(!tracing::enabled!(target: "flexbridge::spapi", Level::INFO));
        });
    }

    #[test]
    fn init_installs_the_global_subscriber_and_a_second_call_is_harmless() {
        init();
        assert!(
            tracing::dispatcher::has_been_set(),
            "init() must install a global subscriber"
        );
        init(); // must neither panic nor replace the first one
        assert!(tracing::dispatcher::has_been_set());
        if std::env::var_os("RUST_LOG").is_none() {
            // The default level is info: info lines are written, debug lines are not.
            assert!(tracing::enabled!(tracing::Level::INFO));
            assert!(!tracing::enabled!(tracing::Level::DEBUG));
        }
    }
}
