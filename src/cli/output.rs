//! Terminal output for people: aligned tables, readable durations, costs and
//! token counts, colour only on a terminal (and never with `NO_COLOR`), plain
//! text when piped.

use std::io::IsTerminal;

/// Whether to colour stdout.
pub fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// ANSI styles, or nothing when colour is off.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    on: bool,
}

impl Style {
    pub fn detect() -> Style {
        Style { on: colour() }
    }

    pub fn plain() -> Style {
        Style { on: false }
    }

    fn wrap(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    pub fn bold(&self, s: &str) -> String {
        self.wrap("1", s)
    }
    pub fn dim(&self, s: &str) -> String {
        self.wrap("2", s)
    }
    pub fn red(&self, s: &str) -> String {
        self.wrap("31", s)
    }
    pub fn green(&self, s: &str) -> String {
        self.wrap("32", s)
    }
    pub fn yellow(&self, s: &str) -> String {
        self.wrap("33", s)
    }
    pub fn cyan(&self, s: &str) -> String {
        self.wrap("36", s)
    }
}

/// `850ms`, `2.3s`, `4m05s`, `1h02m`.
pub fn duration(ns: u64) -> String {
    let ms = ns / 1_000_000;
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    }
}

/// `$0.0518`, `$1.23`, `$1,234`.
pub fn cost(usd: f64) -> String {
    if usd == 0.0 {
        "$0".into()
    } else if usd < 1.0 {
        format!("${usd:.4}")
    } else if usd < 1000.0 {
        format!("${usd:.2}")
    } else {
        format!("${}", thousands(usd.round() as u64))
    }
}

/// `950`, `12.3k`, `4.5M`.
pub fn tokens(n: u64) -> String {
    if n < 1000 {
        n.to_string()
    } else if n < 1_000_000 {
        format!("{:.1}k", n as f64 / 1000.0)
    } else {
        format!("{:.1}M", n as f64 / 1_000_000.0)
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `2026-11-21 22:58` (UTC).
pub fn time(unix_ns: i64) -> String {
    if unix_ns <= 0 {
        return "-".into();
    }
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(unix_ns as u64);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    s.get(..16).unwrap_or(&s).replace('T', " ")
}

/// Shortens to `n` characters with an ellipsis, on one line.
pub fn clip(s: &str, n: usize) -> String {
    let one_line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= n {
        one_line
    } else {
        let cut: String = one_line.chars().take(n.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// Visible width, ignoring ANSI escapes.
fn width(s: &str) -> usize {
    let mut w = 0;
    let mut in_escape = false;
    for c in s.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, _) => w += 1,
        }
    }
    w
}

/// An aligned table; columns listed in `right` are right-aligned (numbers).
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    right: Vec<usize>,
}

impl Table {
    pub fn new(headers: &[&str], right: &[usize]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            right: right.to_vec(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self, style: Style) -> String {
        let n = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                widths[i] = widths[i].max(width(c));
            }
        }
        let line = |cells: &[String], bold: bool| -> String {
            let mut out = String::new();
            for (i, c) in cells.iter().enumerate().take(n) {
                let pad = widths[i].saturating_sub(width(c));
                let cell = if bold { style.bold(c) } else { c.clone() };
                if i > 0 {
                    out.push_str("  ");
                }
                if self.right.contains(&i) {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(&cell);
                } else {
                    out.push_str(&cell);
                    if i + 1 < n {
                        out.push_str(&" ".repeat(pad));
                    }
                }
            }
            out.trim_end().to_string()
        };
        let mut out = line(&self.headers, true);
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r, false));
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_numbers() {
        assert_eq!(duration(850_000_000), "850ms");
        assert_eq!(duration(2_345_000_000), "2.3s");
        assert_eq!(duration(245_000_000_000), "4m05s");
        assert_eq!(duration(3_720_000_000_000), "1h02m");
        assert_eq!(cost(0.0518), "$0.0518");
        assert_eq!(cost(12.345), "$12.35");
        assert_eq!(cost(12345.0), "$12,345");
        assert_eq!(tokens(950), "950");
        assert_eq!(tokens(12_345), "12.3k");
        assert_eq!(time(1_795_301_920_897_000_000), "2026-11-21 22:58");
        assert_eq!(clip("a  b\nc", 10), "a b c");
        assert_eq!(clip("abcdefghijkl", 5), "abcd…");
    }

    #[test]
    fn tables_align_and_ignore_colour_codes() {
        let mut t = Table::new(&["name", "n"], &[1]);
        t.row(vec!["\x1b[31mx\x1b[0m".into(), "1".into()]);
        t.row(vec!["longer".into(), "100".into()]);
        let out = t.render(Style::plain());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "name      n");
        assert_eq!(lines[2], "longer  100");
        assert!(lines[1].ends_with("    1"));
    }
}
