"""The Health tab in a real browser over a real TensorBoard.

Starts ``tensorboard --logdir <logs> --port 0`` (the logs of
test_plugin_routes: a Keras run recorded with HealthCallback and runs written
with the summary functions, one of them named with HTML markup), opens the
Health tab in headless Debian Chromium through Playwright and checks what the
user sees: the overview's runs and statuses, every chart of both dashboards
drawn with data, the HTML run name shown as text, no console errors.
Screenshots (1280x800) go to test-artifacts/.

Needs /usr/bin/chromium (Debian package ``chromium``); no browser is ever
downloaded. Without it the test fails.
"""

import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

import pytest

from test_plugin_routes import (  # noqa: F401  (pytest fixture)
    BROKEN_RUN,
    HEALTH_RUNS,
    HTML_RUN,
    NAN_RUN,
    health_logdir,
    strict_json,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "test-artifacts")
VIEWPORT = {"width": 1280, "height": 800}
DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")
# TB_HEALTH_UPDATE_DOCS=1 refreshes the README's screenshots in docs/ (a test
# run leaves the checkout as it was otherwise).
UPDATE_DOCS = os.environ.get("TB_HEALTH_UPDATE_DOCS") == "1"
TIMEOUT_MS = 60000

COLLAPSE_CHARTS = [
    "chart-entropy",
    "chart-top1-heatmap",
    "chart-class-shares",
    "chart-ties",
    "chart-accuracy",
    "chart-zero-logits",
    "chart-regression-spread",
]
GRADIENT_CHARTS = [
    "chart-grad-heatmap",
    "chart-layer-profile",
    "chart-first-last",
    "chart-update-ratio",
    "chart-zero-grad",
    "chart-grad-hist",
]


def _require_chromium():
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            "%s is missing: install Debian's chromium package (apt-get install "
            "chromium); this test never downloads a browser" % CHROMIUM,
            pytrace=False,
        )


class TensorBoardProcess:
    """`tensorboard --logdir LOGDIR --port 0` in a subprocess."""

    def __init__(self, logdir, extra_args=()):
        self.output = []
        cmd = [
            sys.executable, "-m", "tensorboard.main",
            "--logdir", logdir,
            "--host", "127.0.0.1",
            "--port", "0",
            "--reload_interval", "2",
        ] + list(extra_args)
        env = dict(os.environ)
        env.setdefault("CUDA_VISIBLE_DEVICES", "")
        env["TF_CPP_MIN_LOG_LEVEL"] = "2"
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True
        )
        self._url = None
        self._ready = threading.Event()
        threading.Thread(target=self._pump, daemon=True).start()
        if not self._ready.wait(120) or self._url is None:
            self.stop()
            raise AssertionError(
                "TensorBoard did not start:\n" + "".join(self.output[-50:])
            )

    def _pump(self):
        for line in self.proc.stdout:
            self.output.append(line)
            m = re.search(r"(http://[^\s/]+:\d+/[^\s]*)", line)
            if m and self._url is None:
                self._url = m.group(1).rstrip("/") + "/"
                self._ready.set()
        self._ready.set()

    @property
    def url(self):
        return self._url

    def get_json(self, path):
        with urllib.request.urlopen(self.url + path, timeout=60) as r:
            return strict_json(r.read())

    def wait_for_runs(self, runs, timeout=120):
        deadline = time.time() + timeout
        body = None
        while time.time() < deadline:
            try:
                body = self.get_json("data/plugin/health/runs")
                if set(runs) <= {r["run"] for r in body["runs"]}:
                    return body
            except Exception:  # noqa: BLE001 - still starting
                pass
            time.sleep(1.0)
        raise AssertionError("runs %s not served; last answer %r" % (runs, body))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture(scope="module")
def browser():
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                              headless=True)
        try:
            yield b
        finally:
            b.close()


