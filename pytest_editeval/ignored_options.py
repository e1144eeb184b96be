"""editeval options given to a run that evaluates nothing: without --editeval-benchmark and without a test
marked @pytest.mark.editeval, they would be ignored in silence (a typo'd benchmark option in a CI script, an
ini file copied from another project). One warning line says so at the end of the run."""

from __future__ import annotations

import pytest


class IgnoredOptions:
    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.marker_seen = False

    def pytest_collection_modifyitems(self, items) -> None:
        self.marker_seen = self.marker_seen or any(item.get_closest_marker("editeval") for item in items)

    def pytest_runtest_logreport(self, report) -> None:  # under xdist the controller collects nothing itself
        self.marker_seen = self.marker_seen or "editeval" in report.keywords

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.marker_seen and not hasattr(terminalreporter.config, "workerinput"):
            terminalreporter.write_line(
                f"editeval: {', '.join(self.names)} given, but nothing is evaluated: add --editeval-benchmark "
                "(or a test marked @pytest.mark.editeval); they were ignored", yellow=True)


def install(config: pytest.Config, names: list[str]) -> None:
    config.pluginmanager.register(IgnoredOptions(names), "editeval-ignored-options")
