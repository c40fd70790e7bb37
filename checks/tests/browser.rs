//! The pages `sixfold show` and `sixfold lincheck --html` write, loaded in a real browser
//! (headless Chromium): every checked-in counterexample, a recorded run and a lincheck failure.
//! Each page must run its script without error (the script marks `<body data-status="ok">`),
//! carry its key elements (lanes, the violated property, the failure point, in view), and render
//! to a screenshot that is not blank and shows the failure point's highlight.
//!
//! Chromium is required, not optional: `.ci/run` installs it, and without it these tests fail
//! saying how to install it.

mod common;

/// Named `browser` so `cargo test browser` selects these tests.
mod browser {
    use super::common::{scratch_dir, Killer};
    use std::io::{BufRead, BufReader};
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    const EXE: &str = env!("CARGO_BIN_EXE_sixfold");
    const WINDOW: (u32, u32) = (1600, 1000);

    fn repo(rel: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(rel)
    }

    fn scratch(name: &str) -> PathBuf {
        scratch_dir("browser", name)
    }

    /// The browser: `$SIXFOLD_CHROMIUM`, else `chromium` or `chromium-browser` on `PATH`.
    fn chromium() -> PathBuf {
        if let Some(p) = std::env::var_os("SIXFOLD_CHROMIUM") {
            return PathBuf::from(p);
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .flat_map(|d| [d.join("chromium"), d.join("chromium-browser")])
            .find(|p| p.is_file())
            .expect(
                "the browser tests need headless Chromium, and none is on PATH: install it \
                 (Debian: `apt-get install -y chromium`; .ci/run does) or point \
                 SIXFOLD_CHROMIUM at the binary",
            )
    }

    fn file_url(page: &Path) -> String {
        format!("file://{}", page.display())
    }

    /// Runs headless Chromium on `url` with `what` (`--dump-dom` or `--screenshot=FILE`, and
    /// any other flags) in its own profile under `dir`; returns its stdout. `timeout` bounds a
    /// browser that hangs.
    fn chromium_on(url: &str, dir: &Path, what: &[&str], window: (u32, u32)) -> String {
        let out = Command::new("timeout")
            .arg("120")
            .arg(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", dir.join("profile").display()))
            .arg(format!("--window-size={},{}", window.0, window.1))
            .args(what)
            .arg(url)
            .output()
            .expect("run chromium");
        assert!(
            out.status.success(),
            "chromium {what:?} on {url} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A page as the browser leaves it: the DOM after its script ran, and a screenshot's pixels.
    struct Loaded {
        dom: String,
        body: String,
        pixels: Vec<[u8; 3]>,
    }

    fn load(page: &Path, dir: &Path, window: (u32, u32)) -> Loaded {
        let dom = chromium_on(&file_url(page), dir, &["--dump-dom"], window);
        let body = dom
            .split("<body")
            .nth(1)
            .and_then(|b| b.split('>').next())
            .unwrap_or_else(|| panic!("no <body> in the DOM of {}", page.display()))
            .to_string();
        let shot = dir.join("shot.png");
        let what = format!("--screenshot={}", shot.display());
        chromium_on(&file_url(page), dir, &[&what], window);
        // The browser profile is most of the scratch dir; the page and screenshot stay.
        let _ = std::fs::remove_dir_all(dir.join("profile"));
        Loaded {
            dom,
            body,
            pixels: rgb_pixels(&shot),
        }
    }

    fn rgb_pixels(png_file: &Path) -> Vec<[u8; 3]> {
        let file = std::fs::File::open(png_file).expect("screenshot written");
        let mut reader = png::Decoder::new(std::io::BufReader::new(file))
            .read_info()
            .expect("screenshot is a PNG");
        let mut buf = vec![0; reader.output_buffer_size().expect("size")];
        let info = reader.next_frame(&mut buf).expect("PNG decodes");
        let step = match info.color_type {
            png::ColorType::Rgb => 3,
            png::ColorType::Rgba => 4,
            other => panic!("unexpected screenshot colour type {other:?}"),
        };
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        buf[..info.buffer_size()]
            .chunks(step)
            .map(|p| [p[0], p[1], p[2]])
            .collect()
    }

    impl Loaded {
        /// The script ran to the end without error.
        fn assert_script_ok(&self, what: &str) {
            assert!(
                self.body.contains("data-status=\"ok\""),
                "{what}: the page's script did not finish cleanly: <body{}>\n{}",
                self.body,
                self.dom
                    .split("id=\"errors\"")
                    .nth(1)
                    .map_or("", |e| &e[..e.len().min(2000)])
            );
        }

        /// Not blank: many colours, none covering nearly everything, and at least `min`
        /// pixels of the failure point's highlight colour.
        fn assert_drawn(&self, what: &str, highlight: [u8; 3], min: usize) {
            let mut counts = std::collections::HashMap::new();
            for p in &self.pixels {
                *counts.entry(*p).or_insert(0usize) += 1;
            }
            let top = counts.values().max().copied().unwrap_or(0);
            assert!(
                counts.len() >= 32 && top * 100 < self.pixels.len() * 90,
                "{what}: the screenshot looks blank ({} colours, the commonest on {top} of {} pixels)",
                counts.len(),
                self.pixels.len()
            );
            let lit = counts.get(&highlight).copied().unwrap_or(0);
            assert!(
                lit >= min,
                "{what}: the failure point's highlight {highlight:?} is on {lit} pixels of the \
                 screenshot, expected at least {min}"
            );
        }
    }

    fn show(trace: &Path, dir: &Path) -> PathBuf {
        let page = dir.join("page.html");
        let out = Command::new(EXE)
            .arg("show")
            .arg(trace)
            .arg("--html")
            .arg(&page)
            .output()
            .expect("run sixfold show");
        assert!(
            out.status.success(),
            "sixfold show {}: {}",
            trace.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        page
    }

    /// The property a counterexample's header says it violates.
    fn violates(trace: &Path) -> String {
        let text = std::fs::read_to_string(trace).expect("trace readable");
        let header: serde_json::Value =
            serde_json::from_str(text.lines().next().expect("header line")).expect("header");
        header["violates"]
            .as_str()
            .expect("a counterexample names its property")
            .to_string()
    }

    #[test]
    fn browser_renders_every_counterexample_at_its_failure_point() {
        let mut traces: Vec<PathBuf> = std::fs::read_dir(repo("traces/counterexamples"))
            .expect("counterexamples dir")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "ndjson"))
            .collect();
        traces.sort();
        assert!(traces.len() >= 8, "counterexamples missing: {traces:?}");
        for trace in &traces {
            let name = trace.file_stem().expect("name").to_string_lossy();
            let dir = scratch(&name);
            let page = show(trace, &dir);
            let p = load(&page, &dir, WINDOW);
            p.assert_script_ok(&name);
            for lane in [
                "seg0/az0", "seg1/az0", "seg2/az1", "seg3/az1", "seg4/az2", "seg5/az2",
            ] {
                assert!(
                    p.dom.contains(&format!("data-lane=\"{lane}\"")),
                    "{name}: no lane {lane}"
                );
            }
            assert!(
                p.dom.contains("data-lane=\"writer\""),
                "{name}: no writer lane"
            );
            for group in ["AZ 0", "AZ 1", "AZ 2"] {
                assert!(
                    p.dom.contains(&format!(">{group}<")),
                    "{name}: no {group} group"
                );
            }
            let property = violates(trace);
            let banner = p
                .dom
                .split("id=\"violated-property\"")
                .nth(1)
                .unwrap_or_else(|| panic!("{name}: no violated-property banner"));
            assert!(
                banner[..banner.len().min(300)].contains(&format!("\"{property}\" breaks here")),
                "{name}: the banner does not name \"{property}\": {}",
                &banner[..banner.len().min(300)]
            );
            assert!(
                p.dom.contains("id=\"failure-point\""),
                "{name}: no failure mark"
            );
            assert!(
                p.dom.contains("failure selected\""),
                "{name}: the page does not open at the failure point"
            );
            assert!(
                p.body.contains("data-failure-visible=\"true\""),
                "{name}: the failure point is not in view: <body{}>",
                p.body
            );
            // The selected failure row's fill (.row.failure.selected in show.css).
            p.assert_drawn(&name, [0xef, 0x9a, 0x9a], 5_000);
        }
    }

    #[test]
    fn browser_renders_no_fencing_with_the_zombie_commit_where_no_stale_commit_breaks() {
        let dir = scratch("no-fencing-zombie");
        let page = show(&repo("traces/counterexamples/no-fencing.ndjson"), &dir);
        let p = load(&page, &dir, WINDOW);
        p.assert_script_ok("no-fencing");
        let caption = p
            .dom
            .split("class=\"caption\"")
            .nth(1)
            .expect("the selected step's caption");
        let caption = &caption[..caption.find("</div></div>").unwrap_or(caption.len())];
        // The zombie (the epoch-1 writer) acknowledges a commit to its client.
        assert!(
            caption.contains("writer: ") && caption.contains("WriteOk{epoch:1"),
            "the failure step is not the zombie's commit: {caption}"
        );
        let zombie = p
            .dom
            .split("data-actor=\"writer\"")
            .nth(1)
            .expect("the epoch-1 writer's card");
        assert!(
            zombie[..zombie.find("data-actor=").unwrap_or(zombie.len())]
                .contains("zombie: epoch 2 has opened the volume"),
            "the epoch-1 writer is not shown as a zombie"
        );
        assert!(p.dom.contains("\"no stale commit\" breaks here"));
    }

    #[test]
    fn browser_renders_a_recorded_run() {
        let dir = scratch("failover-zombie");
        let page = show(&repo("traces/runs/failover-zombie.ndjson"), &dir);
        let p = load(&page, &dir, WINDOW);
        p.assert_script_ok("failover-zombie run");
        assert!(p.dom.contains("data-lane=\"writer2\"") && p.dom.contains("data-lane=\"control\""));
        assert!(p.dom.contains("invariants hold throughout"));
        assert!(!p.dom.contains("id=\"violated-property\""));
        // The selected last row (.row.selected in show.css).
        p.assert_drawn("failover-zombie run", [0xbb, 0xde, 0xfb], 5_000);
    }

    #[test]
    fn browser_opens_a_lincheck_failure_at_its_failure_point() {
        // etcd_000 fails at about x = 1600 of a 3000-pixel timeline: off screen in a 1200-pixel
        // window unless the page scrolls there.
        let history = repo("../shared/histories/porcupine/jepsen/etcd_000.log");
        assert!(
            history.is_file(),
            "the public histories are missing: expected {}",
            history.display()
        );
        let dir = scratch("lincheck");
        let page = dir.join("lincheck.html");
        let out = Command::new(EXE)
            .arg("lincheck")
            .arg(&history)
            .args(["--model", "cas-register", "--html"])
            .arg(&page)
            .output()
            .expect("run sixfold lincheck");
        assert_eq!(out.status.code(), Some(1), "etcd_000 is not linearizable");
        let p = load(&page, &dir, (1200, 900));
        p.assert_script_ok("lincheck etcd_000");
        assert!(p.dom.contains("NOT LINEARIZABLE") && p.dom.contains("fails here"));
        assert!(p.dom.contains(">client 0<"), "no client lanes");
        assert!(
            p.body.contains("data-failure-visible=\"true\""),
            "the failure point is not in view: <body{}>",
            p.body
        );
        // The failure line and the blocked operation (#c62828 in html.rs).
        p.assert_drawn("lincheck etcd_000", [0xc6, 0x28, 0x28], 500);
    }

    /// A port nobody listens on now (the kernel's pick, released for `sixfold explore`).
    fn free_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        l.local_addr().expect("local addr").port()
    }

    #[test]
    fn browser_explorer_link_lands_on_the_violating_state_with_named_lanes() {
        let port = free_port().to_string();
        let mut child = Command::new(EXE)
            .args([
                "explore",
                "quorum",
                "--mutant",
                "write-quorum-3",
                "--port",
                &port,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run sixfold explore");
        let stdout = child.stdout.take().expect("stdout");
        let _guard = Killer(vec![child]);
        let mut printed = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("explore's output");
            let serving = line.starts_with("serving");
            printed.push(line);
            if serving {
                break;
            }
        }
        let after = |prefix: &str| {
            printed
                .iter()
                .find(|l| l.starts_with(prefix))
                .and_then(|l| l.rsplit(": ").next())
                .unwrap_or_else(|| panic!("explore printed no {prefix:?} line: {printed:#?}"))
                .to_string()
        };
        let link = after("counterexample to \"durability\"");
        let dir = scratch("explorer");
        // The explorer's page fetches each state of the path from the server, in turn.
        let dom = chromium_on(
            &link,
            &dir,
            &["--virtual-time-budget=10000", "--dump-dom"],
            WINDOW,
        );
        assert!(
            dom.contains("VIOLATES \"durability\" here"),
            "the explorer's selected state does not say it violates durability"
        );
        for lane in ["seg0/az0", "seg5/az2", "writer", "client0"] {
            assert!(dom.contains(&format!(">{lane}</text>")), "no lane {lane}");
        }
        assert!(
            !dom.contains(" segment</text>"),
            "Stateright's lane names remain"
        );
        // The page printed with the link.
        let page = PathBuf::from(after("the same path drawn as a page"));
        let p = load(&page, &dir, WINDOW);
        p.assert_script_ok("explore's counterexample page");
        assert!(p.dom.contains("\"durability\" breaks here"));
    }

    #[test]
    fn browser_steps_through_a_page_with_the_keyboard() {
        let dir = scratch("keys");
        let page = show(&repo("traces/counterexamples/no-fencing.ndjson"), &dir);
        // Press keys as a reader would (the page's own keydown handler takes them), noting the
        // selected step after each.
        let html = std::fs::read_to_string(&page).expect("page");
        let presses = "<script>(function () { var seen = []; \
            ['Home', 'j', 'ArrowDown', 'k', 'End', 'f', 'PageUp'].forEach(function (k) { \
            document.dispatchEvent(new KeyboardEvent('keydown', { key: k, bubbles: true })); \
            seen.push(document.body.dataset.step); }); \
            document.body.dataset.keys = seen.join(','); })();</script></body>";
        std::fs::write(&page, html.replace("</body>", presses)).expect("page with key presses");
        let p = load(&page, &dir, WINDOW);
        p.assert_script_ok("no-fencing, stepped");
        // 51 steps; "no stale commit" breaks at step 50.
        assert!(
            p.body.contains("data-keys=\"1,2,3,2,51,50,40\""),
            "keys did not step as expected: <body{}>",
            p.body
        );
        assert!(
            p.dom.contains("step 40 of 51"),
            "the panel is not at step 40"
        );
    }

    #[test]
    fn browser_renders_a_trace_that_diverges_from_the_model() {
        let dir = scratch("diverges");
        let text = std::fs::read_to_string(repo("traces/counterexamples/write-quorum-3.ndjson"))
            .expect("trace");
        // Line 12's state digest no longer matches the model's.
        let lines: Vec<String> = text
            .lines()
            .enumerate()
            .map(|(i, l)| {
                if i + 1 == 12 {
                    let mut v: serde_json::Value = serde_json::from_str(l).expect("step line");
                    v["digest"] = "0000000000000000".into();
                    v.to_string()
                } else {
                    l.to_string()
                }
            })
            .collect();
        let trace = dir.join("diverges.ndjson");
        std::fs::write(&trace, lines.join("\n") + "\n").expect("write trace");
        let page = show(&trace, &dir);
        let p = load(&page, &dir, WINDOW);
        p.assert_script_ok("diverging trace");
        assert!(p.dom.contains("diverges from the model here"));
        // Every line but the header is a step.
        let steps = text.lines().count() - 1;
        assert!(
            p.dom.contains(&format!("step 11 of {steps}")),
            "does not open at the divergence"
        );
        assert!(p.dom.contains("the states before this step"));
        // The selected diverging row's fill (.row.mismatch.selected in show.css).
        p.assert_drawn("diverging trace", [0xff, 0xb7, 0x4d], 5_000);
    }
}
