"""How the Health tab looks, in a real browser over a real TensorBoard
(fixtures and helpers of test_browser): run colours that stay with their
run, TensorBoard's dark mode, the chart fixes of issue 20 and long run names
at 1280 px.

The logdir: demo runs from demo_logs/ (a healthy classifier, a healthy
regression, a regression that explodes to NaN) and a healthy regression
under a long name whose train and validation runs differ only at the end.
"""

import os
import shutil
import time
import urllib.parse

import pytest

from test_browser import Page, TensorBoardProcess, _select_all_runs, browser  # noqa: F401

DEMO_LOGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "demo_logs")
LONG = ("sweep_2024_11_linear_regression/optimizer_sgd_learning_rate_0.05_"
        "batch_size_32_seed_7_standardised_targets_v2")
RUNS = {name: name for name in ("healthy_cnn", "healthy_regression", "exploding_sgd")}
RUNS[LONG] = "exploding_fixed"
LIGHT_BG = "rgb(245, 245, 245)"
DARK_BG = "rgb(48, 48, 48)"


@pytest.fixture(scope="module")
def tb(tmp_path_factory):
    root = tmp_path_factory.mktemp("appearance")
    for name, source in RUNS.items():
        shutil.copytree(os.path.join(DEMO_LOGS, source), str(root / name))
    proc = TensorBoardProcess(str(root))
    try:
        proc.runs = proc.wait_for_runs(
            ["%s/%s" % (n, split) for n in RUNS for split in ("train", "validation")])
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def page(browser, tb):  # noqa: F811 (pytest fixture)
    p = Page(browser, tb.url)
    p.testid("overview").wait_for()
    _select_all_runs(p)
    yield p
    assert p.errors == []
    p.close()


def _swatch(page, selector):
    return page.frame.locator(selector).first.evaluate(
        "e => getComputedStyle(e).backgroundColor")


def _set_run(page, run, on):
    box = page.frame.get_by_label("Select run %s" % run, exact=True)
    if box.is_checked() != on:
        box.click()


def test_run_keeps_its_colour_across_views_and_selections(page):
    run = "healthy_regression/train"
    page.testid("tab-collapse").click()
    page.wait_points("chart-regression-spread")
    in_table = _swatch(page, '[data-testid=collapse-summary] tr[data-run="%s"] .key-swatch' % run)
    colours = page.frame.locator("[data-testid=collapse-summary] tr[data-run] .key-swatch").evaluate_all(
        "es => es.map(e => getComputedStyle(e).backgroundColor)")
    assert len(colours) == 8 and len(set(colours)) == 8, colours

    # runs listed before it leave the selection: its colour stays
    for other in ("exploding_sgd/train", "exploding_sgd/validation", "healthy_cnn/train"):
        _set_run(page, other, False)
    page.testid("tab-gradients").click()
    page.wait_points("chart-update-ratio")
    in_models = _swatch(page, '[data-testid=model-panel] [data-run="%s"] .key-swatch' % run)
    in_sidebar = _swatch(page, '.hp-run[data-run="%s"] .swatch' % run)
    assert in_table == in_models == in_sidebar


def _frame_background(page):
    return page.frame.locator("body").evaluate("e => getComputedStyle(e).backgroundColor")


def _wait_background(page, colour):
    deadline = time.time() + 10
    while _frame_background(page) != colour and time.time() < deadline:
        time.sleep(0.1)
    assert _frame_background(page) == colour


def _choose_theme(page, name):
    page.page.get_by_label("Menu for changing light or dark theme").click()
    page.page.get_by_role("menuitem", name=name).click()


def _colours(locator):
    return locator.evaluate("e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).color]")


def test_dark_mode_follows_tensorboards_toggle(page):
    _wait_background(page, LIGHT_BG)
    _choose_theme(page, "Dark")
    _wait_background(page, DARK_BG)
    panel = page.frame.locator(".panel").first
    assert panel.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(58, 58, 58)"
    # an unfolded overview row, its evidence and its finding card turn dark too
    row = page.testid("run-entry").first
    row.click()
    assert _colours(row)[0] == "rgb(74, 61, 48)"
    assert _colours(row.locator("td.cause"))[1] == "rgb(232, 232, 232)"
    detail = page.frame.locator('[data-testid="entry-detail"]:not([hidden]) > td')
    assert _colours(detail) == ["rgb(68, 68, 68)", "rgb(232, 232, 232)"]
    assert _colours(detail.locator("[data-testid=finding-card]").first)[0] == "rgb(58, 58, 58)"
    _choose_theme(page, "Light")
    _wait_background(page, LIGHT_BG)
    assert _colours(row)[0] == "rgb(255, 248, 240)"
    assert _colours(detail) == ["rgb(250, 250, 250)", "rgb(33, 33, 33)"]


