//! ISO 4217 currency codes a price can be written in.
//!
//! Current codes for money (ISO 4217 list one), without precious metals, bond-market units,
//! the testing code and "no currency" (XAU, XBA, XTS, XXX, ...): no price is written in those.

const CODES: &[&[u8; 3]] = &[
    b"AED", b"AFN", b"ALL", b"AMD", b"ANG", b"AOA", b"ARS", b"AUD", b"AWG", b"AZN", b"BAM", b"BBD",
    b"BDT", b"BGN", b"BHD", b"BIF", b"BMD", b"BND", b"BOB", b"BRL", b"BSD", b"BTN", b"BWP", b"BYN",
    b"BZD", b"CAD", b"CDF", b"CHF", b"CLP", b"CNY", b"COP", b"CRC", b"CUC", b"CUP", b"CVE", b"CZK",
    b"DJF", b"DKK", b"DOP", b"DZD", b"EGP", b"ERN", b"ETB", b"EUR", b"FJD", b"FKP", b"GBP", b"GEL",
    b"GHS", b"GIP", b"GMD", b"GNF", b"GTQ", b"GYD", b"HKD", b"HNL", b"HTG", b"HUF", b"IDR", b"ILS",
    b"INR", b"IQD", b"IRR", b"ISK", b"JMD", b"JOD", b"JPY", b"KES", b"KGS", b"KHR", b"KMF", b"KPW",
    b"KRW", b"KWD", b"KYD", b"KZT", b"LAK", b"LBP", b"LKR", b"LRD", b"LSL", b"LYD", b"MAD", b"MDL",
    b"MGA", b"MKD", b"MMK", b"MNT", b"MOP", b"MRU", b"MUR", b"MVR", b"MWK", b"MXN", b"MYR", b"MZN",
    b"NAD", b"NGN", b"NIO", b"NOK", b"NPR", b"NZD", b"OMR", b"PAB", b"PEN", b"PGK", b"PHP", b"PKR",
    b"PLN", b"PYG", b"QAR", b"RON", b"RSD", b"RUB", b"RWF", b"SAR", b"SBD", b"SCR", b"SDG", b"SEK",
    b"SGD", b"SHP", b"SLE", b"SLL", b"SOS", b"SRD", b"SSP", b"STN", b"SVC", b"SYP", b"SZL", b"THB",
    b"TJS", b"TMT", b"TND", b"TOP", b"TRY", b"TTD", b"TWD", b"TZS", b"UAH", b"UGX", b"USD", b"UYU",
    b"UZS", b"VED", b"VES", b"VND", b"VUV", b"WST", b"XAF", b"XCD", b"XCG", b"XOF", b"XPF", b"YER",
    b"ZAR", b"ZMW", b"ZWG",
];

/// Whether `code` (three upper-case letters) is a known currency.
pub fn is_known(code: &[u8; 3]) -> bool {
    CODES.binary_search(&code).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_is_sorted_and_unique_so_binary_search_works() {
        assert!(CODES.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn knows_marketplace_currencies_and_refuses_others() {
        for c in [
            b"USD", b"EUR", b"GBP", b"JPY", b"INR", b"CAD", b"MXN", b"BRL", b"AED", b"SAR",
        ] {
            assert!(is_known(c), "{}", String::from_utf8_lossy(c));
        }
        for c in [b"XXX", b"XAU", b"ABC", b"usd", b"EU1"] {
            assert!(!is_known(c), "{}", String::from_utf8_lossy(c));
        }
    }
}
