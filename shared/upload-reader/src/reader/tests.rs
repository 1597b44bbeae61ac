use super::*;

/// A reader that hands out at most `n` bytes a call, to split characters and rows across reads.
struct Dribble<'a>(&'a [u8], usize);

impl Read for Dribble<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.1.min(self.0.len()).min(buf.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[allow(clippy::type_complexity)]
#[derive(Debug, Default)]
struct Collected {
    catalog: Vec<(
        u64,
        String,
        String,
        Option<String>,
        Option<bool>,
        Option<u32>,
    )>,
    prices: Vec<(u64, String, String, String, Option<String>, bool)>,
    stock: Vec<(u64, String, String, u32, Option<String>)>,
    errors: Vec<RowError>,
    extra: Vec<String>,
    delimiter: u8,
    bom: bool,
}

fn read_all(kind: Kind, input: impl Read) -> Result<Collected, FileRejection> {
    let mut r = UploadReader::open(kind, input)?;
    let mut out = Collected {
        extra: r.extra_columns().to_vec(),
        delimiter: r.dialect().delimiter,
        bom: r.dialect().bom,
        ..Default::default()
    };
    while let Some(p) = r.next_row()? {
        match p.outcome {
            Outcome::Catalog(c) => out.catalog.push((
                p.line,
                c.sku.to_string(),
                c.asin.to_string(),
                c.title.map(str::to_string),
                c.enabled,
                c.safety_stock,
            )),
            Outcome::Price(c) => out.prices.push((
                p.line,
                c.sku.to_string(),
                c.price.to_string(),
                c.currency_str().to_string(),
                c.marketplace_id.map(str::to_string),
                c.force,
            )),
            Outcome::Inventory(c) => out.stock.push((
                p.line,
                c.hub.to_string(),
                c.sku.to_string(),
                c.on_hand,
                c.as_of.map(|t| t.to_rfc3339()),
            )),
            Outcome::Rejected(e) => out.errors.extend_from_slice(e),
        }
    }
    Ok(out)
}

fn catalog(s: &str) -> Result<Collected, FileRejection> {
    read_all(Kind::Catalog, s.as_bytes())
}

fn prices(s: &str) -> Result<Collected, FileRejection> {
    read_all(Kind::Prices, s.as_bytes())
}

fn reasons(c: &Collected) -> Vec<(u64, &str, &str)> {
    c.errors
        .iter()
        .map(|e| (e.line, e.column.as_str(), e.reason.as_str()))
        .collect()
}

#[test]
fn detects_comma_semicolon_and_tab_from_the_header() {
    for (d, text) in [
        (b',', "sku,asin,title\nA,B07XJ8C8F5,\"Mug; red, large\"\n"),
        (b';', "sku;asin;title\nA;B07XJ8C8F5;\"Mug; red, large\"\n"),
        (b'\t', "sku\tasin\ttitle\nA\tB07XJ8C8F5\tMug; red, large\n"),
    ] {
        let c = catalog(text).unwrap();
        assert_eq!(c.delimiter, d);
        assert_eq!(c.catalog.len(), 1, "{c:?}");
        assert_eq!(c.catalog[0].3.as_deref(), Some("Mug; red, large"));
    }
}

#[test]
fn bom_crlf_and_quoted_newlines() {
    let text = "\u{feff}SKU,ASIN,Title\r\nA-1,B07XJ8C8F5,\"two\r\nlines, \"\"quoted\"\"\"\r\nA-2,B07XJ8C8F6,x\r\n";
    let c = catalog(text).unwrap();
    assert!(c.bom);
    assert_eq!(c.catalog.len(), 2, "{c:?}");
    assert_eq!(c.catalog[0].3.as_deref(), Some("two\r\nlines, \"quoted\""));
    assert_eq!(c.catalog[0].0, 2);
    assert_eq!(
        c.catalog[1].0, 4,
        "line numbers count the embedded line break"
    );
    assert_eq!(c.catalog[1].1, "A-2");
}

#[test]
fn columns_in_any_order_any_case_and_extras_reported() {
    let c =
        catalog("Title, ASIN ,Colour,Product Type,sku\nMug,B07XJ8C8F5,red,KITCHEN,M-1\n").unwrap();
    assert_eq!(c.extra, vec!["Colour"]);
    assert_eq!(c.catalog[0].1, "M-1");
    assert_eq!(c.catalog[0].2, "B07XJ8C8F5");
}

#[test]
fn reads_across_tiny_chunks_splitting_characters() {
    let text = "sku,asin,title\nÉ-1,B07XJ8C8F5,Tasse à café\n€-2,B07XJ8C8F6,日本語\n";
    for n in 1..7 {
        let c = read_all(Kind::Catalog, Dribble(text.as_bytes(), n)).unwrap();
        assert_eq!(c.catalog.len(), 2, "chunk {n}");
        assert_eq!(c.catalog[0].1, "É-1");
        assert_eq!(c.catalog[1].3.as_deref(), Some("日本語"));
    }
}

#[test]
fn whole_file_rejections() {
    let kind = |r: Result<Collected, FileRejection>| r.unwrap_err().kind;
    assert_eq!(kind(catalog("")), RejectionKind::Empty);
    assert_eq!(kind(catalog("\u{feff}\r\n \n")), RejectionKind::Empty);
    assert_eq!(
        kind(catalog("sku,title\nA,x\n")),
        RejectionKind::MissingColumns
    );
    assert_eq!(
        kind(catalog("A-1,B07XJ8C8F5\n")),
        RejectionKind::MissingColumns
    );
    assert_eq!(
        kind(catalog("sku,asin,SKU\nA,B07XJ8C8F5,B\n")),
        RejectionKind::DuplicateColumns
    );
    assert_eq!(
        kind(prices("sku,price\nA,1\n")),
        RejectionKind::MissingColumns
    );

    let latin1 = b"sku,asin,title\nA,B07XJ8C8F5,caf\xe9\n";
    let e = read_all(Kind::Catalog, &latin1[..]).unwrap_err();
    assert_eq!(e.kind, RejectionKind::NotUtf8);
    assert!(
        e.message.contains("0xE9") && e.message.contains("offset 31"),
        "{}",
        e.message
    );

    let e = read_all(Kind::Catalog, &b"PK\x03\x04\x14\x00\x06\x00"[..]).unwrap_err();
    assert_eq!(e.kind, RejectionKind::Binary);
    assert!(e.message.contains("xlsx"), "{}", e.message);
    let e = read_all(Kind::Catalog, &b"\xff\xfes\x00k\x00u\x00"[..]).unwrap_err();
    assert!(e.message.contains("UTF-16"), "{}", e.message);
    let e = read_all(Kind::Catalog, &b"sku,asin\nA,B07XJ8C8F5\n\x00\x01\x02"[..]).unwrap_err();
    assert_eq!(e.kind, RejectionKind::Binary);

    let m = catalog("sku,title\n").unwrap_err().message;
    assert!(
        m.contains("missing required column asin") && m.contains("found: sku, title"),
        "{m}"
    );
}

#[test]
fn a_bad_byte_deep_in_the_file_rejects_it_even_after_good_rows() {
    let mut text = b"sku,asin\n".to_vec();
    for i in 0..10_000 {
        text.extend_from_slice(format!("S{i},B07XJ8C8F5\n").as_bytes());
    }
    text.extend_from_slice(b"bad\xff,B07XJ8C8F5\n");
    let err = read_all(Kind::Catalog, &text[..]).unwrap_err();
    assert_eq!(err.kind, RejectionKind::NotUtf8);
}

#[test]
fn header_only_is_a_file_without_rows() {
    let c = catalog("sku,asin\n").unwrap();
    assert!(c.catalog.is_empty() && c.errors.is_empty());
    let c = catalog("sku,asin").unwrap();
    assert!(c.catalog.is_empty());
}

#[test]
fn catalog_row_errors_skip_the_row_and_keep_the_rest() {
    let c = catalog(concat!(
        "sku,asin,enabled,safety_stock,max_quantity\n",
        "OK-1,B07XJ8C8F5,yes,2,10\n",
        "OK-2,b07xj8c8f5,,,\n",
        ",B07XJ8C8F5,,,\n",
        "0123456789012345678901234567890123456789X,B07XJ8C8F5,,,\n",
        "OK-3,B07XJ8C8F5,maybe,-1,1.5\n",
        "OK-1,B07XJ8C8F6,,,\n",
        ",,,,\n",
        "OK-4,B07XJ8C8F7\n",
        "OK-5,B07XJ8C8F8,,,,surprise\n",
    ))
    .unwrap();
    let ok: Vec<&str> = c.catalog.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(ok, ["OK-1", "OK-4"]);
    assert_eq!(c.catalog[0].4, Some(true));
    assert_eq!(c.catalog[0].5, Some(2));
    let r = reasons(&c);
    assert!(r[0].0 == 3 && r[0].1 == "asin", "{r:?}");
    assert!(r[1].0 == 4 && r[1].2.contains("SKU is empty"), "{r:?}");
    assert!(r[2].0 == 5 && r[2].2.contains("41 characters"), "{r:?}");
    assert_eq!((r[3].0, r[3].1), (6, "enabled"));
    assert_eq!((r[4].0, r[4].1), (6, "safety_stock"));
    assert_eq!((r[5].0, r[5].1), (6, "max_quantity"));
    assert!(
        r[6].0 == 7 && r[6].2.contains("duplicate SKU") && r[6].2.contains("line 2"),
        "{r:?}"
    );
    assert!(
        r[7].0 == 10 && r[7].2.contains("6 fields but the header has 5"),
        "{r:?}"
    );
    assert_eq!(r.len(), 8);
}

#[test]
fn a_sku_first_seen_in_a_rejected_row_can_still_be_accepted_later() {
    let c = catalog("sku,asin\nX,bad\nX,B07XJ8C8F5\n").unwrap();
    assert_eq!(c.catalog.len(), 1);
    assert_eq!(c.errors.len(), 1);
}

#[test]
fn price_rows() {
    let c = prices(concat!(
        "sku,price,currency,marketplace_id,minimum_price,maximum_price,force\n",
        "P-1,19.99,usd,,,,\n",
        "P-2,19.999,USD,,,,\n",
        "P-3,10,XYZ,,,,\n",
        "P-4,abc,USD,,,,\n",
        "P-5,25.00,USD,,10,20,\n",
        "P-6,25.00,USD,,10,20,true\n",
        "P-7,5,USD,,10,20,no\n",
        "P-1,18.00,USD,,,,\n",
        "P-1,18.00,EUR,A1PA6795UKMFR9,,,\n",
        "P-8,0,USD,,,,\n",
        "P-9,\"1,50\",USD,,,,\n",
        "P-10,10,USD,,20,10,\n",
        "P-11,10,USD,,,,perhaps\n",
    ))
    .unwrap();
    let ok: Vec<(&str, &str, &str, bool)> = c
        .prices
        .iter()
        .map(|r| (r.1.as_str(), r.2.as_str(), r.3.as_str(), r.5))
        .collect();
    assert_eq!(
        ok,
        [
            ("P-1", "19.99", "USD", false),
            ("P-6", "25.00", "USD", true),
            ("P-1", "18.00", "EUR", false)
        ]
    );
    let r = reasons(&c);
    let lines: Vec<(u64, &str)> = r.iter().map(|e| (e.0, e.1)).collect();
    assert_eq!(
        lines,
        [
            (3, "price"),
            (4, "currency"),
            (5, "price"),
            (6, "price"),
            (8, "price"),
            (9, "sku"),
            (11, "price"),
            (12, "price"),
            (13, "minimum_price"),
            (14, "force")
        ]
    );
    assert!(r[3].2.contains("above maximum_price 20.00"), "{r:?}");
    assert!(r[4].2.contains("below minimum_price 10.00"), "{r:?}");
    assert!(r[6].2.contains("greater than 0"), "{r:?}");
    assert!(r[7].2.contains("';'-delimited"), "{r:?}");
}

#[test]
fn semicolon_price_files_take_decimal_commas() {
    let c = prices("sku;price;currency\nP-1;19,99;EUR\nP-2;\"7,5\";EUR\n").unwrap();
    let ok: Vec<&str> = c.prices.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(ok, ["19.99", "7.50"]);
}

#[test]
fn reports_byte_offsets_for_checkpoints() {
    let text = "sku,asin\nA,B07XJ8C8F5\nB,B07XJ8C8F6\n";
    let mut r = UploadReader::open(Kind::Catalog, text.as_bytes()).unwrap();
    let first = r.next_row().unwrap().unwrap().byte;
    let second = r.next_row().unwrap().unwrap().byte;
    assert_eq!((first, second), (9, 22));
    assert_eq!(&text[second as usize..], "B,B07XJ8C8F6\n");

    let text = "sku,asin\r\nA,B07XJ8C8F5\r\nB,B07XJ8C8F6\r\n";
    let mut r = UploadReader::open(Kind::Catalog, text.as_bytes()).unwrap();
    let first = r.next_row().unwrap().unwrap();
    assert_eq!((first.line, first.byte), (2, 10));
    let second = r.next_row().unwrap().unwrap();
    assert_eq!((second.line, second.byte), (3, 24));
    assert_eq!(&text[24..], "B,B07XJ8C8F6\r\n");
}

#[test]
fn a_quote_never_closed_rejects_the_file_naming_the_line_it_opened() {
    let text = concat!(
        "sku;asin;title\r\n",
        "A-1;B07XJ8C8F5;\"Mug; red\"\r\n",
        "A-2;B07XJ8C8F6;\"12\"\" pipe\"\r\n",
        "A-3;B07XJ8C8F7;\"Cup, blue\r\n",
        "A-4;B07XJ8C8F8;Plate\r\n",
        "A-5;B07XJ8C8F9;Bowl\r\n",
    );
    for n in [1, 3, 7, 4096] {
        let e = read_all(Kind::Catalog, Dribble(text.as_bytes(), n)).unwrap_err();
        assert_eq!(e.kind, RejectionKind::UnclosedQuote, "chunk {n}: {e}");
        assert!(e.message.contains("line 4 opens a quoted field"), "{e}");
    }
    // Quotes that are not at the start of a field are literal, as the parser reads them.
    let c = catalog("sku,asin,title\nA-1,B07XJ8C8F5,12\" pipe\nA-2,B07XJ8C8F6,x\n").unwrap();
    assert_eq!(c.catalog.len(), 2);
    assert_eq!(c.catalog[0].3.as_deref(), Some("12\" pipe"));
    // A quoted value spanning lines, closed, is fine; an open quote on the last line is not.
    let c = catalog("sku,asin,title\nA-1,B07XJ8C8F5,\"two\nlines\"\nA-2,B07XJ8C8F6,x\n").unwrap();
    assert_eq!(c.catalog.len(), 2);
    let e = catalog("\u{feff}\"sku\",asin,title\nA-1,B07XJ8C8F5,\"open").unwrap_err();
    assert!(e.message.contains("line 2 opens"), "{e}");
}

#[test]
fn inventory_rows_validate_hub_on_hand_and_as_of_in_any_dialect() {
    let text = "Hub;SKU;On Hand;As Of\r\nH1;A;5;\r\nH1;B;0;2026-12-01T08:00:00+01:00\r\n;C;1;\r\nH1;D;;\r\nH1;E;-2;\r\nH1;F;1;yesterday\r\nH1;A;6;\r\nH2;A;6;\r\n";
    let c = read_all(Kind::Inventory, text.as_bytes()).unwrap();
    assert_eq!(c.delimiter, b';');
    assert_eq!(
        c.stock,
        [
            (2, "H1".into(), "A".into(), 5, None),
            (
                3,
                "H1".into(),
                "B".into(),
                0,
                Some("2026-12-01T07:00:00+00:00".into())
            ),
            (9, "H2".into(), "A".into(), 6, None),
        ]
    );
    let errors: Vec<(u64, &str)> = c
        .errors
        .iter()
        .map(|e| (e.line, e.column.as_str()))
        .collect();
    assert_eq!(
        errors,
        [
            (4, "hub"),
            (5, "on_hand"),
            (6, "on_hand"),
            (7, "as_of"),
            (8, "sku")
        ]
    );
    assert!(c.errors[4]
        .reason
        .contains("line 2 already has it for this hub"));
    let e = read_all(Kind::Inventory, "sku,on_hand\nA,1\n".as_bytes()).unwrap_err();
    assert_eq!(e.kind, RejectionKind::MissingColumns);
    assert!(e.message.contains("missing required column hub"), "{e}");
}

/// The scanner's jumps (`feed`) give the same state as taking every byte alone (`step`), for
/// every text of up to 7 bytes over the bytes that matter, fed whole and split at every point.
#[test]
fn quote_scan_jumps_agree_with_byte_by_byte() {
    const ALPHABET: &[u8] = b"\",;\r\na";
    for delimiter in [b',', b';'] {
        for len in 0..=7u32 {
            for mut code in 0..ALPHABET.len().pow(len) {
                let text: Vec<u8> = (0..len)
                    .map(|_| {
                        let b = ALPHABET[code % ALPHABET.len()];
                        code /= ALPHABET.len();
                        b
                    })
                    .collect();
                let mut slow = QuoteScan::new(delimiter, 1);
                text.iter().for_each(|&b| slow.step(b));
                for split in 0..=text.len() {
                    let mut fast = QuoteScan::new(delimiter, 1);
                    fast.feed(&text[..split]);
                    fast.feed(&text[split..]);
                    assert_eq!(
                        fast,
                        slow,
                        "{:?} split at {split}",
                        String::from_utf8_lossy(&text)
                    );
                }
            }
        }
    }
}

/// Long texts (rows of several fields, quoted or not, CRLF or LF) in uneven pieces.
#[test]
fn quote_scan_jumps_agree_on_long_texts() {
    let pieces: [&[u8]; 9] = [
        b"abc",
        b",",
        b"\"q,\"\"x\"",
        b"\n",
        b"\r\n",
        b"\r",
        b"\"open\nline",
        b"  ",
        b";",
    ];
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..2_000 {
        let text: Vec<u8> = (0..next() % 200)
            .flat_map(|_| {
                pieces[(next() % pieces.len() as u64) as usize]
                    .iter()
                    .copied()
            })
            .collect();
        let mut slow = QuoteScan::new(b',', 1);
        text.iter().for_each(|&b| slow.step(b));
        let mut fast = QuoteScan::new(b',', 1);
        let mut rest = &text[..];
        while !rest.is_empty() {
            let n = ((next() % 97) as usize + 1).min(rest.len());
            fast.feed(&rest[..n]);
            rest = &rest[n..];
        }
        assert_eq!(fast, slow, "{:?}", String::from_utf8_lossy(&text));
    }
}
