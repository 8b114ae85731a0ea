"""The overview, a finding's dashboard, the URL state and the downloads, in a
real browser over a real TensorBoard serving demo_logs (both loaders).

The overview must show every sick run in the first screen (1280x800) with its
root cause; a finding's dashboard its suggestion; the view must survive a
reload and open from a copied link; Back must return to the overview; the
downloads must hold the data the routes serve. Needs /usr/bin/chromium, like
test_browser.py.
"""

import csv
import io
import json
import time
import urllib.parse

import pytest

from test_browser import (  # noqa: F401  (pytest fixture)
    DEMO_LOGS,
    VIEWPORT,
    Page,
    TensorBoardProcess,
    _open_entry,
    _sick_runs,
    browser,
)

RELU = "seed000_relu_logits"
DEAD = "dead_relu/train"


@pytest.fixture(scope="module", params=["false", "true"], ids=["python", "rust"])
def demo_tb(request):
    """TensorBoard over demo_logs and its run listing once stable."""
    tb = TensorBoardProcess(DEMO_LOGS, ["--load_fast", request.param])
    try:
        deadline = time.time() + 240
        last = None
        while True:
            body = tb.wait_for_runs([RELU + "/train", RELU + "/validation", DEAD], timeout=240)
            if body == last and len(body["runs"]) == 100:
                break
            assert time.time() < deadline, "demo_logs not loaded: %d runs" % len(body["runs"])
            last = body
            time.sleep(2.0)
        tb.load_fast = request.param
        yield tb, body["runs"]
    finally:
        tb.stop()


def _finding(runs, run, kind):
    return next(f for r in runs if r["run"] == run for f in r["findings"] if f["kind"] == kind)


def _health_url(page):
    """The top window's URL: TensorBoard's #health with the plugin's p.health. keys."""
    return page.page.url


def test_overview_shows_every_sick_run_first_with_its_root_cause(browser, demo_tb):
    tb, runs = demo_tb
    page = Page(browser, tb.url)
    try:
        rows = page.testid("run-entry")
        rows.first.wait_for()
        sick = _sick_runs(runs)
        shown = set()
        for row in rows.all():
            box = row.bounding_box()
            assert box["y"] + box["height"] <= VIEWPORT["height"], (row.get_attribute("data-entry"), box)
            members = row.locator("td.name").get_attribute("title").split("\n")
            shown.update(members)
            findings = [f for r in runs if r["run"] in members for f in r["findings"]]
            cause = row.get_attribute("data-cause")
            # the cause is a finding that nothing else in the run explains
            assert any(f["kind"] == cause and not f.get("caused_by") for f in findings), (members, cause)
            linked = {f["caused_by"] for f in findings if f.get("caused_by")}
            if linked:
                assert cause in linked, (members, cause, linked)
        assert sick <= shown
        relu = page.frame.locator('[data-testid="run-entry"][data-entry="%s"]' % RELU)
        assert relu.get_attribute("data-cause") == "output_activation_mismatch"
        assert "prediction collapse" in relu.inner_text() and "tied predictions" in relu.inner_text()
        healthy = page.testid("healthy-runs")
        expected = len({r["run"].rsplit("/", 1)[0] for r in runs if r["run"] not in shown})
        assert int(healthy.get_attribute("data-count")) == expected
        if tb.load_fast == "false":
            page.readme_screenshot("overview.png")
        assert page.errors == [], "\n".join(page.errors)
    finally:
        page.close()


def test_symptom_dashboard_shows_the_fix_and_the_url_keeps_the_view(browser, demo_tb):
    tb, runs = demo_tb
    cause = _finding(runs, RELU + "/train", "output_activation_mismatch")
    page = Page(browser, tb.url)
    try:
        page.testid("overview").wait_for()
        _open_entry(page, RELU + "/train")
        symptom = page.frame.locator('[data-testid="finding-card"][data-role="symptom"]'
                                     '[data-kind="tied_predictions"][data-run="%s/train"]' % RELU)
        assert symptom.get_attribute("data-caused-by") == "output_activation_mismatch"
        symptom.click()
        banner = page.testid("focus-banner")
        banner.wait_for()
        assert page.testid("focus-suggestion").inner_text() == "What to do: " + cause["suggestion"]
        assert page.testid("focus-cause").get_attribute("data-kind") == "output_activation_mismatch"
        message = _finding(runs, RELU + "/train", "tied_predictions")["message"]
        assert page.testid("focus-message").inner_text() == message
        if tb.load_fast == "false":
            page.wait_points("chart-ties")
            time.sleep(1.0)  # the charts' animations end
            page.readme_screenshot("collapse.png")

        url = _health_url(page)
        hash_ = urllib.parse.urlsplit(url).fragment
        assert hash_.startswith("health&") and "p.health.tab=collapse" in hash_, url

        def same_view(p):
            b = p.testid("focus-banner")
            b.wait_for()
            assert b.get_attribute("data-kind") == "tied_predictions"
            assert b.get_attribute("data-run") == RELU + "/train"
            assert p.testid("tab-collapse").get_attribute("aria-selected") == "true"
            checked = p.frame.locator(".hp-run input:checked").evaluate_all(
                "cs => cs.map(c => c.closest('[data-run]').dataset.run)")
            assert sorted(checked) == [RELU + "/train", RELU + "/validation"]

        page.page.reload()
        same_view(page)
        # a copied link opens the same view in a new tab
        other = Page(browser, url.split("#")[0])
        try:
            other.page.goto(url)
            same_view(other)
        finally:
            other.close()
        # Back returns to the overview, Forward to the dashboard
        page.page.go_back()
        page.testid("overview").wait_for()
        assert page.testid("tab-overview").get_attribute("aria-selected") == "true"
        page.page.go_forward()
        same_view(page)
        assert page.errors == [], "\n".join(page.errors)
    finally:
        page.close()


