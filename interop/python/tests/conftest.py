import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_vector_results = {"ran": 0, "passed": 0, "failed": 0}


def pytest_runtest_logreport(report):
    if report.when == "call" and "test_vectors.py::test_vector_case[" in report.nodeid:
        _vector_results["ran"] += 1
        _vector_results["passed" if report.passed else "failed"] += 1
    elif report.when == "setup" and report.failed and "test_vectors.py::test_vector_case[" in report.nodeid:
        _vector_results["ran"] += 1
        _vector_results["failed"] += 1


def pytest_terminal_summary(terminalreporter):
    r = _vector_results
    terminalreporter.write_line(f"vector cases: {r['ran']} ran, {r['passed']} passed, {r['failed']} failed")