class Page:
    """A page on the Health tab, recording console errors and dialogs."""

    def __init__(self, browser, url, fake_clock=False):
        self.errors = []
        self.dialogs = []
        self.page = browser.new_page(viewport=VIEWPORT)
        if fake_clock:  # timers run when the test moves the clock on
            self.page.clock.install()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda e: self.errors.append("pageerror: %s" % e))
        self.page.on("dialog", self._on_dialog)
        self.page.goto(url + "#health", wait_until="domcontentloaded")
        self.page.wait_for_selector("iframe", state="attached")
        self.frame = self.page.frame_locator("iframe")

    def _on_console(self, msg):
        if msg.type == "error":
            self.errors.append("console: %s (%s)" % (msg.text, msg.location))

    def _on_dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def testid(self, name):
        return self.frame.get_by_test_id(name)

    def wait_points(self, testid, min_points=1):
        """Waits until the chart `testid` reports at least `min_points` points."""
        panel = self.testid(testid).first
        panel.wait_for(state="attached")
        deadline = time.time() + TIMEOUT_MS / 1000
        value = None
        while time.time() < deadline:
            value = panel.get_attribute("data-points")
            if value not in (None, "") and int(value) >= min_points:
                return int(value)
            time.sleep(0.25)
        raise AssertionError("%s drew %r points (wanted >= %d)"
                             % (testid, value, min_points))

    def screenshot(self, name):
        os.makedirs(ARTIFACTS, exist_ok=True)
        path = os.path.join(ARTIFACTS, name)
        self.page.screenshot(path=path)
        return path

    def readme_screenshot(self, name):
        """The page as the README's docs/<name>, with TB_HEALTH_UPDATE_DOCS=1 only."""
        if UPDATE_DOCS:
            self.page.screenshot(path=os.path.join(DOCS, name))

    def close(self):
        self.page.close()


def _select_all_runs(page):
    page.frame.get_by_role("button", name="Select all").click()


def _write_prediction_records(run_dir, steps):
    """Prediction records of a custom loop (tb_plugin.summary) at `steps`."""
    import numpy as np
    import tensorflow as tf

    import tb_plugin

    rng = np.random.default_rng(0)
    writer = tf.summary.create_file_writer(run_dir)
    with writer.as_default():
        for step in steps:
            logits = rng.normal(size=(32, 4)).astype("float32")
            tb_plugin.summary.prediction_distribution(
                "predictions", logits, step=step, labels=rng.integers(0, 4, 32),
                from_logits=True)
    writer.close()


def test_health_tab_auto_reloads_new_records(browser, tmp_path):
    run_dir = str(tmp_path / "live")
    _write_prediction_records(run_dir, range(5))
    tb = TensorBoardProcess(str(tmp_path))
    try:
        tb.wait_for_runs(["live"])
        page = Page(browser, tb.url, fake_clock=True)
        try:
            page.testid("tab-collapse").click()
            assert page.wait_points("chart-entropy") == 5
            # Training goes on: five more records, read by the server...
            _write_prediction_records(run_dir, range(5, 10))
            deadline = time.time() + 60
            while tb.get_json("data/plugin/health/runs")["runs"][0]["last_step"] != 9:
                assert time.time() < deadline, "the server did not read the new records"
                time.sleep(0.5)
            # ...and shown, without a click on Reload, once the tab's
            # auto-reload period has passed.
            page.page.clock.run_for(31_000)
            deadline = time.time() + 30
            while page.testid("chart-entropy").first.get_attribute("data-points") != "10":
                assert time.time() < deadline, "the tab did not show the new records"
                page.page.clock.run_for(200)  # the page's timers run on the fake clock
                time.sleep(0.2)
            assert page.testid("tab-collapse").get_attribute("aria-selected") == "true"
            assert page.errors == []
        finally:
            page.close()
    finally:
        tb.stop()


