//! The progress bar of a long run: simulated time against the scenario's duration, drawn on
//! stderr only when stderr is a terminal, and only once the run has taken a few seconds of
//! wall time — a short run, a pipe or a test sees nothing. It watches the run
//! (`Sim::run_watched`) and has no way to change it, so runs stay deterministic.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ocala_engine::Instant;
use std::io::IsTerminal;
use std::time::{Duration, Instant as Wall};

/// Wall time before a bar appears: quicker runs finish without one.
const SHOW_AFTER: Duration = Duration::from_secs(2);
/// Wall time between two redraws.
const REDRAW: Duration = Duration::from_millis(100);

pub struct Progress {
    started: Wall,
    /// Whether to draw at all (stderr is a terminal).
    enabled: bool,
    last: Option<Wall>,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar on stderr, if stderr is a terminal.
    pub fn on_stderr() -> Progress {
        Progress {
            started: Wall::now(),
            enabled: std::io::stderr().is_terminal(),
            last: None,
            bar: None,
        }
    }

    /// The run has reached `now` of `end`. Cheap when there is nothing to draw.
    pub fn update(&mut self, now: Instant, end: Instant) {
        if !self.enabled {
            return;
        }
        let wall = Wall::now();
        let due = match self.last {
            Some(last) => wall.duration_since(last) >= REDRAW,
            None => wall.duration_since(self.started) >= SHOW_AFTER,
        };
        if !due {
            return;
        }
        self.last = Some(wall);
        let total = end.as_nanos() / 1_000_000;
        let ms = now.as_nanos() / 1_000_000;
        let bar = self.bar.get_or_insert_with(|| {
            // Elapsed time counts from the start of the run, not from the bar's.
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
                .with_elapsed(wall.duration_since(self.started));
            if let Ok(style) = ProgressStyle::with_template(
                "{bar:40} {percent:>3}%  simulated {msg}  ({elapsed} elapsed, {eta} left)",
            ) {
                bar.set_style(style);
            }
            // The time left is estimated from here on: the jump from 0 to where the run
            // already is took no time and would make it look far too short.
            bar.set_position(ms);
            bar.reset_eta();
            bar
        });
        bar.set_position(ms);
        bar.set_message(format!(
            "{:.1} s of {:.1} s",
            ms as f64 / 1e3,
            total as f64 / 1e3
        ));
    }

    /// Removes the bar, if one was drawn.
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
