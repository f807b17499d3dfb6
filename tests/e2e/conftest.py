"""End-to-end tests: the course notebooks in JupyterLab, in a real (headless) browser."""


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", "e2e: real browser (Playwright + Debian's Chromium) against JupyterLab")
