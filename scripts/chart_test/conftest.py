"""Session fixtures: helm, the output directory, the chart rendered for every value set;
and a closing summary line per passed test (what it checked, in numbers)."""

import shutil

import pytest

from .common import ROOT, SCENARIOS, find_helm, render, sh


def pytest_addoption(parser):
    parser.addoption("--keep", action="store_true",
                     help="leave the rendered files in target/chart-test")


def pytest_report_header(config):
    return f"chart tests: value sets {', '.join(SCENARIOS)}"


@pytest.fixture(scope="session")
def helm():
    path = find_helm()
    print(f"helm {sh([path, 'version', '--short']).stdout.strip()}")
    return path


@pytest.fixture(scope="session")
def out_dir(request):
    out = ROOT / "target" / "chart-test"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    yield out
    if not request.config.getoption("--keep"):
        shutil.rmtree(out, ignore_errors=True)


@pytest.fixture(scope="session")
def rendered(helm, out_dir):
    """{value set: (rendered file, its objects)}; a failed render fails every test using it."""
    return {scenario: render(helm, scenario, out_dir) for scenario in SCENARIOS}


def pytest_terminal_summary(terminalreporter):
    passed = terminalreporter.stats.get("passed", [])
    lines = [(r.nodeid, v) for r in passed for k, v in r.user_properties if k == "summary"]
    if lines:
        terminalreporter.section("what passed")
        for nodeid, text in lines:
            terminalreporter.write_line(f"{nodeid.rsplit('::', 1)[-1]}: {text}")
