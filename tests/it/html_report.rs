//! `harness report --format html`: one self-contained page (figures inlined, no script, no
//! external resource) whose numbers link to the runs behind them, opened in headless
//! Chromium when it is installed (Debian package `chromium`) and checked for console
//! errors; without Chromium that part is skipped with a message.

use std::collections::BTreeSet;
use std::process::Command;

use crate::common::{stderr, Workspace, TINY_PROFILE};

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|bin| {
            Command::new(bin)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

/// The values of `attr="…"` in `html`.
fn attributes<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let needle = format!("{attr}=\"");
    html.match_indices(&needle)
        .map(|(i, _)| {
            let rest = &html[i + needle.len()..];
            &rest[..rest.find('"').unwrap_or(rest.len())]
        })
        .collect()
}

#[test]
fn the_html_report_is_one_self_contained_page() {
    let ws = Workspace::new();
    let src = format!(
        "name = \"page\"\nseeds = [0]\nstages = [\"decompose\", \"analysis\"]\n\n[grid]\n\
         method = [\"stl\", \"mtl\", \"mocomtl\", \"lorkd\"]\npretrain = [\"medmnist\"]\n\n\
         [method.lorkd]\nkd = \"none\"\n\n[analysis]\nprotocols = [\"same-probe\"]\n\n\
         [profile.smoke.analysis]\nsamples = 12\n{TINY_PROFILE}"
    );
    ws.write("page.toml", &src);
    let o = ws.run(&["run", "page.toml", "--plain"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = ws.run(&["report", "--experiment", "page", "--format", "html"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let path = ws.path().join("reports/page/report.html");
    assert!(
        stderr(&o).contains("reports/page/report.html"),
        "{}",
        stderr(&o)
    );
    let html = std::fs::read_to_string(&path).unwrap();

    // Self-contained: images are data URIs, links are anchors on the page, no script.
    assert!(!html.contains("<script"), "no JavaScript");
    let sources = attributes(&html, "src");
    assert!(sources.len() >= 4, "the figures: {}", sources.len());
    assert!(sources
        .iter()
        .all(|s| s.starts_with("data:image/png;base64,")));
    let links = attributes(&html, "href");
    assert!(links.iter().all(|l| l.starts_with('#')), "{links:?}");
    // Every number's link reaches a provenance row, which names the code version and data.
    let ids: BTreeSet<&str> = attributes(&html, "id").into_iter().collect();
    let run_links: Vec<&&str> = links.iter().filter(|l| l.starts_with("#run-")).collect();
    assert!(
        run_links.len() > 20,
        "cells link to runs: {}",
        run_links.len()
    );
    for l in &run_links {
        assert!(ids.contains(&l[1..]), "{l} has no target");
    }
    assert!(html.contains("<th>code version</th>") && html.contains("<td>synthetic</td>"));
    assert!(html.contains("SYNTHETIC DATA"));
    assert!(html.contains("decomposition accuracy (%) on medmnist"));
    assert!(html.contains("task weights (mean over the last epoch"));
    for stem in [
        "cka_medmnist_same-probe",
        "curves_medmnist",
        "task_weights_medmnist",
    ] {
        assert!(html.contains(&format!("alt=\"{stem}\"")), "{stem}");
    }

    let Some(browser) = chromium() else {
        eprintln!("skipped: no chromium on this machine (Debian: apt-get install chromium) to render the page");
        return;
    };
    let shot = ws.path().join("shot.png");
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1400,2000",
            "--enable-logging=stderr",
            "--v=1",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", path.display()))
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&out.stderr);
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    let png = image::open(&shot).expect("a screenshot");
    assert_eq!((png.width(), png.height()), (1400, 2000));
}
