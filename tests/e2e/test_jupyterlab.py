"""Each course notebook, run as a student runs it: JupyterLab in Portuguese, a real browser.

The test starts its own JupyterLab with the project's configuration (jupyter/
jupyter_server_config.py, and the pt_BR locale from .venv/share/jupyter/lab/settings/
overrides.json that `make setup` installs) on 127.0.0.1, a free port and a random token.
Headless Chromium (Debian's, driven by Playwright; no `playwright install`) opens every
notebooks/NN_*.ipynb, runs it with Executar > Executar todas as células, waits for the kernel
to go idle, and checks:

- every code cell ran (a number in its prompt) and none printed a traceback;
- every picture (figures in Markdown cells, images in outputs) has loaded;
- the UI is Portuguese (the Run All menu item's label);
- JupyterLab never saved the notebook (autosave is off for this server; checked in its log).

Screenshots for a person to look at go to reports/screenshots/<notebook>/ (git-ignored):
every figure at the size the notebook shows it (fig_NN_*.png), the notebook page by page
(page_NN.png) and stitched into one tall picture (notebook.png).

At the end: every kernel is shut down (DELETE /api/sessions/<id>), the server is stopped,
and `labkit ps -a` lists the same containers as before. The kernels inherit the test
session's private $LABKIT_HOME (tests/conftest.py), so this never touches /var/lib/labkit.

Skipped, with the reason, when Playwright, Chromium or root (the notebooks run real
containers) is missing.  Run alone: `make test-e2e`, or
`.venv/bin/python -m pytest -rs tests/e2e`.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from requirements import VENV, missing_message, skipif_here

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
SHOTS = ROOT / "reports" / "screenshots"
VENV_BIN = Path(sys.executable).parent
JUPYTER = VENV_BIN / "jupyter"
SERVER_CONFIG = ROOT / "jupyter" / "jupyter_server_config.py"
OVERRIDES_SRC = ROOT / "jupyter" / "overrides.json"
OVERRIDES = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
CHROMIUM = os.environ.get("LABKIT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 1350}
RUN_TIMEOUT = 240          # seconds for one notebook's Run All (nbval allows 300 per cell)
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
STDERR = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
# What an uncaught exception looks like in an output (IPython's traceback, or its last line).
ERROR_TEXT = re.compile(r"Traceback \(most recent call last\)|^-{10,}\n?\w+(Error|Exception)"
                        r"|^\w+(Error|Exception)\b.*:", re.M)

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None


def _why_skip() -> str | None:
    """Why this machine cannot run the suite at all (a real skip), or None."""
    if os.geteuid() != 0:
        return "the notebooks run real containers: root is needed"
    if not NOTEBOOKS:
        return "no notebooks/NN_*.ipynb yet"
    return None


def _missing() -> str | None:
    """What make setup should have installed and did not (a failure under CI), or None."""
    if sync_playwright is None:
        return missing_message("playwright (no `playwright install`: Debian's chromium is used)", VENV)
    if not os.access(CHROMIUM, os.X_OK):
        return missing_message(f"Chromium at {CHROMIUM} (or set LABKIT_CHROMIUM)", "Debian package chromium")
    if not JUPYTER.exists():
        return missing_message(str(JUPYTER), VENV)
    return None


pytestmark = [pytest.mark.e2e, pytest.mark.slow,
              skipif_here(_why_skip() is not None, reason=str(_why_skip())),
              pytest.mark.skipif(_missing() is not None, reason=str(_missing()))]


# --------------------------------------------------------------------------- server
class Lab:
    def __init__(self, base: str, token: str, proc: subprocess.Popen, log: Path):
        self.base, self.token, self.proc, self.log = base, token, proc, log

    def api(self, method: str, path: str, timeout: float = 10):
        req = urllib.request.Request(f"{self.base}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
        return json.loads(body) if body else None

    def sessions(self) -> list[dict]:
        return self.api("GET", "/api/sessions")

    def session_for(self, name: str) -> dict | None:
        return next((s for s in self.sessions() if s.get("path", "").endswith(name)), None)

    def shutdown_sessions(self, name: str | None = None) -> None:
        for s in self.sessions():
            if name is None or s.get("path", "").endswith(name):
                self.api("DELETE", f"/api/sessions/{s['id']}", timeout=30)

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_settings(settings_dir: Path) -> None:
    """User settings of the test server only: no autosave (Run All must not rewrite the
    committed notebooks) and every cell in the DOM (no virtual scrolling), so pictures
    and prompts of cells far down the page can be checked."""
    for plugin, value in {
        "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    }.items():
        f = settings_dir / f"{plugin}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(value))


@pytest.fixture(scope="module")
def scratch():
    d = Path(tempfile.mkdtemp(prefix="labkit-e2e-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def lab(scratch):
    assert OVERRIDES.exists() and OVERRIDES.read_text() == OVERRIDES_SRC.read_text(), (
        f"{OVERRIDES} is missing or differs from jupyter/overrides.json: run `make setup`")
    state = scratch / "jupyter"
    _write_settings(state / "user-settings")
    cache = ROOT / ".cache"
    env = dict(os.environ)
    env.update({
        # the same places `make lab` uses for what a student keeps ...
        "JUPYTER_CONFIG_DIR": env.get("JUPYTER_CONFIG_DIR", str(cache / "jupyter" / "config")),
        "JUPYTER_DATA_DIR": env.get("JUPYTER_DATA_DIR", str(cache / "jupyter" / "data")),
        "IPYTHONDIR": env.get("IPYTHONDIR", str(cache / "ipython")),
        "MPLCONFIGDIR": env.get("MPLCONFIGDIR", str(cache / "matplotlib")),
        # ... but runtime files, workspaces and user settings of its own
        "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
        "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces"),
        "JUPYTERLAB_SETTINGS_DIR": str(state / "user-settings"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "VIRTUAL_ENV": str(VENV_BIN.parent),
        "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
    })
    for k in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "IPYTHONDIR", "MPLCONFIGDIR",
              "JUPYTER_RUNTIME_DIR"):
        Path(env[k]).mkdir(parents=True, exist_ok=True)
    token, port = secrets.token_hex(16), _free_port()
    log = scratch / "jupyter.log"
    cmd = [str(JUPYTER), "lab", f"--config={SERVER_CONFIG}",
           f"--ServerApp.root_dir={NOTEBOOK_DIR}", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           # opening a notebook makes a checkpoint: not in notebooks/.ipynb_checkpoints/
           f"--FileCheckpoints.checkpoint_dir={scratch / 'checkpoints'}",
           "--no-browser", "--allow-root"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    server = Lab(f"http://127.0.0.1:{port}", token, proc, log)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited ({proc.returncode}):\n{server.log_tail()}")
            try:
                server.api("GET", "/api/status", timeout=2)
                break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not answer in 90 s:\n{server.log_tail()}")
                time.sleep(0.3)
        yield server
    finally:
        try:
            server.shutdown_sessions()
        except Exception:  # noqa: BLE001 - the server is stopped right after anyway
            pass
        proc.send_signal(signal.SIGTERM)     # jupyter shuts its kernels down on SIGTERM
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)   # its own session: only what it started
            proc.wait(10)


@pytest.fixture(scope="module")
def containers_before(lab):
    """`labkit ps -a` before any notebook ran (the kernels use this same $LABKIT_HOME)."""
    return _labkit_ps()


def _labkit_ps() -> list[str]:
    """The container ids `labkit ps -a -q` lists (the rest of its columns move with time)."""
    return sorted(subprocess.run([str(VENV_BIN / "labkit"), "ps", "-a", "-q", "--no-trunc"],
                                 check=True, capture_output=True, text=True,
                                 timeout=60).stdout.split())


@pytest.fixture(scope="module")
def browser(lab, scratch):
    home = scratch / "chromium-home"      # Chromium writes ~/.config and ~/.cache otherwise
    home.mkdir()
    env = dict(os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_CACHE_HOME=str(home / ".cache"))
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(scratch / "profile"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport=VIEWPORT, env=env, locale="pt-BR")
        try:
            yield ctx
        finally:
            ctx.close()


# --------------------------------------------------------------------------- helpers
def _wait(what: str, cond, timeout: float, step: float = 0.25):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


def _kernel_idle(lab: Lab, name: str) -> bool:
    s = lab.session_for(name)
    return bool(s and s.get("kernel", {}).get("execution_state") == "idle")


def _run_all(page, shot: Path | None = None) -> str:
    """Open the menu bar's menus in turn until one has Run All; click it. Returns the
    item's label (the UI language), found by its command, so in any language."""
    item = page.locator(".lm-Menu-item[data-command='runmenu:run-all']")
    bar = page.locator(".lm-MenuBar-item")
    for i in range(bar.count()):
        bar.nth(i).click()
        try:
            item.wait_for(state="visible", timeout=1500)
        except Exception:  # noqa: BLE001 - not this menu
            page.keyboard.press("Escape")
            continue
        label = item.locator(".lm-Menu-itemLabel").inner_text()
        if shot:   # the menu bar with this menu open, as the student sees it
            page.screenshot(path=str(shot), clip={"x": 0, "y": 0, "width": 700, "height": 620})
        item.click()
        return label
    pytest.fail("no menu has the Run All item (runmenu:run-all)")


