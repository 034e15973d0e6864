//! `clusterops bench render`: the time to draw each console view at 160x48
//! into ratatui's TestBackend from a large snapshot (32 nodes, 1,000 locks
//! or `--locks`, 10 streams read by every node, 10 queues). Baseline: a
//! frame that only fills the same screen with one paragraph, measured in the
//! same run.

use clusterops::console::action::Action;
use clusterops::console::app::{App, AppOptions};
use clusterops::console::sample;
use clusterops::console::theme::Theme;
use clusterops::console::views::ViewId;
use clusterops::inspect::Source;
use color_eyre::eyre::Result;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::widgets::{Block, Paragraph};
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// Frames drawn per view.
    #[arg(long, default_value_t = 2000)]
    frames: u32,
    /// Held locks in the snapshot.
    #[arg(long, default_value_t = 1000)]
    locks: u64,
}

fn time(frames: u32, mut draw: impl FnMut()) -> f64 {
    for _ in 0..frames / 10 {
        draw();
    }
    let start = Instant::now();
    for _ in 0..frames {
        draw();
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(frames)
}

pub fn run(args: RenderArgs) -> Result<i32> {
    let (w, h) = (160, 48);
    let frames = args.frames.max(10);
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let options = AppOptions {
        read_only: true,
        theme: Theme::default_colors(),
        source_label: "bench".into(),
        refresh: Duration::from_secs(2),
    };
    let mut app = App::new(options, None, tx, Default::default());
    let large = sample::large_with_locks(args.locks);
    for i in (0..60u64).rev() {
        let mut s = large.clone();
        s.taken_at_ms -= i * 2_000;
        if let Source::Ok(queues) = &mut s.queues {
            queues.iter_mut().for_each(|q| q.waiting += i * 13 % 70);
        }
        app.dispatch(Some(Action::Fetched(Box::new(s))));
    }
    app.set_now(large.taken_at_ms + 2_000);

    let mut terminal = Terminal::new(TestBackend::new(w, h))?;
    let text = "x".repeat(w as usize * h as usize);
    let baseline = time(frames, || {
        let _ = terminal.draw(|f| {
            f.render_widget(
                Paragraph::new(text.as_str()).block(Block::bordered()),
                f.area(),
            )
        });
    });

    let mut per_view = serde_json::Map::new();
    let mut worst: f64 = 0.0;
    for v in ViewId::ALL {
        app.dispatch(Some(Action::SwitchView(v)));
        let us = time(frames, || {
            let _ = terminal.draw(|f| app.draw(f));
        });
        worst = worst.max(us);
        per_view.insert(
            v.command_name().into(),
            serde_json::json!((us * 10.0).round() / 10.0),
        );
    }
    let out = serde_json::json!({
        "bench": "render",
        "screen": format!("{w}x{h}"),
        "snapshot": { "nodes": 32, "locks": args.locks, "streams": 10, "readers_per_stream": 32, "queues": 10 },
        "frames_per_view": frames,
        "us_per_frame": per_view,
        "worst_us_per_frame": (worst * 10.0).round() / 10.0,
        "baseline_us_per_frame": (baseline * 10.0).round() / 10.0,
        "worst_vs_baseline": (worst / baseline * 100.0).round() / 100.0,
        "target_us_per_frame": 1000,
        "meets_target": worst < 1000.0,
    });
    println!("{out}");
    Ok(0)
}
