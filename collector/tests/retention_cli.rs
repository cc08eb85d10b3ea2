//! `tracex-collector retention set | clear | show` on the real binary: per-project retention kept
//! in the store (what the retention task reads at each pass is tested in
//! `services::retention`), shown with where each project's days come from.

mod common;

use common::{cli, temp_dir};

#[test]
fn retention_is_set_shown_and_cleared_per_project() {
    let dir = temp_dir("retention-cli");
    let config = dir.join("collector.toml");
    std::fs::write(&config, "retention_days = 30\n[retention_days_by_project]\nbeta = 3\nacme = 14\n").unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["--config", config.to_str().unwrap(), "retention"];
        all.extend_from_slice(args);
        cli(&dir, &all)
    };

    let (ok, out, err) = run(&["show"]);
    assert!(ok, "{err}");
    assert_eq!(out, "default: kept 30 days\nacme: kept 14 days (config)\nbeta: kept 3 days (config)\n");

    let (ok, _, err) = run(&["set", "acme", "7"]);
    assert!(ok, "{err}");
    assert!(err.contains("project \"acme\": kept 7 days; applied at the next retention pass"), "{err}");
    let (ok, _, err) = run(&["set", "gamma", "0"]);
    assert!(ok, "{err}");
    let (_, out, _) = run(&["show"]);
    assert_eq!(
        out,
        "default: kept 30 days\nacme: kept 7 days (set)\nbeta: kept 3 days (config)\ngamma: kept for ever (set)\n"
    );

    // Cleared: the config's days apply again; clearing twice, or an empty name, is an error.
    let (ok, _, err) = run(&["clear", "acme"]);
    assert!(ok, "{err}");
    assert!(err.contains("the config's retention applies again (kept 14 days)"), "{err}");
    let (ok, _, err) = run(&["clear", "acme"]);
    assert!(!ok);
    assert!(err.contains("project \"acme\" has no retention setting of its own"), "{err}");
    let (ok, _, err) = run(&["set", " ", "5"]);
    assert!(!ok);
    assert!(err.contains("must not be empty"), "{err}");
    let (ok, _, err) = run(&["set", "acme", "-1"]);
    assert!(!ok, "{err}");
    let (_, out, _) = run(&["show"]);
    assert_eq!(
        out,
        "default: kept 30 days\nacme: kept 14 days (config)\nbeta: kept 3 days (config)\ngamma: kept for ever (set)\n"
    );
}