_PROMPTS_JS = """(sel) => [...document.querySelector(sel).querySelectorAll('.jp-CodeCell')]
    .map(c => (c.querySelector('.jp-InputArea-prompt') || {}).innerText || '')"""

_WATCH_JS = """(sel) => {
  const panel = document.querySelector(sel);
  window.__labkitSawBusy = false;
  const look = () => {
    if ([...panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
          .some(p => p.innerText.includes('*'))) window.__labkitSawBusy = true;
  };
  new MutationObserver(look).observe(panel, {subtree: true, childList: true,
                                             characterData: true});
}"""

_OUTPUTS_JS = """([sel, stderr]) => [...document.querySelector(sel).querySelectorAll('.jp-CodeCell')]
    .map(c => [...c.querySelectorAll(stderr)].map(o => o.innerText))"""

_IMAGES_JS = """async (sel) => {
  const imgs = [...document.querySelector(sel).querySelectorAll('.jp-Cell img')];
  await Promise.all(imgs.map(i => i.decode().catch(() => null)));
  const cells = [...document.querySelector(sel).querySelectorAll('.jp-Cell')];
  return imgs.map(i => {
    const cell = i.closest('.jp-Cell');
    return {cell: cells.indexOf(cell), markdown: cell.classList.contains('jp-MarkdownCell'),
            alt: i.alt || '', natural: i.naturalWidth, shown: i.getBoundingClientRect().width,
            src: (i.getAttribute('src') || '').slice(0, 40)};
  });
}"""

