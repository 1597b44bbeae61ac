//! The operations the client calls, and what is known about each: its model operationId, its
//! API, Amazon's default rate limit, whether it may be resent blindly, which token it needs.
//! The one list of them: [`Operation::ALL`] (an API's share: [`Api::operations`]).

use std::fmt;

use crate::ratelimit::Limit;

/// Shipments' limits are unpublished: 1 request/s, burst 2 here (tuned from
/// `x-amzn-RateLimit-Limit` at run time); also the limit of an operation name we do not know.
pub const UNPUBLISHED_LIMIT: Limit = Limit::new(1.0, 2);

/// The SP-API an operation belongs to; each has its module in `spapi::api`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// External Fulfillment Shipments (2024-09-11).
    Shipments,
    /// External Fulfillment Inventory (2024-09-11).
    Inventory,
    /// External Fulfillment Returns (2024-09-11).
    Returns,
    /// Listings Items (2021-08-01).
    Listings,
    /// Notifications (v1).
    Notifications,
}

impl Api {
    /// Amazon's published default rate / burst of each of the API's operations.
    pub fn default_limit(&self) -> Limit {
        match self {
            Api::Shipments => UNPUBLISHED_LIMIT,
            Api::Inventory => Limit::new(50.0, 100),
            Api::Returns => Limit::new(10.0, 20),
            Api::Listings => Limit::new(5.0, 5),
            Api::Notifications => Limit::new(1.0, 5),
        }
    }

    /// The API's operations, in [`Operation::ALL`]'s order.
    pub fn operations(self) -> impl Iterator<Item = Operation> {
        Operation::ALL
            .into_iter()
            .filter(move |op| op.api() == self)
    }
}

/// The operations the client calls; each has its own rate-limit bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    GetShipments,
    GetShipment,
    ProcessShipment,
    CreatePackages,
    UpdatePackage,
    UpdatePackageStatus,
    RetrieveShippingOptions,
    GenerateInvoice,
    RetrieveInvoice,
    GenerateShipLabels,
    BatchInventory,
    ListReturns,
    GetReturn,
    PatchListingsItem,
    GetSubscription,
    CreateSubscription,
    GetDestinations,
    CreateDestination,
}

impl Operation {
    pub const ALL: [Operation; 18] = [
        Operation::GetShipments,
        Operation::GetShipment,
        Operation::ProcessShipment,
        Operation::CreatePackages,
        Operation::UpdatePackage,
        Operation::UpdatePackageStatus,
        Operation::RetrieveShippingOptions,
        Operation::GenerateInvoice,
        Operation::RetrieveInvoice,
        Operation::GenerateShipLabels,
        Operation::BatchInventory,
        Operation::ListReturns,
        Operation::GetReturn,
        Operation::PatchListingsItem,
        Operation::GetSubscription,
        Operation::CreateSubscription,
        Operation::GetDestinations,
        Operation::CreateDestination,
    ];

    /// The model's operationId.
    /// The API the operation belongs to.
    pub fn api(&self) -> Api {
        match self {
            Operation::GetShipments
            | Operation::GetShipment
            | Operation::ProcessShipment
            | Operation::CreatePackages
            | Operation::UpdatePackage
            | Operation::UpdatePackageStatus
            | Operation::RetrieveShippingOptions
            | Operation::GenerateInvoice
            | Operation::RetrieveInvoice
            | Operation::GenerateShipLabels => Api::Shipments,
            Operation::BatchInventory => Api::Inventory,
            Operation::ListReturns | Operation::GetReturn => Api::Returns,
            Operation::PatchListingsItem => Api::Listings,
            Operation::GetSubscription
            | Operation::CreateSubscription
            | Operation::GetDestinations
            | Operation::CreateDestination => Api::Notifications,
        }
    }

    pub fn id(&self) -> &'static str {
        match self {
            Operation::GetShipments => "getShipments",
            Operation::GetShipment => "getShipment",
            Operation::ProcessShipment => "processShipment",
            Operation::CreatePackages => "createPackages",
            Operation::UpdatePackage => "updatePackage",
            Operation::UpdatePackageStatus => "updatePackageStatus",
            Operation::RetrieveShippingOptions => "retrieveShippingOptions",
            Operation::GenerateInvoice => "generateInvoice",
            Operation::RetrieveInvoice => "retrieveInvoice",
            Operation::GenerateShipLabels => "generateShipLabels",
            Operation::BatchInventory => "batchInventory",
            Operation::ListReturns => "listReturns",
            Operation::GetReturn => "getReturn",
            Operation::PatchListingsItem => "patchListingsItem",
            Operation::GetSubscription => "getSubscription",
            Operation::CreateSubscription => "createSubscription",
            Operation::GetDestinations => "getDestinations",
            Operation::CreateDestination => "createDestination",
        }
    }

    /// Amazon's published default rate / burst; Shipments' are unpublished (1 / 2 here, tuned
    /// Amazon's published default rate / burst: its API's ([`Api::default_limit`]).
    pub fn default_limit(&self) -> Limit {
        self.api().default_limit()
    }

    /// Whether sending the same request twice has the effect of sending it once, so a 5xx or
    /// timeout may be retried blindly.
    pub fn is_idempotent(&self) -> bool {
        !matches!(
            self,
            Operation::ProcessShipment
                | Operation::CreatePackages
                | Operation::UpdatePackage
                | Operation::UpdatePackageStatus
                | Operation::GenerateInvoice
                | Operation::GenerateShipLabels
                | Operation::CreateSubscription
                | Operation::CreateDestination
        )
    }

    /// Grantless operations use the application's own token (client-credentials grant).
    pub fn is_grantless(&self) -> bool {
        matches!(
            self,
            Operation::GetDestinations | Operation::CreateDestination
        )
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_limits_follow_amazon() {
        assert_eq!(
            Operation::BatchInventory.default_limit(),
            Limit::new(50.0, 100)
        );
        assert_eq!(Operation::GetReturn.default_limit(), Limit::new(10.0, 20));
        assert_eq!(
            Operation::PatchListingsItem.default_limit(),
            Limit::new(5.0, 5)
        );
        assert_eq!(
            Operation::ProcessShipment.default_limit(),
            Limit::new(1.0, 2)
        );
        assert!(!Operation::ProcessShipment.is_idempotent());
        assert!(Operation::BatchInventory.is_idempotent());
    }

    #[test]
    fn every_operation_belongs_to_one_api() {
        let apis = [
            Api::Shipments,
            Api::Inventory,
            Api::Returns,
            Api::Listings,
            Api::Notifications,
        ];
        let total: usize = apis.iter().map(|a| a.operations().count()).sum();
        assert_eq!(total, Operation::ALL.len());
        assert_eq!(Api::Shipments.operations().count(), 10);
        assert_eq!(
            Api::Notifications.operations().collect::<Vec<_>>(),
            [
                Operation::GetSubscription,
                Operation::CreateSubscription,
                Operation::GetDestinations,
                Operation::CreateDestination,
            ]
        );
    }
}
