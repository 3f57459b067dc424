//! The Rust tokenizer against ids that open_clip 3.3.0 produced
//! (tests/data/tokenizer_corpus.json, made by scripts/make_tokenizer_corpus.py), plus
//! framing, truncation and broken-merges cases.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use clipdraw::tokenizer::{Tokenizer, END_OF_TEXT, START_OF_TEXT, VOCAB_SIZE};
use serde::Deserialize;

#[derive(Deserialize)]
struct Corpus {
    context_length: usize,
    entries: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    category: String,
    text: String,
    /// Absent for the corpus-wide length.
    context_length: Option<usize>,
    /// open_clip's row with the trailing 0 padding removed.
    ids: Vec<i64>,
    truncated: bool,
}

fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn merges_gz() -> Vec<u8> {
    let path = repo_path("assets/bpe_simple_vocab_16e6.txt.gz");
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn merges_text() -> String {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::GzDecoder::new(&merges_gz()[..]).read_to_string(&mut text).unwrap();
    text
}

fn tokenizer() -> &'static Tokenizer {
    static TOKENIZER: OnceLock<Tokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| Tokenizer::from_merges_gz(&merges_gz()).expect("shipped merges load"))
}

#[test]
fn corpus_matches_open_clip() {
    let path = repo_path("tests/data/tokenizer_corpus.json");
    let json = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let corpus: Corpus = serde_json::from_str(&json).expect("corpus parses");
    assert!(corpus.entries.len() >= 500, "corpus has only {} entries", corpus.entries.len());

    let tok = tokenizer();
    let mut failures = Vec::new();
    for e in &corpus.entries {
        let n = e.context_length.unwrap_or(corpus.context_length);
        let mut want = e.ids.clone();
        want.resize(n, 0);
        let got = tok.tokenize(&e.text, n);
        if got.ids != want || got.truncated != e.truncated {
            let (cat, text, want_ids, want_cut) = (&e.category, &e.text, &e.ids, e.truncated);
            let (got_ids, got_cut) = (trim(&got.ids), got.truncated);
            failures.push(format!(
                "[{cat}] {text:?} (context {n})\n    \
                 open_clip: {want_ids:?} truncated={want_cut}\n    \
                 rust:      {got_ids:?} truncated={got_cut}"
            ));
        } else if !e.truncated {
            // `encode` is the framed ids without START/END.
            assert_eq!(tok.encode(&e.text), e.ids[1..e.ids.len() - 1], "encode({:?})", e.text);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus entries differ from open_clip:\n{}",
        failures.len(),
        corpus.entries.len(),
        failures.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
}

fn trim(ids: &[i64]) -> &[i64] {
    let end = ids.iter().rposition(|&i| i != 0).map_or(0, |p| p + 1);
    &ids[..end]
}

#[test]
fn frames_with_start_and_end_and_pads_with_zero() {
    let t = tokenizer().tokenize("a drawing of a cat", 77);
    assert_eq!(t.ids.len(), 77);
    assert_eq!(&t.ids[..7], [START_OF_TEXT, 320, 3610, 539, 320, 2368, END_OF_TEXT]);
    assert!(t.ids[7..].iter().all(|&i| i == 0));
    assert!(!t.truncated);

    let empty = tokenizer().tokenize("  \n ", 5);
    assert_eq!(empty.ids, [START_OF_TEXT, END_OF_TEXT, 0, 0, 0]);
    assert!(!empty.truncated);
}

#[test]
fn truncation_keeps_end_token_last() {
    let tok = tokenizer();
    // "cat" is one token, so n repeats give n + 2 framed ids.
    let fits = tok.tokenize(&"cat ".repeat(75), 77);
    assert!(!fits.truncated);
    assert_eq!(fits.ids[76], END_OF_TEXT);

    let long = "cat ".repeat(76);
    let cut = tok.tokenize(&long, 77);
    assert!(cut.truncated);
    assert_eq!(cut.ids.len(), 77);
    assert_eq!(cut.ids[0], START_OF_TEXT);
    assert_eq!(cut.ids[76], END_OF_TEXT);
    assert_eq!(cut.ids[1..76], tok.encode(&long)[..75]);
}

#[test]
fn tiny_context_lengths_follow_open_clip() {
    let tok = tokenizer();
    assert_eq!(
        tok.tokenize("cat", 0),
        clipdraw::tokenizer::Tokenized { ids: vec![], truncated: true }
    );
    assert_eq!(tok.tokenize("cat", 1).ids, [END_OF_TEXT]);
    assert_eq!(tok.tokenize("cat", 2).ids, [START_OF_TEXT, END_OF_TEXT]);
    assert!(tok.tokenize("cat", 2).truncated);
    assert!(!tok.tokenize("", 2).truncated);
}

#[test]
fn vocabulary_has_49408_tokens() {
    assert_eq!(tokenizer().vocab_size(), VOCAB_SIZE);
    assert_eq!(VOCAB_SIZE, 49408);
    assert_eq!(
        tokenizer().decode(&[START_OF_TEXT, END_OF_TEXT]).unwrap(),
        "<start_of_text><end_of_text>"
    );
}

#[test]
fn gzip_and_plain_text_merges_agree() {
    let from_text = Tokenizer::from_merges_text(&merges_text()).unwrap();
    let prompt = "An owl, drawn in ink — 自転車 🐕";
    assert_eq!(from_text.tokenize(prompt, 77), tokenizer().tokenize(prompt, 77));
}

/// The merges text with line `line_no` (1-based; the header is line 1) replaced.
fn with_line(text: &str, line_no: usize, line: &str) -> String {
    let mut lines: Vec<&str> = text.split('\n').collect();
    lines[line_no - 1] = line;
    lines.join("\n")
}

#[test]
fn broken_merges_data_is_an_error_naming_the_problem() {
    let text = merges_text();
    let err = |r: anyhow::Result<Tokenizer>| match r {
        Ok(_) => panic!("broken merges data was accepted"),
        Err(e) => format!("{e:#}"),
    };

    let msg = err(Tokenizer::from_merges_gz(b"not gzip at all"));
    assert!(msg.contains("gzip") && msg.contains("15 bytes"), "{msg}");

    let short: String = text.split('\n').take(11).collect::<Vec<_>>().join("\n");
    let msg = err(Tokenizer::from_merges_text(&short));
    assert!(msg.contains("has 10 lines") && msg.contains("48894"), "{msg}");
    assert!(err(Tokenizer::from_merges_text("")).contains("has 0 lines"));

    let msg = err(Tokenizer::from_merges_text(&with_line(&text, 5, "i n g")));
    assert!(msg.contains("line 5") && msg.contains("two"), "{msg}");

    let msg = err(Tokenizer::from_merges_text(&with_line(&text, 7, "zzz q")));
    assert!(msg.contains("line 7") && msg.contains("\"zzz\""), "{msg}");

    // Line 2 is the first merge ("i n"); making it again is a duplicate token.
    let first = text.split('\n').nth(1).unwrap().to_string();
    let msg = err(Tokenizer::from_merges_text(&with_line(&text, 9, &first)));
    assert!(msg.contains("line 9") && msg.contains("second time"), "{msg}");
}

#[test]
fn tokenizer_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Tokenizer>();
}

#[test]
fn tokenizing_is_fast_even_for_huge_input() {
    let tok = tokenizer();
    let prompts = [
        "a drawing of a cat",
        "An oil painting of the Eiffel Tower at sunset, 4k",
        "自転車に乗る犬 🐕",
        "Tom &amp; Jerry’s café",
    ];
    let start = Instant::now();
    for i in 0..1000 {
        tok.tokenize(prompts[i % prompts.len()], 77);
    }
    let per_prompt = start.elapsed() / 1000;
    // Typically tens of microseconds in release; the bound only catches blunders such
    // as compiling regexes per call, even in an unoptimised build on a busy machine.
    assert!(per_prompt.as_millis() < 5, "tokenizing a prompt took {per_prompt:?}");

    // One 200,000-byte word: BPE must not be quadratic in the word length.
    let start = Instant::now();
    let ids = tok.encode(&"ab".repeat(100_000));
    assert!(ids.len() > 1000);
    assert!(start.elapsed().as_secs() < 10, "a 200 kB word took {:?}", start.elapsed());
}
