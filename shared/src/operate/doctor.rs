//! `flexbridge doctor`: whether a deployed (or local) stack can do its work, one line per check,
//! each failure saying what is wrong and how to fix it. The CLI gathers the facts (AWS and
//! Amazon calls); what they mean lives here, so that a unit test can drive every verdict.

use serde::Serialize;

use crate::spapi::{SpApiError, SpApiErrorKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    /// Works, but something a seller should know (e.g. no alarm e-mail).
    Warn,
    Fail,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    pub name: String,
    pub verdict: Verdict,
    pub detail: String,
    /// How to fix it (warnings and failures).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            verdict: Verdict::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn warn(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            verdict: Verdict::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn fail(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            verdict: Verdict::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    pub fn push(&mut self, c: Check) {
        self.checks.push(c);
    }

    /// No check failed (warnings allowed).
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.verdict != Verdict::Fail)
    }

    pub fn failed(&self) -> Vec<&Check> {
        self.checks
            .iter()
            .filter(|c| c.verdict == Verdict::Fail)
            .collect()
    }

    /// One line per check, then a summary line.
    pub fn text(&self) -> String {
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        let mut out = String::new();
        for c in &self.checks {
            let tag = match c.verdict {
                Verdict::Ok => "ok  ",
                Verdict::Warn => "warn",
                Verdict::Fail => "FAIL",
            };
            out.push_str(&format!("{tag}  {:width$}  {}", c.name, c.detail));
            if let Some(fix) = &c.fix {
                out.push_str(&format!(" → {fix}"));
            }
            out.push('\n');
        }
        let failed = self.failed().len();
        let warned = self
            .checks
            .iter()
            .filter(|c| c.verdict == Verdict::Warn)
            .count();
        out.push_str(&format!(
            "{} checks: {} ok, {warned} warnings, {failed} failed\n",
            self.checks.len(),
            self.checks.len() - failed - warned
        ));
        out
    }
}

/// The SP-API families flexbridge uses, each with the role Amazon wants for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiFamily {
    Shipments,
    Returns,
    Inventory,
    Notifications,
}

impl ApiFamily {
    pub fn name(self) -> &'static str {
        match self {
            ApiFamily::Shipments => "External Fulfillment Shipments",
            ApiFamily::Returns => "External Fulfillment Returns",
            ApiFamily::Inventory => "External Fulfillment Inventory",
            ApiFamily::Notifications => "Notifications",
        }
    }

    /// The role the application needs (docs/deploy.md, step 2).
    pub fn role(self) -> &'static str {
        match self {
            ApiFamily::Shipments | ApiFamily::Returns | ApiFamily::Inventory => {
                "Direct-to-Consumer Shipping (restricted)"
            }
            ApiFamily::Notifications => {
                "none for destinations (grantless); the shipping role for the subscription"
            }
        }
    }
}

/// The verdict on one cheap read of an API family.
pub fn family_read(family: ApiFamily, result: Result<(), &SpApiError>) -> Check {
    let name = format!("api {}", family.name());
    match result {
        Ok(()) => Check::ok(name, "answers with these credentials"),
        Err(e) if e.kind == SpApiErrorKind::Auth => Check::fail(
            name,
            format!("Login with Amazon refused the secret's credentials: {e}"),
            "check client_id, client_secret and refresh_token in the SP-API secret (docs/deploy.md, step 5)",
        ),
        Err(e) if e.status == Some(403) => Check::fail(
            name,
            format!("Amazon refused the call (403): the application lacks the role {}", family.role()),
            format!(
                "add the role \"{}\" to the developer profile and the application, then authorise again for a new refresh token (docs/deploy.md, steps 2-3)",
                family.role()
            ),
        ),
        Err(e) => Check::fail(
            name,
            format!("the read failed: {e}"),
            "run again; if it persists, check SPAPI_REGION and Amazon's status page",
        ),
    }
}