@pytest.mark.parametrize("run, kind, screenshot", [
    (DEAD, "dead_units", None),
    ("seed002_tiny_init/train", "vanishing_gradients", "gradients.png"),
])
def test_gradient_banner_stays_above_the_focused_chart(browser, demo_tb, run, kind, screenshot):
    tb, runs = demo_tb
    finding = _finding(runs, run, kind)
    page = Page(browser, tb.url)
    try:
        page.testid("overview").wait_for()
        _open_entry(page, run)
        page.frame.locator('[data-testid="finding-card"][data-kind="%s"][data-run="%s"]'
                           % (kind, run)).first.click()
        chart = page.frame.locator('[data-focused="true"]')
        chart.wait_for()
        page.wait_points(chart.get_attribute("data-testid"))
        time.sleep(0.5)  # the pane has scrolled to the chart
        banner = page.testid("focus-banner").bounding_box()
        top = chart.bounding_box()
        assert 0 <= banner["y"] and banner["y"] + banner["height"] <= top["y"] < VIEWPORT["height"]
        assert page.testid("focus-suggestion").inner_text() == "What to do: " + finding["suggestion"]
        if screenshot and tb.load_fast == "false":
            time.sleep(0.5)  # the charts' animations end
            page.readme_screenshot(screenshot)
    finally:
        page.close()


def _download(page, locator):
    with page.page.expect_download() as d:
        locator.click()
    with open(d.value.path(), encoding="utf-8") as f:
        return d.value.suggested_filename, f.read()


def test_downloads_hold_the_served_data(browser, demo_tb):
    tb, runs = demo_tb
    page = Page(browser, tb.url)
    try:
        page.testid("overview").wait_for()
        name, text = _download(page, page.testid("download-findings-json"))
        assert name == "health-findings.json"
        doc = json.loads(text)
        assert [(r["run"], r["status"], r["findings"]) for r in doc["runs"]] == [
            (r["run"], r["status"], r["findings"]) for r in runs]

        name, text = _download(page, page.testid("download-findings-csv"))
        assert name == "health-findings.csv"
        rows = list(csv.DictReader(io.StringIO(text)))
        expected = [(r["run"], f["kind"], f["layer"] or "", f.get("caused_by") or "", f["suggestion"])
                    for r in runs for f in r["findings"]]
        assert [(x["run"], x["kind"], x["layer"], x["caused_by"], x["suggestion"]) for x in rows] == expected

        # a chart's data: the entropy of both runs of seed000_relu_logits
        requests = []
        page.page.on("request", lambda r: requests.append(r.url))
        _open_entry(page, RELU + "/train")
        page.frame.locator('[data-testid="finding-card"][data-kind="output_activation_mismatch"]').click()
        points = page.wait_points("chart-entropy")
        name, text = _download(page, page.testid("chart-entropy").locator('[data-testid="download-csv"]'))
        assert name == "chart-entropy.csv"
        rows = list(csv.DictReader(io.StringIO(text)))
        assert len(rows) == points
        for split in ("train", "validation"):
            run = "%s/%s" % (RELU, split)
            route = next(u for u in requests if "/predictions?" in u
                         and urllib.parse.parse_qs(urllib.parse.urlsplit(u).query)["run"] == [run])
            served = tb.get_json(route.split(tb.url, 1)[1])["scalars"]["entropy"]
            got = [x for x in rows if x["series"] == run]
            assert [float(x["step"]) for x in got] == served["steps"], run
            assert [float(x["value"]) for x in got] == pytest.approx(served["values"]), run
        name, text = _download(page, page.testid("chart-entropy").locator('[data-testid="download-json"]'))
        doc = json.loads(text)
        assert doc["chart"] == "chart-entropy" and len(doc["rows"]) == points
        assert page.errors == [], "\n".join(page.errors)
    finally:
        page.close()
