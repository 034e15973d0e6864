//! Overlays drawn over a view: node details, the dead-letter list, help,
//! and the confirmation dialog; centred, clamped to the screen.

use crate::console::theme::Theme;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

/// A `width` x `height` rectangle centred in `area`, never larger than it.
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

/// Clear a centred box fitting `lines` (up to `max_width` wide) and draw
/// them in it with a title and a footer hint.
pub fn draw_lines(
    frame: &mut Frame,
    area: Rect,
    title: &str,
    hint: &str,
    lines: Vec<Line>,
    max_width: u16,
    theme: &Theme,
) {
    let content = lines.iter().map(Line::width).max().unwrap_or(0) as u16;
    let width = content
        .max(title.len() as u16 + 4)
        .max(hint.len() as u16 + 4)
        .saturating_add(4)
        .min(max_width);
    let height = lines.len() as u16 + 2;
    let rect = centered(area, width, height);
    let block = Block::bordered()
        .border_style(theme.accent)
        .title(Span::styled(format!(" {title} "), theme.header))
        .title_bottom(Line::from(Span::styled(format!(" {hint} "), theme.dim)).right_aligned());
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block),
        rect,
    );
}

/// `label` padded to `width`, dim, followed by `value`.
pub fn field<'a>(label: &str, width: usize, value: impl Into<Span<'a>>, theme: &Theme) -> Line<'a> {
    Line::from(vec![
        Span::styled(format!("{label:<width$}"), theme.dim),
        value.into(),
    ])
}
