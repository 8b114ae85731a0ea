"""Builds the frontend bundle into tb_plugin/static when it is missing.

Everything else lives in pyproject.toml. A wheel or sdist built here always
carries tb_plugin/static/index.js, so users of the wheel need no Node.js.
"""

import os
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

ROOT = os.path.dirname(os.path.abspath(__file__))
BUNDLE = os.path.join(ROOT, "tb_plugin", "static", "index.js")
FRONTEND = os.path.join(ROOT, "frontend")


def build_frontend():
    if os.path.exists(BUNDLE) or not os.path.isdir(FRONTEND):
        return
    try:
        subprocess.check_call(["npm", "install", "--no-audit", "--no-fund"], cwd=FRONTEND)
        subprocess.check_call(["npm", "run", "build"], cwd=FRONTEND)
    except (OSError, subprocess.CalledProcessError) as error:
        raise SystemExit(
            "tb_plugin: building the frontend needs Node.js and npm "
            "(cd frontend && npm install && npm run build): %s" % error
        )


class BuildPyWithFrontend(build_py):
    def run(self):
        build_frontend()
        super().run()


class SdistWithFrontend(sdist):
    def run(self):
        build_frontend()
        super().run()


setup(cmdclass={"build_py": BuildPyWithFrontend, "sdist": SdistWithFrontend})
