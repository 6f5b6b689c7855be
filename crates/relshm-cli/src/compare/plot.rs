//! `--plot FILE.svg`: for each structure and size, the total cost of handing the structure
//! over and reading it k times, against k; where two lines cross, the strategy with more
//! up-front work starts to win.

use std::path::Path;

use plotters::prelude::*;

use super::json::{Kind, Report};
use super::rows::costs;
use super::table::size;
use super::workload::Structure;

/// Lines drawn, with their colours.
const LINES: [(&str, RGBColor); 8] = [
    ("fixed-raw", BLACK),
    ("copy-translate", RED),
    ("offset", BLUE),
    ("baserel", RGBColor(0, 130, 130)),
    ("segrel", CYAN),
    ("swizzle-warm", MAGENTA),
    ("rkyv-validated", GREEN),
    ("postcard", RGBColor(160, 110, 0)),
];

/// Draws one chart per structure and size into an SVG file.
pub fn draw(report: &Report, path: &Path) -> anyhow::Result<()> {
    let panels: Vec<(Structure, u64)> = Structure::ALL
        .into_iter()
        .flat_map(|s| report.sizes.iter().map(move |&n| (s, n)))
        .filter(|&(s, n)| report.results.iter().any(|r| r.structure == s && r.n == n))
        .collect();
    let cols = report.sizes.len().max(1);
    let rows = panels.len().div_ceil(cols).max(1);
    let root = SVGBackend::new(path, (360 * cols as u32, 300 * rows as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let areas = root.split_evenly((rows, cols));
    for ((s, n), area) in panels.into_iter().zip(areas) {
        // Name, colour, whether a peer (drawn thinner), up-front and per-pass cost.
        let lines: Vec<(&str, RGBColor, bool, f64, f64)> = LINES
            .iter()
            .filter_map(|&(name, colour)| {
                let r = report
                    .results
                    .iter()
                    .find(|r| r.structure == s && r.n == n && r.strategy == name)?;
                let (up, pass) = costs(r)?;
                Some((name, colour, r.kind == Kind::Peer, up, pass))
            })
            .collect();
        // Show enough passes for the crossovers of this panel, within reason.
        let k_max = report
            .crossovers
            .iter()
            .filter(|c| c.structure == s && c.n == n)
            .filter_map(|c| c.after_passes)
            .fold(10.0f64, f64::max);
        let k_max = (k_max * 1.5).min(1000.0);
        let y_max = lines
            .iter()
            .map(|&(_, _, _, up, pass)| (up + (k_max - 1.0) * pass) / 1e6)
            .fold(1e-6f64, f64::max);
        let unit = match s {
            Structure::List | Structure::Vec => "traversals",
            Structure::Map => "lookup passes",
        };
        let mut chart = ChartBuilder::on(&area)
            .caption(format!("{} of {}", s.name(), size(n)), ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(52)
            .build_cartesian_2d(1f64..k_max, 0f64..y_max * 1.05)?;
        chart
            .configure_mesh()
            .x_desc(unit)
            .y_desc("total ms")
            .label_style(("sans-serif", 11))
            .draw()?;
        for (name, colour, peer, up, pass) in lines {
            let style = if peer {
                colour.stroke_width(1)
            } else {
                colour.stroke_width(2)
            };
            let points = [1.0, k_max].map(|k| (k, (up + (k - 1.0) * pass) / 1e6));
            chart
                .draw_series(LineSeries::new(points, style))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], style));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 10))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