def test_dark_mode_from_the_browser_preference(browser, tb):  # noqa: F811
    p = Page(browser, tb.url)
    try:
        p.page.emulate_media(color_scheme="dark")
        p.page.reload()
        p.frame = p.page.frame_locator("iframe")
        p.testid("overview").wait_for()
        _wait_background(p, DARK_BG)
    finally:
        p.close()


def test_update_ratio_marks_no_nan_on_healthy_runs(page):
    page.testid("tab-gradients").click()
    page.wait_points("chart-update-ratio")
    cell = '[data-testid=chart-update-ratio] .multi-item[data-run="%s"]'
    for run in ("healthy_cnn/train", "healthy_regression/train", LONG + "/train"):
        assert page.frame.locator(cell % run).get_attribute("data-nonfinite") == "0", run
    # the run whose weights do turn NaN keeps its mark
    assert int(page.frame.locator(cell % "exploding_sgd/train").get_attribute("data-nonfinite")) > 0


def _filled_log10_range(tb, run, variable):
    """[lo, hi] of the log10|g| bins `run` fills for `variable`."""
    info = next(r for r in tb.runs["runs"] if r["run"] == run)
    name = info["gradients"][0]["name"]
    query = urllib.parse.urlencode({"run": run, "name": name, "variable": variable, "width": 500})
    h = tb.get_json("data/plugin/health/gradient_histogram?" + query)
    filled = [b for row in h["counts"] for b, c in enumerate(row) if c > 0]
    return float(h["edges"][min(filled)]), float(h["edges"][max(filled) + 1]), float(h["edges"][1]) - float(h["edges"][0])


def test_gradient_histogram_axis_fits_the_data(page, tb):
    run = "healthy_regression/train"
    for other in ("exploding_sgd/train", "healthy_cnn/train", LONG + "/train"):
        _set_run(page, other, False)
    page.testid("tab-gradients").click()
    page.wait_points("chart-grad-hist")
    variable = page.testid("grad-hist-variable").input_value()
    shown = page.frame.locator('[data-testid=chart-grad-hist] .multi-item[data-run="%s"]' % run)
    lo, hi = map(float, shown.get_attribute("data-y-range").split(","))
    data_lo, data_hi, width = _filled_log10_range(tb, run, variable)
    # the filled bins and at most one more bin each side
    assert data_lo - width - 1e-6 <= lo <= data_lo
    assert data_hi <= hi <= data_hi + width + 1e-6


def test_exploding_regression_spread_on_a_log_axis(page):
    page.testid("tab-collapse").click()
    page.wait_points("chart-regression-spread")
    assert page.testid("chart-regression-spread").get_attribute("data-y-axis") == "log"
    # without the exploding run, the spreads share a linear axis
    _set_run(page, "exploding_sgd/train", False)
    _set_run(page, "exploding_sgd/validation", False)
    panel = page.testid("chart-regression-spread")
    deadline = time.time() + 30
    while panel.get_attribute("data-y-axis") != "value" and time.time() < deadline:
        time.sleep(0.2)
    assert panel.get_attribute("data-y-axis") == "value"


def test_long_names_fit_the_summary_table_at_1280px(page):
    page.testid("tab-collapse").click()
    page.wait_points("chart-regression-spread")
    scroll = page.frame.locator("[data-testid=collapse-summary] .summary-scroll")
    box = scroll.evaluate("""s => ({scroll: s.scrollWidth, client: s.clientWidth,
        right: s.getBoundingClientRect().right,
        heads: [...s.querySelectorAll('th')].map(h => h.getBoundingClientRect().right)})""")
    assert box["scroll"] <= box["client"], box
    assert all(r <= box["right"] + 0.5 for r in box["heads"]), box
    for split in ("train", "validation"):
        run = "%s/%s" % (LONG, split)
        cell = page.frame.locator('[data-testid=collapse-summary] tr[data-run="%s"] .run-cell' % run)
        assert cell.locator(".mid-name").get_attribute("title") == run
        # the end that tells the two runs apart is shown whole
        tail = cell.locator(".mid-tail")
        assert tail.text_content() == "/" + split
        t, c = (x.evaluate("e => e.getBoundingClientRect().toJSON()") for x in (tail, cell))
        assert c["left"] <= t["left"] and t["right"] <= c["right"]


def test_long_names_keep_their_end_above_per_run_charts(page):
    page.testid("tab-gradients").click()
    page.wait_points("chart-update-ratio")
    run = LONG + "/train"
    title = page.frame.locator('[data-testid=chart-update-ratio] .multi-item[data-run="%s"] .run-title' % run)
    assert title.locator(".mid-name").get_attribute("title") == run
    tail = title.locator(".mid-tail")
    assert tail.text_content() == "/train"
    t, c = (x.evaluate("e => e.getBoundingClientRect().toJSON()") for x in (tail, title))
    assert c["left"] <= t["left"] and t["right"] <= c["right"]