def test_health_tab_python_loader(browser, health_logdir):
    tb = TensorBoardProcess(health_logdir, ["--load_fast", "false"])
    try:
        expected = tb.wait_for_runs(HEALTH_RUNS)
        status = {r["run"]: r["status"] for r in expected["runs"]}
        assert status[NAN_RUN] == "unhealthy"
        assert status[BROKEN_RUN] == "no_data"

        page = Page(browser, tb.url)
        try:
            _check_overview(page, expected["runs"])
            page.screenshot("overview.png")

            # Prediction collapse dashboard, every run selected.
            page.testid("tab-collapse").click()
            _select_all_runs(page)
            for chart in COLLAPSE_CHARTS:
                page.wait_points(chart)
            page.frame.get_by_test_id("chart-entropy").first.scroll_into_view_if_needed()
            page.screenshot("collapse.png")

            # Gradients dashboard.
            page.testid("tab-gradients").click()
            _select_all_runs(page)
            for chart in GRADIENT_CHARTS:
                page.wait_points(chart)
            page.screenshot("gradients.png")
            page.testid("chart-grad-hist").first.scroll_into_view_if_needed()
            page.screenshot("gradients-histogram.png")

            # A finding opens its dashboard.
            page.testid("tab-overview").click()
            _open_entry(page, NAN_RUN)
            card = page.frame.locator(
                '[data-testid="finding-card"][data-run="%s"]' % NAN_RUN
            ).first
            card.click()
            page.frame.get_by_test_id("focus-banner").first.wait_for()
            page.screenshot("finding-focus.png")

            assert page.dialogs == [], page.dialogs
            assert page.errors == [], "\n".join(page.errors)
        finally:
            page.close()
    finally:
        tb.stop()


def _sick_runs(runs):
    """The runs the overview lists as needing attention."""
    return {r["run"] for r in runs
            if r["status"] == "unhealthy" or r.get("error")
            or any(f["severity"] in ("error", "warning") for f in r["findings"])}


def _check_overview(page, runs):
    """One row per sick run (train and validation together) with its finding
    cards; every other run counted in the folded list."""
    page.testid("overview").wait_for()
    rows = page.testid("run-entry")
    rows.first.wait_for()
    # the runs of each row, from its name cell's title
    shown = rows.evaluate_all(
        "rs => rs.map(r => r.querySelector('td.name').title.split('\\n'))")
    sick = _sick_runs(runs)
    assert sick <= {run for row in shown for run in row}
    assert all(sick & set(row) for row in shown), shown  # a healthy sibling only beside a sick run
    severities = [rows.nth(i).get_attribute("data-severity") for i in range(rows.count())]
    assert severities == sorted(severities, key=["error", "warning"].index)

    # The HTML run name is text, not markup.
    assert HTML_RUN in page.frame.locator("body").inner_text() + "".join(
        page.testid("healthy-entry").all_text_contents())
    assert page.frame.locator("b:has-text('bold'), img").count() == 0
    assert page.frame.locator("img[src='x']").count() == 0

    nan_kinds = {c.get_attribute("data-kind") for c in page.frame.locator(
        '[data-testid="finding-card"][data-run="%s"]' % NAN_RUN).all()}
    assert "nonfinite" in nan_kinds
    assert page.testid("healthy-runs").count() == 1


def _open_entry(page, run):
    """Unfolds the overview row holding `run`."""
    page.frame.locator('[data-testid="run-entry"]').filter(
        has=page.frame.locator('td.name[title*="%s"]' % run)).click()


