//! The business keys of idempotency records: one kind per action done once. The strings are
//! stored (DynamoDB `id`), so each kind's text must never change; the tests pin them.

use std::fmt;

/// What is done once, and on what. `to_string()` gives the record key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKey<'a> {
    /// processShipment CONFIRM of a shipment: `confirm#<shipmentId>`.
    Confirm(&'a str),
    /// processShipment REJECT of a shipment, whoever asks (orders or a cancellation):
    /// `reject#<shipmentId>`.
    Reject(&'a str),
    /// A shipment notification from Amazon, by its notification ID: `notification#<id>`.
    Notification(&'a str),
    /// One version of an uploaded file: `upload#<key>#<versionId>`.
    Upload { key: &'a str, version_id: &'a str },
    /// One SKU's price of one upload in one marketplace: `price#<upload>#<sku>#<marketplaceId>`.
    Price {
        upload: &'a str,
        sku: &'a str,
        marketplace_id: &'a str,
    },
    /// createPackages of a shipment: `fulfil#<shipmentId>#createPackages`.
    CreatePackages(&'a str),
    /// updatePackage of one package at a pack version:
    /// `fulfil#<shipmentId>#updatePackage#v<packVersion>#<packageId>`.
    UpdatePackage {
        shipment_id: &'a str,
        pack_version: u32,
        package_id: &'a str,
    },
    /// generateInvoice at a pack version: `fulfil#<shipmentId>#generateInvoice#v<packVersion>`.
    GenerateInvoice {
        shipment_id: &'a str,
        pack_version: u32,
    },
    /// generateShipLabels GENERATE for some packages at a pack version:
    /// `fulfil#<shipmentId>#generateShipLabels#v<packVersion>#<packageId,...>`.
    GenerateLabels {
        shipment_id: &'a str,
        pack_version: u32,
        package_ids: &'a [String],
    },
    /// generateShipLabels REGENERATE of a reprint request, by its number:
    /// `fulfil#<shipmentId>#regenerate#<number>#<packageId,...>`.
    RegenerateLabels {
        shipment_id: &'a str,
        reprint: u32,
        package_ids: &'a [String],
    },
    /// A package reported shipped (updatePackageStatus): `fulfil#<shipmentId>#shipped#<packageId>`.
    Shipped {
        shipment_id: &'a str,
        package_id: &'a str,
    },
    /// The warehouse API's one use of a request signature: `signature#<signatureId>`.
    Signature(&'a str),
    /// A warehouse API POST, by the caller's `Idempotency-Key` header: `warehouse#<key>`.
    Warehouse(&'a str),
}

impl ActionKey<'_> {
    /// The key of the REGENERATE that recovers labels whose GENERATE was applied but whose
    /// answer was lost: this key with `#recover`.
    pub fn recovery(&self) -> String {
        format!("{self}#recover")
    }
}

impl fmt::Display for ActionKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActionKey::Confirm(id) => write!(f, "confirm#{id}"),
            ActionKey::Reject(id) => write!(f, "reject#{id}"),
            ActionKey::Notification(id) => write!(f, "notification#{id}"),
            ActionKey::Upload { key, version_id } => write!(f, "upload#{key}#{version_id}"),
            ActionKey::Price {
                upload,
                sku,
                marketplace_id,
            } => write!(f, "price#{upload}#{sku}#{marketplace_id}"),
            ActionKey::CreatePackages(id) => write!(f, "fulfil#{id}#createPackages"),
            ActionKey::UpdatePackage {
                shipment_id,
                pack_version,
                package_id,
            } => write!(
                f,
                "fulfil#{shipment_id}#updatePackage#v{pack_version}#{package_id}"
            ),
            ActionKey::GenerateInvoice {
                shipment_id,
                pack_version,
            } => write!(f, "fulfil#{shipment_id}#generateInvoice#v{pack_version}"),
            ActionKey::GenerateLabels {
                shipment_id,
                pack_version,
                package_ids,
            } => write!(
                f,
                "fulfil#{shipment_id}#generateShipLabels#v{pack_version}#{}",
                package_ids.join(",")
            ),
            ActionKey::RegenerateLabels {
                shipment_id,
                reprint,
                package_ids,
            } => write!(
                f,
                "fulfil#{shipment_id}#regenerate#{reprint}#{}",
                package_ids.join(",")
            ),
            ActionKey::Shipped {
                shipment_id,
                package_id,
            } => write!(f, "fulfil#{shipment_id}#shipped#{package_id}"),
            ActionKey::Signature(id) => write!(f, "signature#{id}"),
            ActionKey::Warehouse(key) => write!(f, "warehouse#{key}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stored records are found by these exact strings: a change here orphans them.
    #[test]
    fn each_kind_keeps_its_stored_text() {
        let ids = ["P1".to_string(), "P2".to_string()];
        let cases = [
            (ActionKey::Confirm("S1"), "confirm#S1"),
            (ActionKey::Reject("S1"), "reject#S1"),
            (ActionKey::Notification("N1"), "notification#N1"),
            (
                ActionKey::Upload {
                    key: "uploads/prices.csv",
                    version_id: "v7",
                },
                "upload#uploads/prices.csv#v7",
            ),
            (
                ActionKey::Price {
                    upload: "U1",
                    sku: "SKU-1",
                    marketplace_id: "A21TJRUUN4KGV",
                },
                "price#U1#SKU-1#A21TJRUUN4KGV",
            ),
            (ActionKey::CreatePackages("S1"), "fulfil#S1#createPackages"),
            (
                ActionKey::UpdatePackage {
                    shipment_id: "S1",
                    pack_version: 2,
                    package_id: "P1",
                },
                "fulfil#S1#updatePackage#v2#P1",
            ),
            (
                ActionKey::GenerateInvoice {
                    shipment_id: "S1",
                    pack_version: 3,
                },
                "fulfil#S1#generateInvoice#v3",
            ),
            (
                ActionKey::GenerateLabels {
                    shipment_id: "S1",
                    pack_version: 1,
                    package_ids: &ids,
                },
                "fulfil#S1#generateShipLabels#v1#P1,P2",
            ),
            (
                ActionKey::RegenerateLabels {
                    shipment_id: "S1",
                    reprint: 4,
                    package_ids: &ids[..1],
                },
                "fulfil#S1#regenerate#4#P1",
            ),
            (
                ActionKey::Shipped {
                    shipment_id: "S1",
                    package_id: "P2",
                },
                "fulfil#S1#shipped#P2",
            ),
            (ActionKey::Signature("abc"), "signature#abc"),
            (ActionKey::Warehouse("k-1"), "warehouse#k-1"),
        ];
        for (key, text) in cases {
            assert_eq!(key.to_string(), text, "{key:?}");
        }
    }

    #[test]
    fn a_label_recovery_key_extends_its_generate_key() {
        let ids = ["P1".to_string()];
        let key = ActionKey::GenerateLabels {
            shipment_id: "S1",
            pack_version: 1,
            package_ids: &ids,
        };
        assert_eq!(key.recovery(), "fulfil#S1#generateShipLabels#v1#P1#recover");
    }
}
