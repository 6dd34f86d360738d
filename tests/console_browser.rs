//! The web console in a real browser: Debian's headless Chromium driven over WebDriver by
//! `chromedriver`, against a real proxy and API over the real upstream and Redis.
//!
//! What this file proves, as a user would see it:
//! - `http://bank1.localhost:<port>/console/` is themed as bank1 (name and brand colour from
//!   the tenant's settings) before anyone signs in, and dev mode mints a bank1 token;
//! - the payment form refuses a malformed amount in the browser (no request sent) and names
//!   the field, creates a payment, and the payment appears in the history with its amount;
//!   every control of the form lies inside its card;
//! - the history pages with the API's cursors (10 per page; "Older" and "Newer");
//! - the usage page counts the payments against the tier's quota;
//! - bank2's console (`bank2.localhost`) signs in as bank2 and shows none of bank1's payments;
//! - a cross-tenant query sent through the Mongo proxy by bank2's service principal is
//!   rejected, and a security auditor sees that rejection in the audit table and the chart;
//! - a tenant user's token has no security page, and the API refuses it the audit trail.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian packages `chromium` and
//! `chromium-driver`; `scripts/test` installs them). Override with `TENANTGATE_CHROMIUM` and
//! `TENANTGATE_CHROMEDRIVER`. With `TENANTGATE_SCREENSHOTS=<dir>`, the test also saves a
//! screenshot of each console page there (that is how `docs/console/*.png` are made).

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use common::{TestApi, api_config, fresh_db_name, jwt};

/// The whole scenario finishes within this or fails.
const TEST_TIMEOUT: Duration = Duration::from_secs(240);
/// How long one expected change on a page may take.
const STEP: Duration = Duration::from_secs(20);

/// A chromedriver process, killed on drop.
struct Driver {
    child: Child,
    port: u16,
    _profile: TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory removed on drop (the browser profile).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tool(var: &str, default: &str) -> String {
    let path = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    assert!(
        std::path::Path::new(&path).exists(),
        "\n\n*** {path} is missing: install Debian's chromium and chromium-driver \
         (scripts/test does), or set {var} ***\n\n"
    );
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

async fn start_driver() -> Driver {
    let chromedriver = tool("TENANTGATE_CHROMEDRIVER", "/usr/bin/chromedriver");
    let port = free_port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let profile = std::env::temp_dir().join(format!("tenantgate-chromium-{port}"));
    let driver = Driver {
        child,
        port,
        _profile: TempDir(profile),
    };
    let status = format!("http://127.0.0.1:{port}/status");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = reqwest::get(&status).await
            && r.status().is_success()
        {
            return driver;
        }
        assert!(Instant::now() < deadline, "chromedriver did not answer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn browser(driver: &Driver) -> Client {
    let chromium = tool("TENANTGATE_CHROMIUM", "/usr/bin/chromium");
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            // The flags that keep Chromium off the network it cannot reach here.
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                "--window-size=1280,1000",
                format!("--user-data-dir={}", driver._profile.0.display()),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a browser session starts")
}

/// Evaluates `js` (a function body; `arguments` as usual) in the page.
async fn eval(c: &Client, js: &str, args: Vec<Value>) -> Value {
    c.execute(js, args).await.unwrap_or(Value::Null)
}

/// The text of the first element matching `css`, or `None`.
async fn text(c: &Client, css: &str) -> Option<String> {
    eval(
        c,
        "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
        vec![json!(css)],
    )
    .await
    .as_str()
    .map(str::to_owned)
}

/// Waits until `check` holds on the page, or fails naming `what`.
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + STEP;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_for(c: &Client, css: &str) {
    c.wait()
        .at_most(STEP)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} did not appear: {e}"));
}

async fn type_into(c: &Client, css: &str, value: &str) {
    let e = c.find(Locator::Css(css)).await.expect("the input exists");
    e.clear().await.expect("the input clears");
    e.send_keys(value).await.expect("typing works");
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} is missing: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("{css} cannot be clicked: {e}"));
}

