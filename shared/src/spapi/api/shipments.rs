//! External Fulfillment Shipments (2024-09-11): reading shipments, CONFIRM/REJECT, packages,
//! shipping options, invoices and labels. Writes here are never resent blindly (see `spapi`).

use reqwest::Method;

use super::check_page_size;
use crate::spapi::models::*;
use crate::spapi::operation::Operation;
use crate::spapi::transport::{enc, Request};
use crate::spapi::{SpApiClient, SpApiError};

const SHIPMENTS: &str = "/externalFulfillment/2024-09-11/shipments";

impl SpApiClient {
    /// One page of shipments in one status. Pages may be empty while `next_token` is set:
    /// keep following `next_token` until it is `None`.
    pub async fn get_shipments(&self, q: &GetShipmentsQuery) -> Result<ShipmentsPage, SpApiError> {
        let op = Operation::GetShipments;
        if !q.status.is_known() {
            return Err(SpApiError::invalid_input(
                op.id(),
                format!("status {:?} is not a shipment status", q.status.as_str()),
            ));
        }
        check_page_size(op, q.max_results)?;
        let req = Request::new(op, Method::GET, SHIPMENTS.to_string())
            .query("locationId", q.location_id.as_ref())
            .query("marketplaceId", q.marketplace_id.as_ref())
            .query("channelName", q.channel_name.as_ref())
            .query("status", Some(q.status.as_str()))
            .query(
                "lastUpdatedAfter",
                q.last_updated_after.map(|t| t.to_rfc3339()),
            )
            .query(
                "lastUpdatedBefore",
                q.last_updated_before.map(|t| t.to_rfc3339()),
            )
            .query("maxResults", q.max_results)
            .query("paginationToken", q.pagination_token.as_ref());
        self.call_with(req, ShipmentsPage::from_json).await
    }

    pub async fn get_shipment(&self, shipment_id: &str) -> Result<Shipment, SpApiError> {
        let req = Request::new(
            Operation::GetShipment,
            Method::GET,
            format!("{SHIPMENTS}/{}", enc(shipment_id)),
        );
        self.call_json(req).await
    }

    /// CONFIRM or REJECT a shipment (204). Not resent on 5xx/timeout: see the module docs.
    pub async fn process_shipment(
        &self,
        shipment_id: &str,
        operation: &ShipmentOperation,
    ) -> Result<(), SpApiError> {
        let op = Operation::ProcessShipment;
        let mut req = Request::new(
            op,
            Method::POST,
            format!("{SHIPMENTS}/{}", enc(shipment_id)),
        )
        .query("operation", Some(operation.as_str()));
        if let ShipmentOperation::Reject(body) = operation {
            if body.line_items.is_empty() {
                return Err(SpApiError::invalid_input(
                    op.id(),
                    "a REJECT needs at least one line item",
                ));
            }
            req = req.json(body)?;
        }
        self.call_empty(req).await
    }

    pub async fn create_packages(
        &self,
        shipment_id: &str,
        packages: &[Package],
    ) -> Result<(), SpApiError> {
        let op = Operation::CreatePackages;
        if packages.is_empty() {
            return Err(SpApiError::invalid_input(
                op.id(),
                "at least one package is required",
            ));
        }
        validate_packages(op, packages)?;
        let body = Packages {
            packages: packages.to_vec(),
        };
        let req = Request::new(
            op,
            Method::POST,
            format!("{SHIPMENTS}/{}/packages", enc(shipment_id)),
        )
        .json(&body)?;
        self.call_empty(req).await
    }

    /// Replaces a package; the shipment goes back to PACKAGE_CREATED (labels and invoice must be
    /// generated again).
    pub async fn update_package(
        &self,
        shipment_id: &str,
        package: &Package,
    ) -> Result<(), SpApiError> {
        let op = Operation::UpdatePackage;
        validate_packages(op, std::slice::from_ref(package))?;
        let req = Request::new(
            op,
            Method::PUT,
            format!(
                "{SHIPMENTS}/{}/packages/{}",
                enc(shipment_id),
                enc(&package.id)
            ),
        )
        .json(package)?;
        self.call_empty(req).await
    }

