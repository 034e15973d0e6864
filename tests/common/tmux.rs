//! A private tmux server (its own socket) running one session of a given
//! size, for tests that drive a program in a real terminal and read its
//! screen. Killed on drop.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// One tmux server with one session named `e2e`.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// A `width` x `height` session running `sh` with the prompt `sh>`.
    pub fn start(width: u16, height: u16) -> Self {
        let t = Tmux {
            socket: format!(
                "clusterops-test-{}-{:08x}",
                std::process::id(),
                rand::random::<u32>()
            ),
        };
        let out = t.tmux(&[
            "new-session",
            "-d",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            "-s",
            "e2e",
            "env PS1='sh>' sh",
        ]);
        assert!(
            out.status.success(),
            "tmux: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t
    }

    /// Run a tmux command on this server.
    pub fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux is installed")
    }

    /// Type `text` literally.
    pub fn type_text(&self, text: &str) {
        assert!(
            self.tmux(&["send-keys", "-t", "e2e", "-l", text])
                .status
                .success()
        );
    }

    /// Press one key by its tmux name (`Enter`, `Escape`, `q`).
    pub fn key(&self, key: &str) {
        assert!(self.tmux(&["send-keys", "-t", "e2e", key]).status.success());
    }

    /// The visible screen as text.
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", "e2e"]).stdout)
            .into_owned()
    }

    /// Whether the program on screen uses the alternate screen.
    pub fn alternate_screen_on(&self) -> bool {
        let out = self.tmux(&["display-message", "-p", "-t", "e2e", "#{alternate_on}"]);
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    }

    /// The screen once `ok` holds for it, or `Err` with the last screen
    /// after `within`.
    pub fn wait_until(
        &self,
        within: Duration,
        ok: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        let deadline = Instant::now() + within;
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return Ok(screen);
            }
            if Instant::now() >= deadline {
                return Err(screen);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The screen once it shows every one of `needles` (at most 10 s; panics
    /// with the screen otherwise).
    pub fn wait_for(&self, needles: &[&str]) -> String {
        self.wait_until(Duration::from_secs(10), |s| {
            needles.iter().all(|n| s.contains(n))
        })
        .unwrap_or_else(|screen| panic!("waited 10 s for {needles:?}; the screen shows:\n{screen}"))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}
