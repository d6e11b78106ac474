//! A live step line with the elapsed time, redrawn on a terminal; silent otherwise.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The most characters of a step that are shown.
const STEP_MAX: usize = 120;

pub struct Progress {
    state: Option<Arc<State>>,
    ticker: Option<std::thread::JoinHandle<()>>,
    start: Instant,
}

struct State {
    label: String,
    step: Mutex<String>,
    done: AtomicBool,
    start: Instant,
}

impl State {
    fn draw(&self) {
        let step = self.step.lock().map(|s| s.clone()).unwrap_or_default();
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K[{:>6.1}s] {}: {}",
            self.start.elapsed().as_secs_f64(),
            self.label,
            step
        );
        let _ = err.flush();
    }
}

impl Progress {
    /// `live`: draw on stderr (pass whether stderr is a terminal).
    pub fn new(label: impl Into<String>, live: bool) -> Progress {
        let start = Instant::now();
        if !live {
            return Progress {
                state: None,
                ticker: None,
                start,
            };
        }
        let state = Arc::new(State {
            label: label.into(),
            step: Mutex::new("starting".into()),
            done: AtomicBool::new(false),
            start,
        });
        let s = state.clone();
        let ticker = std::thread::spawn(move || {
            while !s.done.load(Ordering::Relaxed) {
                s.draw();
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Progress {
            state: Some(state),
            ticker: Some(ticker),
            start,
        }
    }

    /// A silent progress (tests, non-terminals).
    pub fn quiet() -> Progress {
        Progress::new("", false)
    }

    /// The current step. It may come from the build's output (a build container's stderr):
    /// control characters are dropped (no terminal escapes) and it is cut to one line's length.
    pub fn step(&self, step: &str) {
        if let Some(s) = &self.state {
            if let Ok(mut g) = s.step.lock() {
                *g = step
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(STEP_MAX)
                    .collect();
            }
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Ends the line with `message` (on a terminal).
    pub fn finish(mut self, message: &str) {
        if let Some(s) = self.state.take() {
            s.done.store(true, Ordering::Relaxed);
            if let Some(t) = self.ticker.take() {
                let _ = t.join();
            }
            eprintln!(
                "\r\x1b[2K[{:>6.1}s] {}: {message}",
                s.start.elapsed().as_secs_f64(),
                s.label
            );
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(s) = self.state.take() {
            s.done.store(true, Ordering::Relaxed);
            if let Some(t) = self.ticker.take() {
                let _ = t.join();
            }
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// build.rs passes every `I: ` line of the build container's stderr to `step`, and the
    /// ticker writes it raw to the terminal every 200 ms.
    #[test]
    fn a_step_from_the_build_cannot_drive_the_terminal() {
        let p = Progress::new("image", true);
        p.step("packing \u{1b}]52;c;ZWNobyBwd25lZA==\u{7}\u{1b}[2J\u{1b}]0;title\u{7}");
        let shown = p
            .state
            .as_ref()
            .map(|s| s.step.lock().map(|g| g.clone()).unwrap_or_default())
            .unwrap_or_default();
        drop(p);
        assert!(
            !shown.chars().any(char::is_control),
            "drawn as is: {shown:?}"
        );
    }
}
