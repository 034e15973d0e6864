//! The terminal: raw mode and the alternate screen on entry, restored on
//! exit, on error (drop) and on panic (a hook that restores first, then
//! reports); crossterm's event stream turned into [`Event`]s.

use crossterm::event::{Event as CtEvent, EventStream, KeyEvent, KeyEventKind};
use crossterm::{cursor, execute, terminal};
use futures::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use std::io::{self, Stdout};
use std::sync::Once;

/// What the terminal reports.
#[derive(Debug)]
pub enum Event {
    /// A key was pressed (or repeats).
    Key(KeyEvent),
    /// The window changed size.
    Resize,
    /// Reading the terminal failed.
    Error(io::Error),
}

/// The terminal while the console owns it.
pub struct Tui {
    terminal: Terminal<CrosstermBackend<Stdout>>,
    events: EventStream,
    active: bool,
}

impl Tui {
    /// Take over the terminal: raw mode, alternate screen, hidden cursor.
    pub fn enter() -> io::Result<Self> {
        install_panic_hook();
        terminal::enable_raw_mode()?;
        let mut stdout = io::stdout();
        if let Err(e) = execute!(stdout, terminal::EnterAlternateScreen, cursor::Hide) {
            let _ = restore();
            return Err(e);
        }
        let terminal = match Terminal::new(CrosstermBackend::new(stdout)) {
            Ok(t) => t,
            Err(e) => {
                let _ = restore();
                return Err(e);
            }
        };
        let mut tui = Self {
            terminal,
            events: EventStream::new(),
            active: true,
        };
        tui.terminal.clear()?;
        Ok(tui)
    }

    /// Draw a frame (only the cells that changed reach the terminal).
    pub fn draw(&mut self, f: impl FnOnce(&mut ratatui::Frame)) -> io::Result<()> {
        self.terminal.draw(f).map(|_| ())
    }

    /// The next event the console cares about; `None` when the terminal closed.
    pub async fn next_event(&mut self) -> Option<Event> {
        loop {
            match self.events.next().await? {
                Ok(CtEvent::Key(k)) if k.kind != KeyEventKind::Release => {
                    return Some(Event::Key(k));
                }
                Ok(CtEvent::Resize(..)) => {
                    if let Err(e) = self.terminal.autoresize() {
                        return Some(Event::Error(e));
                    }
                    return Some(Event::Resize);
                }
                Ok(_) => continue,
                Err(e) => return Some(Event::Error(e)),
            }
        }
    }

    /// Give the terminal back as it was.
    pub fn exit(&mut self) -> io::Result<()> {
        if std::mem::take(&mut self.active) {
            restore()?;
        }
        Ok(())
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        let _ = self.exit();
    }
}

/// Leave the alternate screen, show the cursor, leave raw mode. Safe to call
/// more than once.
pub fn restore() -> io::Result<()> {
    let mut stdout = io::stdout();
    let screen = execute!(stdout, terminal::LeaveAlternateScreen, cursor::Show);
    let raw = terminal::disable_raw_mode();
    screen.and(raw)
}

/// On panic, restore the terminal before the previous hook prints the report,
/// so the report is readable and the shell usable.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = restore();
            previous(info);
        }));
    });
}