def test_health_tab_rust_loader(browser, health_logdir):
    """--load_fast=true: the data server answers, the tab works the same."""
    tb = TensorBoardProcess(health_logdir, ["--load_fast", "true"])
    try:
        expected = tb.wait_for_runs(HEALTH_RUNS)
        # Let the data server finish loading (statuses stable).
        for _ in range(10):
            time.sleep(1.0)
            again = tb.get_json("data/plugin/health/runs")
            if again == expected:
                break
            expected = again
        listing = tb.get_json("data/plugins_listing")
        assert listing["health"]["enabled"] is True
        page = Page(browser, tb.url)
        try:
            _check_overview(page, expected["runs"])
            page.screenshot("overview-load-fast.png")
            page.testid("tab-gradients").click()
            _select_all_runs(page)
            page.wait_points("chart-grad-heatmap")
            page.wait_points("chart-first-last")
            page.testid("tab-collapse").click()
            page.wait_points("chart-entropy")
            assert page.dialogs == [], page.dialogs
            assert page.errors == [], "\n".join(page.errors)
        finally:
            page.close()
    finally:
        tb.stop()


def test_health_tab_under_path_prefix(browser, health_logdir):
    """--path_prefix: the iframe's relative URLs reach the plugin's routes."""
    tb = TensorBoardProcess(health_logdir, ["--load_fast", "false", "--path_prefix", "/tb"])
    try:
        assert tb.url.rstrip("/").endswith("/tb"), tb.url
        expected = tb.wait_for_runs(HEALTH_RUNS)
        page = Page(browser, tb.url)
        try:
            _check_overview(page, expected["runs"])
            page.testid("tab-collapse").click()
            page.wait_points("chart-entropy")
            # the view in TensorBoard's URL, under the prefix, survives a reload
            assert "/tb/#health&p.health.tab=collapse" in page.page.url, page.page.url
            page.page.reload()
            page.wait_points("chart-entropy")
            assert page.testid("tab-collapse").get_attribute("aria-selected") == "true"
            assert page.dialogs == [], page.dialogs
            # TensorBoard's own stylesheet asks for its Roboto fonts at
            # /font-roboto/... outside the prefix (a TensorBoard bug, not the
            # plugin's): those 404s are the only errors allowed here.
            errors = [e for e in page.errors
                      if not ("404" in e and "/font-roboto/" in e)]
            assert errors == [], "\n".join(errors)
        finally:
            page.close()
    finally:
        tb.stop()


# ---------------------------------------------------------------------------
# Train mode: seed001's subclassed model whose `call` drops `training`, and
# its fix, side by side.

DEMO_LOGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "demo_logs")
TM_BROKEN = "seed001_no_training_arg/train"
TM_FIXED = "seed001_training_arg/train"
TM_DROPOUTS = ["seed001/dropout%d" % i for i in range(4)]  # Dropout(0.05) after ReLU


def _wait_train_mode_runs(tb):
    """The runs listing once both train runs carry their train-mode records
    and the broken one its finding, unchanged between two reads (the Rust
    data server may still be loading)."""
    deadline = time.time() + 120
    last = None
    while time.time() < deadline:
        body = tb.wait_for_runs([TM_BROKEN, TM_FIXED])
        runs = {r["run"]: r for r in body["runs"]}
        ready = (all(runs[r].get("train_mode") for r in (TM_BROKEN, TM_FIXED))
                 and "train_mode_inactive" in {f["kind"] for f in runs[TM_BROKEN]["findings"]})
        if ready and body == last:
            return body
        last = body
        time.sleep(1.0)
    raise AssertionError("train-mode runs not ready; last answer %r" % (last,))


def _percent(text):
    m = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)%\s*", text)
    assert m, "not a percentage: %r" % text
    return float(m.group(1)) / 100


