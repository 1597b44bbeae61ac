//! The report as one HTML page: inline CSS and SVG only (no script, no external asset), so it
//! opens from the bucket, an e-mail or a file and prints as it looks.

use std::fmt::Write;

use super::{HealthReport, Share};

/// Escapes text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const W: f64 = 640.0;
const H: f64 = 180.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 26.0;
const TOP: f64 = 12.0;

/// A bar chart: one group per label, one bar per series (`(name, colour, values)`).
fn bars(title: &str, labels: &[String], series: &[(&str, &str, Vec<f64>)]) -> String {
    let max = series
        .iter()
        .flat_map(|(_, _, v)| v.iter().copied())
        .fold(0.0_f64, f64::max);
    let whole = series
        .iter()
        .flat_map(|(_, _, v)| v.iter())
        .all(|v| v.fract() == 0.0);
    let tick = nice_tick(max / 4.0, whole);
    let top = tick * 4.0;
    let n = labels.len().max(1) as f64;
    let group = (W - LEFT - 8.0) / n;
    let bar = (group * 0.8) / series.len().max(1) as f64;
    let plot_h = H - BOTTOM - TOP;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<figure><figcaption>{}</figcaption><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{}">"#,
        esc(title),
        esc(title)
    );
    for i in 0..=4 {
        let v = top * i as f64 / 4.0;
        let y = TOP + plot_h - plot_h * i as f64 / 4.0;
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{W}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end" fill="#555">{}</text>"##,
            LEFT - 4.0,
            y + 3.0,
            fmt_num(v)
        );
    }
    for (i, label) in labels.iter().enumerate() {
        let x0 = LEFT + group * i as f64 + group * 0.1;
        for (j, (name, colour, values)) in series.iter().enumerate() {
            let v = values.get(i).copied().unwrap_or(0.0);
            let h = if top > 0.0 { plot_h * v / top } else { 0.0 };
            let _ = write!(
                svg,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{colour}"><title>{} {}: {}</title></rect>"#,
                x0 + bar * j as f64,
                TOP + plot_h - h,
                (bar - 1.0).max(1.0),
                esc(label),
                esc(name),
                fmt_num(v)
            );
        }
        if labels.len() <= 16 || i % 2 == 0 {
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle" fill="#333">{}</text>"##,
                x0 + group * 0.4,
                H - 8.0,
                esc(label)
            );
        }
    }
    svg.push_str("</svg>");
    if series.len() > 1 {
        svg.push_str(r#"<div class="legend">"#);
        for (name, colour, _) in series {
            let _ = write!(
                svg,
                r#"<span><i style="background:{colour}"></i>{}</span>"#,
                esc(name)
            );
        }
        svg.push_str("</div>");
    }
    svg.push_str("</figure>");
    svg
}

/// A round step of at least `min` (1, 2 or 5 times a power of ten); whole numbers for counts.
fn nice_tick(min: f64, whole: bool) -> f64 {
    let floor = if whole { 1.0 } else { 0.1 };
    if min <= floor {
        return floor;
    }
    let mag = 10f64.powf(min.log10().floor());
    for step in [1.0, 2.0, 5.0, 10.0] {
        if step * mag >= min {
            return step * mag;
        }
    }
    10.0 * mag
}

