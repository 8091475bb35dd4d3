//! Inline SVG charts drawn with plotters' SVG backend (no fonts loaded:
//! text is emitted as `<text>` and laid out by the browser).
//!
//! Each chart is one `<svg id="chart-…" class="chart">`; pie slices are
//! `<polygon class="slice">`, bars `<rect class="bar">`.

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use super::thousands;
use crate::report::Report;
use crate::{ReportError, Result};

/// Bars are drawn in this color, which nothing else uses (see [`tag`]).
const BAR: RGBColor = RGBColor(0x3A, 0x6E, 0xA5);

/// Slice colors (the last one is reused for "others").
const PALETTE: [RGBColor; 11] = [
    RGBColor(0x1F, 0x77, 0xB4),
    RGBColor(0xFF, 0x7F, 0x0E),
    RGBColor(0x2C, 0xA0, 0x2C),
    RGBColor(0xD6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xBD),
    RGBColor(0x8C, 0x56, 0x4B),
    RGBColor(0xE3, 0x77, 0xC2),
    RGBColor(0x7F, 0x7F, 0x7F),
    RGBColor(0xBC, 0xBD, 0x22),
    RGBColor(0x17, 0xBE, 0xCF),
    RGBColor(0xC7, 0xC7, 0xC7),
];

fn chart_err<E: std::fmt::Display>(e: E) -> ReportError {
    ReportError::Invalid(format!("drawing a chart: {e}"))
}

