//! SVG plots of a benchmark: accuracy against cost, with the cascade's threshold curve as
//! a line and every measured configuration as a labelled point.

use plotters::prelude::*;

use crate::bench::Point;

/// An `accuracy (%) vs cost` plot: `curve` as a line, every `measured` point as a labelled
/// dot, the one named `highlight` (the cascade) in red.
#[derive(Debug, Clone, Copy)]
pub struct AccuracyVsCost<'a> {
    pub title: &'a str,
    /// The x axis, with its unit.
    pub cost_label: &'a str,
    pub curve: &'a [Point],
    /// The legend of the curve.
    pub curve_label: &'a str,
    pub measured: &'a [Point],
    pub highlight: &'a str,
}

impl AccuracyVsCost<'_> {
    /// The plot as an SVG document.
    pub fn svg(&self) -> std::result::Result<String, String> {
        let mut svg = String::new();
        self.draw(&mut svg).map_err(|e| e.to_string())?;
        Ok(svg)
    }

    fn draw(&self, svg: &mut String) -> std::result::Result<(), Box<dyn std::error::Error + '_>> {
        let AccuracyVsCost {
            title,
            cost_label,
            curve,
            curve_label,
            measured,
            highlight,
        } = *self;
        let xs = curve.iter().chain(measured).map(|p| p.cost);
        let ys = curve.iter().chain(measured).map(|p| p.accuracy);
        let (x_min, x_max) = bounds(xs);
        let (y_min, y_max) = bounds(ys);
        let x_pad = (x_max - x_min).max(1e-6) * 0.08;
        let y_pad = (y_max - y_min).max(1e-6) * 0.15;

        let root = SVGBackend::with_string(svg, (800, 560)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(
                (x_min - x_pad).max(0.0)..x_max + x_pad,
                (100.0 * (y_min - y_pad)).max(0.0)..(100.0 * (y_max + y_pad)).min(100.0),
            )?;
        chart
            .configure_mesh()
            .x_desc(cost_label)
            .y_desc("top-1 accuracy (%)")
            .label_style(("sans-serif", 14))
            .draw()?;
        chart
            .draw_series(LineSeries::new(
                curve.iter().map(|p| (p.cost, 100.0 * p.accuracy)),
                BLUE.stroke_width(2),
            ))?
            .label(curve_label)
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
        for m in measured {
            let is_cascade = m.name == highlight;
            let color = if is_cascade { RED } else { BLACK };
            let at = (m.cost, 100.0 * m.accuracy);
            // The cascade's label goes above its point, the models' below, so that points
            // close together keep readable labels.
            let dy = if is_cascade { -22 } else { 8 };
            chart.draw_series(std::iter::once(
                EmptyElement::at(at)
                    + Circle::new((0, 0), 6, color.filled())
                    + Text::new(
                        m.name.clone(),
                        (8, dy),
                        ("sans-serif", 15).into_font().color(&color),
                    ),
            ))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()?;
        root.present()?;
        Ok(())
    }
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        })
}
