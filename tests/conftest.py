"""Shared fixtures: the demo scenarios of tb_plugin.demo, each trained (for
real, with HealthCallback) at most once per test session.

    def test_x(demo_logs):
        log_dir = demo_logs("seed000_relu_logits")   # trains it if needed
        root = demo_logs.all()                        # every one-run scenario, one logdir

Runs in the logdir are named like TensorBoard names them:
``<scenario>/train`` and ``<scenario>/validation``.
"""

import pytest


class DemoLogs:
    def __init__(self, root):
        self.root = root
        self._done = set()

    def __call__(self, name):
        from tb_plugin import demo

        if name not in self._done:
            demo.run_scenario(name, str(self.root))
            self._done.add(name)
        return self.root / name

    def all(self):
        """The root with every scenario but the seed studies (tens of fits:
        trained only where a test names them)."""
        from tb_plugin import demo

        for name, scenario in demo.SCENARIOS.items():
            if not scenario.seeds:
                self(name)
        return self.root


@pytest.fixture(scope="session")
def demo_logs(tmp_path_factory):
    return DemoLogs(tmp_path_factory.mktemp("demo_logs"))
