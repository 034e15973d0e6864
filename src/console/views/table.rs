//! What the table views share: selection and scrolling over the rows that
//! match the `/` filter, columns that drop out (least important first) when
//! the terminal is narrow, and the message shown when a source is unreadable.

use crate::console::action::Action;
use crate::console::theme::Theme;
use crate::inspect::Source;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, Wrap};
use std::ops::Range;

/// Selection, scroll offset and filter of one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableNav {
    /// Index of the selected row among the rows shown.
    pub selected: usize,
    /// First row drawn.
    pub offset: usize,
    /// The `/` filter (case-insensitive substring).
    pub filter: String,
}

impl TableNav {
    /// Move on `j`/`k`/arrows, `g`/`G`/Home/End, PageUp/PageDown (Ctrl-d/u);
    /// returns whether the key was a movement.
    pub fn handle(&mut self, key: &KeyEvent, len: usize, page: usize) -> bool {
        let last = len.saturating_sub(1);
        let page = page.max(1);
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('j') | KeyCode::Down => self.selected = (self.selected + 1).min(last),
            KeyCode::Char('k') | KeyCode::Up => self.selected = self.selected.saturating_sub(1),
            KeyCode::Char('g') | KeyCode::Home => self.selected = 0,
            KeyCode::Char('G') | KeyCode::End => self.selected = last,
            KeyCode::PageDown => self.selected = (self.selected + page).min(last),
            KeyCode::Char('d') if ctrl => self.selected = (self.selected + page).min(last),
            KeyCode::PageUp => self.selected = self.selected.saturating_sub(page),
            KeyCode::Char('u') if ctrl => self.selected = self.selected.saturating_sub(page),
            _ => return false,
        }
        true
    }

    /// Keep the selection inside `len` rows.
    pub fn clamp(&mut self, len: usize) {
        self.selected = self.selected.min(len.saturating_sub(1));
    }

    /// The rows to draw in `height` lines, scrolled so the selection shows.
    pub fn window(&mut self, len: usize, height: usize) -> Range<usize> {
        self.clamp(len);
        let height = height.max(1);
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + height {
            self.offset = self.selected + 1 - height;
        }
        self.offset = self.offset.min(len.saturating_sub(height));
        self.offset..(self.offset + height).min(len)
    }

    /// Whether any of `fields` contains the filter (case-insensitive).
    pub fn matches(&self, fields: &[&str]) -> bool {
        matches_filter(&self.filter, fields)
    }
}

/// Whether any of `fields` contains `filter` (case-insensitive); an empty
/// filter matches everything.
pub fn matches_filter(filter: &str, fields: &[&str]) -> bool {
    if filter.is_empty() {
        return true;
    }
    if filter.is_ascii() && fields.iter().all(|f| f.is_ascii()) {
        let needle = filter.as_bytes();
        return fields.iter().any(|f| {
            f.as_bytes()
                .windows(needle.len())
                .any(|w| w.eq_ignore_ascii_case(needle))
        });
    }
    let needle = filter.to_lowercase();
    fields.iter().any(|f| f.to_lowercase().contains(&needle))
}

/// One column: its header, width, and how important it is (0 is never
/// dropped; the highest number goes first when the terminal is narrow).
#[derive(Debug, Clone, Copy)]
pub struct Col {
    /// Header.
    pub title: &'static str,
    /// Width in cells (the minimum, for a fill column).
    pub width: u16,
    /// Drop order: higher drops first.
    pub priority: u8,
    /// Grows into the space left, up to `want`.
    pub fill: bool,
    /// The width a fill column would like (its longest value).
    pub want: u16,
}

impl Col {
    /// A fixed-width column.
    pub const fn new(title: &'static str, width: u16, priority: u8) -> Self {
        Self {
            title,
            width,
            priority,
            fill: false,
            want: width,
        }
    }

    /// A column that grows into the space left (its width is the minimum).
    pub const fn fill(title: &'static str, width: u16, priority: u8) -> Self {
        Self {
            title,
            width,
            priority,
            fill: true,
            want: u16::MAX,
        }
    }

