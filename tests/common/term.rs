//! A real terminal for tests: a private tmux server (its own socket, no user
//! config) with one 100×50 pane, and a decoder of its captured cells that knows
//! nothing of clipdraw's renderer beyond "▀ is fg over bg".

use std::process::Command;
use std::time::{Duration, Instant};

pub const COLS: u32 = 100;
pub const ROWS: u32 = 50;

pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// Runs `script` with `sh -c` in a fresh pane. The shell traps SIGINT with a
    /// command (not an ignore, which the child would inherit) so that a Ctrl-C
    /// reaches clipdraw and the script goes on to print its exit status.
    pub fn start(name: &str, script: &str) -> Tmux {
        let socket = format!("clipdraw-test-{name}-{}", std::process::id());
        let wrapped = format!("trap 'true' INT; {script}; echo EXIT=$?; sleep 600");
        let st = Command::new("tmux")
            .args(["-L", &socket, "-f", "/dev/null", "new-session", "-d", "-x"])
            .args([&COLS.to_string(), "-y", &ROWS.to_string(), "sh", "-c", &wrapped])
            .env_remove("NO_COLOR")
            .env_remove("TMUX")
            .status()
            .expect("tmux runs (scripts/deps.sh installs it)");
        assert!(st.success(), "tmux new-session failed");
        Tmux { socket }
    }

    fn tmux(&self, args: &[&str]) -> String {
        let o = Command::new("tmux").args(["-L", &self.socket]).args(args).output().unwrap();
        assert!(o.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).to_string()
    }

    /// The screen, with SGR escapes (`-e`) or as plain text.
    pub fn capture(&self, escapes: bool) -> String {
        let mut args = vec!["capture-pane", "-p", "-t", "0"];
        if escapes {
            args.push("-e");
        }
        self.tmux(&args)
    }

    /// Whether the cursor is visible.
    pub fn cursor_shown(&self) -> bool {
        self.tmux(&["display", "-p", "-t", "0", "#{cursor_flag}"]).trim() == "1"
    }

    pub fn send_keys(&self, keys: &str) {
        self.tmux(&["send-keys", "-t", "0", keys]);
    }

    /// Waits until the plain screen satisfies `ok`, or panics after `secs`.
    pub fn wait_for(&self, secs: u64, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let t0 = Instant::now();
        loop {
            let s = self.capture(false);
            if ok(&s) {
                return s;
            }
            assert!(t0.elapsed() < Duration::from_secs(secs), "waited {secs} s for {what}:\n{s}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).status();
    }
}

/// The picture in captured lines: every line with `▀` cells is one row of two
/// pixels (foreground over background); returns (width, height, RGB bytes).
/// Panics on rows of different widths, so a torn frame fails the test.
pub fn decode_half_blocks(captured: &str) -> (usize, usize, Vec<u8>) {
    let mut rows: Vec<(Vec<[u8; 3]>, Vec<[u8; 3]>)> = Vec::new();
    // The terminal's defaults, as far as this picture is concerned.
    let (mut fg, mut bg) = ([0u8; 3], [0u8; 3]);
    for line in captured.lines().filter(|l| l.contains('▀')) {
        let (mut top, mut bottom) = (Vec::new(), Vec::new());
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\x1b' && chars.peek() == Some(&'[') {
                chars.next();
                let mut body = String::new();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        body.push(c);
                        break;
                    }
                    body.push(c);
                }
                if let Some(params) = body.strip_suffix('m') {
                    let p: Vec<u32> = params.split(';').map(|x| x.parse().unwrap_or(0)).collect();
                    let mut i = 0;
                    while i < p.len() {
                        match p[i] {
                            0 => (fg, bg) = ([0; 3], [0; 3]),
                            38 | 48 if p.get(i + 1) == Some(&2) && i + 4 < p.len() => {
                                let rgb = [p[i + 2] as u8, p[i + 3] as u8, p[i + 4] as u8];
                                if p[i] == 38 {
                                    fg = rgb;
                                } else {
                                    bg = rgb;
                                }
                                i += 4;
                            }
                            _ => {}
                        }
                        i += 1;
                    }
                }
            } else if c == '▀' {
                top.push(fg);
                bottom.push(bg);
            }
        }
        rows.push((top, bottom));
    }
    assert!(!rows.is_empty(), "no half-block cells in:\n{captured}");
    let w = rows[0].0.len();
    let mut rgb = Vec::new();
    for (top, bottom) in &rows {
        assert_eq!(top.len(), w, "rows of different widths");
        rgb.extend(top.iter().flatten());
        rgb.extend(bottom.iter().flatten());
    }
    (w, 2 * rows.len(), rgb)
}

/// `rgb` (w×h×3) box-averaged down by an integer `factor`.
pub fn box_down(rgb: &[u8], w: usize, h: usize, factor: usize) -> Vec<u8> {
    let (sw, sh) = (w / factor, h / factor);
    let mut out = vec![0u8; sw * sh * 3];
    for y in 0..sh {
        for x in 0..sw {
            for c in 0..3 {
                let mut sum = 0u32;
                for dy in 0..factor {
                    for dx in 0..factor {
                        sum += rgb[3 * ((y * factor + dy) * w + x * factor + dx) + c] as u32;
                    }
                }
                out[3 * (y * sw + x) + c] = (sum as f64 / (factor * factor) as f64).round() as u8;
            }
        }
    }
    out
}

/// Mean absolute difference of two equal-length byte images, in 0–255 units.
pub fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len(), "images of different sizes");
    a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).abs()).sum::<f64>() / a.len() as f64
}

/// A PNG file as (width, height, RGB bytes).
pub fn load_rgb(path: &std::path::Path) -> (usize, usize, Vec<u8>) {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8();
    (img.width() as usize, img.height() as usize, img.into_raw())
}
