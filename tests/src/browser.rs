//! A headless Chromium driven through WebDriver, for tests of the operators' console as a person
//! uses it: the test starts its own `chromedriver` on a free port (killed when the browser is
//! closed or dropped) and talks to it with `fantoccini` over plain HTTP on loopback.
//!
//! `CHROMEDRIVER` names another driver binary; Debian's `chromium-driver` finds
//! `/usr/bin/chromium` by itself (`CHROME` names another browser binary). With
//! `TEST_SCREENSHOTS=<folder>`, [`Browser::snapshot`] saves what the test saw.

use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

use crate::wait_until;

/// How long the driver and the browser may take to start.
const START: Duration = Duration::from_secs(60);
/// How long a page may take to load.
const PAGE: Duration = Duration::from_secs(30);

/// A browser session and the driver behind it.
#[derive(Debug)]
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    driver: tokio::process::Child,
}

impl Browser {
    /// Starts `chromedriver` and a headless Chromium session.
    pub async fn start() -> Self {
        let program = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let driver = tokio::process::Command::new(&program)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, which the browser it starts joins: a test that fails before
            // `close` still ends both (see `Drop`).
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{program} does not start ({e}): install Chromium and its driver \
                     (Debian: apt-get install chromium chromium-driver)"
                )
            });
        wait_until(START, "chromedriver listening", || async {
            TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
        })
        .await;
        let mut options = serde_json::json!({
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1400,1000",
            ],
        });
        if let Ok(binary) = std::env::var("CHROME") {
            options["binary"] = binary.into();
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a headless Chromium session");
        Self { client, driver }
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    /// The path of the current page.
    pub async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("current URL")
            .path()
            .to_owned()
    }

    /// The element `css` names on this page; fails the test when there is none.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        match self.client.find(Locator::Css(css)).await {
            Ok(e) => e,
            Err(e) => {
                let source = self.client.source().await.unwrap_or_default();
                panic!("no {css} on {} ({e}):\n{source}", self.path().await)
            }
        }
    }

    /// The element `css` names, if the page has one.
    pub async fn try_find(&self, css: &str) -> Option<fantoccini::elements::Element> {
        self.client.find(Locator::Css(css)).await.ok()
    }

    /// The visible text of the element `css` names.
    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.expect("element text")
    }

    /// Types `text` into the field `css` names (after clearing it).
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("field cleared");
        field.send_keys(text).await.expect("typed");
    }

    /// Clicks the link or form button `css` names and waits for the page that loads. A click
    /// returns before a form's submission has even started, so the old page is held and the
    /// wait lasts until it is gone (stale), the new one loaded.
    pub async fn click(&self, css: &str) {
        let old = self
            .client
            .find(Locator::Css("html"))
            .await
            .expect("the page");
        self.find(css).await.click().await.expect("clicked");
        wait_until(PAGE, &format!("the page {css} loads"), || async {
            old.tag_name().await.is_err().then_some(())
        })
        .await;
    }

    /// Saves a screenshot of the page as `<TEST_SCREENSHOTS>/<name>.png` when that variable
    /// names a folder (to look at what the test saw); does nothing otherwise.
    pub async fn snapshot(&self, name: &str) {
        let Ok(dir) = std::env::var("TEST_SCREENSHOTS") else {
            return;
        };
        let png = self.client.screenshot().await.expect("screenshot");
        let path = std::path::Path::new(&dir).join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    /// Closes the session (the browser quits) and stops the driver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    /// Ends the driver's process group: the driver and whatever browser is still running.
    fn drop(&mut self) {
        if let Some(pid) = self.driver.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.driver.start_kill();
    }
}