@pytest.mark.parametrize("load_fast", ["false", "true"])
def test_train_mode_view_shows_dropout_not_dropping(browser, tmp_path, load_fast):
    """The finding card of seed001_no_training_arg opens the train-mode view;
    with the fix selected beside it, the layer table shows the broken run's
    Dropout layers with training=False and fewer zeros than training would
    give, and the fix's with training=True and observed ~ expected."""
    for name in ("seed001_no_training_arg", "seed001_training_arg"):
        shutil.copytree(os.path.join(DEMO_LOGS, name), str(tmp_path / name))
    tb = TensorBoardProcess(str(tmp_path), ["--load_fast", load_fast])
    try:
        _wait_train_mode_runs(tb)
        page = Page(browser, tb.url)
        try:
            page.testid("overview").wait_for()
            _open_entry(page, TM_BROKEN)
            card = page.frame.locator(
                '[data-testid="finding-card"][data-run="%s"][data-kind="train_mode_inactive"]'
                % TM_BROKEN)
            assert card.count() == 1
            card.click()
            assert page.testid("tab-train-mode").get_attribute("aria-selected") == "true"
            banner = page.testid("focus-banner").first
            banner.wait_for()
            assert banner.get_attribute("data-kind") == "train_mode_inactive"
            # The fix beside it.
            page.frame.get_by_role("checkbox", name="Select run %s" % TM_FIXED).check()
            for chart in ["chart-train-flags"] + ["chart-tm-%d" % i for i in range(4)]:
                page.wait_points(chart)

            table = page.testid("train-mode-summary")
            rows = table.locator("tr[data-run]")
            # Every (run, layer) row of the selected train runs, in one read.
            rows.nth(len(TM_DROPOUTS) * 2 - 1).wait_for()
            shown = rows.evaluate_all(
                "rs => rs.map(r => ({run: r.dataset.run, layer: r.dataset.layer,"
                " cells: [...r.cells].map(c => ({text: c.textContent,"
                " bad: c.classList.contains('bad')}))}))")
            by = {(r["run"], r["layer"]): r["cells"] for r in shown}
            assert set(by) == {(run, layer) for run in (TM_BROKEN, TM_FIXED)
                               for layer in TM_DROPOUTS}, sorted(by)
            for layer in TM_DROPOUTS:
                for run, flag in ((TM_BROKEN, "False"), (TM_FIXED, "True")):
                    cells = by[(run, layer)]
                    assert cells[2]["text"] == "Dropout" and cells[3]["text"] == "0.05"
                    assert cells[4]["text"] == flag, (run, layer, cells[4])
                    assert cells[4]["bad"] == (flag == "False")
                    obs, exp = (_percent(t) for t in cells[7]["text"].split("/"))
                    # ReLU gives ~half zeros before the Dropout: both ~0.4-0.55.
                    assert 0.3 < obs < 0.7 and 0.3 < exp < 0.7, (run, layer, obs, exp)
                    if run == TM_BROKEN:
                        # z_in + (1 - z_in) * 0.05 expected; ~z_in observed.
                        assert exp - obs > 0.015, (layer, obs, exp)
                        assert cells[7]["bad"], layer
                    else:
                        assert abs(exp - obs) < 0.01, (layer, obs, exp)
                        assert not cells[7]["bad"], layer
            assert table.locator("td.mono.bad", has_text="seed001/dropout0").count() == 1

            if load_fast == "false":  # one screenshot: the same view on both
                table.scroll_into_view_if_needed()
                page.screenshot("train-mode.png")
            assert page.dialogs == [], page.dialogs
            assert page.errors == [], "\n".join(page.errors)
        finally:
            page.close()
    finally:
        tb.stop()


# ---------------------------------------------------------------------------
# Compare: seed 001's configurations x 10 seeds (tb_plugin.demo), the same
# network built two ways and the subclassed model whose dropout is off.

COMPARE_GROUPS = ["sequential", "subclassed", "subclassed_no_training"]
COMPARE_QUERY = ("data/plugin/health/compare?tag=epoch_loss&group="
                 + urllib.parse.quote(r"^(.*)/seed\d+/validation$"))


@pytest.fixture(scope="module")
def compare_logdir(demo_logs):
    """The seed 001 compare scenarios, runs named <configuration>/seed<N>/<split>."""
    from tb_plugin import demo

    dirs = [demo_logs(demo.COMPARE + g) for g in COMPARE_GROUPS]
    return str(dirs[0].parent)