_SCROLLER_JS = """(sel) => {
  const p = document.querySelector(sel);
  const el = p.querySelector('.jp-WindowedPanel-outer') || p.querySelector('.jp-Notebook');
  const cells = el.querySelectorAll('.jp-Cell');
  const last = cells[cells.length - 1];
  // up to the end of the last cell (the notebook adds a screenful of blank space after it)
  const end = last ? last.getBoundingClientRect().bottom - el.getBoundingClientRect().top
                     + el.scrollTop + 16 : el.scrollHeight;
  return {height: Math.min(Math.ceil(end), el.scrollHeight), client: el.clientHeight};
}"""

_SCROLL_TO_JS = """([sel, y]) => {
  const p = document.querySelector(sel);
  const el = p.querySelector('.jp-WindowedPanel-outer') || p.querySelector('.jp-Notebook');
  el.scrollTop = y;
  return el.scrollTop;
}"""


def _tagged(nb_path: Path, tag: str) -> set[int]:
    """Indices (among code cells) of the cells carrying `tag`."""
    cells = [c for c in json.loads(nb_path.read_text())["cells"] if c["cell_type"] == "code"]
    return {i for i, c in enumerate(cells) if tag in c.get("metadata", {}).get("tags", [])}


def _screenshot_notebook(page, outdir: Path) -> int:
    """The notebook page by page (its own scroll area), and stitched into one picture."""
    box = page.locator(f"{PANEL} .jp-WindowedPanel-outer").first
    if not box.count():
        box = page.locator(f"{PANEL} .jp-Notebook").first
    geo = page.evaluate(_SCROLLER_JS, PANEL)
    pages, y = [], 0
    while True:
        top = page.evaluate(_SCROLL_TO_JS, [PANEL, y])
        page.wait_for_timeout(150)
        shot = outdir / f"page_{len(pages) + 1:02d}.png"
        box.screenshot(path=str(shot))
        pages.append((top, shot))
        if top + geo["client"] >= geo["height"]:
            break
        y += geo["client"]
    try:
        from PIL import Image

        first = Image.open(pages[0][1])
        height = min(pages[-1][0] + first.height, geo["height"])
        full = Image.new("RGB", (first.width, height), "white")
        for top, shot in pages:
            full.paste(Image.open(shot), (0, top))
        full.save(outdir / "notebook.png")
        last_top, last = pages[-1]          # the last page without the blank tail
        if height - last_top < first.height:
            Image.open(last).crop((0, 0, first.width, height - last_top)).save(last)
    except ImportError:  # pragma: no cover - pillow comes with matplotlib
        pass
    page.evaluate(_SCROLL_TO_JS, [PANEL, 0])
    return len(pages)


