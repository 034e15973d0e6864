//! The Prometheus text exposition format (version 0.0.4): one `# HELP` and
//! one `# TYPE` line per metric family, its samples right after them, label
//! values and help texts escaped as the format requires.

use std::fmt::Write as _;

/// The `Content-Type` of a body written by [`Exposition`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value that goes up and down.
    Gauge,
    /// A value that only goes up (its name ends in `_total`).
    Counter,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        }
    }
}

/// A body being written, family after family.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// An empty body.
    pub fn new() -> Self {
        Self::default()
    }

    /// Start the family `name`; its samples follow with [`Family::sample`].
    /// Each name is started once per body (the format wants a family's
    /// samples together).
    pub fn family<'a>(&'a mut self, name: &'a str, kind: Kind, help: &str) -> Family<'a> {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
        Family {
            out: &mut self.out,
            name,
        }
    }

    /// The finished body.
    pub fn finish(self) -> String {
        self.out
    }
}

/// One family's samples.
#[derive(Debug)]
pub struct Family<'a> {
    out: &'a mut String,
    name: &'a str,
}

impl Family<'_> {
    /// One sample: `name{labels} value`.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", format_value(value));
        self
    }

    /// One sample of a count.
    pub fn count(&mut self, labels: &[(&str, &str)], value: u64) -> &mut Self {
        self.sample(labels, value as f64)
    }

    /// One sample of a duration in milliseconds, as seconds.
    pub fn millis(&mut self, labels: &[(&str, &str)], ms: u64) -> &mut Self {
        self.sample(labels, ms as f64 / 1000.0)
    }

    /// One sample that is 1 when `on`, else 0.
    pub fn flag(&mut self, labels: &[(&str, &str)], on: bool) -> &mut Self {
        self.sample(labels, if on { 1.0 } else { 0.0 })
    }
}

/// A label value: backslash, double quote and line feed escaped.
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A help text: backslash and line feed escaped.
pub fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample value: integers without a fraction, `NaN`, `+Inf`, `-Inf`.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        // f64's Display never uses an exponent and prints integers bare.
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_and_help_are_escaped_as_the_format_requires() {
        let mut e = Exposition::new();
        e.family("x_seconds", Kind::Gauge, "a \\ help\nsecond line")
            .sample(&[("node", "a\"b\\c\nd"), ("k", "plain")], 1.5)
            .count(&[], 3);
        let body = e.finish();
        assert_eq!(
            body,
            "# HELP x_seconds a \\\\ help\\nsecond line\n\
             # TYPE x_seconds gauge\n\
             x_seconds{node=\"a\\\"b\\\\c\\nd\",k=\"plain\"} 1.5\n\
             x_seconds 3\n"
        );
    }

    #[test]
    fn values_are_plain_numbers_or_the_special_names() {
        assert_eq!(format_value(0.0), "0");
        assert_eq!(format_value(2.0), "2");
        assert_eq!(format_value(0.014), "0.014");
        assert_eq!(format_value(1e17), "100000000000000000");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
    }

    #[test]
    fn a_counter_family_says_counter() {
        let mut e = Exposition::new();
        e.family("y_total", Kind::Counter, "h")
            .count(&[("a", "b")], 0);
        assert!(
            e.finish()
                .contains("# TYPE y_total counter\ny_total{a=\"b\"} 0\n")
        );
    }
}
