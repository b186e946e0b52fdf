//! `rtt.svg` and `goodput.svg`: the apps' CSV series (`Outcome::rtt_csv`,
//! `Outcome::goodput_csv`) drawn over simulated time with plotters' SVG backend, which
//! writes text as `<text>` elements, so no font library is needed to draw them.

use plotters::prelude::*;

/// Line colours that stay apart from each other and from white (Okabe–Ito, without its
/// yellow, then a few darker ones); more series than colours repeat them.
const COLOURS: [RGBColor; 10] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(230, 159, 0),
    RGBColor(0, 0, 0),
    RGBColor(120, 60, 160),
    RGBColor(140, 90, 40),
    RGBColor(100, 100, 100),
];

/// Points of a series above which its marks are drawn small.
const DENSE: usize = 60;

/// One line of a chart: its legend text, and its points cut where a value is missing (a
/// lost request is a gap in the line, not a slope to the next answer).
#[derive(Debug, PartialEq)]
pub struct Series {
    pub label: String,
    pub segments: Vec<Vec<(f64, f64)>>,
}

/// What a chart shows.
pub struct Chart<'a> {
    pub title: &'a str,
    /// The y axis's name and unit.
    pub y_desc: &'a str,
    /// The x axis's end: the scenario's duration in seconds.
    pub x_max: f64,
}

/// The series in CSV files (file name, text) with columns `x_col` in milliseconds, drawn in
/// seconds, and `y_col`; each labelled with its file name without `.csv`. Rows whose x does
/// not parse are skipped; an empty or unreadable y ends a segment.
pub fn series(files: &[(String, String)], x_col: &str, y_col: &str) -> Vec<Series> {
    files
        .iter()
        .map(|(name, csv)| {
            let mut lines = csv.lines();
            let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
            let col = |c: &str| header.iter().position(|h| h.trim() == c);
            let (mut segments, mut current) = (Vec::new(), Vec::new());
            if let (Some(xi), Some(yi)) = (col(x_col), col(y_col)) {
                for line in lines {
                    let cells: Vec<&str> = line.split(',').collect();
                    let num = |i: usize| {
                        let v = cells.get(i)?.trim().parse::<f64>().ok()?;
                        v.is_finite().then_some(v)
                    };
                    let Some(x) = num(xi) else {
                        continue;
                    };
                    match num(yi) {
                        Some(y) => current.push((x / 1000.0, y)),
                        None if !current.is_empty() => segments.push(std::mem::take(&mut current)),
                        None => {}
                    }
                }
            }
            if !current.is_empty() || segments.is_empty() {
                segments.push(current);
            }
            Series {
                label: name.strip_suffix(".csv").unwrap_or(name).to_string(),
                segments,
            }
        })
        .collect()
}

/// The SVG text of a line chart of `series` against simulated time, one colour per series,
/// with a legend. The y axis starts at 0 and leaves room above the highest point for the
/// legend.
pub fn svg(chart: &Chart, series: &[Series]) -> Result<String, String> {
    let err = |e: DrawingAreaErrorKind<_>| format!("drawing {}: {e}", chart.title);
    let y_max = series
        .iter()
        .flat_map(|s| s.segments.iter().flatten())
        .map(|&(_, y)| y)
        .fold(0.0, f64::max);
    let legend_room = 1.15 + 0.07 * series.len() as f64;
    let y_top = if y_max > 0.0 {
        y_max * legend_room
    } else {
        1.0
    };
    let x_max = if chart.x_max > 0.0 { chart.x_max } else { 1.0 };
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, (960, 540)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut plot = ChartBuilder::on(&root)
            .caption(chart.title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..x_max, 0.0..y_top)
            .map_err(err)?;
        plot.configure_mesh()
            .x_desc("simulated time (s)")
            .y_desc(chart.y_desc)
            .axis_desc_style(("sans-serif", 16))
            .label_style(("sans-serif", 13))
            .light_line_style(BLACK.mix(0.05))
            .bold_line_style(BLACK.mix(0.15))
            .draw()
            .map_err(err)?;
        for (i, s) in series.iter().enumerate() {
            let style = COLOURS[i % COLOURS.len()].stroke_width(2);
            let points: usize = s.segments.iter().map(Vec::len).sum();
            // Marks on every point show single answers between losses; on a dense series
            // big ones would hide the line.
            let mark = if points <= DENSE { 3 } else { 2 };
            for (j, segment) in s.segments.iter().enumerate() {
                let line = LineSeries::new(segment.iter().copied(), style).point_size(mark);
                let drawn = plot.draw_series(line).map_err(err)?;
                if j == 0 {
                    let label = match points == 0 {
                        true => format!("{} (no data)", s.label),
                        false => s.label.clone(),
                    };
                    drawn
                        .label(label)
                        .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], style));
                }
            }
        }
        plot.configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 14))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_requests_cut_the_line_and_bad_rows_are_skipped() {
        let csv = "seq,sent_ms,rtt_ms\n0,500.000,50.000\n1,700.000,\nx,bad,1\n2,900.000,52.500\n3,1100.000,51.000\n4,1300.000,\n";
        let s = series(
            &[("app1-alice-bob.i3.csv".into(), csv.into())],
            "sent_ms",
            "rtt_ms",
        );
        assert_eq!(
            s,
            [Series {
                label: "app1-alice-bob.i3".into(),
                segments: vec![vec![(0.5, 50.0)], vec![(0.9, 52.5), (1.1, 51.0)]],
            }]
        );
        let none = series(&[("g.csv".into(), "t,other\n1,2\n".into())], "t_ms", "mbps");
        assert_eq!(none[0].segments, [Vec::<(f64, f64)>::new()]);
    }

    #[test]
    fn a_chart_has_its_labels_lines_and_legend() {
        let s = series(
            &[(
                "app0-a-b.csv".into(),
                "t_ms,mbps\n0,1.5\n1000,2.5\n2000,2\n".into(),
            )],
            "t_ms",
            "mbps",
        );
        let chart = Chart {
            title: "Goodput",
            y_desc: "goodput (Mbit/s)",
            x_max: 3.0,
        };
        let text = svg(&chart, &s).expect("drawn");
        assert!(text.starts_with("<svg"), "{}", &text[..80]);
        for part in [
            "Goodput",
            "goodput (Mbit/s)",
            "simulated time (s)",
            "app0-a-b",
            "<polyline",
        ] {
            assert!(text.contains(part), "no {part}");
        }
    }
}