# --------------------------------------------------------------------------- tests
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_jupyterlab(nb: Path, lab: Lab, browser, containers_before):
    started = time.monotonic()
    outdir = SHOTS / nb.stem
    shutil.rmtree(outdir, ignore_errors=True)
    outdir.mkdir(parents=True)
    page = browser.new_page()
    try:
        page.goto(f"{lab.base}/lab/tree/{nb.name}?reset&token={lab.token}",
                  wait_until="domcontentloaded")
        page.locator(f"{PANEL} .jp-Cell").first.wait_for(timeout=90_000)
        _wait(f"the kernel of {nb.name} to be idle", lambda: _kernel_idle(lab, nb.name), 90)

        page.evaluate(_WATCH_JS, PANEL)
        label = _run_all(page, outdir / "menu_run.png")
        t_run = time.monotonic()
        # done when no prompt shows [*] and the kernel is idle (twice, a moment apart)
        def finished() -> bool:
            if not page.evaluate("() => window.__labkitSawBusy"):
                return False
            if any("*" in p for p in page.evaluate(_PROMPTS_JS, PANEL)):
                return False
            return _kernel_idle(lab, nb.name)
        _wait(f"Run All of {nb.name}", finished, RUN_TIMEOUT, step=0.5)
        page.wait_for_timeout(500)
        _wait(f"Run All of {nb.name} (settled)", finished, RUN_TIMEOUT, step=0.5)
        run_seconds = time.monotonic() - t_run

        # Portuguese UI: the Run All item is translated (the menu bar itself stays English
        # with the 4.5 pt-BR pack on JupyterLab 4.6; see jupyter-recipes.md §1)
        assert re.search(r"Executar todas", label), f"Run All item not in pt-BR: {label!r}"

        prompts = page.evaluate(_PROMPTS_JS, PANEL)
        not_run = [i for i, p in enumerate(prompts) if not re.search(r"\[\d+\]", p)]
        stderr = page.evaluate(_OUTPUTS_JS, [PANEL, STDERR])
        expected = _tagged(nb, "raises-exception")
        errors = {i: t for i, texts in enumerate(stderr) if i not in expected
                  for t in texts if ERROR_TEXT.search(t)}
        images = page.evaluate(_IMAGES_JS, PANEL)

        # screenshots for a person: every figure as shown, then the whole notebook
        page.mouse.move(VIEWPORT["width"] - 5, VIEWPORT["height"] - 5)   # no hover marks
        figs = page.locator(f"{PANEL} .jp-Cell img")
        for k, info in enumerate(images):
            kind = "md" if info["markdown"] else "out"
            figs.nth(k).scroll_into_view_if_needed()
            figs.nth(k).screenshot(path=str(outdir / f"fig_{k + 1:02d}_cell{info['cell']:03d}"
                                                      f"_{kind}.png"))
        n_pages = _screenshot_notebook(page, outdir)
        shown = ", ".join(f"{i['shown']:.0f}" for i in images)
        line = (f"{nb.name}: Run All {run_seconds:.1f} s, {len(prompts)} code cells, "
                f"{len(images)} figures" + (f" ({shown} px wide)" if images else "")
                + f", {n_pages} pages; "
                f"total {time.monotonic() - started:.1f} s")
        print("\n" + line)
        (outdir / "summary.txt").write_text(line + "\n")

        assert not errors, "tracebacks in code cells (index among code cells):\n" + "\n".join(
            f"--- cell {i}:\n{t[-1500:]}" for i, t in errors.items())
        assert not not_run, f"code cells not executed (stopped early?): {not_run}"
        broken = [i for i in images if not i["natural"] > 0]
        assert not broken, f"pictures that did not load: {broken}"
    except Exception:
        try:                       # what the browser showed when it went wrong
            page.screenshot(path=str(outdir / "failure.png"))
        except Exception:  # noqa: BLE001 - keep the original error
            pass
        raise
    finally:
        page.close()
        lab.shutdown_sessions(nb.name)
    # autosave is off: the committed notebook must not have been saved over by the test
    # (read from the server's log, not the file: someone may be rebuilding it meanwhile)
    saved = [ln for ln in lab.log_tail(10_000).splitlines()
             if "Saving file at" in ln and ln.rstrip().endswith(nb.name)]
    assert not saved, f"JupyterLab saved {nb.name} during the test: {saved}"


def test_nothing_left_behind(lab: Lab, browser, containers_before):
    """Runs after the notebooks: no kernel alive, `labkit ps -a` as it was before."""
    lab.shutdown_sessions()
    _wait("every kernel to shut down", lambda: lab.api("GET", "/api/kernels") == [], 30)
    after = _labkit_ps()
    left = sorted(set(after) - set(containers_before))
    if left:                  # clean up anyway, then fail
        subprocess.run([str(VENV_BIN / "labkit"), "rm", "-f", *left], capture_output=True,
                       timeout=120)
    assert not left, "containers left behind by the notebooks:\n" + "\n".join(left)
