//! Colour themes: `default` (colours) and `mono` (bold, reverse, dim and
//! underline only), chosen by `--theme` or by `NO_COLOR`.

use ratatui::style::{Color, Modifier, Style};

/// The styles every view draws with; views never name a colour themselves.
#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    /// `default` or `mono`.
    pub name: &'static str,
    /// Ordinary text.
    pub text: Style,
    /// Secondary text: labels, free slots, units.
    pub dim: Style,
    /// Table headers and section titles.
    pub header: Style,
    /// Block borders.
    pub border: Style,
    /// The selected row.
    pub selected: Style,
    /// Healthy, live, passing.
    pub ok: Style,
    /// Needs a look.
    pub warn: Style,
    /// Broken, stale, failing.
    pub bad: Style,
    /// The active tab and key names in hints.
    pub accent: Style,
    /// Applied over the body when the data shown is stale (the last fetch failed).
    pub stale: Style,
    /// The banner that says why the data is stale.
    pub banner: Style,
}

impl Theme {
    /// The colour theme.
    pub fn default_colors() -> Self {
        Self {
            name: "default",
            text: Style::new(),
            dim: Style::new().fg(Color::DarkGray),
            header: Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            border: Style::new().fg(Color::DarkGray),
            selected: Style::new()
                .bg(Color::Blue)
                .fg(Color::White)
                .add_modifier(Modifier::BOLD),
            ok: Style::new().fg(Color::Green),
            warn: Style::new().fg(Color::Yellow),
            bad: Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            accent: Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            stale: Style::new().fg(Color::DarkGray),
            banner: Style::new()
                .bg(Color::Red)
                .fg(Color::White)
                .add_modifier(Modifier::BOLD),
        }
    }

    /// No colour at all: for `NO_COLOR`, monochrome terminals and screenshots.
    pub fn mono() -> Self {
        Self {
            name: "mono",
            text: Style::new(),
            dim: Style::new().add_modifier(Modifier::DIM),
            header: Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
            border: Style::new(),
            selected: Style::new().add_modifier(Modifier::REVERSED),
            ok: Style::new(),
            warn: Style::new().add_modifier(Modifier::BOLD),
            bad: Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
            accent: Style::new().add_modifier(Modifier::BOLD),
            stale: Style::new().add_modifier(Modifier::DIM),
            banner: Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD),
        }
    }

    /// The names `--theme` accepts.
    pub const NAMES: [&'static str; 2] = ["default", "mono"];

    /// A theme by name.
    pub fn by_name(name: &str) -> Option<Self> {
        match name {
            "default" => Some(Self::default_colors()),
            "mono" => Some(Self::mono()),
            _ => None,
        }
    }

    /// The theme to use: the one asked for, else `mono` when `no_color` (the
    /// `NO_COLOR` variable is set and not empty), else `default`.
    pub fn choose(asked: Option<&str>, no_color: bool) -> Result<Self, String> {
        match asked {
            Some(name) => Self::by_name(name).ok_or_else(|| {
                format!(
                    "unknown theme {name:?}: use one of {}",
                    Self::NAMES.join(", ")
                )
            }),
            None if no_color => Ok(Self::mono()),
            None => Ok(Self::default_colors()),
        }
    }

    /// Whether `NO_COLOR` asks for no colour (set and not empty).
    pub fn no_color_env() -> bool {
        std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
    }
}

impl Default for Theme {
    fn default() -> Self {
        Self::default_colors()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_picks_mono_unless_a_theme_is_named() {
        assert_eq!(Theme::choose(None, true).unwrap().name, "mono");
        assert_eq!(Theme::choose(None, false).unwrap().name, "default");
        assert_eq!(
            Theme::choose(Some("default"), true).unwrap().name,
            "default"
        );
        let err = Theme::choose(Some("solarized"), false).unwrap_err();
        assert!(err.contains("default, mono"), "{err}");
    }

    #[test]
    fn mono_uses_no_colour() {
        let m = Theme::mono();
        for s in [
            m.text, m.dim, m.header, m.border, m.selected, m.ok, m.warn, m.bad, m.accent, m.stale,
            m.banner,
        ] {
            assert_eq!(s.fg, None);
            assert_eq!(s.bg, None);
        }
    }
}
