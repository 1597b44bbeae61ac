//! Logging setup, the same for every function: JSON lines in Lambda (CloudWatch Logs
//! Insights can query them), compact text on a terminal. The level comes from `RUST_LOG`
//! (the template sets it from the `LogLevel` parameter), default `info`.
//!
//! Never log secrets or buyer addresses: wrap such values in [`Redacted`] when a struct
//! holding them must be `Debug`.

use std::fmt;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; later calls (tests, the local runner) are no-ops.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let in_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let result = if in_lambda {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_current_span(false)
            .with_ansi(false)
            .without_time() // CloudWatch stamps every line
            .try_init()
    } else {
        tracing_subscriber::fmt()
            .compact()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init()
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
