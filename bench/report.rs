//! The result table: rows, targets, and the Markdown it is printed as.

use super::*;

/// One row of the result table.
pub(crate) struct Row {
    pub(crate) figure: String,
    pub(crate) value: String,
    pub(crate) unit: &'static str,
    pub(crate) target: String,
    pub(crate) met: Option<bool>,
}

pub(crate) fn row(
    figure: &str,
    value: f64,
    unit: &'static str,
    target: &str,
    met: Option<bool>,
) -> Row {
    let value = if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    };
    Row {
        figure: figure.into(),
        value,
        unit,
        target: target.into(),
        met,
    }
}

pub(crate) fn render(rows: &[Row]) -> String {
    let mut out =
        String::from("| figure | value | unit | target | met |\n|---|---:|---|---|---|\n");
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            r.figure, r.value, r.unit, r.target, met
        ));
    }
    out
}

pub(crate) fn now_utc() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

pub(crate) fn memory_gib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .map_or(0, |kib| (kib + 512 * 1024) / (1024 * 1024))
}