    /// Sets a package's delivery status (body form; the query form is deprecated).
    pub async fn update_package_status(
        &self,
        shipment_id: &str,
        package_id: &str,
        status: &PackageDeliveryStatus,
    ) -> Result<(), SpApiError> {
        let op = Operation::UpdatePackageStatus;
        if status.status.as_ref().is_some_and(|s| !s.is_known()) {
            return Err(SpApiError::invalid_input(op.id(), "unknown package status"));
        }
        if status
            .reason
            .as_ref()
            .is_some_and(|r| r.chars().count() > 128)
        {
            return Err(SpApiError::invalid_input(
                op.id(),
                "reason is longer than 128 characters",
            ));
        }
        let req = Request::new(
            op,
            Method::PATCH,
            format!(
                "{SHIPMENTS}/{}/packages/{}",
                enc(shipment_id),
                enc(package_id)
            ),
        )
        .json(status)?;
        self.call_empty(req).await
    }

    /// Shipping options for one package (none for Seller Flex).
    pub async fn retrieve_shipping_options(
        &self,
        shipment_id: &str,
        package_id: &str,
    ) -> Result<ShippingOptionsResponse, SpApiError> {
        let req = Request::new(
            Operation::RetrieveShippingOptions,
            Method::GET,
            format!("{SHIPMENTS}/{}/shippingOptions", enc(shipment_id)),
        )
        .query("packageId", Some(package_id));
        self.call_json(req).await
    }

    pub async fn generate_invoice(&self, shipment_id: &str) -> Result<InvoiceResponse, SpApiError> {
        let req = Request::new(
            Operation::GenerateInvoice,
            Method::POST,
            format!("{SHIPMENTS}/{}/invoice", enc(shipment_id)),
        );
        self.call_json(req).await
    }

    pub async fn retrieve_invoice(&self, shipment_id: &str) -> Result<InvoiceResponse, SpApiError> {
        let req = Request::new(
            Operation::RetrieveInvoice,
            Method::GET,
            format!("{SHIPMENTS}/{}/invoice", enc(shipment_id)),
        );
        self.call_json(req).await
    }

    /// GENERATE (or deliberately REGENERATE) labels; MFN passes the chosen shipping option.
    /// One call can partly fail: check each label's `status`.
    pub async fn generate_ship_labels(
        &self,
        shipment_id: &str,
        operation: LabelOperation,
        shipping_option_id: Option<&str>,
        input: &ShipLabelsInput,
    ) -> Result<ShipLabelsResponse, SpApiError> {
        let op = Operation::GenerateShipLabels;
        if input.package_ids.is_empty() || input.package_ids.len() > 50 {
            return Err(SpApiError::invalid_input(
                op.id(),
                format!(
                    "{} package ids; 1 to 50 are allowed",
                    input.package_ids.len()
                ),
            ));
        }
        let req = Request::new(
            op,
            Method::PUT,
            format!("{SHIPMENTS}/{}/shipLabels", enc(shipment_id)),
        )
        .query("shippingOptionId", shipping_option_id)
        .query("operation", Some(operation.as_str()))
        .json(input)?;
        self.call_json(req).await
    }
}

fn validate_packages(op: Operation, packages: &[Package]) -> Result<(), SpApiError> {
    for p in packages {
        let problem = if p.id.is_empty() {
            Some("a package has no id".to_string())
        } else if p.package_line_items.is_empty() {
            Some(format!("package {} has no line items", p.id))
        } else if !p.weight.weight_unit.is_known()
            || !p.dimensions.length.dimension_unit.is_known()
            || !p.dimensions.width.dimension_unit.is_known()
            || !p.dimensions.height.dimension_unit.is_known()
        {
            Some(format!("package {} has a missing or unknown unit", p.id))
        } else if [
            &p.weight.value,
            &p.dimensions.length.value,
            &p.dimensions.width.value,
            &p.dimensions.height.value,
        ]
        .iter()
        .any(|v| v.to_f64().is_none_or(|x| x <= 0.0))
        {
            Some(format!(
                "package {} has a missing or non-positive weight or dimension",
                p.id
            ))
        } else {
            None
        };
        if let Some(msg) = problem {
            return Err(SpApiError::invalid_input(op.id(), msg));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spapi::SpApiErrorKind;

    #[tokio::test]
    async fn invalid_input_is_refused_before_sending() {
        let c = super::super::offline_client();
        let e = c
            .get_shipments(&GetShipmentsQuery {
                max_results: Some(101),
                ..GetShipmentsQuery::status(ShipmentStatus::Accepted)
            })
            .await
            .unwrap_err();
        assert_eq!(e.kind, SpApiErrorKind::InvalidInput);
        let e = c
            .get_shipments(&GetShipmentsQuery::default())
            .await
            .unwrap_err();
        assert_eq!(e.kind, SpApiErrorKind::InvalidInput);
        let e = c
            .create_packages("S", &[Package::default()])
            .await
            .unwrap_err();
        assert_eq!(e.kind, SpApiErrorKind::InvalidInput);
    }
}
