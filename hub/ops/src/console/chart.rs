//! Small line charts drawn on the server as inline SVG: no script, no image files, nothing the
//! console's content security policy would have to allow. Colours and strokes come from the
//! console's one style sheet (classes), never from `style` attributes.
//!
//! A chart has an accessible `<title>`, its axis' lowest and highest values and the first and
//! last sample's times as labels, and each series' last value marked with a dot. With no value at
//! all it says "no data yet" instead of drawing an empty box.

use chrono::{DateTime, Utc};
use maud::{Markup, html};

/// The drawing's size, in SVG user units.
const WIDTH: f64 = 320.0;
const HEIGHT: f64 = 118.0;
/// The plot box inside it: room on the left for the value labels, below for the times.
const LEFT: f64 = 52.0;
const RIGHT: f64 = 312.0;
const TOP: f64 = 8.0;
const BOTTOM: f64 = 92.0;

/// One line of a chart: its values at the chart's times (`None`: not known then, skipped).
#[derive(Debug, Clone)]
pub(super) struct Series {
    /// What it is, for the legend and the title (`p95`).
    pub name: &'static str,
    /// The style sheet's class of its line (`s1`, `s2`).
    pub class: &'static str,
    /// A value per time of the chart.
    pub values: Vec<Option<f64>>,
}

/// A chart: what it shows, in which unit, at which times.
#[derive(Debug, Clone)]
pub(super) struct Chart {
    /// The element id (`chart-throughput`).
    pub id: &'static str,
    /// What it shows (`Throughput`).
    pub title: &'static str,
    /// The unit of its values (`messages/min`).
    pub unit: &'static str,
    /// When each value was sampled, oldest first.
    pub times: Vec<DateTime<Utc>>,
    /// Its lines.
    pub series: Vec<Series>,
}

/// `value` of `[lo, hi]` placed on `[out_lo, out_hi]`; the middle when the range is empty (a
/// flat series, a single point), so nothing is divided by zero.
fn scale(value: f64, lo: f64, hi: f64, out_lo: f64, out_hi: f64) -> f64 {
    if hi - lo <= f64::EPSILON {
        (out_lo + out_hi) / 2.0
    } else {
        out_lo + (value - lo) / (hi - lo) * (out_hi - out_lo)
    }
}