/// The `data-id`s of the payment history rows.
async fn history_ids(c: &Client) -> Vec<String> {
    let v = eval(
        c,
        "return [...document.querySelectorAll('#history-rows tr[data-id]')].map(r => r.dataset.id);",
        vec![],
    )
    .await;
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn screenshot(c: &Client, name: &str) {
    let Ok(dir) = std::env::var("TENANTGATE_SCREENSHOTS") else {
        return;
    };
    // Let charts and fonts settle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The whole page, not just the first screen: grow the window to the document's height.
    let height = eval(c, "return document.documentElement.scrollHeight;", vec![])
        .await
        .as_u64()
        .unwrap_or(1000)
        .clamp(700, 2400);
    let _ = c
        .set_window_size(1280, u32::try_from(height).unwrap_or(1000) + 90)
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let png = c.screenshot().await.expect("a screenshot");
    let _ = c.set_window_size(1280, 1000).await;
    std::fs::create_dir_all(&dir).expect("the screenshot directory");
    std::fs::write(PathBuf::from(dir).join(format!("{name}.png")), png).expect("saved");
}

/// Signs in on the console's login page with a minted dev token.
async fn mint(c: &Client, role: &str, tenant: &str) {
    wait_for(c, "#mint-form").await;
    c.find(Locator::Css("#mint-role"))
        .await
        .expect("the role select")
        .select_by_value(role)
        .await
        .expect("the role exists");
    type_into(c, "#mint-tenant", tenant).await;
    click(c, "#mint-submit").await;
}

fn config(db: &str) -> String {
    let base = api_config(db);
    let c = base
        .replace(
            "base_domains = [\"financeops.com\"]",
            "base_domains = [\"financeops.com\", \"localhost\"]\ndev_mode = true",
        )
        .replace(
            "tier = \"professional\"",
            "tier = \"professional\"\nsettings = { displayName = \"First National\", brandColor = \"#0b6e4f\", currency = \"EUR\" }",
        );
    assert!(c.contains("dev_mode") && c.contains("brandColor"));
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_end_to_end_in_chromium() {
    tokio::time::timeout(TEST_TIMEOUT, scenario())
        .await
        .expect("the browser scenario finishes in time");
}

async fn scenario() {
    let db = fresh_db_name("console");
    let api = TestApi::start(&config(&db)).await;
    let port = api.api_addr.port();
    let driver = start_driver().await;
    let c = browser(&driver).await;
    let bank1 = format!("http://bank1.localhost:{port}/console/");
    let bank2 = format!("http://bank2.localhost:{port}/console/");

    // --- bank1: themed before sign-in --------------------------------------------------------
    c.goto(&bank1).await.expect("the console loads");
    wait_for(&c, "#mint-form").await;
    assert_eq!(
        text(&c, "#tenant-name").await.as_deref(),
        Some("First National")
    );
    let brand = eval(
        &c,
        "return getComputedStyle(document.querySelector('.topbar')).backgroundColor;",
        vec![],
    )
    .await;
    assert_eq!(brand, json!("rgb(11, 110, 79)"), "bank1's brand colour");
    let prefilled = eval(
        &c,
        "return document.querySelector('#mint-tenant').value;",
        vec![],
    )
    .await;
    assert_eq!(prefilled, json!("bank1"), "the tenant comes from the host");
    screenshot(&c, "console-login").await;

    mint(&c, "", "bank1").await;
    wait_for(&c, "#pay-form").await;
    assert!(
        text(&c, "#nav").await.unwrap_or_default().contains("Usage"),
        "a tenant user has payments and usage"
    );
    assert!(
        c.find(Locator::Css("#nav-security")).await.is_err(),
        "a tenant user has no security page"
    );

    // --- client-side validation: nothing is sent -----------------------------------------------
    type_into(&c, "#pay-amount", "12.345").await;
    click(&c, "#pay-submit").await;
    until("the amount error", || async {
        text(&c, "#pay-amount-error")
            .await
            .is_some_and(|t| t.contains("2 decimal places"))
    })
    .await;
    let invalid = eval(
        &c,
        "return document.querySelector('#pay-amount').getAttribute('aria-invalid');",
        vec![],
    )
    .await;
    assert_eq!(invalid, json!("true"));
    until("the empty history", || async {
        text(&c, "#history-rows")
            .await
            .is_some_and(|t| t.contains("No payments yet"))
    })
    .await;

    // --- a payment through the form -------------------------------------------------------------
    let description = format!("Invoice {db}");
    type_into(&c, "#pay-amount", "125.50").await;
    type_into(&c, "#pay-customer", "cus-e2e").await;
    type_into(&c, "#pay-description", &description).await;
    click(&c, "#pay-submit").await;
    until("the payment to succeed", || async {
        text(&c, "#pay-status")
            .await
            .is_some_and(|t| t.contains("succeeded") && t.contains("125.50 EUR"))
    })
    .await;
    until("the payment in the history", || async {
        text(&c, "#history-rows")
            .await
            .is_some_and(|t| t.contains(&description) && t.contains("125.50 EUR"))
    })
    .await;
    let first = history_ids(&c).await;
    assert_eq!(first.len(), 1, "exactly one payment: {first:?}");
    let form_payment = first[0].clone();

    // The API agrees: the payment is bank1's, with the amount in minor units.
    let http = reqwest::Client::new();
    let token1 = jwt(json!({ "sub": "e2e", "tenantId": "bank1" }));
    let stored: Value = http
        .get(api.url(&format!("/v1/payments/{form_payment}")))
        .bearer_auth(&token1)
        .send()
        .await
        .expect("the API answers")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (&stored["amount"], &stored["currency"], &stored["tenantId"]),
        (&json!(12550), &json!("EUR"), &json!("bank1"))
    );

    // --- pagination: 12 more payments make two pages of 10 and 3 -------------------------------
    for i in 0..12 {
        let r = http
            .post(api.url("/v1/payments"))
            .bearer_auth(&token1)
            .json(&json!({ "amount": 100 + i, "currency": "EUR", "description": format!("bulk {i}") }))
            .send()
            .await
            .expect("the API answers");
        assert_eq!(r.status(), 201);
    }
    c.find(Locator::Css("#history-status"))
        .await
        .expect("the status filter")
        .select_by_value("succeeded")
        .await
        .expect("succeeded is a status");
    until("a full first page", || async {
        history_ids(&c).await.len() == 10
    })
    .await;
    let page1 = history_ids(&c).await;
    assert!(
        !page1.contains(&form_payment),
        "newest first: the form payment is the oldest"
    );
    // Every control of the payment form lies inside its card. With a full history the grid
    // gives the form its narrowest column, and the currency select once overflowed it at this
    // window size, cut off under the history.
    let overflow = eval(
        &c,
        "const card = document.querySelector('#pay-form').getBoundingClientRect(); \
         return [...document.querySelectorAll('#pay-form input, #pay-form select, #pay-form button')] \
           .filter((e) => e.getBoundingClientRect().right > card.right + 0.5).map((e) => e.id);",
        vec![],
    )
    .await;
    assert_eq!(overflow, json!([]), "controls outside the payment card");
    screenshot(&c, "console-payments").await;
    click(&c, "#history-next").await;
    until("the second page", || async {
        history_ids(&c).await.len() == 3
    })
    .await;
    let page2 = history_ids(&c).await;
    assert_eq!(
        page2.last(),
        Some(&form_payment),
        "the oldest payment ends the last page"
    );
    assert!(page2.iter().all(|id| !page1.contains(id)), "pages overlap");
    let next_disabled = eval(
        &c,
        "return document.querySelector('#history-next').disabled;",
        vec![],
    )
    .await;
    assert_eq!(next_disabled, json!(true), "no page after the last");
    click(&c, "#history-prev").await;
    until("the first page again", || async {
        history_ids(&c).await == page1
    })
    .await;

    // --- usage ------------------------------------------------------------------------------------
    click(&c, "#nav-usage").await;
    wait_for(&c, "#usage-stats").await;
    until("13 transactions", || async {
        text(&c, "#usage-transactions").await.as_deref() == Some("13")
    })
    .await;
    let bars = eval(
        &c,
        "return document.querySelectorAll('#usage-chart svg rect').length;",
        vec![],
    )
    .await;
    assert!(bars.as_u64().unwrap_or(0) >= 1, "the usage chart has a bar");
    screenshot(&c, "console-usage").await;

    // --- bank2 sees none of it ---------------------------------------------------------------------
    c.goto(&bank2).await.expect("bank2's console loads");
    wait_for(&c, "#mint-form").await;
    assert_eq!(
        text(&c, "#tenant-name").await.as_deref(),
        Some("Second Savings")
    );
    mint(&c, "", "bank2").await;
    wait_for(&c, "#pay-form").await;
    until("bank2's empty history", || async {
        text(&c, "#history-rows")
            .await
            .is_some_and(|t| t.contains("No payments yet"))
    })
    .await;
    let source = c.source().await.expect("the page source");
    assert!(
        !source.contains(&description) && !source.contains(&form_payment),
        "bank2's console shows bank1's payment"
    );
    // Even asked directly, through bank2's session: not found.
    let leaked = eval(
        &c,
        "const t = sessionStorage.getItem('tenantgate.token'); \
         const r = await fetch('/v1/payments/' + arguments[0], { headers: { Authorization: 'Bearer ' + t } }); \
         return r.status;",
        vec![json!(form_payment)],
    )
    .await;
    assert_eq!(leaked, json!(404), "bank2 reads bank1's payment by id");

    // --- a rejection through the proxy, then the security view -----------------------------------
    let mongo = api.proxy_client("svc-bank2", "bank2-secret").await;
    let refused = mongo
        .database(&db)
        .run_command(bson::doc! { "find": "payments", "filter": { "tenantId": "bank1" } })
        .await;
    assert!(refused.is_err(), "the proxy refuses a cross-tenant filter");
    // Two more rules, so the chart has something to stack.
    let js = mongo
        .database(&db)
        .run_command(bson::doc! { "find": "payments", "filter": { "$where": "true" } })
        .await;
    assert!(js.is_err(), "the proxy refuses server-side JavaScript");
    let stage = mongo
        .database(&db)
        .run_command(bson::doc! {
            "aggregate": "payments",
            "pipeline": [ { "$out": "stolen" } ],
            "cursor": {},
        })
        .await;
    assert!(stage.is_err(), "the proxy refuses $out");

    let console = format!("http://localhost:{port}/console/");
    c.goto(&console).await.expect("the console loads");
    mint(&c, "security_auditor", "").await;
    wait_for(&c, "#audit-table").await;
    type_into(&c, "#audit-principal", "svc-bank2").await;
    let mut found = false;
    let deadline = Instant::now() + STEP;
    while Instant::now() < deadline {
        click(&c, "#audit-apply").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rows = text(&c, "#audit-rows").await.unwrap_or_default();
        if rows.contains("rejection") && rows.contains("bank2") && rows.contains("svc-bank2") {
            found = true;
            break;
        }
    }
    assert!(found, "the audit table shows the proxy's rejection");
    until("the rejection in the chart", || async {
        eval(
            &c,
            "return document.querySelectorAll('#audit-chart svg rect').length;",
            vec![],
        )
        .await
        .as_u64()
        .unwrap_or(0)
            >= 1
    })
    .await;
    // The chart counts all three rejections (this test's audit trail is its own), stacked
    // by rule. The audit writer batches, so give it a moment.
    until("three rejections in the chart", || async {
        click(&c, "#audit-apply").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        text(&c, "#audit-chart h2")
            .await
            .is_some_and(|h| h.ends_with(": 3"))
    })
    .await;
    let legend = text(&c, "#audit-chart .legend").await.unwrap_or_default();
    for rule in ["tenant_override", "javascript", "stage_not_allowed"] {
        assert!(legend.contains(rule), "{rule} is in the legend: {legend}");
    }
    // Filtering by another tenant hides it.
    type_into(&c, "#audit-tenant", "bank1").await;
    click(&c, "#audit-apply").await;
    until("the filtered table", || async {
        text(&c, "#audit-rows")
            .await
            .is_some_and(|t| !t.contains("svc-bank2"))
    })
    .await;
    type_into(&c, "#audit-tenant", "").await;
    type_into(&c, "#audit-principal", "").await;
    click(&c, "#audit-apply").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    screenshot(&c, "console-security").await;

    // A tenant user's token cannot read the audit trail, whatever the console shows.
    let audit = http
        .get(api.url("/v1/admin/audit"))
        .bearer_auth(&token1)
        .send()
        .await
        .expect("the API answers");
    assert_eq!(audit.status(), 403);

    c.close().await.expect("the browser session closes");
    drop(driver);
}