def _wait_compared(tb):
    """The compare route's answer once every run is loaded (the Rust data
    server may still be loading): 10 runs per group, health compared."""
    deadline = time.time() + 180
    body = None
    while time.time() < deadline:
        try:
            body = tb.get_json(COMPARE_QUERY)
            if ([g["final"]["n"] for g in body["groups"]] == [10] * 3
                    and all(g["with_records"] == 10 for g in body["health"]["groups"].values())):
                return body
        except Exception:  # noqa: BLE001 - still starting
            pass
        time.sleep(1.0)
    raise AssertionError("compare route not ready; last answer %r" % (body,))


@pytest.mark.parametrize("load_fast", ["false", "true"])
def test_compare_view_shows_health_first_bands_and_verdicts(browser, compare_logdir, load_fast):
    tb = TensorBoardProcess(compare_logdir, ["--load_fast", load_fast])
    try:
        expected = _wait_compared(tb)
        assert [g["name"] for g in expected["groups"]] == COMPARE_GROUPS
        page = Page(browser, tb.url)
        try:
            page.testid("overview").wait_for()
            page.testid("tab-compare").click()
            pairs = page.testid("compare-pairs")
            pairs.wait_for()
            assert page.testid("compare-group").input_value() == r"^(.*)/seed\d+/validation$"
            assert page.testid("compare-tag").input_value() == "epoch_loss"

            # Health first: the broken group's inactive dropout, above the statistics.
            health = page.testid("compare-health")
            assert health.get_attribute("data-differs") == "true"
            warnings = page.testid("compare-health-warning").all_inner_texts()
            assert any(w.startswith("group subclassed_no_training: 10 of 10 runs have "
                                    "train_mode_inactive") for w in warnings), warnings
            chart = page.testid("chart-compare-band")
            top = {name: page.testid(name).bounding_box()["y"]
                   for name in ("compare-health", "chart-compare-band", "compare-groups",
                                "compare-pairs")}
            assert top["compare-health"] < top["chart-compare-band"] < top["compare-groups"]
            # A band and a mean per group at each of the 4 epochs.
            assert page.wait_points("chart-compare-band") == 3 * 3 * 4

            rows = page.testid("compare-groups").locator("tr[data-group]")
            shown = rows.evaluate_all("rs => rs.map(r => [...r.cells].map(c => c.textContent))")
            assert [r[0] for r in shown] == COMPARE_GROUPS and [r[1] for r in shown] == ["10"] * 3
            verdicts = {(v.get_attribute("data-a"), v.get_attribute("data-b")):
                        (v.get_attribute("data-outcome"), v.text_content())
                        for v in page.testid("compare-verdict").all()}
            same = verdicts[("sequential", "subclassed")]
            assert same[0] == "no_detectable_difference", same
            assert re.search(r"with n = 10 per group this comparison can only detect differences "
                             r"larger than 1\.3 SD; about \d+ seeds per group", same[1]), same
            assert "health differs" not in same[1]
            for a in COMPARE_GROUPS[:2]:
                outcome, text = verdicts[(a, "subclassed_no_training")]
                assert outcome == "b_better" and "subclassed_no_training is better" in text
                assert "health differs" in text
            if load_fast == "false" and UPDATE_DOCS:  # the README's screenshot
                page.page.set_viewport_size({"width": 1280, "height": 1400})
                time.sleep(0.5)  # the chart follows the new size
                page.readme_screenshot("compare.png")

            # Every run on demand: 30 runs of 4 epochs more.
            page.testid("compare-show-runs").check()
            page.frame.locator('[data-testid="chart-compare-band"][data-points="%d"]'
                               % (3 * 3 * 4 + 30 * 4)).wait_for()
            assert chart.count() == 1
            assert page.dialogs == [], page.dialogs
            assert page.errors == [], "\n".join(page.errors)
        finally:
            page.close()
    finally:
        tb.stop()