    /// A fill column that grows no wider than its longest value.
    pub fn wanting(mut self, longest: usize) -> Self {
        self.want = longest.max(self.title.len()).min(u16::MAX as usize) as u16;
        self
    }
}

/// The widest of some values, in characters.
pub fn longest<'a>(values: impl Iterator<Item = &'a str>) -> usize {
    values.map(|v| v.chars().count()).max().unwrap_or(0)
}

/// The width of each kept column: fill columns share the space left over,
/// in order, each up to what it wants.
pub fn widths(cols: &[Col], keep: &[usize], width: u16) -> Vec<u16> {
    let used: u32 = keep.iter().map(|&i| cols[i].width as u32).sum::<u32>()
        + keep.len().saturating_sub(1) as u32;
    let mut slack = (width as u32).saturating_sub(used);
    keep.iter()
        .map(|&i| {
            let c = cols[i];
            if !c.fill {
                return c.width;
            }
            let extra = slack.min(c.want.saturating_sub(c.width) as u32);
            slack -= extra;
            c.width + extra as u16
        })
        .collect()
}

/// The indices of the columns that fit in `width` (with one space between
/// columns), dropping the least important first.
pub fn fit(cols: &[Col], width: u16) -> Vec<usize> {
    let mut keep: Vec<usize> = (0..cols.len()).collect();
    let total = |keep: &[usize]| -> u32 {
        keep.iter().map(|&i| cols[i].width as u32).sum::<u32>()
            + keep.len().saturating_sub(1) as u32
    };
    while total(&keep) > width as u32 {
        let Some(pos) = keep
            .iter()
            .enumerate()
            .filter(|(_, i)| cols[**i].priority > 0)
            .max_by_key(|(pos, i)| (cols[**i].priority, *pos))
            .map(|(pos, _)| pos)
        else {
            break;
        };
        keep.remove(pos);
    }
    keep
}

/// A table drawn from a window of rows.
pub struct TableSpec<'a> {
    /// Block title.
    pub title: Line<'a>,
    /// All columns (some may be dropped).
    pub cols: &'a [Col],
    /// Rows that match the filter.
    pub len: usize,
    /// Shown when there is no row.
    pub empty: &'a str,
    /// Whether the selected row is highlighted.
    pub focused: bool,
}

impl<'a> TableSpec<'a> {
    /// A table whose selected row is highlighted (the usual case).
    pub fn focused(title: Line<'a>, cols: &'a [Col], len: usize, empty: &'a str) -> Self {
        TableSpec {
            title,
            cols,
            len,
            empty,
            focused: true,
        }
    }
}

/// While an overlay is open, Esc or Enter closes it and every other key is
/// ignored: `Some(what the view returns)`. `None` when no overlay is open, so
/// the view handles the key itself.
pub fn close_overlay<T>(overlay: &mut Option<T>, key: &KeyEvent) -> Option<Option<Action>> {
    overlay.as_ref()?;
    Some(match key.code {
        KeyCode::Esc | KeyCode::Enter => {
            *overlay = None;
            Some(Action::Render)
        }
        _ => None,
    })
}

/// Draw a bordered table showing only the rows that fit; `row(i)` gives the
/// cells (one per column of `spec.cols`) and the style of the i-th row.
pub fn draw_table<'a>(
    frame: &mut Frame,
    area: Rect,
    spec: TableSpec<'a>,
    nav: &mut TableNav,
    theme: &Theme,
    mut row: impl FnMut(usize) -> (Vec<Cell<'a>>, Style),
) {
    let block = Block::bordered()
        .border_style(theme.border)
        .title(spec.title);
    let inner = block.inner(area);
    if spec.len == 0 {
        let msg = if nav.filter.is_empty() {
            spec.empty.to_string()
        } else {
            format!("nothing matches /{}", nav.filter)
        };
        frame.render_widget(
            Paragraph::new(Span::styled(msg, theme.dim)).block(block),
            area,
        );
        return;
    }
    let keep = fit(spec.cols, inner.width);
    let window = nav.window(spec.len, inner.height.saturating_sub(1) as usize);
    let header = Row::new(keep.iter().map(|&i| Cell::from(spec.cols[i].title))).style(theme.header);
    let mut rows = Vec::with_capacity(window.len());
    for i in window {
        let (cells, style) = row(i);
        let mut cells: Vec<Option<Cell>> = cells.into_iter().map(Some).collect();
        let picked: Vec<Cell> = keep
            .iter()
            .filter_map(|&c| cells.get_mut(c).and_then(Option::take))
            .collect();
        let style = if spec.focused && i == nav.selected {
            theme.selected
        } else {
            style
        };
        rows.push(Row::new(picked).style(style));
    }
    let widths = widths(spec.cols, &keep, inner.width)
        .into_iter()
        .map(Constraint::Length);
    let table = Table::new(rows, widths)
        .header(header)
        .block(block)
        .column_spacing(1);
    frame.render_widget(table, area);
}

