//! What the binary tells the user on stderr, by level: `-q` errors only; the default
//! adds warnings and notes; `-v` the resolved settings, device, model and timings;
//! `-vv` every iteration. Only the `error:`/`warning:`/`note:` labels are coloured,
//! and only where colour is wanted (`--color`, `NO_COLOR`, a terminal).

use std::io::IsTerminal;

/// When to colour, as `--color` says.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ColorChoice {
    /// On a terminal, unless NO_COLOR is set or TERM is dumb.
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether stderr gets colour. `always` wins over NO_COLOR: it is an explicit
    /// request; `auto` honours NO_COLOR (any non-empty value) and TERM=dumb.
    pub fn for_stderr(self) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
                let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
                !no_color && !dumb && std::io::stderr().is_terminal()
            }
        }
    }

    /// `--color` as given on the command line, read before clap parses it (for
    /// clap's own errors); auto when absent or unreadable.
    pub fn from_raw_args() -> ColorChoice {
        let args: Vec<String> = std::env::args().collect();
        let value = args.iter().enumerate().find_map(|(i, a)| {
            a.strip_prefix("--color=")
                .map(str::to_string)
                .or_else(|| (a == "--color").then(|| args.get(i + 1).cloned()).flatten())
        });
        match value.as_deref() {
            Some("always") => ColorChoice::Always,
            Some("never") => ColorChoice::Never,
            _ => ColorChoice::Auto,
        }
    }
}

/// How much the binary says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Errors only (`-q`).
    Quiet,
    /// Warnings and notes too (the default).
    Normal,
    /// Settings, device, model and timings (`-v`).
    Verbose,
    /// Every iteration (`-vv`).
    Debug,
}

impl Level {
    pub fn from_flags(quiet: bool, verbose: u8) -> Level {
        match (quiet, verbose) {
            (true, _) => Level::Quiet,
            (false, 0) => Level::Normal,
            (false, 1) => Level::Verbose,
            _ => Level::Debug,
        }
    }
}

/// Prints messages for one run of the binary.
#[derive(Clone, Copy, Debug)]
pub struct Ui {
    pub level: Level,
    color: bool,
}

const RED: &str = "\x1b[1;31m";
const YELLOW: &str = "\x1b[1;33m";
const CYAN: &str = "\x1b[1;36m";
const RESET: &str = "\x1b[0m";

impl Ui {
    pub fn new(level: Level, color: ColorChoice) -> Ui {
        Ui { level, color: color.for_stderr() }
    }

    fn label(&self, style: &str, label: &str) -> String {
        if self.color {
            format!("clipdraw: {style}{label}:{RESET}")
        } else {
            format!("clipdraw: {label}:")
        }
    }

    /// Always printed.
    pub fn error(&self, msg: &str) {
        eprintln!("{} {msg}", self.label(RED, "error"));
    }

    pub fn warning(&self, msg: &str) {
        if self.level >= Level::Normal {
            eprintln!("{} {msg}", self.label(YELLOW, "warning"));
        }
    }

    pub fn note(&self, msg: &str) {
        if self.level >= Level::Normal {
            eprintln!("{} {msg}", self.label(CYAN, "note"));
        }
    }

    /// `-v` and up: plain lines, no label.
    pub fn info(&self, msg: &str) {
        if self.level >= Level::Verbose {
            eprintln!("clipdraw: {msg}");
        }
    }

    pub fn verbose(&self) -> bool {
        self.level >= Level::Verbose
    }

    pub fn debug(&self) -> bool {
        self.level >= Level::Debug
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_map_to_levels() {
        assert_eq!(Level::from_flags(true, 2), Level::Quiet);
        assert_eq!(Level::from_flags(false, 0), Level::Normal);
        assert_eq!(Level::from_flags(false, 1), Level::Verbose);
        assert_eq!(Level::from_flags(false, 5), Level::Debug);
        assert!(Level::Debug > Level::Verbose && Level::Normal > Level::Quiet);
    }

    #[test]
    fn explicit_choices_ignore_the_environment() {
        assert!(ColorChoice::Always.for_stderr());
        assert!(!ColorChoice::Never.for_stderr());
        let plain = Ui { level: Level::Normal, color: false };
        assert_eq!(plain.label(RED, "error"), "clipdraw: error:");
        let coloured = Ui { level: Level::Normal, color: true };
        assert_eq!(coloured.label(RED, "error"), "clipdraw: \x1b[1;31merror:\x1b[0m");
    }
}
