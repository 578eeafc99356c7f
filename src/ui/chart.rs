//! The dashboard's two charts as inline SVG, drawn on the server: attempts per minute (bars)
//! and success rate per hour (a sparkline). No script draws anything, so they work under the
//! page's CSP; colours come from classes in `ui.css` (inline styles are refused by the CSP).
//! Each SVG element has an explicit end tag: inside `<svg>` a bare `<rect>` would swallow its
//! siblings.

use maud::{Markup, html};

/// Attempts in one minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Minute {
    /// Every attempt.
    pub attempts: i64,
    /// Those that failed.
    pub failed: i64,
}

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 150.0;
const LEFT: f64 = 44.0;
const TOP: f64 = 8.0;
const BOTTOM: f64 = 128.0;

/// Bars of `minutes`, oldest first, the last one the current minute: successes below,
/// failures stacked on them, a tooltip (`<title>`) on each.
pub fn attempts_per_minute(minutes: &[Minute]) -> Markup {
    let peak = minutes.iter().map(|m| m.attempts).max().unwrap_or(0).max(1);
    let slot = (WIDTH - LEFT) / minutes.len().max(1) as f64;
    let height = |n: i64| (BOTTOM - TOP) * n as f64 / peak as f64;
    let count = minutes.len();
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {WIDTH} {HEIGHT}"))
            role="img" aria-label="Attempts per minute over the last hour" {
            line.axis x1=(LEFT) y1=(BOTTOM) x2=(WIDTH) y2=(BOTTOM) {}
            line.grid x1=(LEFT) y1=(TOP) x2=(WIDTH) y2=(TOP) {}
            text.label x=(LEFT - 4.0) y=(TOP + 4.0) text-anchor="end" { (peak) }
            text.label x=(LEFT - 4.0) y=(BOTTOM) text-anchor="end" { "0" }
            text.label x=(LEFT) y=(HEIGHT - 4.0) { (count) " min ago" }
            text.label x=(WIDTH) y=(HEIGHT - 4.0) text-anchor="end" { "now" }
            @for (i, minute) in minutes.iter().enumerate() {
                @let x = LEFT + i as f64 * slot + 1.0;
                @let ok = height(minute.attempts - minute.failed);
                @let bad = height(minute.failed);
                g {
                    title {
                        @match count - i - 1 {
                            0 => "the last minute",
                            ago => { (ago) " min ago" }
                        }
                        ": " (minute.attempts) " attempts, " (minute.failed) " failed"
                    }
                    rect.hit x=(fmt(x)) y=(TOP) width=(fmt(slot - 1.0)) height=(BOTTOM - TOP) {}
                    @if ok > 0.0 {
                        rect.ok x=(fmt(x)) y=(fmt(BOTTOM - ok)) width=(fmt(slot - 1.0)) height=(fmt(ok)) {}
                    }
                    @if bad > 0.0 {
                        rect.bad x=(fmt(x)) y=(fmt(BOTTOM - ok - bad)) width=(fmt(slot - 1.0))
                            height=(fmt(bad)) {}
                    }
                }
            }
        }
    }
}

/// A sparkline of `rates` (success fractions, oldest first; `None` for an hour without
/// attempts, drawn as a gap).
pub fn sparkline(rates: &[Option<f64>], label: &str) -> Markup {
    let step = 120.0 / rates.len().max(1) as f64;
    let point = |i: usize, rate: f64| {
        let x = step * (i as f64 + 0.5);
        let y = 2.0 + (1.0 - rate.clamp(0.0, 1.0)) * 20.0;
        (x, y)
    };
    // Runs of consecutive hours with attempts, each one polyline.
    let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut previous_present = false;
    for (i, rate) in rates.iter().enumerate() {
        match rate {
            Some(rate) if previous_present => {
                if let Some(run) = runs.last_mut() {
                    run.push(point(i, *rate));
                }
            }
            Some(rate) => runs.push(vec![point(i, *rate)]),
            None => {}
        }
        previous_present = rate.is_some();
    }
    let last = rates
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, rate)| rate.map(|rate| (i, rate)));
    html! {
        svg.spark xmlns="http://www.w3.org/2000/svg" viewBox="0 0 120 24" role="img"
            aria-label=(label) {
            title { (label) }
            line.grid x1="0" y1="2" x2="120" y2="2" {}
            line.axis x1="0" y1="22" x2="120" y2="22" {}
            @for run in &runs {
                @if run.len() == 1 {
                    circle.dot cx=(fmt(run[0].0)) cy=(fmt(run[0].1)) r="1.5" {}
                } @else {
                    polyline.line points=(points(run)) {}
                }
            }
            @if let Some((i, rate)) = last {
                @let (x, y) = point(i, rate);
                circle.(if rate < 0.99 { "dot bad" } else { "dot" }) cx=(fmt(x)) cy=(fmt(y)) r="2" {}
            }
        }
    }
}

/// SVG's `points`: "x,y x,y ...".
fn points(run: &[(f64, f64)]) -> String {
    run.iter()
        .map(|&(x, y)| format!("{},{}", fmt(x), fmt(y)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A coordinate with at most two decimals.
fn fmt(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_stack_failures_on_successes_and_scale_to_the_peak() {
        let minutes = [
            Minute::default(),
            Minute {
                attempts: 10,
                failed: 5,
            },
            Minute {
                attempts: 20,
                failed: 0,
            },
        ];
        let svg = attempts_per_minute(&minutes).into_string();
        // The peak (20) fills the plot, 120 units high, from y=8 to y=128.
        assert!(svg.contains(r#"class="ok" x="415.67" y="8" width="184.33" height="120""#));
        // 5 successes and 5 failures: 30 units each, the failures on top.
        assert!(svg.contains(r#"class="ok" x="230.33" y="98" width="184.33" height="30""#));
        assert!(svg.contains(r#"class="bad" x="230.33" y="68" width="184.33" height="30""#));
        assert!(svg.contains("<title>1 min ago: 10 attempts, 5 failed</title>"));
        assert!(svg.contains("<title>the last minute: 20 attempts, 0 failed</title>"));
        assert!(svg.contains(">20</text>"));
        assert!(
            !svg.contains(r#"class="ok" x="45""#),
            "no bar for an empty minute"
        );
        assert_eq!(svg.matches("<rect").count(), svg.matches("</rect>").count());
    }

    #[test]
    fn sparkline_leaves_gaps_for_hours_without_attempts() {
        let rates = [Some(1.0), Some(0.5), None, Some(0.0), None, None];
        let svg = sparkline(&rates, "success rate").into_string();
        assert!(svg.contains(r#"<polyline class="line" points="10,2 30,12"></polyline>"#));
        assert!(svg.contains(r#"<circle class="dot" cx="70" cy="22" r="1.5"></circle>"#));
        // The latest hour with attempts is marked, red when it was not all successes.
        assert!(svg.contains(r#"<circle class="dot bad" cx="70" cy="22" r="2"></circle>"#));
        assert!(svg.contains("<title>success rate</title>"));
    }

    #[test]
    fn an_empty_sparkline_is_just_its_axes() {
        let svg = sparkline(&[None; 24], "no attempts").into_string();
        assert!(!svg.contains("polyline") && !svg.contains("circle"));
    }

    #[test]
    fn coordinates_are_short() {
        assert_eq!(fmt(10.0), "10");
        assert_eq!(fmt(9.333_333), "9.33");
        assert_eq!(fmt(0.5), "0.5");
    }
}
