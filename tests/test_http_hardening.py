"""HTTP details of the Health routes (issue 18, item 9): read-only routes
answer 405 to other methods, `width` takes ASCII digits only, only the real
``index.js`` falls back to the "frontend not built" module, and an error
message never echoes a whole parameter. Through the plugin's WSGI app in a
real TensorBoard app (as test_plugin_routes.py), and once through a real
``tensorboard`` HTTP server."""

import http.client
import os
import threading
import urllib.parse

import numpy as np
import pytest

from tb_plugin import health_plugin

from test_plugin_routes import TB, strict_json

BASE = "/data/plugin/health/"
RUN = "run/train"
METHODS = ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
HUGE = "\x00" * 100000


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    import tensorflow as tf

    import tb_plugin.summary as health

    root = tmp_path_factory.mktemp("http_logs")
    rng = np.random.default_rng(0)
    writer = tf.summary.create_file_writer(os.path.join(str(root), RUN))
    with writer.as_default():
        health.manifest({"model": "m", "layers": []}, step=0)
        variables = [tf.Variable(tf.ones([4, 3]), name="w")]
        for step in range(4):
            health.prediction_distribution(
                "predictions", rng.normal(size=(8, 3)).astype("float32"), step=step,
                labels=rng.integers(0, 3, 8), from_logits=True)
            health.gradient_magnitudes("gradients", [tf.ones([4, 3])], variables, step=step)
    writer.close()
    return str(root)


@pytest.fixture(scope="module")
def tb(logdir):
    t = TB(logdir, "python")
    yield t
    t.close()


def url(route, **params):
    return BASE + route + ("?" + urllib.parse.urlencode(params) if params else "")


ROUTES = [
    url("runs"),
    url("predictions", run=RUN, name="predictions"),
    url("gradients", run=RUN, name="gradients"),
    url("gradient_histogram", run=RUN, name="gradients", variable="w"),
    url("train_mode", run=RUN, name="train_mode"),
    url("manifest", run=RUN),
    BASE + "index.js",
    BASE + "static/index.js",
    BASE + "no_such_file.js",
]


@pytest.mark.parametrize("method", METHODS)
def test_other_methods_answer_405_with_allow(tb, method):
    for path in ROUTES:
        r = tb.client.open(path, method=method)
        assert r.status_code == 405, (method, path, r.status_code)
        assert r.headers["Allow"] == "GET, HEAD", r.headers
        assert "read-only" in strict_json(r.get_data())["error"]
    # GET and HEAD still answer.
    assert tb.get(ROUTES[1]).status_code == 200
    assert tb.client.head(ROUTES[1]).status_code == 200


@pytest.mark.parametrize("width", [" 5 ", "5 ", "+5", "5_0", "\u0665", "\uff15",
                                   "\u0665\u0660", "\u09eb"])
def test_width_takes_ascii_digits_only(tb, width):
    r = tb.get(url("predictions", run=RUN, name="predictions", width=width))
    assert r.status_code == 400, (width, r.status_code)
    assert "width" in strict_json(r.get_data())["error"]
    for good, n in (("3", 3), ("003", 3), ("100000", 4)):
        body = strict_json(tb.get(url("predictions", run=RUN, name="predictions",
                                      width=good)).get_data())
        assert len(body["scalars"]["entropy"]["steps"]) == n


def test_only_the_real_index_js_falls_back(tb, tmp_path, monkeypatch):
    """Without a built frontend, index.js (and static/index.js) answer the
    "not built" module; no other path ending in index.js does."""
    monkeypatch.setattr(health_plugin, "_STATIC_DIR", str(tmp_path))
    for path in ("index.js", "static/index.js"):
        r = tb.get(BASE + path)
        assert r.status_code == 200 and b"not built" in r.get_data(), path
    for path in ("foo/index.js", "static/foo/index.js", "a/b/c/index.js",
                 "static/static/index.js"):
        r = tb.get(BASE + path)
        assert r.status_code == 404, (path, r.status_code)
        assert b"not built" not in r.get_data()


@pytest.mark.parametrize("path", [
    url("predictions", run=HUGE, name="predictions"),
    url("predictions", run=RUN, name=HUGE),
    url("gradients", run=HUGE, name="gradients"),
    url("gradients", run=RUN, name=HUGE),
    url("gradient_histogram", run=RUN, name="gradients", variable=HUGE),
    url("gradient_histogram", run=RUN, name=HUGE, variable="w"),
    url("gradient_histogram", run=HUGE, name="gradients", variable="w"),
    url("train_mode", run=RUN, name=HUGE),
    url("manifest", run=HUGE),
    url("predictions", run=RUN, name="predictions", width=HUGE),
    url("gradients", run=RUN, name="gradients", width="9" * 100000),
    url("gradients", run=RUN, name="gradients", width="1" + "0" * 99999),
])
def test_error_messages_show_a_bounded_part_of_the_input(tb, path):
    r = tb.get(path)
    assert r.status_code in (400, 404), r.status_code
    body = r.get_data()
    assert len(body) < 1200, len(body)
    assert "characters" in strict_json(body)["error"]


def test_through_a_real_tensorboard_server(logdir):
    """A real `tensorboard` HTTP server (the Python loader): 405 with Allow
    for a POST, 400 for a non-ASCII width, a bounded error body."""
    from tensorboard import default
    from tensorboard import program

    server_tb = program.TensorBoard(plugins=default.get_plugins())
    server_tb.configure(argv=[None, "--logdir", logdir, "--host", "127.0.0.1", "--port", "0",
                              "--load_fast", "false", "--reload_interval", "0",
                              "--reload_task", "blocking"])
    server = server_tb._make_server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        def request(method, path):
            conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=60)
            try:
                conn.request(method, path)
                r = conn.getresponse()
                return r.status, r.getheader("Allow"), r.read()
            finally:
                conn.close()

        status, allow, _ = request("POST", url("predictions", run=RUN, name="predictions"))
        assert (status, allow) == (405, "GET, HEAD")
        status, _, _ = request("GET", url("predictions", run=RUN, name="predictions",
                                          width="\uff15"))
        assert status == 400
        status, _, body = request("GET", url("manifest", run="x" * 5000))
        assert status == 404 and len(body) < 1200
        status, _, body = request("GET", url("predictions", run=RUN, name="predictions"))
        assert status == 200 and strict_json(body)["run"] == RUN
    finally:
        server.shutdown()
        server.server_close()
