//! The batch gallery in a real browser: headless Chromium opens `index.html` from
//! disk and every thumbnail decodes (naturalWidth > 0), and every link's target
//! exists.

mod common;

use std::process::Command;

use common::clipdraw;

#[test]
fn every_thumbnail_of_the_gallery_decodes_in_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // A stem with a space-free but non-ASCII slug checks the percent-encoded links.
    std::fs::write(
        d.join("jobs.txt"),
        "a red star\na blue circle & a <square>\n{\"prompt\": \"自転車 star\"}\n",
    )
    .unwrap();
    let o = clipdraw()
        .current_dir(d)
        .args([
            "batch",
            "jobs.txt",
            "-o",
            "out",
            "--strokes",
            "8",
            "--iters",
            "2",
            "--augs",
            "1",
            "-q",
            "--seeds",
            "0..2",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = d.join("out");
    // A page of our own loads the gallery in a frame and reports what it sees; file
    // pages may read each other only with --allow-file-access-from-files.
    std::fs::write(
        d.join("check.html"),
        r#"<!DOCTYPE html><html><body><pre id="result">pending</pre>
<iframe id="g" src="out/index.html" onload="
  const doc = document.getElementById('g').contentDocument;
  const imgs = [...doc.images];
  const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src'));
  const links = [...doc.querySelectorAll('a')].map(a => a.getAttribute('href'));
  document.getElementById('result').textContent =
    'images=' + imgs.length + ' decoded=' + (imgs.length - bad.length) + ' bad=' + JSON.stringify(bad) +
    ' links=' + JSON.stringify(links);
"></iframe></body></html>"#,
    )
    .unwrap();
    let profile = tempfile::tempdir().unwrap();
    let o = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--allow-file-access-from-files",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", d.join("check.html").display()))
        .output()
        .expect("chromium runs (scripts/deps.sh installs it)");
    let dom = String::from_utf8_lossy(&o.stdout).to_string();
    let result = dom
        .split("<pre id=\"result\">")
        .nth(1)
        .and_then(|r| r.split("</pre>").next())
        .unwrap_or_else(|| {
            panic!("no result in the page: {dom}\n{}", String::from_utf8_lossy(&o.stderr))
        });
    assert!(result.starts_with("images=6 decoded=6 bad=[]"), "{result}");
    // Every link leads to a file that exists (percent-decoded).
    let links: Vec<String> = serde_json::from_str(result.split(" links=").nth(1).unwrap()).unwrap();
    assert_eq!(links.len(), 6);
    for href in links {
        let bytes: Vec<u8> = {
            let b = href.as_bytes();
            let mut v = Vec::new();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'%' {
                    v.push(u8::from_str_radix(&href[i + 1..i + 3], 16).unwrap());
                    i += 3;
                } else {
                    v.push(b[i]);
                    i += 1;
                }
            }
            v
        };
        let name = String::from_utf8(bytes).unwrap();
        assert!(name.ends_with(".svg") && out.join(&name).is_file(), "{href} → {name}");
    }
}