/// The value axis: from 0 (or the lowest value, if below) to the highest value; one unit
/// high when every value is that lowest one, so a flat line lies on its floor.
fn value_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values.fold(None, |acc: Option<(f64, f64)>, v| match acc {
        None => Some((v.min(0.0), v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })?;
    Some(if hi - lo <= f64::EPSILON {
        (lo, lo + 1.0)
    } else {
        (lo, hi)
    })
}

/// A number for a label: whole when it is one, else to two significant decimals at most.
pub(super) fn number(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The polyline points of `series` (`x,y x,y`), with the time and value ranges given.
fn points(chart: &Chart, series: &Series, (lo, hi): (f64, f64)) -> Vec<(f64, f64)> {
    let (Some(first), Some(last)) = (chart.times.first(), chart.times.last()) else {
        return Vec::new();
    };
    let span = (*last - *first).num_milliseconds() as f64;
    chart
        .times
        .iter()
        .zip(&series.values)
        .filter_map(|(t, v)| {
            let v = (*v)?;
            let at = (*t - *first).num_milliseconds() as f64;
            // A single time sits at the right edge: "now".
            let x = if span <= 0.0 {
                RIGHT
            } else {
                scale(at, 0.0, span, LEFT, RIGHT)
            };
            let y = if hi - lo <= f64::EPSILON {
                BOTTOM
            } else {
                scale(v, lo, hi, BOTTOM, TOP)
            };
            Some((x, y))
        })
        .collect()
}

fn points_text(points: &[(f64, f64)]) -> String {
    points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The last known value of `series`.
fn last_value(series: &Series) -> Option<f64> {
    series.values.iter().rev().find_map(|v| *v)
}

/// The chart as a `figure`: the SVG and a caption with each series' last value, or "no data
/// yet" when no series has a value.
pub(super) fn render(chart: &Chart) -> Markup {
    let range = value_range(
        chart
            .series
            .iter()
            .flat_map(|s| s.values.iter().flatten().copied()),
    );
    let lasts: Vec<(&Series, Option<f64>)> =
        chart.series.iter().map(|s| (s, last_value(s))).collect();
    let last_text = lasts
        .iter()
        .map(|(s, v)| match v {
            Some(v) if chart.series.len() > 1 => {
                format!("{} {} {}", s.name, number(*v), chart.unit)
            }
            Some(v) => format!("{} {}", number(*v), chart.unit),
            None => format!("{} —", s.name),
        })
        .collect::<Vec<_>>()
        .join(", ");
    html! {
        figure.chart id=(chart.id) {
            figcaption {
                strong { (chart.title) } " "
                span.muted { "(" (chart.unit) ")" }
                @if range.is_some() { " · last: " span.last { (last_text) } }
            }
            @match range {
                None => p.no-data.muted { "no data yet" },
                Some(range) => (svg(chart, range, &last_text)),
            }
        }
    }
}

fn svg(chart: &Chart, (lo, hi): (f64, f64), last_text: &str) -> Markup {
    let title_id = format!("{}-title", chart.id);
    let (first, last) = match (chart.times.first(), chart.times.last()) {
        (Some(f), Some(l)) => (*f, *l),
        _ => (Utc::now(), Utc::now()),
    };
    let title = format!(
        "{} in {}, {} to {} UTC: from {} to {}; last {}",
        chart.title,
        chart.unit,
        first.format("%H:%M:%S"),
        last.format("%H:%M:%S"),
        number(lo),
        number(hi),
        last_text
    );
    let view_box = format!("0 0 {WIDTH} {HEIGHT}");
    html! {
        svg.spark xmlns="http://www.w3.org/2000/svg" viewBox=(view_box) width=(WIDTH) height=(HEIGHT)
            role="img" aria-labelledby=(title_id) data-min=(lo) data-max=(hi) {
            title id=(title_id) { (title) }
            rect.plot x=(LEFT) y=(TOP) width=(RIGHT - LEFT) height=(BOTTOM - TOP) {}
            text.axis x=(LEFT - 4.0) y=(TOP + 8.0) text-anchor="end" { (number(hi)) }
            text.axis x=(LEFT - 4.0) y=(BOTTOM) text-anchor="end" { (number(lo)) }
            text.axis x=(LEFT) y=(HEIGHT - 12.0) text-anchor="start" { (first.format("%H:%M:%S")) }
            text.axis x=(RIGHT) y=(HEIGHT - 12.0) text-anchor="end" { (last.format("%H:%M:%S")) }
            @if chart.series.len() > 1 {
                @for (i, s) in chart.series.iter().enumerate() {
                    text class={ "legend " (s.class) } x=(LEFT + 4.0 + 44.0 * i as f64) y=(HEIGHT - 1.0) { "— " (s.name) }
                }
            }
            @for s in &chart.series {
                @let pts = points(chart, s, (lo, hi));
                polyline class={ "line " (s.class) } data-series=(s.name) points=(points_text(&pts)) {}
                @if let Some((x, y)) = pts.last() {
                    circle class={ "dot " (s.class) } cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="2.5" {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("a time")
    }

    fn chart(times: Vec<DateTime<Utc>>, values: Vec<Option<f64>>) -> Chart {
        Chart {
            id: "chart-test",
            title: "Throughput",
            unit: "messages/min",
            times,
            series: vec![Series {
                name: "messages",
                class: "s1",
                values,
            }],
        }
    }

    /// The `points` attribute of the first polyline, parsed.
    fn polyline(html: &str) -> Vec<(f64, f64)> {
        let start = html.find("points=\"").expect("a polyline") + "points=\"".len();
        let end = start + html[start..].find('"').expect("its end");
        html[start..end]
            .split_whitespace()
            .map(|p| {
                let (x, y) = p.split_once(',').expect("x,y");
                (x.parse().expect("x"), y.parse().expect("y"))
            })
            .collect()
    }

    #[test]
    fn points_scale_into_the_box() {
        let c = chart(
            vec![at(0), at(30), at(60)],
            vec![Some(0.0), Some(5.0), Some(10.0)],
        );
        let html = render(&c).into_string();
        let pts = polyline(&html);
        assert_eq!(pts, [(LEFT, BOTTOM), (182.0, 50.0), (RIGHT, TOP)]);
        for (x, y) in &pts {
            assert!((LEFT..=RIGHT).contains(x) && (TOP..=BOTTOM).contains(y));
        }
        // Axis labels, units, the last value and an accessible title.
        assert!(
            html.contains(">10</text>") && html.contains(">0</text>"),
            "{html}"
        );
        assert!(html.contains("(messages/min)"));
        assert!(
            html.contains("<span class=\"last\">10 messages/min</span>"),
            "{html}"
        );
        assert!(html.contains("<title id=\"chart-test-title\">Throughput in messages/min"));
        assert!(html.contains("aria-labelledby=\"chart-test-title\""));
        assert!(
            !html.contains("style="),
            "no inline styles: the policy forbids them"
        );
    }

    #[test]
    fn a_flat_series_lies_on_its_floor_and_a_single_point_at_now() {
        let flat = render(&chart(vec![at(0), at(10)], vec![Some(0.0), Some(0.0)])).into_string();
        assert_eq!(polyline(&flat), [(LEFT, BOTTOM), (RIGHT, BOTTOM)]);
        let flat = render(&chart(vec![at(0), at(10)], vec![Some(7.0), Some(7.0)])).into_string();
        assert_eq!(polyline(&flat), [(LEFT, TOP), (RIGHT, TOP)], "0 to 7");
        let single = render(&chart(vec![at(0)], vec![Some(3.0)])).into_string();
        assert_eq!(polyline(&single), [(RIGHT, TOP)]);
        assert!(single.contains("<circle class=\"dot s1\""), "{single}");
        for html in [&flat, &single] {
            assert!(!html.contains("NaN") && !html.contains("inf"), "{html}");
        }
    }

    #[test]
    fn unknown_values_are_skipped_and_none_at_all_is_no_data_yet() {
        let gaps = render(&chart(
            vec![at(0), at(10), at(20)],
            vec![None, Some(2.0), Some(4.0)],
        ))
        .into_string();
        assert_eq!(polyline(&gaps).len(), 2);
        let empty = render(&chart(Vec::new(), Vec::new())).into_string();
        assert!(
            empty.contains("no data yet") && !empty.contains("<svg"),
            "{empty}"
        );
        let unknown = render(&chart(vec![at(0)], vec![None])).into_string();
        assert!(unknown.contains("no data yet"), "{unknown}");
    }

    #[test]
    fn numbers_read_short() {
        assert_eq!(number(12.0), "12");
        assert_eq!(number(0.456), "0.46");
        assert_eq!(number(12.34), "12.3");
        assert_eq!(number(1234.4), "1234");
    }
}