fn fmt_num(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
#[test]
fn axis_ticks_are_round_and_whole_for_counts() {
    assert_eq!(nice_tick(4.0 / 4.0, true), 1.0);
    assert_eq!(nice_tick(5.0 / 4.0, true), 2.0);
    assert_eq!(nice_tick(0.25, true), 1.0);
    assert_eq!(nice_tick(130.0 / 4.0, true), 50.0);
    assert_eq!(nice_tick(0.3 / 4.0, false), 0.1);
    assert_eq!(nice_tick(42.5 / 4.0, false), 20.0);
}

fn share(s: &Share) -> String {
    match s.percent() {
        Some(p) => format!("{p:.1}% <small>({} of {})</small>", s.part, s.whole),
        None => "n/a <small>(nothing in the window)</small>".into(),
    }
}

/// The page.
pub fn render(r: &HealthReport) -> String {
    let labels: Vec<String> = r
        .days
        .iter()
        .map(|d| d.date.format("%m-%d").to_string())
        .collect();
    let col = |f: &dyn Fn(&super::Day) -> f64| r.days.iter().map(f).collect::<Vec<f64>>();
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>flexbridge health {date}</title>
<style>
body{{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222;max-width:980px}}
h1{{font-size:22px;margin:0 0 4px}} h2{{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ccc}}
.kpis{{display:flex;gap:12px;flex-wrap:wrap}} .kpi{{border:1px solid #ccc;border-radius:6px;padding:10px 14px;min-width:200px}}
.kpi b{{display:block;font-size:22px}} .kpi span{{font-size:12px;color:#555}}
figure{{margin:8px 0 16px}} figcaption{{font-weight:600;font-size:13px;margin-bottom:4px}}
.legend span{{margin-right:14px;font-size:12px}} .legend i{{display:inline-block;width:10px;height:10px;margin-right:4px}}
table{{border-collapse:collapse;font-size:13px}} td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}
.bad{{color:#b00020;font-weight:600}} .ok{{color:#1b5e20;font-weight:600}} small{{color:#666}}
</style></head><body>
<h1>flexbridge health report — {date}</h1>
<p><small>The {n} days to {date} (UTC), generated {generated}. Figures come from the shipments, returns, upload reports and dead-letter queues flexbridge keeps.</small></p>"#,
        date = r.date,
        n = r.days.len(),
        generated = r.generated_at.format("%Y-%m-%d %H:%M UTC"),
    );

    // Seller-judged figures first: they are what Amazon acts on.
    h.push_str("<h2>What Amazon judges you by</h2><div class=\"kpis\">");
    let _ = write!(
        h,
        r#"<div class="kpi"><span>Seller-caused cancellation rate</span><b>{}</b></div><div class="kpi"><span>Labelled before ship-by</span><b>{}</b></div><div class="kpi"><span>Handed over (shipped) before ship-by</span><b>{}</b></div>"#,
        share(&r.seller_cancellations),
        share(&r.labelled_before_ship_by),
        share(&r.handed_over_before_ship_by)
    );
    let parked = r.parked();
    let _ = write!(
        h,
        r#"<div class="kpi"><span>Messages in dead-letter queues</span><b class="{}">{parked}</b></div><div class="kpi"><span>Shipments waiting for a person</span><b class="{}">{}</b></div></div>"#,
        if parked > 0 { "bad" } else { "ok" },
        if r.waiting_for_a_person > 0 {
            "bad"
        } else {
            "ok"
        },
        r.waiting_for_a_person
    );

    h.push_str("<h2>Orders</h2>");
    h.push_str(&bars(
        "Shipments first seen per day: confirmed, rejected, held",
        &labels,
        &[
            ("seen", "#90a4ae", col(&|d| d.orders as f64)),
            ("confirmed", "#2e7d32", col(&|d| d.confirmed as f64)),
            ("rejected", "#c62828", col(&|d| d.rejected as f64)),
            ("held", "#f9a825", col(&|d| d.held as f64)),
        ],
    ));
    h.push_str(&bars(
        "Median minutes from Amazon's order to the warehouse having it",
        &labels,
        &[(
            "minutes",
            "#1565c0",
            col(&|d| d.median_handover_minutes.unwrap_or(0.0)),
        )],
    ));

    h.push_str("<h2>Uploads</h2>");
    h.push_str(&bars(
        "Upload rows per day: accepted and rejected",
        &labels,
        &[
            (
                "accepted",
                "#2e7d32",
                col(&|d| d.upload_rows_accepted as f64),
            ),
            (
                "rejected",
                "#c62828",
                col(&|d| d.upload_rows_rejected as f64),
            ),
        ],
    ));

    h.push_str("<h2>Errors</h2>");
    h.push_str(&bars(
        "Held, unreadable or rejected shipments and rejected upload rows per day",
        &labels,
        &[("errors", "#c62828", col(&|d| d.errors as f64))],
    ));

    h.push_str("<h2>Stock pushes</h2>");
    if r.halted_pushes.is_empty() {
        h.push_str("<p class=\"ok\">No inventory push is halted.</p>");
    } else {
        h.push_str("<table><tr><th>location</th><th>hub</th><th>status</th><th>why</th><th>SKUs</th><th>zeroed</th><th>since</th></tr>");
        for p in &r.halted_pushes {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"bad\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&p.location_id),
                esc(&p.hub),
                esc(&p.status),
                esc(&p.reason),
                p.skus_in_push,
                p.skus_zeroed,
                esc(&p.halted_at)
            );
        }
        h.push_str("</table><p><small>Release or discard each halted push (POST /v1/inventory/halts/{locationId}/release or /discard).</small></p>");
    }

    h.push_str("<h2>Returns by SKU</h2>");
    if r.returns_by_sku.is_empty() {
        h.push_str("<p>No returns in the window.</p>");
    } else {
        let top: Vec<&(String, u64)> = r.returns_by_sku.iter().take(15).collect();
        h.push_str(&bars(
            "Units returned per SKU (most returned first)",
            &top.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>(),
            &[(
                "units",
                "#6a1b9a",
                top.iter().map(|(_, n)| *n as f64).collect(),
            )],
        ));
    }

    h.push_str("<h2>Dead-letter queues</h2><table><tr><th>queue</th><th>messages</th><th>why (latest)</th></tr>");
    for d in &r.dlqs {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
            esc(&d.queue),
            if d.messages > 0 { "bad" } else { "ok" },
            d.messages,
            d.reasons
                .iter()
                .map(|r| esc(r))
                .collect::<Vec<_>>()
                .join("<br>")
        );
    }
    h.push_str("</table>");

    h.push_str("<h2>Per day</h2><table><tr><th>day</th><th>seen</th><th>confirmed</th><th>rejected</th><th>held</th><th>median min to warehouse</th><th>upload files</th><th>rows accepted</th><th>rows rejected</th></tr>");
    for d in &r.days {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            d.date,
            d.orders,
            d.confirmed,
            d.rejected,
            d.held,
            d.median_handover_minutes
                .map(fmt_num)
                .unwrap_or_else(|| "–".into()),
            d.upload_files,
            d.upload_rows_accepted,
            d.upload_rows_rejected
        );
    }
    h.push_str("</table></body></html>\n");
    h
}