/// The stack secret's fields, as the stack reads them: the SP-API credentials, and the two
/// HMAC keys (`warehouse::keys`: derived from `signing_key` unless named).
pub fn secret_fields(name: &str, value: Option<&serde_json::Value>) -> Check {
    let check = format!("secret {name}");
    let Some(v) = value else {
        return Check::fail(
            check,
            "the secret has no value",
            "put {\"client_id\", \"client_secret\", \"refresh_token\"} in it with `flexbridge secret set` (docs/deploy.md, step 5)",
        );
    };
    let keyless: Vec<&str> = crate::warehouse::keys::KeyRole::ALL
        .into_iter()
        .filter(|r| r.key_in(&v.to_string().into()).is_err())
        .map(|r| r.field())
        .collect();
    if !keyless.is_empty() {
        return Check::fail(
            check,
            format!(
                "no {} and no signing_key: requests and deliveries cannot be signed",
                keyless.join(", ")
            ),
            "put a key back with `flexbridge secret rotate <warehouse|webhook>` (docs/keys.md)",
        );
    }
    let missing: Vec<&str> = ["client_id", "client_secret", "refresh_token"]
        .into_iter()
        .filter(|k| v[*k].as_str().is_none_or(|s| s.trim().is_empty()))
        .collect();
    if missing.is_empty() {
        Check::ok(
            check,
            "client_id, client_secret and refresh_token are set; both HMAC keys are there",
        )
    } else {
        Check::fail(
            check,
            format!("empty or missing: {}", missing.join(", ")),
            "fill them from the application's LWA credentials and the self-authorisation with `flexbridge secret set` (docs/deploy.md, steps 3 and 5)",
        )
    }
}

/// Every DLQ empty; one line per DLQ.
pub fn dlq(name: &str, depth: i64) -> Check {
    let check = format!("dlq {name}");
    if depth == 0 {
        Check::ok(check, "empty")
    } else {
        Check::fail(
            check,
            format!("{depth} message(s) parked"),
            format!("read why with `flexbridge dlq list {name}`, fix the cause, then `flexbridge dlq redrive {name}`"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spapi::SpApiError;

    fn refused(status: u16) -> SpApiError {
        let mut e = SpApiError::new(SpApiErrorKind::Status, "getShipments", "refused");
        e.status = Some(status);
        e
    }

    #[test]
    fn a_refused_family_names_the_role_and_a_failed_login_names_the_secret() {
        let c = family_read(ApiFamily::Returns, Err(&refused(403)));
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(c.detail.contains("Direct-to-Consumer Shipping"), "{c:?}");
        let c = family_read(
            ApiFamily::Shipments,
            Err(&SpApiError::new(
                SpApiErrorKind::Auth,
                "getShipments",
                "invalid_grant",
            )),
        );
        assert!(c.fix.unwrap().contains("refresh_token"));
        assert_eq!(
            family_read(ApiFamily::Inventory, Ok(())).verdict,
            Verdict::Ok
        );
    }

    #[test]
    fn the_secret_check_names_each_empty_field() {
        let v = serde_json::json!({"client_id": "x", "client_secret": " ", "refresh_token": "", "signing_key": "g"});
        let c = secret_fields("FlexbridgeSecret", Some(&v));
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(c.detail.contains("client_secret, refresh_token"), "{c:?}");
        assert_eq!(
            secret_fields("FlexbridgeSecret", None).verdict,
            Verdict::Fail
        );

        // Credentials filled but the generated key lost (a put that replaced the whole JSON).
        let v = serde_json::json!({"client_id": "x", "client_secret": "s", "refresh_token": "r", "webhook_key": "k"});
        let c = secret_fields("FlexbridgeSecret", Some(&v));
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(
            c.detail.contains("warehouse_key") && !c.detail.contains("webhook_key"),
            "{c:?}"
        );
        let v = serde_json::json!({"client_id": "x", "client_secret": "s", "refresh_token": "r", "signing_key": "g"});
        assert_eq!(
            secret_fields("FlexbridgeSecret", Some(&v)).verdict,
            Verdict::Ok
        );
    }

    #[test]
    fn the_report_fails_on_any_failure_and_prints_one_line_per_check() {
        let mut r = Report::default();
        r.push(dlq("LabelsDLQ", 0));
        r.push(Check::warn("alarm e-mail", "not set", "set AlarmEmail"));
        assert!(r.passed());
        r.push(dlq("UploadsDLQ", 2));
        assert!(!r.passed());
        let text = r.text();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(
            text.contains("FAIL  dlq UploadsDLQ")
                && text.contains("flexbridge dlq redrive UploadsDLQ")
        );
        assert!(
            text.ends_with("3 checks: 1 ok, 1 warnings, 1 failed\n"),
            "{text}"
        );
    }
}
