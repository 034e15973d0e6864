//! Several clusters in the app: `:ctx NAME` switches the context shown
//! (see [`crate::console::contexts`]), `:ctx` lists them.

use crate::console::action::Action;
use crate::console::app::App;
use crate::console::changes::Level;
use crate::console::history::History;

impl App {
    /// `:ctx NAME` (`None`: list the contexts in the status bar).
    pub(crate) fn switch_context(&mut self, name: Option<String>) -> Option<Action> {
        let Some(contexts) = self.contexts.clone() else {
            return Some(Action::Status(
                "one cluster only: start the console with --env-file more than once, or                  --contexts FILE"
                    .into(),
            ));
        };
        let names = contexts.names();
        let list = || {
            let active = contexts.active();
            names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    if i == active {
                        format!("{n}*")
                    } else {
                        n.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        let Some(name) = name else {
            return Some(Action::Status(format!(
                "contexts: {} (:ctx NAME switches)",
                list()
            )));
        };
        let Some(i) = contexts.find(&name) else {
            return Some(Action::Status(format!("no context {name:?}: {}", list())));
        };
        if i == contexts.active() {
            return Some(Action::Status(format!("already on context {}", names[i])));
        }
        contexts.switch(i);
        let now = self.now_ms;
        self.snapshot = None;
        self.history = History::default();
        self.backlog = Default::default();
        self.fetch_error = None;
        self.run = None;
        self.checks_config = contexts.current().config.clone();
        self.log(
            now,
            Level::Info,
            format!("switched to context {}", names[i]),
        );
        Some(Action::RefreshNow)
    }
}
