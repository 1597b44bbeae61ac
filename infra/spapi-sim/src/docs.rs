//! Small real documents: a one-page PDF (invoices, labels) with a correct xref table, and ZPL.

/// A valid single-page PDF 1.4 showing `lines` in Helvetica.
pub fn pdf(title: &str, lines: &[String]) -> Vec<u8> {
    let esc = |s: &str| {
        s.chars()
            .filter(|c| c.is_ascii() && !c.is_ascii_control())
            .map(|c| match c {
                '(' | ')' | '\\' => format!("\\{c}"),
                c => c.to_string(),
            })
            .collect::<String>()
    };
    let mut content = String::from("BT /F1 14 Tf 50 780 Td 16 TL\n");
    content.push_str(&format!("({}) Tj T*\n/F1 10 Tf\n", esc(title)));
    for l in lines {
        content.push_str(&format!("({}) Tj T*\n", esc(l)));
    }
    content.push_str("ET\n");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>"
            .to_string(),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
        format!("<< /Length {} >>\nstream\n{}endstream", content.len(), content),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{}\nendobj\n", i + 1, o).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// A 4x6 inch ZPL label with a Code 128 barcode of the tracking ID.
pub fn zpl(
    carrier: &str,
    tracking_id: &str,
    shipment_id: &str,
    package_id: &str,
    city: &str,
) -> Vec<u8> {
    let clean = |s: &str| s.replace(['^', '~'], " ");
    format!(
        "^XA\n^CI28\n^PW812\n^LL1218\n^FO40,40^A0N,50,50^FD{}^FS\n^FO40,110^A0N,30,30^FDShipment {}^FS\n\
         ^FO40,150^A0N,30,30^FDPackage {}^FS\n^FO40,190^A0N,30,30^FDTo: {}^FS\n\
         ^FO40,260^BY3^BCN,200,Y,N,N^FD{}^FS\n^XZ\n",
        clean(carrier),
        clean(shipment_id),
        clean(package_id),
        clean(city),
        clean(tracking_id)
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdf_xref_offsets_point_at_objects() {
        let p = pdf(
            "Invoice (test)",
            &["line 1".into(), "Total 19.99 EUR".into()],
        );
        let s = String::from_utf8_lossy(&p).to_string();
        assert!(s.starts_with("%PDF-1.4"));
        assert!(s.trim_end().ends_with("%%EOF"));
        let startxref: usize = s
            .rsplit("startxref\n")
            .next()
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(s[startxref..].starts_with("xref"));
        let entries: Vec<&str> = s[startxref..].lines().skip(3).take(5).collect();
        for (i, e) in entries.iter().enumerate() {
            let off: usize = e[..10].parse().unwrap();
            assert!(
                s[off..].starts_with(&format!("{} 0 obj", i + 1)),
                "object {} at {off}",
                i + 1
            );
        }
    }

    #[test]
    fn zpl_is_framed() {
        let z = String::from_utf8(zpl("SIMCARRIER", "SIM123", "S1", "P1", "Springfield")).unwrap();
        assert!(z.starts_with("^XA") && z.trim_end().ends_with("^XZ"));
        assert!(z.contains("^FDSIM123^FS"));
    }
}