/// `" Locks 3/1000 /filter "`: a view's title with the selected position
/// and the filter.
pub fn title<'a>(name: &str, nav: &TableNav, len: usize, total: usize, theme: &Theme) -> Line<'a> {
    let mut spans = vec![Span::styled(format!(" {name} "), theme.header)];
    let pos = if len == 0 {
        0
    } else {
        nav.selected.min(len - 1) + 1
    };
    spans.push(Span::styled(format!("{pos}/{len} "), theme.dim));
    if len != total {
        spans.push(Span::styled(format!("of {total} "), theme.dim));
    }
    if !nav.filter.is_empty() {
        spans.push(Span::styled(format!("/{} ", nav.filter), theme.accent));
    }
    Line::from(spans)
}

/// Draw "`what` unreadable" with the source and reason, or "not configured",
/// when `source` holds no data; returns the data otherwise.
pub fn data_or_message<'s, T>(
    frame: &mut Frame,
    area: Rect,
    what: &str,
    source: &'s Source<T>,
    theme: &Theme,
) -> Option<&'s T> {
    let lines = match source {
        Source::Ok(data) => return Some(data),
        Source::Unavailable { source, reason } => vec![
            Line::from(Span::styled(format!("{what} unreadable"), theme.bad)),
            Line::from(""),
            Line::from(vec![
                Span::styled("source  ", theme.dim),
                Span::raw(source.clone()),
            ]),
            Line::from(vec![
                Span::styled("reason  ", theme.dim),
                Span::raw(reason.clone()),
            ]),
        ],
        Source::NotConfigured => vec![Line::from(Span::styled(
            format!(
                "{what}: not configured (this adapter is memory/local: nothing shared to read)"
            ),
            theme.dim,
        ))],
    };
    let block = Block::bordered()
        .border_style(theme.border)
        .title(Span::styled(format!(" {what} "), theme.header));
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block),
        area,
    );
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrow_tables_drop_the_least_important_columns() {
        let cols = [
            Col::new("A", 10, 0),
            Col::new("B", 10, 2),
            Col::new("C", 10, 1),
            Col::new("D", 10, 2),
        ];
        assert_eq!(fit(&cols, 43), vec![0, 1, 2, 3]);
        assert_eq!(
            fit(&cols, 40),
            vec![0, 1, 2],
            "the rightmost of the least important goes first"
        );
        assert_eq!(fit(&cols, 25), vec![0, 2]);
        assert_eq!(fit(&cols, 5), vec![0], "priority 0 stays");
    }

    #[test]
    fn the_window_follows_the_selection() {
        let mut nav = TableNav {
            selected: 15,
            ..TableNav::default()
        };
        assert_eq!(nav.window(100, 10), 6..16);
        nav.selected = 2;
        assert_eq!(nav.window(100, 10), 2..12);
        nav.selected = 500;
        assert_eq!(nav.window(100, 10), 90..100);
        assert_eq!(nav.selected, 99);
    }

    #[test]
    fn the_filter_ignores_case() {
        assert!(matches_filter("NODE-A", &["x", "node-a"]));
        assert!(matches_filter("", &[]));
        assert!(!matches_filter("zz", &["node-a"]));
        assert!(matches_filter("é", &["CAFÉ"]));
    }
}