/// Give the chart its id, and classes to its slices and bars.
fn tag(svg: String, id: &str, title: &str) -> String {
    let title = super::escape_html(title);
    let svg = svg.replacen(
        "<svg ",
        &format!("<svg id=\"{id}\" class=\"chart\" role=\"img\" aria-label=\"{title}\" "),
        1,
    );
    let bar_fill = format!("fill=\"#{:02X}{:02X}{:02X}\"", BAR.0, BAR.1, BAR.2);
    let mut out = String::with_capacity(svg.len() + 1024);
    for line in svg.lines() {
        if let Some(rest) = line.strip_prefix("<polygon ") {
            out.push_str("<polygon class=\"slice\" ");
            out.push_str(rest);
        } else if line.starts_with("<rect ") && line.contains(&bar_fill) {
            out.push_str("<rect class=\"bar\" ");
            out.push_str(&line["<rect ".len()..]);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

fn pie(id: &str, title: &str, labels: Vec<String>, sizes: Vec<f64>) -> Result<String> {
    let mut buf = String::new();
    let total: f64 = sizes.iter().sum();
    {
        let root = SVGBackend::with_string(&mut buf, (720, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_err)?;
        root.draw(&Text::new(
            title.to_string(),
            (10, 10),
            ("sans-serif", 16).into_font(),
        ))
        .map_err(chart_err)?;
        if total <= 0.0 {
            root.draw(&Text::new(
                "no data",
                (300, 200),
                ("sans-serif", 14).into_font(),
            ))
            .map_err(chart_err)?;
        } else {
            let colors: Vec<RGBColor> = (0..sizes.len())
                .map(|i| PALETTE[i.min(PALETTE.len() - 1)])
                .collect();
            // Percentages on the slices big enough to hold them; names in the legend.
            let on_slice: Vec<String> = sizes
                .iter()
                .map(|&v| {
                    let p = v * 100.0 / total;
                    if p >= 3.0 {
                        format!("{p:.1}%")
                    } else {
                        String::new()
                    }
                })
                .collect();
            let center = (200, 225);
            let radius = 150.0;
            let mut pie = Pie::new(&center, &radius, &sizes, &colors, &on_slice);
            pie.start_angle(-90.0);
            pie.label_style(("sans-serif", 12).into_font().color(&BLACK));
            pie.label_offset(12.0);
            root.draw(&pie).map_err(chart_err)?;
            for (i, label) in labels.iter().enumerate() {
                let y = 50 + 22 * i as i32;
                root.draw(&Rectangle::new(
                    [(400, y), (414, y + 14)],
                    colors[i].filled(),
                ))
                .map_err(chart_err)?;
                root.draw(&Text::new(
                    label.clone(),
                    (420, y + 1),
                    ("sans-serif", 12).into_font(),
                ))
                .map_err(chart_err)?;
            }
        }
        root.present().map_err(chart_err)?;
    }
    Ok(tag(buf, id, title))
}

/// Emails per ASN: the top ASNs and one "others" slice for the rest.
pub(super) fn asn_pie(r: &Report) -> Result<String> {
    let slices = r.top_asns.iter().map(|a| {
        let label = if a.asn == 0 {
            format!("unknown {:.1}%", a.percent)
        } else {
            format!("AS{} {} ({}) {:.1}%", a.asn, a.name, a.cc, a.percent)
        };
        (label, a.emails)
    });
    pie_with_others(
        "chart-asn-pie",
        "Percentage of emails received per ASN",
        slices,
        r.summary.emails,
    )
}

/// A pie of the top slices plus one "others" slice for the rest of `total`.
fn pie_with_others(
    id: &str,
    title: &str,
    slices: impl Iterator<Item = (String, u64)>,
    total: u64,
) -> Result<String> {
    let (mut labels, mut sizes) = (Vec::new(), Vec::new());
    let mut top = 0u64;
    for (label, emails) in slices {
        labels.push(label);
        sizes.push(emails as f64);
        top += emails;
    }
    let others = total.saturating_sub(top);
    if others > 0 {
        labels.push(format!(
            "others {:.1}%",
            crate::report::percent(others, total)
        ));
        sizes.push(others as f64);
    }
    pie(id, title, labels, sizes)
}

/// Emails per country: the top countries and "others".
pub(super) fn cc_pie(r: &Report) -> Result<String> {
    let slices = r
        .top_ccs
        .iter()
        .map(|c| (format!("{} {:.1}%", c.cc, c.percent), c.emails));
    pie_with_others(
        "chart-cc-pie",
        "Percentage of emails received per country",
        slices,
        r.summary.emails,
    )
}

fn bars(id: &str, title: &str, labels: Vec<String>, values: Vec<u64>) -> Result<String> {
    let mut buf = String::new();
    // Room for every label under its bar (about 7 px a character).
    let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0) as u32;
    let width = (120 + (7 * longest + 14).max(40) * labels.len() as u32).clamp(560, 1200);
    {
        let root = SVGBackend::with_string(&mut buf, (width, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_err)?;
        if values.is_empty() {
            root.draw(&Text::new(
                title.to_string(),
                (10, 10),
                ("sans-serif", 16).into_font(),
            ))
            .map_err(chart_err)?;
            root.draw(&Text::new(
                "no data",
                (240, 200),
                ("sans-serif", 14).into_font(),
            ))
            .map_err(chart_err)?;
        } else {
            let n = values.len() as u32;
            let max = values.iter().copied().max().unwrap_or(0).max(1);
            let mut chart = ChartBuilder::on(&root)
                .caption(title, ("sans-serif", 16))
                .margin(12)
                .x_label_area_size(60)
                .y_label_area_size(80)
                // `a..b` of u32 is inclusive in plotters: n segments are 0..n-1;
                // one bar gets an empty slot beside it (0..0 is degenerate).
                .build_cartesian_2d(
                    (0..(n - 1).max(1)).into_segmented(),
                    0u64..max + max / 10 + 1,
                )
                .map_err(chart_err)?;
            let step = (labels.len() / 24).max(1);
            chart
                .configure_mesh()
                .disable_x_mesh()
                .light_line_style(TRANSPARENT)
                .x_labels(labels.len().min(24))
                .x_label_formatter(&|v| match v {
                    SegmentValue::CenterOf(i) if (*i as usize).is_multiple_of(step) => {
                        labels.get(*i as usize).cloned().unwrap_or_default()
                    }
                    _ => String::new(),
                })
                .y_label_formatter(&|v| thousands(*v as i64))
                .label_style(("sans-serif", 11))
                .draw()
                .map_err(chart_err)?;
            chart
                .draw_series(values.iter().enumerate().map(|(i, &v)| {
                    let mut bar = Rectangle::new(
                        [
                            (SegmentValue::Exact(i as u32), 0),
                            (SegmentValue::Exact(i as u32 + 1), v),
                        ],
                        BAR.filled(),
                    );
                    bar.set_margin(0, 0, 3, 3);
                    bar
                }))
                .map_err(chart_err)?;
        }
        root.present().map_err(chart_err)?;
    }
    Ok(tag(buf, id, title))
}

/// Emails per month.
pub(super) fn monthly_bars(r: &Report) -> Result<String> {
    bars(
        "chart-monthly",
        "Emails per month",
        r.monthly.iter().map(|m| m.month.clone()).collect(),
        r.monthly.iter().map(|m| m.emails).collect(),
    )
}

/// Sessions per TCP port.
pub(super) fn port_bars(r: &Report) -> Result<String> {
    bars(
        "chart-ports",
        "Sessions per TCP port",
        r.ports
            .iter()
            .map(|p| format!("{} {}", p.port, p.used_by))
            .collect(),
        r.ports.iter().map(|p| p.sessions).collect(),
    )
}
